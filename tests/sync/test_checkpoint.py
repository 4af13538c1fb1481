"""While a sync runs, checkpoints happen on a thread of their own, not on the writer's.

Real parts: the emulator over loopback HTTP and a real SQLite file in WAL mode. A checkpoint is
seen where it lands: the database file itself (a commit only appends to the ``-wal`` file).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from support import article, make_cache

from localcache import signals
from localcache.store.schema import WAL_AUTOCHECKPOINT_PAGES
from localcache.sync import checkpoint


def _publish(space: Any, n: int) -> None:
    for i in range(n):
        space.publish_entry(f"e{i:03d}", "article", article(f"Title {i}", de=f"Titel {i}"))


def test_the_writer_does_not_checkpoint_during_a_sync_and_a_thread_does(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 30)
    seen: list[tuple[int, int]] = []
    with make_cache(emulator, store_path, limit=10) as cache:
        writer: sqlite3.Connection = cache._store.raw_connection()  # the syncing thread's

        def at_commit(sender: Any, changes: Any) -> None:
            # The page is committed to the WAL; give the thread time to copy it back.
            setting = writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            time.sleep(3 * checkpoint.INTERVAL)
            seen.append((setting, store_path.stat().st_size))

        size_before = store_path.stat().st_size
        with signals.changes_committed.connected_to(at_commit, sender=cache):
            cache.sync()
        assert len(seen) == 3
        assert {setting for setting, _ in seen} == {0}
        # Far below the writer's own threshold, yet the database file grew during the sync.
        assert seen[-1][1] > size_before
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
            WAL_AUTOCHECKPOINT_PAGES
        assert cache.count() == 30


def test_an_application_that_turned_checkpoints_off_keeps_them_off(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 5)
    with make_cache(emulator, store_path) as cache:
        writer: sqlite3.Connection = cache._store.raw_connection()
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        size_before = store_path.stat().st_size
        cache.sync()
        time.sleep(2 * checkpoint.INTERVAL)
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert store_path.stat().st_size == size_before
