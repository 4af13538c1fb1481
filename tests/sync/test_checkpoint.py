"""While a sync runs, checkpoints happen on a thread of their own, not on the writer's.

Real parts: the emulator over loopback HTTP and a real SQLite file in WAL mode. A checkpoint is
seen where it lands: the database file itself (a commit only appends to the ``-wal`` file).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from support import article, make_cache

from localcache import signals
from localcache.sync import checkpoint


def _publish(space: Any, n: int) -> None:
    for i in range(n):
        space.publish_entry(f"e{i:03d}", "article", article(f"Title {i}", de=f"Titel {i}"))


def test_the_writer_leaves_checkpoints_to_a_thread_during_a_sync(
    emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(emulator.space, 30)
    monkeypatch.setattr(checkpoint, "BACKSTOP", 1_000_000)  # the writer would never
    seen: list[tuple[int, int, int]] = []
    with make_cache(emulator, store_path, limit=10) as cache:
        writer: sqlite3.Connection = cache._store.raw_connection()  # the syncing thread's
        writer.execute("PRAGMA wal_autocheckpoint = 2")  # pages: a small sync reaches it
        shm = os.open(f"{store_path}-shm", os.O_RDONLY)

        def at_commit(sender: Any, changes: Any) -> None:
            setting = writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            waiting = checkpoint.pending_frames(shm)
            time.sleep(5 * checkpoint.POLL)  # the thread's turn
            seen.append((setting, waiting, checkpoint.pending_frames(shm)))

        size_before = store_path.stat().st_size
        try:
            with signals.changes_committed.connected_to(at_commit, sender=cache):
                cache.sync()
        finally:
            os.close(shm)
        assert [setting for setting, _, _ in seen] == [2_000_000] * 3
        # Each commit left frames to copy; the thread copied them into the file.
        assert all(waiting >= 2 for _, waiting, _ in seen)
        assert all(left == 0 for _, _, left in seen)
        assert store_path.stat().st_size > size_before
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 2
        assert cache.count() == 30


def _sync_holding_each_page(cache: Any, store_path: Path) -> list[tuple[int, int]]:
    """A sync whose writer waits at each page long enough for the thread to act: the
    writer's setting and the database file's size then."""
    writer: sqlite3.Connection = cache._store.raw_connection()
    seen: list[tuple[int, int]] = []

    def at_commit(sender: Any, changes: Any) -> None:
        time.sleep(5 * checkpoint.POLL)
        seen.append((writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0],
                     store_path.stat().st_size))

    with signals.changes_committed.connected_to(at_commit, sender=cache):
        cache.sync()
    return seen


def test_an_application_that_turned_checkpoints_off_keeps_them_off(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 30)
    with make_cache(emulator, store_path, limit=10) as cache:
        writer: sqlite3.Connection = cache._store.raw_connection()
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        size_before = store_path.stat().st_size
        seen = _sync_holding_each_page(cache, store_path)
        assert seen == [(0, size_before)] * 3  # nobody copied anything back
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


def test_without_a_readable_wal_index_the_writer_checkpoints_as_before(
    emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pread")  # as on Windows
    _publish(emulator.space, 30)
    with make_cache(emulator, store_path, limit=10) as cache:
        writer: sqlite3.Connection = cache._store.raw_connection()
        writer.execute("PRAGMA wal_autocheckpoint = 2")
        seen = _sync_holding_each_page(cache, store_path)
        assert [setting for setting, _ in seen] == [2] * 3
        assert cache.count() == 30
