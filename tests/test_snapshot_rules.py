"""The app-upgrade rule and what a snapshot carries, case by case (docs/snapshot.md).

Each test builds the situation a rule exists for, checks that the situation really is that one
(so the test cannot pass for another reason), and checks what the rule decides.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged, asset_fields, break_after, make_space

from localcache import Cache, Contentful, HttpPolicy, SyncError
from localcache.emulator import Emulator
from localcache.snapshot import SnapshotInfo


def _publish(space: Any, n: int, prefix: str = "r", at: datetime | None = None) -> None:
    for i in range(n):
        space.publish_entry(f"{prefix}{i:03d}", "article", article(f"{prefix} {i}"), at=at)
    space.publish_asset(f"{prefix}-pic", asset_fields(f"{prefix}-pic"), at=at)


def _cache(emu: Any, path: Path, snapshot: Path | None = None, **args: Any) -> Cache:
    provider = Contentful("testspace", TOKEN, base_url=emu.base_url, **args)
    return Cache(provider, path=path, snapshot=snapshot)


def _release(emu: Any, tmp_path: Path, name: str = "release") -> tuple[Path, SnapshotInfo]:
    """What a release build does: sync a scratch store now, and snapshot it."""
    with _cache(emu, tmp_path / f"{name}.sqlite3") as release:
        release.sync()
        info = release.create_snapshot(tmp_path / f"{name}.snap")
    return tmp_path / f"{name}.snap", info


def _state(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, value FROM sync_state WHERE value IS NOT NULL"))
    finally:
        db.close()


def _newest(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("SELECT max(m) FROM (SELECT max(updated_at) AS m FROM entries "
                              "UNION ALL SELECT max(updated_at) FROM assets)").fetchone()[0])
    finally:
        db.close()


def _sync_paths(path: str) -> bool:
    return path.endswith("/sync")


# -- the app-upgrade rule -------------------------------------------------------------------


def test_upgrade_keeps_a_store_holding_records_newer_than_the_snapshot(
    emulator: Any, tmp_path: Path
) -> None:
    """A snapshot synced later than the store, but from older content (a stale mirror, or
    pages recorded long ago), would lose the store's newer records: the store is kept."""
    _publish(emulator.space, 10)
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user) as cache:
        cache.sync()
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    stale = make_space()
    _publish(stale, 10, at=old)
    with Emulator(stale, access_token=TOKEN) as mirror:
        snap, info = _release(mirror, tmp_path)
    state = _state(user)
    # Everything but newest_update says "replace": a completed sync, made later than the
    # store's last sync, with no sync of the store's own under way.
    assert info.token_kind == "sync" and info.synced_at > state["last_sync_at"]
    assert state["token_kind"] == "sync" and "rebuild_token" not in state
    assert info.newest_update is not None and info.newest_update < _newest(user)
    with _cache(emulator, user, snapshot=snap) as cache:
        assert cache.seeded is None
        assert cache.snapshot_error is None
        assert cache.entry("r001").revision == 1
        assert cache.entry("r001").raw["sys"]["updatedAt"] > info.newest_update
    assert _state(user)["last_sync_at"] == state["last_sync_at"]


def test_upgrade_replaces_when_the_snapshot_loses_nothing(emulator: Any, tmp_path: Path) -> None:
    """The counterpart of the test above: the same kind of store, and a snapshot whose content
    reaches as far, is replaced (so the rule above is what kept the store)."""
    _publish(emulator.space, 10)
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user) as cache:
        cache.sync()
    emulator.space.publish_entry("later", "article", article("later"))
    snap, info = _release(emulator, tmp_path)
    assert info.newest_update is not None and info.newest_update >= _newest(user)
    with _cache(emulator, user, snapshot=snap) as cache:
        assert cache.seeded == info
        assert cache.entry("later") is not None


def test_upgrade_keeps_a_store_whose_initial_sync_was_interrupted(
    emulator: Any, tmp_path: Path
) -> None:
    _publish(emulator.space, 20)
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user, limit=5, http=HttpPolicy(max_attempts=1)) as cache:
        break_after(emulator, 3, _sync_paths)
        with pytest.raises(SyncError):
            cache.sync()
        emulator.faults.clear()
        assert cache.stats()["entries"] + cache.stats()["assets"] == 10   # pages 1 and 2
    snap, info = _release(emulator, tmp_path)
    state = _state(user)
    assert state["token_kind"] == "page" and "last_sync_at" not in state
    assert info.newest_update is not None and info.newest_update >= _newest(user)
    with _cache(emulator, user, snapshot=snap, limit=5) as cache:
        assert cache.seeded is None
        assert cache.stats()["sync_in_progress"]
        result = cache.sync()                              # resumes its own sync
        assert result.initial and result.entries.added == 11
        assert_converged(cache, emulator.space)


def test_upgrade_keeps_a_store_whose_rebuild_was_interrupted(
    emulator: Any, tmp_path: Path
) -> None:
    _publish(emulator.space, 20)
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user, limit=5, http=HttpPolicy(max_attempts=1)) as cache:
        cache.sync()
        emulator.space.delete_entry("r000")
        break_after(emulator, 3, _sync_paths)
        with pytest.raises(SyncError):
            cache.sync(full=True)                          # rebuild pages 1-2 committed
        emulator.faults.clear()
    snap, info = _release(emulator, tmp_path)
    state = _state(user)
    assert state.get("rebuild_token") and state["token_kind"] == "sync"
    assert info.synced_at > state["last_sync_at"]
    assert info.newest_update is not None and info.newest_update >= _newest(user)
    with _cache(emulator, user, snapshot=snap, limit=5) as cache:
        assert cache.seeded is None
        assert cache.entry("r000") is not None             # the live data, as it was
        result = cache.sync()                              # resumes its own rebuild
        assert result.initial and result.entries.deleted == 1
        assert_converged(cache, emulator.space)


# -- installing -----------------------------------------------------------------------------


@pytest.mark.parametrize("leftover", ["crashed store", "deleted store file"])
def test_install_discards_an_old_wal(emulator: Any, tmp_path: Path, leftover: str) -> None:
    """An app killed with the store open leaves -wal and -shm holding committed pages; an app
    that "clears its data" by deleting the store file alone leaves them behind too. Installing
    a snapshot must remove them: replayed onto the new file they would corrupt it, or bring the
    old content back."""
    _publish(emulator.space, 12)
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, tmp_path / "live.sqlite3") as live:
        live.sync()
        for suffix in ("", "-wal", "-shm"):           # the files as a kill leaves them
            shutil.copyfile(f"{live.path}{suffix}", f"{user}{suffix}")
    assert Path(f"{user}-wal").stat().st_size > 0
    if leftover == "deleted store file":
        user.unlink()
    emulator.space.publish_entry("r001", "article", article("edited for release 2"))
    emulator.space.delete_entry("r002")
    snap, info = _release(emulator, tmp_path)
    with _cache(emulator, user, snapshot=snap) as cache:
        assert cache.seeded == info
        assert cache.entry("r001").field("title") == "edited for release 2"
        assert cache.entry("r002") is None
        assert cache.stats()["entries"] == info.counts["entries"]
    db = sqlite3.connect(user)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_upgrade_waits_for_no_one_and_never_clobbers_a_running_sync(
    emulator: Any, tmp_path: Path
) -> None:
    """While a sync (here on another thread; it could be another process) holds the store, a
    Cache opening with a newer snapshot keeps the store rather than swap the file under it."""
    _publish(emulator.space, 10)
    user = tmp_path / "user.sqlite3"
    running = _cache(emulator, user)
    running.sync()
    emulator.space.publish_entry("r001", "article", article("edited"))
    snap, info = _release(emulator, tmp_path)
    inside, release = threading.Event(), threading.Event()

    def hold(path: str, query: dict[str, list[str]]) -> None:
        if _sync_paths(path) and not inside.is_set():
            inside.set()
            release.wait(timeout=20)

    emulator.faults.on_request = hold
    outcome: dict[str, Any] = {}

    def sync() -> None:
        try:
            outcome["result"] = running.sync()
        except BaseException as exc:  # inspected below
            outcome["error"] = exc

    thread = threading.Thread(target=sync)
    thread.start()
    try:
        assert inside.wait(timeout=10)                   # the sync holds the store
        before = _state(user)
        with _cache(emulator, user, snapshot=snap) as cache:
            assert cache.seeded is None
            assert cache.snapshot_error is None
        assert info.synced_at > before["last_sync_at"]   # otherwise, it was due
        assert _state(user)["last_sync_at"] == before["last_sync_at"]
    finally:
        release.set()
        thread.join(timeout=20)
        emulator.faults.clear()
    assert "error" not in outcome, outcome
    assert outcome["result"].entries.updated == 1
    assert_converged(running, emulator.space)
    running.close()


# -- what a snapshot carries ----------------------------------------------------------------


def test_snapshot_of_a_store_mid_rebuild_carries_only_the_live_data(
    emulator: Any, tmp_path: Path
) -> None:
    """A rebuild in progress belongs to the device that runs it: its shadow rows and its
    token stay out of the snapshot, which holds the live data and the live token."""
    _publish(emulator.space, 20)
    source = tmp_path / "source.sqlite3"
    marker = "SHADOW-ONLY-MARKER"
    with _cache(emulator, source, limit=5, http=HttpPolicy(max_attempts=1)) as cache:
        cache.sync()
        live = {r.id: r.raw for r in cache.entries()}
        # Sorts first (ids page in order), so the rebuild's first page carries it; its long
        # body spills into overflow pages, which dropping it frees.
        fields = article("new")
        fields["body"] = {"en-US": marker * 3000}
        emulator.space.publish_entry("a-new", "article", fields)
        break_after(emulator, 3, _sync_paths)
        with pytest.raises(SyncError):
            cache.sync(full=True)
        emulator.faults.clear()
        shadow = sqlite3.connect(source)
        assert shadow.execute("SELECT count(*) FROM rebuild_entries "
                              "WHERE id = 'a-new'").fetchone()[0] == 1
        shadow.close()
        info = cache.create_snapshot(tmp_path / "mid.snap")
    assert marker.encode() not in (tmp_path / "mid.snap").read_bytes()
    assert info.counts == {"entries": 20, "assets": 1}
    user = tmp_path / "user.sqlite3"
    with _cache(emulator, user, snapshot=tmp_path / "mid.snap", limit=5) as cache:
        assert cache.seeded == info
        assert {r.id: r.raw for r in cache.entries()} == live
        db = sqlite3.connect(user)
        try:
            assert db.execute("SELECT (SELECT count(*) FROM rebuild_entries) + "
                              "(SELECT count(*) FROM rebuild_assets)").fetchone()[0] == 0
            # Compacted after dropping them: no freed page keeps a shadow row's bytes (SQLite
            # builds without secure_delete leave deleted content in free pages).
            assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        finally:
            db.close()
        assert "rebuild_token" not in _state(user)
        result = cache.sync()                          # a delta from the live token
        assert not result.initial and result.entries.added == 1
        assert_converged(cache, emulator.space)
