"""Snapshots with asset files: a seeded first launch shows them with no network at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from asset_support import expected_bytes, files_in, make_asset_cache, publish
from support import TOKEN

from localcache import AssetPolicy, Cache, ConfigurationError, Contentful, SnapshotError
from localcache.snapshot import read_snapshot_info

REPO = Path(__file__).resolve().parents[2]
OFFLINE = "http://127.0.0.1:9"  # nothing listens: any request would fail


def _built(emulator: Any, tmp_path: Path) -> dict[str, Any]:
    space = emulator.space
    files = {"hero": publish(space, "hero", 30_000),
             "manual": publish(space, "manual", 9_000, name="m.pdf",
                               content_type="application/pdf")}
    with make_asset_cache(emulator, tmp_path / "build") as cache:
        cache.sync()
        cache.assets.download()
        cache.assets.pin("hero")
    return files


def _offline_cache(tmp_path: Path, snapshot: Path, **policy: Any) -> Cache:
    provider = Contentful("testspace", TOKEN, base_url=OFFLINE, asset_base_url=OFFLINE)
    return Cache(provider, path=tmp_path / "device" / "store.sqlite3", snapshot=snapshot,
                 assets=AssetPolicy(directory=tmp_path / "device" / "assets", **policy))


def test_a_seeded_first_launch_shows_the_files_offline(emulator: Any, tmp_path: Path) -> None:
    files = _built(emulator, tmp_path)
    snapshot = tmp_path / "content.snap"
    done = subprocess.run(
        [sys.executable, "-m", "localcache", "snapshot", "create", "--db",
         str(tmp_path / "build" / "store.sqlite3"), "--output", str(snapshot),
         "--with-assets", "--compress"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "2 files, 39,000 bytes" in done.stdout
    info = read_snapshot_info(snapshot)
    assert info.format == 3 and info.compression == "zlib" and info.assets is not None
    assert sorted(size for _, size, _ in info.assets["files"]) == [9_000, 30_000]
    with _offline_cache(tmp_path, snapshot) as cache:
        assert cache.seeded is not None
        for asset_id, file in files.items():
            path = cache.asset_path(asset_id)
            assert path is not None and path.read_bytes() == expected_bytes(file)
        assert cache.assets.check().clean
        assert cache.assets.stats().pinned == 1  # pins travel
        assert cache.assets.download().total == 0  # nothing to fetch: no network needed


def test_a_policy_chooses_the_files_that_travel(emulator: Any, tmp_path: Path) -> None:
    _built(emulator, tmp_path)
    with Cache.open(tmp_path / "build" / "store.sqlite3", assets=True) as cache:
        cache.create_snapshot(tmp_path / "images.snap",
                              with_assets=AssetPolicy(mime_types=["image/*"]))
        cache.create_snapshot(tmp_path / "plain.snap")
    assert len(read_snapshot_info(tmp_path / "images.snap").assets["files"]) == 1
    assert read_snapshot_info(tmp_path / "plain.snap").format == 1  # readable by older ones
    with _offline_cache(tmp_path, tmp_path / "images.snap") as cache:
        assert cache.asset_path("hero") is not None
        assert cache.asset_path("manual") is None  # not bundled: pending, fetched when online
        assert cache.assets.check().pending == (("manual", "en-US"),)
    with _offline_cache(tmp_path / "plain", tmp_path / "plain.snap") as cache:
        # The maker's files stay behind: nothing claims a file the device does not have.
        assert cache.asset_path("hero") is None and len(cache.assets.check().pending) == 2


def test_the_checksum_covers_the_files(emulator: Any, tmp_path: Path) -> None:
    _built(emulator, tmp_path)
    snapshot = tmp_path / "content.snap"
    with Cache.open(tmp_path / "build" / "store.sqlite3", assets=True) as cache:
        cache.create_snapshot(snapshot, with_assets=True)
    data = bytearray(snapshot.read_bytes())
    data[-5] ^= 0xFF  # a byte of the last file
    snapshot.write_bytes(bytes(data))
    with _offline_cache(tmp_path, snapshot) as cache:
        assert isinstance(cache.snapshot_error, SnapshotError)
        assert "asset files do not match" in str(cache.snapshot_error)
        assert cache.seeded is None and cache.stats()["entries"] == 0
    assert files_in(tmp_path / "device" / "assets") == []  # nothing installed, nothing staged


def test_a_cache_without_assets_leaves_the_files_out(emulator: Any, tmp_path: Path) -> None:
    _built(emulator, tmp_path)
    snapshot = tmp_path / "content.snap"
    with Cache.open(tmp_path / "build" / "store.sqlite3", assets=True) as cache:
        cache.create_snapshot(snapshot, with_assets=True)
    provider = Contentful("testspace", TOKEN, base_url=OFFLINE)
    with Cache(provider, path=tmp_path / "d.sqlite3", snapshot=snapshot) as cache:
        assert cache.seeded is not None and cache.asset("hero") is not None
    with pytest.raises(ConfigurationError, match="assets=AssetPolicy"), \
            Cache.open(tmp_path / "d.sqlite3") as cache:
        cache.create_snapshot(tmp_path / "x.snap", with_assets=True)
