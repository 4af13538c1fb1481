"""LiveQuery (localcache/live.py): a window of a query's rows that follows each ChangeSet.

Checked against the store itself: after random edits, deletions and re-creations synced in
pages, with fetches between them, the window is exactly the first rows of ``cache.entries``
for the same query, and replaying the edits it reported on a plain list gives the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache import Cache, Contentful, QueryError, signals
from localcache.emulator import Emulator, Locale, Space
from localcache.live import (
    Appended,
    Changed,
    Edit,
    Inserted,
    LiveQuery,
    Moved,
    Removed,
    Reset,
)

TOKEN = "live-token"


def ranked_space() -> Space:
    space = Space("livespace", "master", locales=[
        Locale("en-US", default=True), Locale("de-DE", fallback="en-US")])
    space.add_content_type("article", name="Article", fields=[
        {"id": "title", "type": "Symbol", "localized": True},
        {"id": "rank", "type": "Integer"},
        {"id": "author", "type": "Link", "linkType": "Entry"},
    ], display_field="title")
    space.add_content_type("person", name="Person", fields=[
        {"id": "title", "type": "Symbol", "localized": True}], display_field="title")
    return space


def fields(title: str | None, rank: int | None, de: str | None = None,
           author: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if title is not None:
        out["title"] = {"en-US": title}
        if de is not None:
            out["title"]["de-DE"] = de
    if rank is not None:
        out["rank"] = {"en-US": rank}
    if author is not None:
        out["author"] = {"en-US": {"sys": {"type": "Link", "linkType": "Entry", "id": author}}}
    return out


class Mirror:
    """What a toolkit's list does with the edits: a plain list of ids, edited in place."""

    def __init__(self) -> None:
        self.rows: list[str] = []
        self.edits: list[Edit] = []
        self.pending: Edit | None = None

    def before(self, edit: Edit) -> None:
        assert self.pending is None, "before() twice without after()"
        self.pending = edit

    def after(self, edit: Edit) -> None:
        assert self.pending is edit
        self.pending = None
        self.edits.append(edit)
        if isinstance(edit, Appended):
            assert edit.row == len(self.rows)
            self.rows.extend(r.id for r in edit.records)
        elif isinstance(edit, Inserted):
            self.rows.insert(edit.row, edit.record.id)
        elif isinstance(edit, Removed):
            assert self.rows[edit.row] == edit.id
            del self.rows[edit.row]
        elif isinstance(edit, Moved):
            assert self.rows[edit.source] == edit.record.id
            self.rows.insert(edit.destination, self.rows.pop(edit.source))
        elif isinstance(edit, Changed):
            assert self.rows[edit.row] == edit.record.id
        elif isinstance(edit, Reset):
            self.rows = []


def check_window(cache: Cache, live: LiveQuery, mirror: Mirror, **query: Any) -> None:
    expected = [r.id for r in cache.entries(**query)]
    window = list(live.ids)
    assert mirror.rows == window
    if live.can_fetch_more():
        assert window == expected[:len(window)]
    else:
        assert window == expected
    for row, record_id in enumerate(window):
        assert live.row_of(record_id) == row
        assert live.record(row).id == record_id


QUERIES = [
    {"content_type": "article"},
    {"content_type": "article", "order_by": ["-rank"]},
    {"content_type": "article", "order_by": ["rank", "-title"], "locale": "de-DE"},
    {"content_type": "article", "where": {"rank": {"gte": 3}}, "order_by": ["title"]},
    {"content_type": "article", "where": {"title": {"match": "b"}}, "order_by": ["-sys.id"],
     "locale": "de-DE"},
    {"order_by": ["title"]},
]

ids = st.sampled_from([f"e{i}" for i in range(9)])
titles = st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "B", "c", "bb"]))
ranks = st.one_of(st.none(), st.integers(0, 5))
publish = st.tuples(st.just("publish"), ids, titles, ranks, titles)
operations = st.lists(st.one_of(
    publish, publish, publish, publish, publish,
    st.tuples(st.just("person"), ids, titles),
    st.tuples(st.just("delete"), ids),
    st.tuples(st.just("unpublish"), ids),
    st.tuples(st.just("sync")),
    st.tuples(st.just("fetch"), st.integers(1, 4)),
), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(query=st.sampled_from(QUERIES), program=operations, batch=st.integers(1, 5),
       preload=st.integers(0, 8))
def test_window_is_the_first_rows_of_the_query(tmp_path: Path, query: dict[str, Any],
                                                program: list[tuple[Any, ...]], batch: int,
                                                preload: int) -> None:
    space = ranked_space()
    for number in range(preload):
        space.publish_entry(f"e{number}", "article",
                            fields(f"t{number % 3}", number % 4, de=f"d{number}"))
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful("livespace", TOKEN, base_url=emu.base_url, limit=2),
            path=tmp_path / f"{id(program)}.sqlite3") as cache:
        cache.sync()
        live = LiveQuery(cache, batch=batch, **query)
        mirror = Mirror()
        live.fetch_more(mirror)
        check_window(cache, live, mirror, **query)
        kinds = {f"e{number}": "article" for number in range(preload)}

        def follow(sender: object, changes: signals.ChangeSet) -> None:
            live.apply(changes, mirror)

        signals.changes_committed.connect(follow, sender=cache)
        try:
            for op in program:
                if op[0] == "publish" and kinds.get(op[1], "article") == "article":
                    kinds[op[1]] = "article"
                    space.publish_entry(op[1], "article", fields(op[2], op[3], de=op[4]))
                elif op[0] == "person" and kinds.get(op[1], "person") == "person":
                    kinds[op[1]] = "person"
                    space.publish_entry(op[1], "person", fields(op[2], None))
                elif op[0] == "delete" and op[1] in kinds:
                    space.delete_entry(op[1])
                    del kinds[op[1]]
                elif op[0] == "unpublish" and op[1] in space.published_entries():
                    space.unpublish_entry(op[1])
                elif op[0] == "sync":
                    cache.sync()
                    check_window(cache, live, mirror, **query)
                elif op[0] == "fetch":
                    for _ in range(op[1]):
                        live.fetch_more(mirror)
                    check_window(cache, live, mirror, **query)
            cache.sync()
            check_window(cache, live, mirror, **query)
            while live.can_fetch_more():
                live.fetch_more(mirror)
            check_window(cache, live, mirror, **query)
            assert not any(isinstance(e, Reset) for e in mirror.edits)
        finally:
            signals.changes_committed.disconnect(follow, sender=cache)


def test_edits_are_moves_and_changes_not_remove_and_insert(emulator: Any, tmp_path: Path
                                                          ) -> None:
    space = ranked_space()
    for number in range(6):
        space.publish_entry(f"e{number}", "article", fields(f"t{number}", number))
    space.publish_entry("p1", "person", fields("Ann", None))
    space.publish_entry("e5", "article", fields("t5", 5, author="p1"))
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful("livespace", TOKEN, base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        live = LiveQuery(cache, "article", order_by=["rank"])
        live.fetch_more()
        assert live.ids == ("e0", "e1", "e2", "e3", "e4", "e5")
        seen: list[list[Edit]] = []
        mirror = Mirror()
        mirror.rows = list(live.ids)

        def follow(sender: object, changes: signals.ChangeSet) -> None:
            seen.append(live.apply(changes, mirror))

        signals.changes_committed.connect(follow, sender=cache)
        try:
            space.publish_entry("e0", "article", fields("t0", 9))  # moves to the end
            space.publish_entry("e2", "article", fields("T2", 2))  # stays, changed
            space.publish_entry("p1", "person", fields("Bob", None))  # e5 links to it
            cache.sync()
        finally:
            signals.changes_committed.disconnect(follow, sender=cache)
        edits = [e for page in seen for e in page]
        assert Moved(0, 5, cache.entry("e0")) in edits  # type: ignore[arg-type]
        assert any(isinstance(e, Changed) and e.record.id == "e2" for e in edits)
        assert any(isinstance(e, Changed) and e.record.id == "e5" for e in edits)
        assert not any(isinstance(e, (Removed, Inserted)) for e in edits)
        assert live.ids == ("e1", "e2", "e3", "e4", "e5", "e0")
        assert mirror.pending is None and mirror.rows == list(live.ids)  # every before, after
        assert live.record(1).field("title") == "T2"


@contextmanager
def articles_synced(tmp_path: Path, ids: list[str]) -> Iterator[tuple[Space, Cache]]:
    """The ranked space with an article for each of ``ids`` (titled and ranked by position),
    and a cache that synced it."""
    space = ranked_space()
    for number, entry_id in enumerate(ids):
        space.publish_entry(entry_id, "article", fields(f"t{number}", number))
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful("livespace", TOKEN, base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        yield space, cache


def sync_changes(cache: Cache) -> list[signals.ChangeSet]:
    """Sync ``cache``; the ChangeSets it committed."""
    changes: list[signals.ChangeSet] = []
    with signals.changes_committed.connected_to(
            lambda sender, changes: found.append(changes), sender=cache):
        found = changes
        cache.sync()
    return changes


def test_rows_beyond_the_window_wait_for_fetch_more(tmp_path: Path) -> None:
    with articles_synced(tmp_path, [f"e{n}" for n in range(10)]) as (space, cache):
        live = LiveQuery(cache, "article", batch=4)
        assert live.fetch_more() == 4 and live.can_fetch_more()
        space.publish_entry("e8", "article", fields("t8", 80))  # beyond: no edit
        space.publish_entry("e00", "article", fields("first", 0))  # before e1: inserted
        edits = [e for c in sync_changes(cache) for e in live.apply(c)]
        assert [type(e) for e in edits] == [Inserted]
        assert live.ids == ("e0", "e00", "e1", "e2", "e3")
        while live.can_fetch_more():
            live.fetch_more()
        assert list(live.ids) == [r.id for r in cache.entries("article")]


def test_asset_list_follows_assets(tmp_path: Path) -> None:
    space = ranked_space()
    for number in range(3):
        space.publish_asset(f"a{number}", {"title": {"en-US": f"A{number}"}})
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful("livespace", TOKEN, base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        live = LiveQuery(cache, record_type="Asset", batch=2)
        mirror = Mirror()
        while live.can_fetch_more():
            live.fetch_more(mirror)
        assert live.ids == ("a0", "a1", "a2")
        space.delete_asset("a1")
        space.publish_asset("a3", {"title": {"en-US": "A3"}})
        space.publish_asset("a0", {"title": {"en-US": "A0 again"}})
        with signals.changes_committed.connected_to(
                lambda sender, changes: live.apply(changes, mirror), sender=cache):
            cache.sync()
        assert live.ids == ("a0", "a2", "a3") and mirror.rows == list(live.ids)
        assert live.record(0).field("title") == "A0 again"


def test_bad_query_raises_at_once_and_reset_keeps_the_old_one(tmp_path: Path) -> None:
    space = ranked_space()
    space.publish_entry("e1", "article", fields("t", 1, de="d"))
    with Emulator(space, access_token=TOKEN) as emu, Cache(
            Contentful("livespace", TOKEN, base_url=emu.base_url),
            path=tmp_path / "s.sqlite3") as cache:
        cache.sync()
        with pytest.raises(QueryError, match="rank"):
            LiveQuery(cache, "article", where={"rank": {"near": 1}})
        with pytest.raises(QueryError):
            LiveQuery(cache, record_type="Asset", where={"x": 1})
        live = LiveQuery(cache, "article")
        mirror = Mirror()
        live.fetch_more(mirror)
        with pytest.raises(QueryError, match="near"):
            live.reset(mirror, where={"rank": {"near": 2}})
        assert live.ids == ("e1",) and mirror.rows == ["e1"]
        live.reset(mirror, locale="de-DE")
        assert live.ids == () and mirror.rows == [] and live.locale == "de-DE"
        live.fetch_more(mirror)
        assert live.record(0).field("title", "de-DE") == "d"


def test_the_window_keeps_rows_not_decoded_records(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the last RECENT records, a row is kept as stored and decoded again when asked:
    the same record as the store's, after in-place changes and moves too."""
    import gc

    import localcache.live as live_module
    from localcache.store.query import Record

    monkeypatch.setattr(live_module, "RECENT", 3)
    with articles_synced(tmp_path, [f"e{n:02d}" for n in range(40)]) as (space, cache):
        live = LiveQuery(cache, "article", order_by=["rank"], batch=50)
        live.fetch_more()
        gc.collect()
        chain = cache._locale_chain()  # other tests' records carry chains of their own
        held = [o for o in gc.get_objects() if isinstance(o, Record) and o.locales is chain]
        assert len(held) <= 3, len(held)
        del held
        space.publish_entry("e05", "article", fields("renamed", 5))      # changed in place
        space.publish_entry("e07", "article", fields("t7", 99))          # moved to the end
        for change in sync_changes(cache):
            live.apply(change)
        assert list(live.ids) == [r.id for r in cache.entries("article", order_by=["rank"])]
        for row, record_id in enumerate(live.ids):
            stored = cache.entry(record_id)
            assert stored is not None
            found = live.record(row)
            assert (found.id, found.fields, found.revision) == (
                stored.id, stored.fields, stored.revision)
        assert live.record(live.row_of("e05") or 0).field("title") == "renamed"


_SQL_VALUES = st.one_of(st.none(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False, width=32),
                        st.text(max_size=6), st.binary(max_size=4))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_SQL_VALUES, max_size=12), descending=st.booleans())
def test_order_keys_sort_as_sqlite_does(values: list[Any], descending: bool) -> None:
    import sqlite3

    from localcache.live import _ordered

    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, v)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(v,) for v in values])
        rows = conn.execute("SELECT n, v FROM t").fetchall()
        direction = "DESC" if descending else "ASC"
        expected = [v for _, v in conn.execute(f"SELECT n, v FROM t ORDER BY v {direction}, n")]
    finally:
        conn.close()
    ours = [v for _, v in sorted(rows, key=lambda r: (_ordered(r[1], descending), r[0]))]
    assert ours == expected
