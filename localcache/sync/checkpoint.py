"""Checkpoints off the writer's thread while a sync runs.

In WAL mode a commit appends the pages it changed to the ``-wal`` file, and a checkpoint copies
them back into the database file (with an fsync). By default the connection that commits runs
the checkpoint itself once the WAL passes ``wal_autocheckpoint`` pages (80 MB here: see
``schema.py``), so the writer, which is a sync's critical path, stops for it: about 0.15 s a
checkpoint, a sixth of a delta of 10,000 edits on a 100k store.

While a sync runs, :func:`background_checkpoints` turns the writer's automatic checkpoints off
and runs them on a thread of its own, on its own connection: a PASSIVE checkpoint (it never
waits for, nor blocks, the writer or a reader) whenever another commit has landed and the last
checkpoint is :data:`INTERVAL` seconds old. SQLite releases the GIL meanwhile. When the sync
ends, the writer's setting is put back: what the thread had not copied yet is left to the next
automatic checkpoint, or to closing the store, as before. A store another process writes to
meanwhile is treated the same: a PASSIVE checkpoint is always safe.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["INTERVAL", "background_checkpoints"]

log = logging.getLogger("localcache.sync")

INTERVAL = 0.25
"""Seconds between two checkpoints of the background thread, at most one per commit."""


class _Checkpointer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="localcache-checkpoint",
                                       daemon=True)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=0.1, check_same_thread=False)
        except sqlite3.Error as exc:
            log.debug("no background checkpoints: %s", exc)
            return
        try:
            seen = conn.execute("PRAGMA data_version").fetchone()[0]
            while not self.stop.wait(INTERVAL):
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen:
                    seen = version
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # a closed or moved store: the writer's own check remains
            log.debug("background checkpoint stopped: %s", exc)
        finally:
            conn.close()


@contextmanager
def background_checkpoints(writer: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Inside: ``writer`` (the sync's connection) does not checkpoint; a thread does."""
    try:
        saved = int(writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    except sqlite3.Error:
        yield
        return
    if saved <= 0:  # the application turned them off: leave that alone
        yield
        return
    checkpointer = _Checkpointer(path)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    checkpointer.thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):  # a store closed meanwhile keeps none
            writer.execute(f"PRAGMA wal_autocheckpoint = {saved}")
        checkpointer.stop.set()
        checkpointer.thread.join()
