"""Compressed snapshots (format 2): a zlib stream, streamed both ways, verified on install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged, make_cache

from localcache import Cache, Contentful, SnapshotError
from localcache.snapshot import MAGIC, read_snapshot_info

REPO = Path(__file__).resolve().parent.parent


def _built(emulator: Any, tmp_path: Path, n: int = 60) -> Path:
    for i in range(n):
        emulator.space.publish_entry(f"c{i:03d}", "article",
                                     article(f"title {i} " * 8, de=f"titel {i} " * 8))
    with make_cache(emulator, tmp_path / "release.sqlite3") as cache:
        cache.sync()
        plain = cache.create_snapshot(tmp_path / "plain.snap")
        packed = cache.create_snapshot(tmp_path / "packed.snap", compress=True)
    assert (plain.format, plain.compression) == (1, None)
    assert (packed.format, packed.compression) == (2, "zlib")
    assert packed.sha256 == plain.sha256 and packed.size == plain.size  # the same database
    assert packed.stored_size is not None and packed.stored_size < plain.size / 2
    assert read_snapshot_info(tmp_path / "packed.snap") == packed
    return tmp_path / "packed.snap"


def test_a_compressed_snapshot_seeds_a_first_launch(emulator: Any, tmp_path: Path) -> None:
    packed = _built(emulator, tmp_path)
    assert (tmp_path / "packed.snap").stat().st_size < (tmp_path / "plain.snap").stat().st_size
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=tmp_path / "user.sqlite3", snapshot=packed) as cache:
        assert cache.seeded and cache.snapshot_error is None
        assert cache.count() == 60
        cache.sync()
        assert_converged(cache, emulator.space)


def _header_length(path: Path) -> int:
    data = path.read_bytes()
    return len(MAGIC) + 8 + int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "big")


@pytest.mark.parametrize("damage", ["flip", "truncate", "size"])
def test_a_damaged_compressed_snapshot_installs_nothing(emulator: Any, tmp_path: Path,
                                                        damage: str) -> None:
    packed = _built(emulator, tmp_path)
    data = bytearray(packed.read_bytes())
    start = _header_length(packed)
    if damage == "flip":
        data[start + (len(data) - start) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[-100:]
    else:  # a header that lies about the expanded size (its stored hash still matches)
        meta = json.loads(bytes(data[len(MAGIC) + 8:start]))
        meta["size"] += 1
        encoded = json.dumps(meta, sort_keys=True).encode()
        data = bytearray(MAGIC + len(encoded).to_bytes(8, "big") + encoded) + data[start:]
    packed.write_bytes(bytes(data))
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=tmp_path / "user.sqlite3", snapshot=packed) as cache:
        assert isinstance(cache.snapshot_error, SnapshotError)
        assert "nothing was installed" in str(cache.snapshot_error)
        assert not cache.seeded and cache.count() == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "seed" in p.name) == []


def test_cli_create_compress(emulator: Any, tmp_path: Path) -> None:
    _built(emulator, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "localcache", "snapshot", "create", "--db",
         str(tmp_path / "release.sqlite3"), "--output", str(tmp_path / "cli.snap"), "--compress"],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "compression: zlib" in done.stdout
    assert read_snapshot_info(tmp_path / "cli.snap").format == 2


@pytest.mark.parametrize("damage", [None, "flip", "swap"])
def test_many_blocks_expand_in_place(emulator: Any, tmp_path: Path, damage: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import localcache.snapshot as snapshot

    monkeypatch.setattr(snapshot, "_BLOCK", 4096)  # a page of SQLite: dozens of blocks
    packed = _built(emulator, tmp_path)
    data = bytearray(packed.read_bytes())
    start = _header_length(packed)
    if damage == "flip":
        data[-5000] ^= 0x01
    elif damage == "swap":  # two whole blocks exchanged: each is sound, the order is not
        first = int.from_bytes(data[start:start + 4], "big")
        second_at = start + 4 + first
        second = int.from_bytes(data[second_at:second_at + 4], "big")
        one, two = data[start:second_at], data[second_at:second_at + 4 + second]
        data[start:second_at + 4 + second] = two + one
    packed.write_bytes(bytes(data))
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=tmp_path / "user.sqlite3", snapshot=packed) as cache:
        if damage is None:
            assert cache.snapshot_error is None and cache.count() == 60
            assert cache.entry("c007") is not None
        else:
            assert isinstance(cache.snapshot_error, SnapshotError)
            assert cache.count() == 0
