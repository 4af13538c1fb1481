"""Advisory whole-file locks that a process holds while it works on a file, released by the
OS if it dies: the sync lock (``sync/lock.py``) and asset downloads' partial files
(``assets/fetch.py``). ``flock`` on POSIX, ``msvcrt.locking`` on Windows; never blocks."""

from __future__ import annotations

import os
import sys

__all__ = ["try_lock", "unlock"]

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def try_lock(fd: int) -> bool:
        """Lock ``fd``'s file for this process; False when another holds it."""
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
