"""A delta sync applies the pages that have already arrived in one transaction (a group).

Real parts throughout: the emulator over loopback HTTP, a real SQLite file. The writer is
slowed by a trace callback on its own connection (a sleep as it writes a page's records), so
the next page has always arrived by the time a page is written, whatever the machine's speed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged

from localcache import Cache, Contentful, HttpPolicy, SyncError, signals
from localcache.emulator import Emulator
from localcache.sync import engine

FAST = HttpPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
LIMIT = 10


@pytest.fixture
def emu(space: Any) -> Iterator[Emulator]:
    with Emulator(space, access_token=TOKEN, page_size=LIMIT) as server:
        yield server


def _cache(emu: Emulator, path: Path) -> Cache:
    provider = Contentful(emu.space.space_id, TOKEN, emu.space.environment,
                          base_url=emu.base_url, limit=LIMIT, http=FAST)
    return Cache(provider, path=path)


class _Writer:
    """Watches the sync's own connection: counts its commits, and sleeps as it writes each
    page's entries (``on_write`` is called then too)."""

    def __init__(self, cache: Cache, pause: float = 0.25) -> None:
        self.commits = 0
        self.writing = False
        self.pause = pause
        self.on_write: Any = None
        self.conn: sqlite3.Connection = cache._store.raw_connection()  # this thread's
        self.conn.set_trace_callback(self._trace)

    def _trace(self, statement: str) -> None:
        # The statements a trigger runs are reported with the text of the one that fired it:
        # a page's write is the first of a run of its upsert's text.
        writing = statement.startswith("WITH page_items")
        if statement.startswith("COMMIT"):
            self.commits += 1
        elif writing and not self.writing:
            if self.on_write is not None:
                self.on_write()
            time.sleep(self.pause)
        self.writing = writing

    def stop(self) -> None:
        self.conn.set_trace_callback(None)


def _edit(space: Any, ids: list[str], word: str) -> None:
    for entry_id in ids:
        space.publish_entry(entry_id, "article", article(f"{word} {entry_id}"))


def _pages(received: list[Any]) -> list[tuple[int, set[str]]]:
    return [(c.page, set(c.entries_changed)) for c in received]


def test_a_delta_of_three_pages_commits_once_and_announces_each_page(
    emu: Emulator, store_path: Path
) -> None:
    ids = [f"e{i:02d}" for i in range(30)]
    _edit(emu.space, ids, "first")
    with _cache(emu, store_path) as cache:
        writer = _Writer(cache)
        received: list[Any] = []
        commits_at: list[int] = []

        def note(sender: Any, changes: Any) -> None:
            received.append(changes)
            commits_at.append(writer.commits)

        with signals.changes_committed.connected_to(note, sender=cache):
            assert cache.sync().pages == 3
            # An initial sync commits page by page: a commit before each announcement.
            assert [n - commits_at[0] for n in commits_at] == [0, 1, 2]
            _edit(emu.space, ids, "second")
            received.clear()
            commits_at.clear()
            result = cache.sync()
        writer.stop()
        assert result.pages == 3 and result.entries.updated == 30
        # The delta's three pages had all arrived: one commit, then three announcements.
        assert [n - commits_at[0] for n in commits_at] == [0, 0, 0]
        assert [page for page, _ in _pages(received)] == [1, 2, 3]
        seen = [changed for _, changed in _pages(received)]
        assert all(len(changed) == LIMIT for changed in seen)
        assert set().union(*seen) == set(ids)
        assert all(r.field("title").startswith("second") for r in cache.entries())
        assert_converged(cache, emu.space)


def test_a_page_that_fails_in_a_group_keeps_the_pages_before_it(
    emu: Emulator, store_path: Path
) -> None:
    ids = [f"e{i:02d}" for i in range(60)]
    _edit(emu.space, ids, "first")
    with _cache(emu, store_path) as cache:
        cache.sync()
        _edit(emu.space, ids, "second")
        writer = _Writer(cache, pause=0.15)  # three pages stay within GROUP_SECONDS
        armed: list[bool] = []

        def break_the_server() -> None:
            # As the first page is written, the next ones are already fetched or asked for
            # (the prefetch, the request ahead): a later page fails.
            if not armed:
                armed.append(True)
                emu.faults.server_error(times=50, status=500)

        writer.on_write = break_the_server
        received: list[Any] = []
        commits_at: list[int] = []

        def note(sender: Any, changes: Any) -> None:
            received.append(changes)
            commits_at.append(writer.commits)

        with signals.changes_committed.connected_to(note, sender=cache), \
                pytest.raises(SyncError):
            cache.sync()
        writer.stop()
        # The pages before the failing one were written in one transaction, and the error
        # came while it was open: they are committed and announced, then it is raised.
        pages = [page for page, _ in _pages(received)]
        assert len(pages) >= 2 and pages == list(range(1, len(pages) + 1))
        assert len(set(commits_at)) == 1
        kept = {r.id for r in cache.entries() if r.field("title").startswith("second")}
        assert kept == set().union(*(changed for _, changed in _pages(received)))
        assert len(kept) == len(pages) * LIMIT < len(ids)
        emu.faults.clear()
        resumed = cache.sync()
        assert resumed.entries.updated == len(ids) - len(kept)
        assert_converged(cache, emu.space)


def test_a_group_stops_at_its_item_budget(
    emu: Emulator, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "GROUP_ITEMS", 2 * LIMIT)
    ids = [f"e{i:02d}" for i in range(30)]
    _edit(emu.space, ids, "first")
    with _cache(emu, store_path) as cache:
        cache.sync()
        _edit(emu.space, ids, "second")
        writer = _Writer(cache)
        commits_at: list[int] = []
        with signals.changes_committed.connected_to(
                lambda sender, changes: commits_at.append(writer.commits), sender=cache):
            result = cache.sync()
        writer.stop()
        assert result.pages == 3
        assert [n - commits_at[0] for n in commits_at] == [0, 0, 1]  # pages 1-2, then 3
        assert_converged(cache, emu.space)
