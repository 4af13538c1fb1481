"""Checkpoints off the writer's thread while a sync runs.

In WAL mode a commit appends the pages it changed to the ``-wal`` file, and a checkpoint copies
them back into the database file (with an fsync). By default the connection that commits runs
the checkpoint itself once the WAL holds ``wal_autocheckpoint`` pages not yet copied (10,000
pages, 80 MB: see ``schema.py``), so the writer, which is a sync's critical path, stops for it:
about 0.15 s a checkpoint, a sixth of a delta of 10,000 edits on a 100k store.

While a sync runs, :func:`background_checkpoints` raises the writer's threshold fourfold (a
backstop) and a thread of its own, on its own connection, runs the checkpoint at the usual
threshold instead: a PASSIVE checkpoint, which never waits for nor blocks the writer or a
reader, and during which SQLite releases the GIL. The thread learns how many frames wait to be
copied from the WAL index (the ``-shm`` file, whose header SQLite documents: ``mxFrame``, the
last valid frame, and ``nBackfill``, the frames already copied), read every
:data:`POLL` seconds. Checkpointing more often, at every commit, copied the pages that every
commit rewrites again and again: a 100k initial sync took 1.1 s longer. When the sync ends, the
writer's setting is put back. Without a readable WAL index, the writer checkpoints as before;
if the thread fails later (it logs why), the writer's backstop does, until the sync ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["BACKSTOP", "POLL", "background_checkpoints", "pending_frames"]

log = logging.getLogger("localcache.sync")

POLL = 0.1
"""Seconds between two looks at the WAL index."""
BACKSTOP = 4
"""The writer's own threshold, while a sync runs, is this many times its usual one."""


def pending_frames(shm: int) -> int:
    """Frames of the WAL not yet copied back, from the WAL index's header (native byte
    order): ``mxFrame`` at byte 16 of the first header copy, ``nBackfill`` at byte 96."""
    header = os.pread(shm, 100, 0)
    if len(header) < 100:
        return 0
    (last,) = struct.unpack_from("=I", header, 16)
    (copied,) = struct.unpack_from("=I", header, 96)
    return max(0, int(last) - int(copied))


def _open_index(path: Path) -> int | None:
    """The WAL index, open for reading and read once; None where it cannot be (no ``-shm``
    file, or no ``os.pread``): then the writer checkpoints as before."""
    try:
        shm = os.open(f"{path}-shm", os.O_RDONLY)
    except OSError as exc:
        log.debug("no background checkpoints: %s", exc)
        return None
    try:
        pending_frames(shm)
    except Exception as exc:  # any failure means: leave it to the writer
        log.debug("no background checkpoints: %s", exc)
        os.close(shm)
        return None
    return shm


class _Checkpointer:
    def __init__(self, path: Path, threshold: int, shm: int,
                 closed: Callable[[], bool]) -> None:
        self.path = path
        self.threshold = threshold
        self.shm = shm
        self.closed = closed
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="localcache-checkpoint",
                                       daemon=True)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self.stop.wait(POLL) and not self.closed():
                if pending_frames(self.shm) < self.threshold:
                    continue
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=0.1, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # the writer's backstop remains
            log.debug("background checkpoints stopped: %s", exc)
        finally:
            os.close(self.shm)
            if conn is not None:
                conn.close()


@contextmanager
def background_checkpoints(writer: sqlite3.Connection, path: Path,
                           closed: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Inside: ``writer`` (the sync's connection) leaves checkpoints to a thread, which
    stops when ``closed()`` (the store closed under the sync) or the block ends."""
    try:
        saved = int(writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    except sqlite3.Error:
        yield
        return
    shm = _open_index(path) if saved > 0 else None  # 0: the application turned them off
    if shm is None:
        yield
        return
    checkpointer = _Checkpointer(path, saved, shm, closed)
    try:
        writer.execute(f"PRAGMA wal_autocheckpoint = {saved * BACKSTOP}")
        checkpointer.thread.start()
    except BaseException:
        os.close(shm)
        with contextlib.suppress(sqlite3.Error):
            writer.execute(f"PRAGMA wal_autocheckpoint = {saved}")
        raise
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):  # a store closed meanwhile keeps none
            writer.execute(f"PRAGMA wal_autocheckpoint = {saved}")
        checkpointer.stop.set()
        checkpointer.thread.join()
