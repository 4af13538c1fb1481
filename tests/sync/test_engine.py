"""The sync engine over real loopback HTTP against the emulator, with a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from support import article, assert_converged, asset_fields, make_cache

from localcache import HttpPolicy, SyncError, signals
from localcache.store.apply import apply_deltas
from localcache.store.database import Store


def _publish_articles(space: Any, n: int, prefix: str = "a") -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    for i in ids:
        space.publish_entry(i, "article", article(f"Title {i}", de=f"Titel {i}"))
    return ids


def test_initial_then_delta_converges(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    ids = _publish_articles(space, 25)
    space.publish_asset("img", asset_fields("img"))
    space.publish_entry("linker", "article", article("L", related=ids[:3], image="img"))
    with make_cache(emulator, store_path, limit=10) as cache:
        first = cache.sync()
        assert first.initial and first.pages == 3
        assert first.entries.added == 26 and first.assets.added == 1
        assert_converged(cache, space)
        linker = cache.entry("linker")
        assert [r.id for r in cache.resolve(linker, "related")] == ids[:3]
        assert [r.id for r in cache.resolve(linker, "image")] == ["img"]

        space.publish_entry(ids[0], "article", article("changed"))
        space.delete_entry(ids[1])
        space.unpublish_asset("img")
        space.publish_entry("new", "article", article("new"))
        second = cache.sync()
        assert not second.initial
        assert (second.entries.added, second.entries.updated, second.entries.deleted) == (1, 1, 1)
        assert second.assets.deleted == 1
        assert_converged(cache, space)
        # A link whose target went away resolves to nothing rather than failing.
        assert [r.id for r in cache.resolve(cache.entry("linker"), "image")] == []


def test_locale_fallback_follows_the_spaces_chain(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e", "article", article("Hello", de="Hallo"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        record = cache.entry("e")
        assert record.field("title") == "Hello"            # default locale
        assert record.field("title", "de-DE") == "Hallo"
        assert record.field("title", "de-AT") == "Hallo"    # de-AT → de-DE
        assert record.field("body", "de-AT") == "Body of Hello"  # → de-DE → en-US
        assert record.field("missing", "de-DE", default=0) == 0


def test_failure_mid_initial_sync_keeps_pages_and_resumes(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    _publish_articles(space, 50)
    policy = HttpPolicy(max_attempts=2, backoff_base=0.01)
    seen: list[str] = []

    def fail_on_page_three(path: str, query: dict[str, list[str]]) -> None:
        seen.append(path)
        if len([p for p in seen if p.endswith("/sync")]) == 3:
            emulator.faults.server_error(times=5, status=503)

    emulator.faults.on_request = fail_on_page_three
    with make_cache(emulator, store_path, limit=10, http=policy) as cache:
        with pytest.raises(SyncError) as failure:
            cache.sync()
        assert failure.value.status == 503
        stats = cache.stats()
        assert stats["entries"] == 20            # pages 1 and 2 committed, nothing of page 3
        assert stats["sync_in_progress"]
        emulator.faults.clear()
        space.publish_entry("a0001", "article", article("edited meanwhile"))
        resumed = cache.sync()
        assert resumed.initial                    # still the initial sync, continued
        # Pages 3-5 only (not restarted), then one delta with what changed meanwhile.
        assert resumed.pages == 4
        assert resumed.entries.updated == 1
        assert_converged(cache, space)


def test_next_page_is_fetched_while_the_current_one_is_applied(
    emulator: Any, store_path: Path
) -> None:
    _publish_articles(emulator.space, 30)
    second_requested = threading.Event()
    sync_requests: list[str] = []

    def watch(path: str, query: dict[str, list[str]]) -> None:
        if path.endswith("/sync"):
            sync_requests.append(path)
            if len(sync_requests) == 2:
                second_requested.set()

    emulator.faults.on_request = watch
    overlapped: list[bool] = []

    def on_changes(sender: Any, changes: Any) -> None:
        if changes.page == 1:  # page 1 is committed; its successor must already be on its way
            overlapped.append(second_requested.wait(timeout=5))

    with make_cache(emulator, store_path, limit=10) as cache, \
            signals.changes_committed.connected_to(on_changes, sender=cache):
        cache.sync()
    assert overlapped == [True]


def test_applying_a_page_twice_changes_nothing(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    _publish_articles(space, 5)
    space.publish_entry("x", "article", article("x", related=["a0000", "a0001"]))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
    import json

    from localcache.providers.contentful import Contentful
    from localcache.providers.http import HttpResponse

    items = list(space.published_entries().values())
    body = json.dumps({"sys": {"type": "Array"}, "items": items,
                       "nextSyncUrl": "http://x/sync?sync_token=t"}).encode()
    page = Contentful.parse_page(
        HttpResponse(200, {"Content-Type": "application/json"}, body, None), 1)
    store = Store(store_path)

    def dump() -> list[Any]:
        conn = sqlite3.connect(store_path)
        try:
            return [conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                    for t in ("entries", "links", "entry_types")]
        finally:
            conn.close()

    before = dump()
    for _ in range(2):
        with store.write():
            changes = apply_deltas(store.raw_connection(), page.deltas, 1)
        assert (changes.added, changes.updated, changes.deleted) == ([], [], [])
        assert dump() == before
    store.close()


def test_an_id_that_comes_back_with_a_lower_revision_wins(
    emulator: Any, store_path: Path
) -> None:
    space = emulator.space
    space.publish_entry("phoenix", "article", article("v1"))
    for n in range(2, 5):
        space.publish_entry("phoenix", "article", article(f"v{n}"))
    changed: list[str] = []

    def on_changed(sender: Any, **kw: Any) -> None:
        changed.append(kw["id"])

    with make_cache(emulator, store_path) as cache:
        cache.sync()
        assert cache.entry("phoenix").revision == 4
        space.delete_entry("phoenix")
        space.publish_entry("phoenix", "article", article("reborn"))   # revision restarts at 1
        with signals.entry_changed.connected_to(on_changed, sender=cache):
            result = cache.sync()
        record = cache.entry("phoenix")
        assert record.revision == 1 and record.field("title") == "reborn"
        assert changed == ["phoenix"] and result.entries.updated == 1
        assert_converged(cache, space)


def test_second_sync_on_the_same_file_fails_clearly(emulator: Any, store_path: Path) -> None:
    from localcache import StoreBusyError

    _publish_articles(emulator.space, 20)
    release = threading.Event()
    entered = threading.Event()

    def hold(sender: Any, **kw: Any) -> None:
        entered.set()
        release.wait(timeout=10)

    with make_cache(emulator, store_path, limit=10) as first, \
            make_cache(emulator, store_path) as second, \
            signals.changes_committed.connected_to(hold, sender=first):
        worker = threading.Thread(target=first.sync)
        worker.start()
        assert entered.wait(timeout=10)
        with pytest.raises(StoreBusyError, match="another sync"):
            second.sync()
        release.set()
        worker.join(timeout=10)
        assert first.stats()["entries"] == 20


def test_a_server_without_a_locales_endpoint_still_syncs(fixtures_dir: Path,
                                                          store_path: Path) -> None:
    """Locales are read from the vendor when it lists them; a 404 there is not fatal: the
    store learns the codes the records use (without fallbacks)."""
    import json

    from replay import ReplayServer

    from localcache import Cache, Contentful

    class NoLocales(ReplayServer):
        def route(self, path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
            if path.split("?")[0].endswith("/locales"):
                return 404, {"sys": {"type": "Error", "id": "NotFound"}}
            return super().route(path, auth)

    page = json.loads((fixtures_dir / "contentful" /
                       "LocalizationTestStubs_localization-sync.json").read_text())
    with NoLocales([page]) as server, \
            Cache(Contentful("smf0sqiu0c5s", "replay-token", base_url=server.base_url),
                  path=store_path) as cache:
        cache.sync()
        assert next((loc.code, loc.default) for loc in cache.locales()) == ("en-US", True)
        assert {loc.code for loc in cache.locales()} >= {"en-US", "es-MX"}
        record = cache.entry("aNt2d7YR4AIwEAMcG4OwI")
        assert record.field("textBody") == record.fields["textBody"]["en-US"]
