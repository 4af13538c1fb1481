"""Every recorded Contentful sync response, replayed through the real provider into a real store.

The recordings (``$LOCALCACHE_FIXTURES/contentful``) come from Contentful's own SDK test suites.
Each test serves them from a loopback :class:`ReplayServer`, syncs a real :class:`Cache` on an
SQLite file, and checks what the store holds afterwards against the recorded items: ids,
revisions, content types, every field in every locale, deletions, links and locale fallback.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from replay import ReplayServer, token_of

from localcache import Cache, ChangeSet, Contentful, LocaleInfo, Record, SyncResult, signals

TOKEN = "replay-token"
SMF = "smf0sqiu0c5s"  # the space of the ComplexTestStubs / Localization / Multilocale recordings
EXAMPLE = "cfexampleapi"  # the space of demo_* and sync.response0

SIGNALS = {
    "sync_started": signals.sync_started,
    "sync_progress": signals.sync_progress,
    "sync_finished": signals.sync_finished,
    "sync_failed": signals.sync_failed,
    "entry_changed": signals.entry_changed,
    "entry_deleted": signals.entry_deleted,
    "asset_changed": signals.asset_changed,
    "asset_deleted": signals.asset_deleted,
    "changes_committed": signals.changes_committed,
}

# Every file in contentful/, and the test that replays it. A new recording fails
# test_every_recording_is_replayed until a test covers it.
COVERED = {
    "ComplexTestStubs_deleted-asset-initial.json": "test_deleted_asset_initial_then_next",
    "ComplexTestStubs_deleted-asset-next.json": "test_deleted_asset_initial_then_next",
    "ComplexTestStubs_deleted-entry-initial.json": "test_deleted_entry_initial_then_next",
    "ComplexTestStubs_deleted-entry-next.json": "test_deleted_entry_initial_then_next",
    "ComplexTestStubs_simple-update-initial-sync.json": "test_simple_update_two_pages_then_delta",
    "ComplexTestStubs_simple-update-initial-sync-page2.json":
        "test_simple_update_two_pages_then_delta",
    "ComplexTestStubs_simple-update-next-sync.json": "test_simple_update_two_pages_then_delta",
    "LocalizationTestStubs_localization-sync.json": "test_localization_stubs",
    "MultilocalePreseedJSONFiles_0.json": "test_multilocale_two_page_initial_sync",
    "MultilocalePreseedJSONFiles_1.json": "test_multilocale_two_page_initial_sync",
    "MultilocalePreseedJSONFiles_locales.json": "test_multilocale_two_page_initial_sync",
    "demo_initial.json": "test_demo_initial_then_update",
    "demo_update.json": "test_demo_initial_then_update",
    "demo_locales.json": "test_demo_initial_then_update",
    # Content types: localcache does not fetch them (the sync API carries the type id).
    "demo_types.json": "not a sync response",
    "sync.response0.json": "test_sync_response0",
    "sync_environments.response0.json": "test_sync_environments_response0",
}


# -- helpers -------------------------------------------------------------------------------------




class QueuedReplay(ReplayServer):
    """A ReplayServer whose sync tokens map to queues of pages instead of "the next recording".

    ``queues[token]`` is served in turn, its last page again and again once the others are
    used up; that serves a page twice (a replayed page) or loops a delta onto itself.
    Tokens not in ``queues`` fall back to ReplayServer's own routing.
    """

    def __init__(self, pages: list[dict[str, Any]], queues: dict[str, list[dict[str, Any]]],
                 locales: dict[str, Any] | None = None) -> None:
        super().__init__(pages, locales)
        self._queues = {token: list(queue) for token, queue in queues.items()}

    def route(self, path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        token = parse_qs(parts.query).get("sync_token", [""])[0]
        authorized = auth == f"Bearer {self.token}"
        if authorized and parts.path.endswith("/sync") and token in self._queues:
            queue = self._queues[token]
            return 200, queue.pop(0) if len(queue) > 1 else queue[0]
        return super().route(path, auth)


class Recorder:
    """Every signal the library sends while connected, as (name, sender, kwargs)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, dict[str, Any]]] = []
        self._receivers: list[tuple[Any, Any]] = []
        for name, signal in SIGNALS.items():
            def receiver(sender: object, _name: str = name, **kwargs: Any) -> None:
                self.events.append((_name, sender, kwargs))

            # weak=False: blinker would otherwise drop this closure at once.
            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)

    def clear(self) -> None:
        self.events.clear()

    def ids(self, name: str) -> list[str]:
        return [kwargs["id"] for n, _, kwargs in self.events if n == name]

    def changesets(self) -> list[ChangeSet]:
        return [kwargs["changes"] for n, _, kwargs in self.events if n == "changes_committed"]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    try:
        yield rec
    finally:
        rec.disconnect()


def open_cache(server: ReplayServer, path: Path, space: str,
               environment: str = "master") -> Cache:
    return Cache(Contentful(space, TOKEN, environment, base_url=server.base_url), path=path)


def live_items(*pages: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a correct store holds after these pages, in order: (entries, assets) by id."""
    entries: dict[str, Any] = {}
    assets: dict[str, Any] = {}
    for page in pages:
        for item in page["items"]:
            sys = item["sys"]
            kind = sys["type"]
            if kind == "Entry":
                entries[sys["id"]] = item
            elif kind == "Asset":
                assets[sys["id"]] = item
            elif kind == "DeletedEntry":
                entries.pop(sys["id"], None)
            elif kind == "DeletedAsset":
                assets.pop(sys["id"], None)
    return entries, assets


def expected_links(entries: dict[str, Any]) -> set[tuple[str, str, str, int, str, str]]:
    """(source, field, locale, position, link type, target) of every Link in the entries."""
    rows = set()
    for entry_id, item in entries.items():
        for name, by_locale in item.get("fields", {}).items():
            for locale, value in by_locale.items():
                values = value if isinstance(value, list) else [value]
                for position, link in enumerate(values):
                    sys = link.get("sys") if isinstance(link, dict) else None
                    if isinstance(sys, dict) and sys.get("type") == "Link":
                        rows.add((entry_id, name, locale, position, sys["linkType"], sys["id"]))
    return rows


def stored_links(path: Path) -> set[tuple[str, str, str, int, str, str]]:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        return set(conn.execute(
            "SELECT source_id, field, locale, position, target_type, target_id FROM links"))


TABLES = ("entries", "assets", "links", "entry_types", "locales")


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The store's content tables (not sync_state, which holds timestamps), row for row."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {table: sorted(conn.execute(f"SELECT * FROM {table}"), key=repr)
                for table in TABLES}
    finally:
        conn.close()


def assert_holds_exactly(cache: Cache, path: Path, entries: dict[str, Any],
                         assets: dict[str, Any], absent_assets: tuple[str, ...] = ()) -> None:
    """The store holds these entries and assets and nothing else, each as recorded."""
    stored = {record.id: record for record in cache.entries()}
    assert sorted(stored) == sorted(entries)
    stats = cache.stats()
    assert stats["entries"] == len(entries)
    assert stats["assets"] == len(assets)
    for entry_id, item in entries.items():
        record = stored[entry_id]
        assert record == cache.entry(entry_id)
        _assert_record(record, item, "Entry")
        assert record.content_type == item["sys"]["contentType"]["sys"]["id"]
    for asset_id, item in assets.items():
        record = cache.asset(asset_id)
        assert record is not None, asset_id
        _assert_record(record, item, "Asset")
        assert record.content_type is None
    for asset_id in absent_assets:
        assert cache.asset(asset_id) is None
    assert stored_links(path) == expected_links(entries)


def _assert_record(record: Record, item: dict[str, Any], record_type: str) -> None:
    sys = item["sys"]
    assert record.type == record_type
    assert record.id == sys["id"]
    assert record.revision == sys["revision"], sys["id"]
    assert record.created_at == sys["createdAt"]
    assert record.updated_at == sys["updatedAt"]
    # What `localcache export` writes: the fields exactly as the CMS sent them.
    assert record.fields == item["fields"], sys["id"]
    assert record.raw == item, sys["id"]


def counts(result: SyncResult) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    e, a = result.entries, result.assets
    return (e.added, e.updated, e.deleted), (a.added, a.updated, a.deleted)


def ids_of(page: dict[str, Any], kind: str) -> list[str]:
    return [item["sys"]["id"] for item in page["items"] if item["sys"]["type"] == kind]


# -- coverage of the recordings ------------------------------------------------------------------


def test_every_recording_is_replayed(fixtures_dir: Path) -> None:
    recorded = {p.name for p in (fixtures_dir / "contentful").glob("*.json")}
    assert recorded == set(COVERED)


# -- single-page initial syncs -------------------------------------------------------------------


def test_sync_response0(load_fixture: Any, store_path: Path, recorder: Recorder) -> None:
    page = load_fixture("contentful/sync.response0.json")
    with ReplayServer([page]) as server, open_cache(server, store_path, EXAMPLE) as cache:
        result = cache.sync()
        entries, assets = live_items(page)
        assert (len(entries), len(assets)) == (10, 4)
        assert result.initial is True
        assert (result.pages, result.items) == (1, 14)
        assert counts(result) == ((10, 0, 0), (4, 0, 0))
        assert_holds_exactly(cache, store_path, entries, assets)

        cities = cache.entries(content_type="1t9IbcfdCk6m04uISSsaIK")
        assert [r.id for r in cities] == sorted(
            ["5ETMRzkl9KM4omyMwKAOki", "7qVBlCjpWE86Oseo40gAEY", "ge1xHyH3QOWucKWCCAgIG",
             "4MU1s3potiUEM2G4okYOqw"])
        london = cache.entry("5ETMRzkl9KM4omyMwKAOki")
        assert london is not None
        assert london.field("name") == "London"
        assert london.field("center") == {"lon": -0.12548719999995228, "lat": 51.508515}
        assert [r.id for r in cache.entries(content_type="cat")] == [
            "garfield", "happycat", "nyancat"]

        happycat = cache.entry("happycat")
        assert happycat is not None
        assert happycat.revision == 8
        assert happycat.field("name", "en-US") == "Happy Cat"
        assert happycat.field("name", "tlh") == "Quch vIghro'"
        assert happycat.links("bestFriend") == [("Entry", "nyancat")]
        assert [(r.type, r.id) for r in cache.resolve(happycat, "bestFriend")] == [
            ("Entry", "nyancat")]
        assert [(r.type, r.id) for r in cache.resolve(happycat, "image")] == [
            ("Asset", "happycat")]
        garfield = cache.entry("garfield")
        assert garfield is not None
        assert garfield.fields["lifes"] == {"en-US": None}
        jake_asset = cache.asset("jake")
        assert jake_asset is not None
        assert jake_asset.field("file")["fileName"] == "jake.png"

        assert sorted(recorder.ids("entry_changed")) == sorted(entries)
        assert sorted(recorder.ids("asset_changed")) == sorted(assets)
        assert recorder.ids("entry_deleted") == recorder.ids("asset_deleted") == []
        assert cache.stats()["synced"] is True
    assert server.requests == [
        f"/spaces/{EXAMPLE}/environments/master/locales?limit=1000",
        f"/spaces/{EXAMPLE}/environments/master/content_types?skip=0&limit=1000",
        # the default page size: Contentful's documented maximum
        f"/spaces/{EXAMPLE}/environments/master/sync?initial=true&limit=1000",
    ]


def test_sync_environments_response0(load_fixture: Any, store_path: Path) -> None:
    page = load_fixture("contentful/sync_environments.response0.json")
    space = "a22o2qgm356c"
    with ReplayServer([page]) as server, \
            open_cache(server, store_path, space, "staging") as cache:
        result = cache.sync()
        entries, assets = live_items(page)
        assert (len(entries), len(assets)) == (16, 0)
        assert counts(result) == ((16, 0, 0), (0, 0, 0))
        assert_holds_exactly(cache, store_path, entries, assets)
        stats = cache.stats()
        assert (stats["space"], stats["environment"]) == (space, "staging")
        assert stats["entries_by_content_type"] == {
            "belongsToManyChild": 1, "belongsToManyParent": 2, "hasManyTestModel": 1,
            "hasOneTestModel": 1, "modelWithEmpty": 2, "nested": 3, "rootNested": 3,
            "testModel": 3,
        }

        has_many = cache.entry("1uSqoShftmyOgUAGqq0AoE")
        assert has_many is not None
        # Link arrays keep their order.
        assert [r.id for r in cache.resolve(has_many, "testModels")] == [
            "4loaNA1D0kkEm0yEYeWig8", "4efguzTf2g0aWaoG22YAOM"]
        assert [r.field("name") for r in cache.resolve(has_many, "testModels")] == [
            "Has Many - Child 1", "Has Many - Child 2"]
        has_one = cache.entry("59k425pJ5K6CoA086IEEci")
        assert has_one is not None
        assert [r.id for r in cache.resolve(has_one, "testModel")] == ["3nE4ocwMeQMOWouMc48Ugw"]

        # A chain of links, followed record by record.
        root = cache.entry("4UnXECdw6AAwyeCUcIuqCy")
        assert root is not None
        first = cache.resolve(root, "related")
        assert [r.id for r in first] == ["5sdA4Fv5o4SOeyq4Sq8qmG"]
        second = cache.resolve(first[0], "related")
        assert [r.field("name") for r in second] == ["RootNested - 2"]
        assert cache.resolve(second[0], "related") == []

        empty = cache.entry("3QBNQLVctWIUMy4MEMUECK")
        assert empty is not None
        assert empty.field("empty") is None
        assert "empty" not in empty.fields
        # Two parents, one child: both links are in the links table.
        with sqlite3.connect(store_path) as conn:
            parents = sorted(r[0] for r in conn.execute(
                "SELECT source_id FROM links WHERE target_id = ?", ("4uixOdA4tW0M68IscqUqgW",)))
        assert parents == ["3KNfNMhj3qG26KGUo2Gc0Q", "4mmQsimSBismkEA4YigMo2"]
    assert all(f"/spaces/{space}/environments/staging/" in p for p in server.requests)


def test_localization_stubs(load_fixture: Any, store_path: Path) -> None:
    page = load_fixture("contentful/LocalizationTestStubs_localization-sync.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")  # same space
    with ReplayServer([page], locales) as server, open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
        entries, assets = live_items(page)
        assert len(entries) == 12
        assert counts(result) == ((12, 0, 0), (0, 0, 0))
        assert_holds_exactly(cache, store_path, entries, assets)
        assert sorted(r.id for r in cache.entries(content_type="link")) == sorted([
            "6OdVm20wGAu06w88UqqeaG", "3Q0rPkimDmuoCQqgUiqKUu", "2XYdAPiR0I6SMAGiCOEukU",
            "oyH8Sacu7m4c2si8CEcqs"])

        hello = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert hello is not None
        assert hello.revision == 6
        assert hello.field("textBody") == "Hello"
        assert hello.field("textBody", "en-US") == "Hello"
        assert hello.field("textBody", "es-MX") == "Hola"
        nullified = cache.entry("5GiLOZvY7SiMeUIgIIAssS")
        assert nullified is not None
        assert nullified.field("textBody", "es-MX") == "Record with nullified link"
        assert nullified.field("linkField") is None

        # A link field localized per locale: each locale points elsewhere.
        with_link = cache.entry("14XouHzspI44uKCcMicWUY")
        assert with_link is not None
        assert with_link.links("linkField", "en-US") == [("Entry", "2XYdAPiR0I6SMAGiCOEukU")]
        assert with_link.links("linkField", "es-MX") == [("Entry", "3Q0rPkimDmuoCQqgUiqKUu")]
        assert [r.field("awesomeLinkTitle", "es-MX")
                for r in cache.resolve(with_link, "linkField", "es-MX")] == ["El segundo link"]
        assert [r.field("awesomeLinkTitle")
                for r in cache.resolve(with_link, "linkField")] == ["AWESOMELINK!!!"]
        # A link only in en-US: es-MX falls back to it.
        fallback = cache.entry("3Ck6MRrAJ2CaiasGKqeyao")
        assert fallback is not None
        targets = cache.resolve(fallback, "linkField", "es-MX")
        assert [r.id for r in targets] == ["6OdVm20wGAu06w88UqqeaG"]
        assert targets[0].field("awesomeLinkTitle", "es-MX") == "Español"
        only_english = cache.entry("oyH8Sacu7m4c2si8CEcqs")
        assert only_english is not None
        assert only_english.field("awesomeLinkTitle", "es-MX") == "To be nullified"

        assert {row for row in stored_links(store_path) if row[0] == "14XouHzspI44uKCcMicWUY"} == {
            ("14XouHzspI44uKCcMicWUY", "linkField", "en-US", 0, "Entry", "2XYdAPiR0I6SMAGiCOEukU"),
            ("14XouHzspI44uKCcMicWUY", "linkField", "es-MX", 0, "Entry", "3Q0rPkimDmuoCQqgUiqKUu"),
        }


# -- multi-page initial syncs and deltas ---------------------------------------------------------


def test_multilocale_two_page_initial_sync(load_fixture: Any, store_path: Path,
                                           recorder: Recorder) -> None:
    first = load_fixture("contentful/MultilocalePreseedJSONFiles_0.json")
    second = load_fixture("contentful/MultilocalePreseedJSONFiles_1.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")
    with ReplayServer([first, second], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
        entries, assets = live_items(first, second)
        assert (len(entries), len(assets)) == (118, 2)
        assert result.initial is True
        assert (result.pages, result.items) == (2, 120)
        assert counts(result) == ((118, 0, 0), (2, 0, 0))
        assert_holds_exactly(cache, store_path, entries, assets)
        assert cache.locales() == [
            LocaleInfo(code="en-US", name="U.S. English", default=True, fallback=None),
            LocaleInfo(code="es-MX", name="Spanish (Mexico)", default=False, fallback="en-US"),
        ]

        # es-MX falls back to en-US wherever it has no value of its own.
        symbols = cache.entry("2mhGzgf3oQOquo0SyGWCQE")
        assert symbols is not None
        assert symbols.field("textBody", "es-MX") == "Record with symbols array"
        assert symbols.field("symbolsArray", "es-MX") == ["one", "two", "three", "four", "five"]
        assert symbols.field("missing", "es-MX", default="-") == "-"
        hello = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert hello is not None
        assert (hello.field("textBody", "es-MX"), hello.field("textBody")) == ("Hola", "Hello")
        tail = cache.entry("3PbLvOJldSc6MqKEaIE6Ce")  # from the second page
        assert tail is not None
        assert tail.field("textBody", "es-MX") == tail.fields["textBody"]["en-US"]
        location = cache.entry("4VTL2TY7rikiS6c2MI2is4")
        assert location is not None
        assert location.field("locationField", "es-MX") == {
            "lon": -119.69819010000003, "lat": 34.4208305}

        # Links: an asset array in order, a shared asset, an unresolvable target.
        gallery = cache.entry("2JFSeiPTZYm4goMSUeYSCU")
        assert gallery is not None
        resolved = cache.resolve(gallery, "assetsArrayLinkField", "es-MX")
        assert [(r.type, r.id) for r in resolved] == [
            ("Asset", "6Wsz8owhtCGSICg44IUYAm"), ("Asset", "6G30n5w3sWcS6yEWo8q6CI")]
        assert [r.field("title") for r in resolved] == [
            "First asset in array", "Second asset in array"]
        broken = cache.entry("1k7s1gNcQA8WoUWiqcYaMO")
        assert broken is not None
        assert broken.links("linkField") == [("Entry", "2bQUUwIT3mk6GaKqgo40cu")]
        assert cache.resolve(broken, "linkField") == []
        links = stored_links(store_path)
        assert sorted(row[0] for row in links if row[5] == "6Wsz8owhtCGSICg44IUYAm") == sorted([
            "12f37qR1CGOOcqoWOgqC2o", "4DiVtM6u08uMA2QSgg0OoY", "2JFSeiPTZYm4goMSUeYSCU"])
        assert ("7BwFiM0nxCS4EGYaIAIkyU", "arrayLinkField", "en-US", 1, "Entry",
                "3Q0rPkimDmuoCQqgUiqKUu") in links

        changesets = recorder.changesets()
        assert [c.page for c in changesets] == [1, 2]
        assert sorted(changesets[0].entries_added) == sorted(ids_of(first, "Entry"))
        assert sorted(changesets[0].assets_added) == sorted(ids_of(first, "Asset"))
        assert sorted(changesets[1].entries_added) == sorted(ids_of(second, "Entry"))
        assert changesets[1].assets_added == ()
        assert cache.stats()["synced"] is True
    assert [r for r in server.requests if "/sync?" in r] == [
        f"/spaces/{SMF}/environments/master/sync?initial=true&limit=1000",
        f"/spaces/{SMF}/environments/master/sync?sync_token={token_of(first)}",
    ]


def test_simple_update_two_pages_then_delta(load_fixture: Any, store_path: Path,
                                            recorder: Recorder) -> None:
    first = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync.json")
    second = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync-page2.json")
    delta = load_fixture("contentful/ComplexTestStubs_simple-update-next-sync.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")
    with ReplayServer([first, second, delta], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
        entries, assets = live_items(first, second)
        assert len(entries) == 103
        assert result.initial is True
        assert result.pages == 2
        assert counts(result) == ((103, 0, 0), (0, 0, 0))
        assert_holds_exactly(cache, store_path, entries, assets)
        assert [r.id for r in cache.entries(content_type="singleRecord")] == sorted(entries)
        before = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert before is not None
        assert (before.revision, before.updated_at) == (3, "2017-07-13T09:49:17.125Z")
        untouched = {r.id: r for r in cache.entries() if r.id != "aNt2d7YR4AIwEAMcG4OwI"}

        recorder.clear()
        result = cache.sync()
        assert result.initial is False
        assert (result.pages, result.items) == (1, 1)
        assert counts(result) == ((0, 1, 0), (0, 0, 0))
        entries, assets = live_items(first, second, delta)
        assert_holds_exactly(cache, store_path, entries, assets)
        after = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert after is not None
        assert (after.revision, after.updated_at) == (4, "2017-07-13T13:08:34.383Z")
        assert after.fields == delta["items"][0]["fields"]
        assert after.field("textBody") != before.field("textBody")
        assert {r.id: r for r in cache.entries() if r.id != after.id} == untouched
        assert recorder.ids("entry_changed") == ["aNt2d7YR4AIwEAMcG4OwI"]
        assert recorder.changesets() == [ChangeSet(
            page=1, entries_updated=("aNt2d7YR4AIwEAMcG4OwI",),
            content_types=frozenset({"singleRecord"}))]
    assert server.requests[-1].endswith(f"sync?sync_token={token_of(second)}")


# -- deletions -----------------------------------------------------------------------------------


def test_deleted_entry_initial_then_next(load_fixture: Any, store_path: Path,
                                         recorder: Recorder) -> None:
    initial = load_fixture("contentful/ComplexTestStubs_deleted-entry-initial.json")
    nxt = load_fixture("contentful/ComplexTestStubs_deleted-entry-next.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")
    entry_id = "aNt2d7YR4AIwEAMcG4OwI"
    with ReplayServer([initial, nxt], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        assert counts(cache.sync()) == ((1, 0, 0), (0, 0, 0))
        entries, assets = live_items(initial)
        assert_holds_exactly(cache, store_path, entries, assets)
        record = cache.entry(entry_id)
        assert record is not None
        assert (record.revision, record.content_type) == (3, "singleRecord")
        assert record.field("textBody", "es-MX") == initial["items"][0]["fields"]["textBody"][
            "es-MX"]

        recorder.clear()
        result = cache.sync()
        assert counts(result) == ((0, 0, 1), (0, 0, 0))
        assert cache.entry(entry_id) is None
        assert cache.entries() == []
        assert cache.entries(content_type="singleRecord") == []
        assert_holds_exactly(cache, store_path, *live_items(initial, nxt))
        assert recorder.ids("entry_deleted") == [entry_id]
        assert recorder.ids("entry_changed") == []
        assert recorder.changesets() == [ChangeSet(
            page=1, entries_deleted=(entry_id,), content_types=frozenset({"singleRecord"}))]


def test_deleted_asset_initial_then_next(load_fixture: Any, store_path: Path,
                                         recorder: Recorder) -> None:
    initial = load_fixture("contentful/ComplexTestStubs_deleted-asset-initial.json")
    nxt = load_fixture("contentful/ComplexTestStubs_deleted-asset-next.json")
    asset_id = "YokO2rWbOoo68QmiEUkqe"
    with ReplayServer([initial, nxt]) as server, open_cache(server, store_path, SMF) as cache:
        assert counts(cache.sync()) == ((0, 0, 0), (1, 0, 0))
        assert_holds_exactly(cache, store_path, *live_items(initial))
        asset = cache.asset(asset_id)
        assert asset is not None
        assert asset.revision == 1
        assert asset.field("file") == initial["items"][0]["fields"]["file"]["en-US"]

        recorder.clear()
        # The deletion's revision (3) and updatedAt (2017) are not compared to the stored
        # ones (1, 2018): a deletion always wins.
        assert counts(cache.sync()) == ((0, 0, 0), (0, 0, 1))
        assert cache.asset(asset_id) is None
        assert cache.stats()["assets"] == 0
        assert recorder.ids("asset_deleted") == [asset_id]
        assert recorder.changesets() == [ChangeSet(page=1, assets_deleted=(asset_id,))]


def test_demo_initial_then_update(load_fixture: Any, store_path: Path,
                                  recorder: Recorder) -> None:
    initial = load_fixture("contentful/demo_initial.json")
    update = load_fixture("contentful/demo_update.json")
    locales = load_fixture("contentful/demo_locales.json")
    assert [i["sys"]["type"] for i in update["items"]] == [
        "Entry", "DeletedEntry", "DeletedAsset", "Entry", "Asset"]
    with ReplayServer([initial, update], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        result = cache.sync()
        assert counts(result) == ((7, 0, 0), (4, 0, 0))
        assert_holds_exactly(cache, store_path, *live_items(initial))
        assert len(stored_links(store_path)) == 7
        happycat = cache.entry("happycat")
        assert happycat is not None
        assert happycat.field("name", "tlh") == "Quch vIghro'"
        assert [r.id for r in cache.resolve(happycat, "bestFriend")] == ["nyancat"]
        finn = cache.entry("finn")
        assert finn is not None
        assert finn.fields["image"] == {}
        assert finn.links("image") == []

        recorder.clear()
        result = cache.sync()
        assert result.initial is False
        assert (result.pages, result.items) == (1, 5)
        assert counts(result) == ((1, 1, 1), (0, 1, 1))
        entries, assets = live_items(initial, update)
        assert sorted(entries) == sorted(["jake", "happycat", "6KntaYXaHSyIw8M6eo26OK", "finn",
                                          "garfield", "CVebBDcQsSsu6yKKIayy", "supercat"])
        assert sorted(assets) == sorted(["1x0xpXu4pSGS4OukSyWGUK", "happycat", "nyancat"])
        assert_holds_exactly(cache, store_path, entries, assets, absent_assets=("jake",))

        # DeletedEntry nyancat removed the entry, not the asset of the same id; DeletedAsset
        # jake removed the asset, not the entry.
        assert cache.entry("nyancat") is None
        assert cache.asset("nyancat") is not None
        assert cache.asset("jake") is None
        jake = cache.entry("jake")
        assert jake is not None
        assert jake.links("image") == [("Asset", "jake")]
        assert cache.resolve(jake, "image") == []

        happycat = cache.entry("happycat")
        assert happycat is not None
        assert happycat.revision == 9
        assert happycat.field("name") == "Happier Cat"
        assert happycat.field("name", "tlh") == "Happier Cat"  # tlh falls back to en-US now
        assert happycat.links("bestFriend") == [("Entry", "nyancat")]
        assert cache.resolve(happycat, "bestFriend") == []  # the target is gone
        cat_asset = cache.asset("happycat")
        assert cat_asset is not None
        assert (cat_asset.revision, cat_asset.field("file")["url"]) == (2, "//happiercat.jpg")
        supercat = cache.entry("supercat")
        assert supercat is not None
        assert (supercat.content_type, supercat.field("lives")) == ("cat", 123)
        assert [r.id for r in cache.entries(content_type="cat")] == [
            "garfield", "happycat", "supercat"]
        assert not any(row[0] == "nyancat" for row in stored_links(store_path))

        assert recorder.changesets() == [ChangeSet(
            page=1, entries_added=("supercat",), entries_updated=("happycat",),
            entries_deleted=("nyancat",), assets_updated=("happycat",),
            assets_deleted=("jake",), content_types=frozenset({"cat"}),
            affected=("garfield", "happycat", "jake"))]
        assert sorted(recorder.ids("entry_changed")) == ["happycat", "supercat"]
        assert recorder.ids("entry_deleted") == ["nyancat"]
        assert recorder.ids("asset_changed") == ["happycat"]
        assert recorder.ids("asset_deleted") == ["jake"]


def test_deleting_records_never_held_is_a_noop(load_fixture: Any, tmp_path: Path,
                                               recorder: Recorder) -> None:
    # An entry deletion against a store that only ever held an asset.
    asset_initial = load_fixture("contentful/ComplexTestStubs_deleted-asset-initial.json")
    entry_next = load_fixture("contentful/ComplexTestStubs_deleted-entry-next.json")
    assert token_of(asset_initial) == "deletion-intial"
    path = tmp_path / "a.sqlite3"
    with ReplayServer([asset_initial, entry_next]) as server, \
            open_cache(server, path, SMF) as cache:
        cache.sync()
        before = dump(path)
        recorder.clear()
        result = cache.sync()
        assert (result.pages, result.items) == (1, 1)
        assert counts(result) == ((0, 0, 0), (0, 0, 0))
        assert dump(path) == before
        assert cache.asset("YokO2rWbOoo68QmiEUkqe") is not None
        assert recorder.ids("entry_deleted") == recorder.ids("asset_deleted") == []
        assert recorder.changesets() == [ChangeSet(page=1)]
        assert recorder.changesets()[0].empty

    # demo_update on a store that never held nyancat (entry) or jake (asset).
    update = load_fixture("contentful/demo_update.json")
    path = tmp_path / "b.sqlite3"
    recorder.clear()
    with ReplayServer([update]) as server, open_cache(server, path, EXAMPLE) as cache:
        result = cache.sync()
        assert counts(result) == ((2, 0, 0), (1, 0, 0))
        assert_holds_exactly(cache, path, *live_items(update))
        assert cache.entry("nyancat") is None
        assert cache.asset("jake") is None
        assert recorder.ids("entry_deleted") == recorder.ids("asset_deleted") == []
        (changes,) = recorder.changesets()
        assert (changes.entries_deleted, changes.assets_deleted) == ((), ())
        assert sorted(changes.entries_added) == ["happycat", "supercat"]


# -- replays -------------------------------------------------------------------------------------


def test_same_delta_page_twice_changes_nothing(load_fixture: Any, store_path: Path,
                                               recorder: Recorder) -> None:
    initial = load_fixture("contentful/demo_initial.json")
    update = load_fixture("contentful/demo_update.json")
    locales = load_fixture("contentful/demo_locales.json")
    # st1 (after demo_initial) and st2 (after demo_update) both lead to demo_update.
    queues = {token_of(initial): [update], token_of(update): [update]}
    with QueuedReplay([initial], queues, locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        cache.sync()
        before = dump(store_path)
        records_before = cache.entries()
        recorder.clear()

        result = cache.sync()
        assert (result.pages, result.items) == (1, 5)
        assert counts(result) == ((0, 0, 0), (0, 0, 0))
        assert dump(store_path) == before
        assert cache.entries() == records_before
        assert_holds_exactly(cache, store_path, *live_items(initial, update),
                             absent_assets=("jake",))
        names = [name for name, _, _ in recorder.events]
        assert names == ["sync_started", "changes_committed", "sync_progress", "sync_finished"]
        assert recorder.changesets() == [ChangeSet(page=1)]
    assert [p.rsplit("=", 1)[1] for p in server.requests if "sync_token" in p] == [
        "st1", "st2"]


def test_initial_page_applied_twice_equals_applied_once(load_fixture: Any, tmp_path: Path,
                                                        recorder: Recorder) -> None:
    first = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync.json")
    second = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync-page2.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")

    once = tmp_path / "once.sqlite3"
    with ReplayServer([first, second], locales) as server, \
            open_cache(server, once, SMF) as cache:
        cache.sync()

    twice = tmp_path / "twice.sqlite3"
    recorder.clear()
    queues = {token_of(first): [first, second]}  # page 1, page 1 again, page 2
    with QueuedReplay([first], queues, locales) as server, \
            open_cache(server, twice, SMF) as cache:
        result = cache.sync()
        assert result.pages == 3
        assert counts(result) == ((103, 0, 0), (0, 0, 0))
        assert_holds_exactly(cache, twice, *live_items(first, second))
    assert dump(twice) == dump(once)
    changed = recorder.ids("entry_changed")
    assert len(changed) == len(set(changed)) == 103
    assert [len(c) for c in recorder.changesets()] == [100, 0, 3]


def test_deleted_id_comes_back(load_fixture: Any, store_path: Path, recorder: Recorder) -> None:
    """An id deleted in one delta and re-created in the next, with the same old revision."""
    initial = load_fixture("contentful/ComplexTestStubs_deleted-entry-initial.json")
    nxt = load_fixture("contentful/ComplexTestStubs_deleted-entry-next.json")
    again = copy.deepcopy(initial)
    again["nextSyncUrl"] = "https://cdn.contentful.com/spaces/x/sync?sync_token=again"
    queues = {token_of(initial): [nxt], token_of(nxt): [again]}
    with QueuedReplay([initial], queues) as server, \
            open_cache(server, store_path, SMF) as cache:
        cache.sync()
        cache.sync()
        assert cache.entry("aNt2d7YR4AIwEAMcG4OwI") is None
        recorder.clear()
        assert counts(cache.sync()) == ((1, 0, 0), (0, 0, 0))
        assert_holds_exactly(cache, store_path, *live_items(again))
        assert recorder.ids("entry_changed") == ["aNt2d7YR4AIwEAMcG4OwI"]


def test_record_signals_carry_the_stored_record(load_fixture: Any, store_path: Path,
                                                recorder: Recorder) -> None:
    page = load_fixture("contentful/sync.response0.json")
    with ReplayServer([page]) as server, open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        for name, getter in (("entry_changed", cache.entry), ("asset_changed", cache.asset)):
            sent = [kwargs for n, _, kwargs in recorder.events if n == name]
            assert sent
            for kwargs in sent:
                assert kwargs["record"] == getter(kwargs["id"])
                assert kwargs["record"].raw == getter(kwargs["id"]).raw



def test_later_page_wins_even_with_a_lower_revision(load_fixture: Any, store_path: Path,
                                                    recorder: Recorder) -> None:
    """Ids come back with restarted revisions: a later page always overwrites, links too.

    The localization recording (14XouHzspI44uKCcMicWUY at revision 4, with links) is followed
    by the simple-update recording, where the same ids carry lower revisions and no links.
    """
    newer = load_fixture("contentful/LocalizationTestStubs_localization-sync.json")
    first = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync.json")
    second = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync-page2.json")
    locales = load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json")
    queues = {token_of(newer): [first], token_of(first): [second]}
    with QueuedReplay([newer], queues, locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        cache.sync()
        linked = cache.entry("14XouHzspI44uKCcMicWUY")
        assert linked is not None and linked.revision == 4
        assert any(row[0] == linked.id for row in stored_links(store_path))
        recorder.clear()

        result = cache.sync()
        assert result.pages == 2
        entries, assets = live_items(newer, first, second)
        assert_holds_exactly(cache, store_path, entries, assets)
        older = cache.entry("14XouHzspI44uKCcMicWUY")
        assert older is not None
        assert older.revision == 2
        assert "linkField" not in older.fields
        assert cache.resolve(older, "linkField") == []
        assert not any(row[0] == older.id for row in stored_links(store_path))
        hello = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert hello is not None
        assert (hello.revision, hello.field("textBody", "es-MX")) == (3, hello.field("textBody"))
        assert "14XouHzspI44uKCcMicWUY" in recorder.ids("entry_changed")
        assert "aNt2d7YR4AIwEAMcG4OwI" in recorder.ids("entry_changed")
