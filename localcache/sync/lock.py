"""One sync at a time per store file, across threads and processes.

An advisory lock on a file beside the store (``<store>.sync-lock``). ``flock`` locks belong to
an open file description, so two threads of one process exclude each other as two processes
do; the OS drops the lock when a killed process dies, so a crash never leaves it stuck.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from ..errors import StoreBusyError, StoreError
from ..filelock import try_lock, unlock

__all__ = ["SyncLock"]


class SyncLock:
    def __init__(self, store_path: Path, *, wait: float = 0.0) -> None:
        self.path = store_path.with_name(store_path.name + ".sync-lock")
        self.wait = wait
        self._fd: int | None = None

    def __enter__(self) -> SyncLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create sync lock {str(self.path)!r}: "
                             f"{exc.strerror or exc}") from None
        deadline = time.monotonic() + self.wait
        while not try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreBusyError(
                    f"another sync is running on store {str(self.path.with_suffix(''))!r}; "
                    "wait for it to finish (syncs on one store never interleave)"
                )
            time.sleep(0.05)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            unlock(self._fd)
            os.close(self._fd)
            self._fd = None


