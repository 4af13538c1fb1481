"""Signals: sent after commit, from the Cache, for each record each page changed, once per page.

Recorded Contentful pages are served from a loopback ReplayServer to a real Cache on SQLite.
Blinker holds receivers weakly: every receiver here is connected with ``weak=False`` and
disconnected when its test ends.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blinker import Signal
from replay import ReplayServer, token_of

from localcache import (
    AuthenticationError,
    Cache,
    ChangeSet,
    Contentful,
    LocalCacheError,
    StoreError,
    SyncResult,
    TokenRejectedError,
    signals,
)

TOKEN = "replay-token"
SMF = "smf0sqiu0c5s"
EXAMPLE = "cfexampleapi"
SIGNAL_NAMES = ("sync_started", "sync_progress", "sync_finished", "sync_failed",
                "entry_changed", "entry_deleted", "asset_changed", "asset_deleted",
                "changes_committed")




class Connections:
    """Connects receivers strongly and disconnects them all at the end of the test."""

    def __init__(self) -> None:
        self._connected: list[tuple[Signal, Callable[..., Any]]] = []

    def connect(self, signal: Signal, receiver: Callable[..., Any],
                sender: Any = None) -> None:
        if sender is None:
            signal.connect(receiver, weak=False)
        else:
            signal.connect(receiver, sender=sender, weak=False)
        self._connected.append((signal, receiver))

    def close(self) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver)


class Recorder:
    def __init__(self, connections: Connections) -> None:
        self.events: list[tuple[str, object, dict[str, Any]]] = []
        for name in SIGNAL_NAMES:
            def receiver(sender: object, _name: str = name, **kwargs: Any) -> None:
                self.events.append((_name, sender, kwargs))

            connections.connect(getattr(signals, name), receiver)

    def names(self) -> list[str]:
        return [name for name, _, _ in self.events]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for n, _, kwargs in self.events if n == name]

    def ids(self, name: str) -> list[str]:
        return [kwargs["id"] for kwargs in self.of(name)]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def connections() -> Iterator[Connections]:
    conns = Connections()
    try:
        yield conns
    finally:
        conns.close()


@pytest.fixture
def recorder(connections: Connections) -> Recorder:
    return Recorder(connections)


def open_cache(server: ReplayServer, path: Path, space: str,
               token: str = TOKEN) -> Cache:
    return Cache(Contentful(space, token, base_url=server.base_url), path=path)


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def visible_revision(path: Path, table: str, record_id: str) -> int | None:
    """The revision another process would read now, or None when the row is not there."""
    conn = read_only(path)
    try:
        row = conn.execute(f"SELECT revision FROM {table} WHERE id = ?", (record_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None else int(row[0])


@pytest.fixture
def two_pages(load_fixture: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync.json"),
            load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync-page2.json"),
            load_fixture("contentful/MultilocalePreseedJSONFiles_locales.json"))


@pytest.fixture
def demo(load_fixture: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (load_fixture("contentful/demo_initial.json"),
            load_fixture("contentful/demo_update.json"),
            load_fixture("contentful/demo_locales.json"))


def entry_ids(page: dict[str, Any]) -> list[str]:
    return [i["sys"]["id"] for i in page["items"] if i["sys"]["type"] == "Entry"]


# -- after commit --------------------------------------------------------------------------------


def test_record_signals_fire_after_commit(two_pages: Any, store_path: Path,
                                          connections: Connections) -> None:
    first, second, locales = two_pages
    expected = {i["sys"]["id"]: i["sys"]["revision"] for i in first["items"] + second["items"]}
    seen: dict[str, int | None] = {}

    def on_entry(sender: Any, id: str, record: Any) -> None:
        seen[id] = visible_revision(store_path, "entries", id)

    connections.connect(signals.entry_changed, on_entry)
    with ReplayServer([first, second], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        cache.sync()
    assert seen == expected


def test_changeset_fires_after_its_page_committed(two_pages: Any, store_path: Path,
                                                  connections: Connections) -> None:
    first, second, locales = two_pages
    checked: list[tuple[int, int, str | None]] = []

    def on_changes(sender: Any, changes: ChangeSet) -> None:
        conn = read_only(store_path)
        try:
            placeholders = ",".join("?" * len(changes.entries_added))
            visible = conn.execute(
                f"SELECT count(*) FROM entries WHERE id IN ({placeholders})",
                changes.entries_added).fetchone()[0]
            token = conn.execute("SELECT value FROM sync_state WHERE key = 'token'").fetchone()
        finally:
            conn.close()
        checked.append((len(changes.entries_added), visible, token and token[0]))

    connections.connect(signals.changes_committed, on_changes)
    with ReplayServer([first, second], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        cache.sync()
    # Each page's records AND its continuation token are committed when its ChangeSet is sent.
    assert checked == [(100, 100, token_of(first)), (3, 3, token_of(second))]


def test_deletion_signals_fire_after_commit(demo: Any, store_path: Path,
                                            connections: Connections) -> None:
    initial, update, locales = demo
    seen: list[tuple[str, str, int | None]] = []

    def on_entry_deleted(sender: Any, id: str) -> None:
        seen.append(("entries", id, visible_revision(store_path, "entries", id)))

    def on_asset_deleted(sender: Any, id: str) -> None:
        seen.append(("assets", id, visible_revision(store_path, "assets", id)))

    connections.connect(signals.entry_deleted, on_entry_deleted)
    connections.connect(signals.asset_deleted, on_asset_deleted)
    with ReplayServer([initial, update], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        assert seen == []
        cache.sync()
    assert sorted(seen) == [("assets", "jake", None), ("entries", "nyancat", None)]


# -- one ChangeSet per page, one signal per record per sync --------------------------------------


def test_one_changeset_per_committed_page(two_pages: Any, store_path: Path,
                                          recorder: Recorder) -> None:
    first, second, locales = two_pages
    with ReplayServer([first, second], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
    changesets = [kwargs["changes"] for kwargs in recorder.of("changes_committed")]
    assert len(changesets) == result.pages == 2
    assert [c.page for c in changesets] == [1, 2]
    assert sorted(changesets[0].entries_added) == sorted(entry_ids(first))
    assert sorted(changesets[1].entries_added) == sorted(entry_ids(second))
    for changes in changesets:
        assert changes.entries_updated == changes.entries_deleted == ()
        assert changes.assets_added == changes.assets_updated == changes.assets_deleted == ()
        assert changes.content_types == frozenset({"singleRecord"})
        assert changes.entries_changed == changes.entries_added
    # Each ChangeSet comes right after its page's record signals, before the next page's.
    names = recorder.names()
    first_changes = names.index("changes_committed")
    assert names[1:first_changes] == ["entry_changed"] * 100
    assert names[first_changes + 2:first_changes + 5] == ["entry_changed"] * 3


def test_unchanged_page_still_sends_an_empty_changeset(demo: Any, store_path: Path,
                                                       recorder: Recorder) -> None:
    initial, _, locales = demo
    again = copy.deepcopy(initial)  # the same items, delivered again as a delta
    again["nextSyncUrl"] = "https://cdn.contentful.com/spaces/x/sync?sync_token=again"
    with ReplayServer([initial, again], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        recorder.clear()
        result = cache.sync()
    assert (result.pages, result.items, result.entries.changed, result.assets.changed) == (
        1, 11, 0, 0)
    assert recorder.names() == [
        "sync_started", "changes_committed", "sync_progress", "sync_finished"]
    (changes,) = [kwargs["changes"] for kwargs in recorder.of("changes_committed")]
    assert changes == ChangeSet(page=1)
    assert changes.empty and len(changes) == 0


def test_a_record_changed_on_two_pages_fires_after_each(load_fixture: Any, store_path: Path,
                                                        recorder: Recorder) -> None:
    first = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync.json")
    last = load_fixture("contentful/ComplexTestStubs_simple-update-initial-sync-page2.json")
    update = load_fixture("contentful/ComplexTestStubs_simple-update-next-sync.json")
    # One initial sync of three pages; the middle page changes an entry of the first page.
    middle = {"sys": {"type": "Array"}, "items": update["items"],
              "nextPageUrl": "https://cdn.contentful.com/spaces/x/sync?sync_token=middle"}
    changed_twice = "aNt2d7YR4AIwEAMcG4OwI"
    assert changed_twice in entry_ids(first) and changed_twice in entry_ids(middle)
    with ReplayServer([first, middle, last]) as server, \
            open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
        stored = cache.entry(changed_twice)
        assert stored is not None and stored.revision == 4
    assert result.pages == 3
    changesets = [kwargs["changes"] for kwargs in recorder.of("changes_committed")]
    assert changesets[1] == ChangeSet(page=2, entries_updated=(changed_twice,),
                                      content_types=frozenset({"singleRecord"}))
    fired = recorder.ids("entry_changed")
    assert sorted(set(fired)) == sorted(set(entry_ids(first) + entry_ids(last)))
    # Once per commit that changed it, each time as that commit stored it: the last agrees.
    revisions = [kw["record"].revision for kw in recorder.of("entry_changed")
                 if kw["id"] == changed_twice]
    assert len(revisions) == 2 and revisions[-1] == 4 and revisions[0] < 4
    assert len(fired) == len(set(fired)) + 1
    # Net counts: added on page 1, updated on page 2, absent at the start: one add.
    assert result.entries.added == len(set(fired)) and result.entries.updated == 0
    assert [c.page for c in changesets] == [1, 2, 3]


def test_a_record_changed_again_fires_again_in_the_next_sync(demo: Any, store_path: Path,
                                                             recorder: Recorder) -> None:
    initial, update, locales = demo
    with ReplayServer([initial, update], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        assert recorder.ids("entry_changed").count("happycat") == 1
        recorder.clear()
        cache.sync()
    assert recorder.ids("entry_changed").count("happycat") == 1
    (record,) = [kw["record"] for kw in recorder.of("entry_changed") if kw["id"] == "happycat"]
    assert (record.revision, record.field("name")) == (9, "Happier Cat")
    assert recorder.ids("asset_changed") == ["happycat"]


# -- receivers that raise, sender ----------------------------------------------------------------


def test_raising_receiver_is_logged_and_sync_completes(
        demo: Any, store_path: Path, recorder: Recorder, connections: Connections,
        caplog: pytest.LogCaptureFixture) -> None:
    initial, _, locales = demo

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    for name in SIGNAL_NAMES:
        connections.connect(getattr(signals, name), broken)
    with caplog.at_level(logging.ERROR, logger="localcache.signals"), \
            ReplayServer([initial], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        result = cache.sync()
        assert isinstance(result, SyncResult)
        assert (result.entries.added, result.assets.added) == (7, 4)
        assert len(cache.entries()) == 7
        assert cache.stats()["synced"] is True
    # The other receiver still got everything.
    assert len(recorder.ids("entry_changed")) == 7
    assert len(recorder.ids("asset_changed")) == 4
    assert recorder.names()[-1] == "sync_finished"
    # One log record per failed delivery: started, 11 records, changes, progress, finished.
    failures = [r for r in caplog.records
                if r.name == "localcache.signals" and r.exc_info is not None]
    assert len(failures) == 15
    assert all(isinstance(r.exc_info[1], RuntimeError) for r in failures if r.exc_info)


def test_sender_is_the_cache(demo: Any, tmp_path: Path, recorder: Recorder,
                             connections: Connections) -> None:
    initial, update, locales = demo
    mine: list[str] = []

    def only_mine(sender: Any, **kwargs: Any) -> None:
        mine.append(kwargs["id"])

    with ReplayServer([initial, update], locales) as server, \
            open_cache(server, tmp_path / "a.sqlite3", EXAMPLE) as first, \
            open_cache(server, tmp_path / "b.sqlite3", EXAMPLE) as other:
        connections.connect(signals.entry_changed, only_mine, sender=first)
        first.sync()
        assert {sender for _, sender, _ in recorder.events} == {first}
        assert len(mine) == 7
        recorder.clear()
        other.sync()
        assert {sender for _, sender, _ in recorder.events} == {other}
        assert len(mine) == 7  # a receiver bound to one cache hears nothing from another


# -- lifecycle -----------------------------------------------------------------------------------


def test_sync_lifecycle_signals(two_pages: Any, load_fixture: Any, store_path: Path,
                                recorder: Recorder) -> None:
    first, second, locales = two_pages
    delta = load_fixture("contentful/ComplexTestStubs_simple-update-next-sync.json")
    with ReplayServer([first, second, delta], locales) as server, \
            open_cache(server, store_path, SMF) as cache:
        result = cache.sync()
        names = recorder.names()
        assert names[0] == "sync_started"
        assert recorder.of("sync_started") == [{"initial": True}]
        assert names[-1] == "sync_finished"
        assert recorder.of("sync_finished")[0]["result"] is result
        assert recorder.of("sync_progress") == [
            {"page": 1, "items": 100, "total": None}, {"page": 2, "items": 103, "total": None}]
        assert "sync_failed" not in names

        recorder.clear()
        result = cache.sync()
        assert recorder.of("sync_started") == [{"initial": False}]
        assert recorder.of("sync_progress") == [{"page": 1, "items": 1, "total": None}]
        assert recorder.of("sync_finished") == [{"result": result}]
        assert recorder.names() == ["sync_started", "entry_changed", "changes_committed",
                                    "sync_progress", "sync_finished"]


def test_sync_failed_on_refused_access_token(demo: Any, store_path: Path,
                                             recorder: Recorder) -> None:
    initial, _, locales = demo
    wrong = "wrong-token-0123456789"
    with ReplayServer([initial], locales) as server, \
            open_cache(server, store_path, EXAMPLE, token=wrong) as cache:
        with pytest.raises(AuthenticationError) as raised:
            cache.sync()
        assert cache.entries() == []
        assert cache.stats()["synced"] is False
    error = raised.value
    assert error.status == 401
    assert recorder.names() == ["sync_started", "sync_failed"]
    assert recorder.of("sync_failed")[0]["error"] is error
    assert recorder.events[-1][1] is cache
    assert wrong not in str(error) and TOKEN not in str(error)
    assert all(wrong not in repr(arg) for arg in error.args)


def test_rejected_sync_token_recovers_with_a_rebuild(demo: Any, store_path: Path,
                                                     recorder: Recorder) -> None:
    """A 400 on the stored token is not a failure: a fresh initial sync is swapped in, and as
    the content did not change, the net change signalled is nothing."""
    initial, _, locales = demo
    with ReplayServer([initial], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        before = {r.id: r.raw for r in cache.entries()}
        recorder.clear()
        result = cache.sync()  # the replay knows no page after demo_initial's token
        assert result.initial and result.entries.changed == 0
        assert {r.id: r.raw for r in cache.entries()} == before
    assert "sync_failed" not in recorder.names()
    assert recorder.names()[0] == "sync_started" and recorder.names()[-1] == "sync_finished"
    changes = [c["changes"] for c in recorder.of("changes_committed")]
    assert len(changes) == 1 and changes[0].empty


def test_sync_failed_when_a_rebuild_is_rejected_too(demo: Any, store_path: Path,
                                                    recorder: Recorder) -> None:
    initial, _, locales = demo
    with ReplayServer([initial], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        server.pages = [{"sys": {"type": "Array"}, "items": [],
                         "nextPageUrl": "http://x/sync?sync_token=unknown"}]
        recorder.clear()
        with pytest.raises(TokenRejectedError) as raised:
            cache.sync()
        assert len(cache.entries()) == 7
    assert raised.value.status == 400
    names = recorder.names()
    assert names[0] == "sync_started" and names[-1] == "sync_failed"
    assert "sync_finished" not in names
    assert recorder.of("sync_failed") == [{"error": raised.value}]
    # The shadow pages that did commit changed nothing a reader can see.
    assert all(c["changes"].empty for c in recorder.of("changes_committed"))


def test_sync_failed_when_the_page_cannot_be_written(demo: Any, store_path: Path,
                                                     recorder: Recorder) -> None:
    """An SQLite failure while a page is written is a StoreError and is signalled."""
    initial, update, locales = demo
    with ReplayServer([initial, update], locales) as server, \
            open_cache(server, store_path, EXAMPLE) as cache:
        cache.sync()
        # Another process makes every entry insert fail (as a full or broken disk would).
        conn = sqlite3.connect(store_path)
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON entries "
                     "BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
        conn.commit()
        conn.close()
        recorder.clear()
        with pytest.raises(LocalCacheError) as raised:
            cache.sync()
        assert isinstance(raised.value, StoreError)
        assert recorder.of("sync_failed") == [{"error": raised.value}]
        # Nothing of the page was applied.
        assert cache.entry("nyancat") is not None
        assert cache.entry("supercat") is None


def test_full_disk_is_reported_as_a_full_disk(load_fixture: Any, store_path: Path,
                                              recorder: Recorder) -> None:
    page = load_fixture("contentful/MultilocalePreseedJSONFiles_0.json")
    with ReplayServer([page]) as server, open_cache(server, store_path, SMF) as cache:
        # White box: cap the file at its current size on the store's own connection, the only
        # portable way to get SQLITE_FULL ("database or disk is full") in a test.
        db = cache._store.db
        pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
        db.execute_sql(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StoreError) as raised:
            cache.sync()
        assert cache.entries() == []
    message = str(raised.value).replace(str(store_path), "<store>")
    assert "disk is full" in message, message
    assert recorder.of("sync_failed") == [{"error": raised.value}]


def test_signal_names_are_the_contract() -> None:
    sent = [getattr(signals, name) for name in SIGNAL_NAMES]
    assert all(isinstance(signal, Signal) for signal in sent)
    assert len({id(signal) for signal in sent}) == len(sent)
    assert set(SIGNAL_NAMES) <= set(signals.__all__)
    assert "ChangeSet" in signals.__all__
