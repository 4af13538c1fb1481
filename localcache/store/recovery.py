"""Moving a damaged store aside. A store file is never deleted by localcache."""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["move_aside"]

_COMPANIONS = ("-wal", "-shm", "-journal")


def move_aside(path: Path) -> Path:
    """Rename ``path`` (and its WAL/SHM companions) to ``<name>.corrupt-<UTC time>``; return it.

    The damaged file stays on disk for the app (or its support team) to inspect or recover.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    return target
