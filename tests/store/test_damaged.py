"""A damaged environment: corrupt files, unreadable or read-only locations, a full disk."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import article, assert_converged, make_cache

from localcache import StoreCorruptError, StoreError


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_garbage_file_is_refused_untouched(emulator: Any, store_path: Path) -> None:
    store_path.write_bytes(b"this is not a database" * 200)
    before = _digest(store_path)
    with pytest.raises(StoreCorruptError, match="damaged") as failure:
        make_cache(emulator, store_path)
    assert str(store_path) in str(failure.value) and "rebuild_if_corrupt" in str(failure.value)
    assert _digest(store_path) == before


def test_opt_in_moves_a_corrupt_file_aside_and_rebuilds(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("one"))
    store_path.write_bytes(b"\x00garbage" * 1000)
    before = _digest(store_path)
    with make_cache(emulator, store_path, rebuild_if_corrupt=True) as cache:
        cache.sync()
        assert_converged(cache, emulator.space)
    aside = [p for p in store_path.parent.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and _digest(aside[0]) == before   # moved, never deleted


def test_damage_inside_a_valid_file_is_found_on_opt_in(emulator: Any, store_path: Path) -> None:
    for n in range(300):
        emulator.space.publish_entry(f"e{n}", "article", article("x" * 200))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
    conn = sqlite3.connect(store_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(store_path.read_bytes())
    for offset in range(page_size * 3, len(data) - page_size, page_size * 4):
        data[offset + 8:offset + 200] = b"\xff" * 192   # scribble over b-tree pages
    store_path.write_bytes(bytes(data))
    with make_cache(emulator, store_path, rebuild_if_corrupt=True) as cache:
        assert cache.stats()["entries"] == 0              # a fresh store ...
        cache.sync()
        assert_converged(cache, emulator.space)           # ... rebuilt by a fresh sync
    assert any(".corrupt-" in p.name for p in store_path.parent.iterdir())


def test_store_in_a_read_only_location_is_a_clear_error(emulator: Any) -> None:
    with pytest.raises(StoreError, match="/proc/localcache-test"):
        make_cache(emulator, Path("/proc/localcache-test/store.sqlite3"))


def test_store_under_a_file_is_a_clear_error(emulator: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        make_cache(emulator, blocker / "store.sqlite3")


def test_opt_in_rebuilds_a_corrupt_store_from_the_snapshot(emulator: Any, tmp_path: Path) -> None:
    from support import TOKEN

    from localcache import Cache, Contentful

    for n in range(5):
        emulator.space.publish_entry(f"e{n}", "article", article(f"e{n}"))
    with make_cache(emulator, tmp_path / "release.sqlite3") as release:
        release.sync()
        release.create_snapshot(tmp_path / "content.snap")
    user = tmp_path / "user.sqlite3"
    user.write_bytes(b"\x13garbage" * 500)
    provider = Contentful("testspace", TOKEN, base_url="http://127.0.0.1:9")  # offline
    with Cache(provider, path=user, snapshot=tmp_path / "content.snap",
               rebuild_if_corrupt=True) as cache:
        assert cache.seeded is not None and cache.stats()["entries"] == 5
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreCorruptError):
        user.write_bytes(b"\x13garbage" * 500)
        Cache(provider, path=user, snapshot=tmp_path / "content.snap")
