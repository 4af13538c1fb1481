"""Freed memory goes back to the OS after each page (sync/memory.py), so a sync's peak RSS
does not grow with the number of pages."""

from __future__ import annotations

import platform
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
