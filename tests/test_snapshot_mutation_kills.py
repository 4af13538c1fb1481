"""Tests written to kill mutants that survived the sampled mutation run (docs/reliability.md,
"Mutation testing"): what the snapshot and seeding code says and returns at its edges."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article

from localcache import Cache, Contentful
from localcache.sync.lock import SyncLock


def _cache(emu: Any, path: Path, snapshot: Path | None = None) -> Cache:
    provider = Contentful("testspace", TOKEN, base_url=emu.base_url)
    return Cache(provider, path=path, snapshot=snapshot)


def _user_store_and_newer_snapshot(emu: Any, tmp_path: Path) -> tuple[Path, Path]:
    emu.space.publish_entry("a", "article", article("a"))
    user = tmp_path / "user.sqlite3"
    with _cache(emu, user) as cache:
        cache.sync()
    emu.space.publish_entry("b", "article", article("b"))
    with _cache(emu, tmp_path / "release.sqlite3") as release:
        release.sync()
        release.create_snapshot(tmp_path / "release.snap")
    return user, tmp_path / "release.snap"


def test_upgrade_while_a_sync_holds_the_store_says_so(
    emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user, snap = _user_store_and_newer_snapshot(emulator, tmp_path)
    with SyncLock(user), caplog.at_level(logging.INFO, logger="localcache"), \
            _cache(emulator, user, snapshot=snap) as cache:
        assert cache.seeded is None and cache.entry("b") is None
    assert f"a sync holds {user}; keeping it rather than installing" in caplog.text


def test_upgrade_that_replaces_the_store_says_so(
    emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user, snap = _user_store_and_newer_snapshot(emulator, tmp_path)
    with caplog.at_level(logging.INFO, logger="localcache"), \
            _cache(emulator, user, snapshot=snap) as cache:
        assert cache.seeded is not None and cache.entry("b") is not None
        created = cache.seeded.created_at
    assert f"replaced {user} with the newer bundled snapshot from {created}" in caplog.text


def test_an_unusable_snapshot_beside_an_existing_store_names_the_problem(
    emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.space.publish_entry("a", "article", article("a"))
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user) as cache:
        cache.sync()
    bad = tmp_path / "bad.snap"
    bad.write_bytes(b"not a snapshot at all" * 10)
    with caplog.at_level(logging.WARNING, logger="localcache"), \
            _cache(emulator, user, snapshot=bad) as cache:
        error = cache.snapshot_error
        assert error is not None and cache.entry("a") is not None
    assert f"{error}; keeping the existing store at {user}" in caplog.text
