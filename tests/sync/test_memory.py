"""Freed memory goes back to the OS after each page (sync/memory.py), so a sync's peak RSS
does not grow with the number of pages."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import article, make_cache

import localcache.sync.engine as engine
from localcache.sync.memory import trim_heap

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trim_heap_reaches_glibc() -> None:
    assert trim_heap() is True


def test_the_heap_is_trimmed_after_every_page(emulator: Any, store_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        emulator.space.publish_entry(f"e{n}", "article", article(f"t{n}"))
    trims: list[int] = []
    monkeypatch.setattr(engine, "trim_heap", lambda: bool(trims.append(1)))
    with make_cache(emulator, store_path, limit=2) as cache:
        result = cache.sync()
    assert result.pages >= 4 and len(trims) == result.pages


_PROBE = """
import ctypes, sys
from localcache.sync.memory import fix_mmap_threshold

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
fixed = [fix_mmap_threshold(), fix_mmap_threshold()] if sys.argv[1] == "fix" else []
first = bytearray(2 << 20)   # mmapped; freeing it raises glibc's own threshold to 2 MiB
del first
before = libc.mallinfo2().hblks
second = bytearray(3 << 19)  # 1.5 MiB: mmapped only if the threshold stayed at 1 MiB
print(fixed, libc.mallinfo2().hblks - before)
"""


def _has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not GLIBC or not _has_mallinfo2(), reason="glibc 2.33+'s allocator only")
@pytest.mark.parametrize(("mode", "env", "expected"), [
    ("fix", {}, "[True, False] 1"),
    ("none", {}, "[] 0"),
    ("fix", {"MALLOC_MMAP_THRESHOLD_": "4194304"}, "[False, False] 0"),
    ("fix", {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4194304"}, "[False, False] 0"),
])
def test_a_sync_fixes_the_mmap_threshold_once_unless_the_app_set_it(
    mode: str, env: dict[str, str], expected: str
) -> None:
    """A freed multi-MB block no longer moves glibc's threshold, so the next page's buffers
    are mapped and handed back whole; an application's own setting wins."""
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True,
                          text=True, check=True, env={**os.environ, **env})
    assert done.stdout.strip() == expected
