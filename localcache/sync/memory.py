"""Giving freed memory back to the OS between pages.

A sync decodes pages on one thread and frees them on another. glibc's malloc keeps a heap
("arena") per thread and returns little of it on its own, so the fragments of a hundred
1,000-item pages add up: an initial sync of 100k entries peaked at 110 MB against 97 MB for
20k. ``malloc_trim(0)`` after each page hands the free pages back (about 1 ms a page), and the
peak stays near the 20k figure (docs/benchmarks.md). Elsewhere than glibc it does nothing.

A page's text and its HTTP body are a few MB each, allocated and freed at every page. glibc
serves such a block from ``mmap`` (handed back whole when freed) only up to a threshold that it
raises each time one is freed, to the size of that block: after the first page, every page's
big buffers came from the heaps, where they left holes. :func:`fix_mmap_threshold`, at a
process's first sync, fixes the threshold at 1 MiB: a 100k initial sync peaked at 92 MB
instead of 104 MB (20k: 86 instead of 89 MB), flat within 7% instead of 17%, at the same speed
(docs/benchmarks.md). It is the process's allocator: an application that sets
``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...`` keeps its own
value; one that calls ``mallopt`` itself should do so after its first sync.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

__all__ = ["MMAP_THRESHOLD", "fix_mmap_threshold", "trim_heap"]

MMAP_THRESHOLD = 1 << 20
"""Bytes from which glibc serves a block by ``mmap``, once a sync has fixed it."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def _glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc (``malloc_trim`` is glibc's own: musl and others
    have none, and musl's ``mallopt`` does nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _glibc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Return the C heap's free pages to the OS; False where the platform cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def _mallopt() -> Callable[[int, int], int] | None:
    libc = _glibc()
    if libc is None:
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


_fixed = False


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD`, once a process; True when this
    call did. Not where the environment sets the threshold (the application's own choice),
    nor elsewhere than glibc."""
    global _fixed
    if _fixed or "MALLOC_MMAP_THRESHOLD_" in os.environ \
            or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    _fixed = True
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
