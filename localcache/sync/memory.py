"""Giving freed memory back to the OS between pages.

A sync decodes pages on one thread and frees them on another. glibc's malloc keeps a heap
("arena") per thread and returns little of it on its own, so the fragments of a hundred
1,000-item pages add up: an initial sync of 100k entries peaked at 110 MB against 97 MB for
20k. ``malloc_trim(0)`` after each page hands the free pages back (about 1 ms a page), and the
peak stays near the 20k figure (docs/benchmarks.md). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

__all__ = ["trim_heap"]


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only: musl and others have none
    except (OSError, AttributeError):
        return None
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
