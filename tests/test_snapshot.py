"""Prepackaged snapshots: create, inspect, seed a first launch, app upgrades, recorded pages."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged, asset_fields, make_cache

from localcache import Cache, Contentful, SnapshotError, signals
from localcache.emulator import Emulator
from localcache.snapshot import read_snapshot_info

REPO = Path(__file__).resolve().parent.parent


def _publish(space: Any, n: int, prefix: str = "s") -> None:
    for i in range(n):
        space.publish_entry(f"{prefix}{i:03d}", "article", article(f"{prefix} {i}", de=f"de {i}"))
    space.publish_asset(f"{prefix}-pic", asset_fields(f"{prefix}-pic"))


def _built(emulator: Any, tmp_path: Path, n: int = 25) -> tuple[Path, Any]:
    _publish(emulator.space, n)
    source = tmp_path / "release.sqlite3"
    with make_cache(emulator, source, limit=10) as cache:
        cache.sync()
        info = cache.create_snapshot(tmp_path / "content.snap")
    return tmp_path / "content.snap", info


def _requests(emulator: Any) -> list[dict[str, list[str]]]:
    seen: list[dict[str, list[str]]] = []
    emulator.faults.on_request = lambda path, query: seen.append(query)
    return seen


def test_create_writes_one_verified_file_with_metadata(emulator: Any, tmp_path: Path) -> None:
    path, info = _built(emulator, tmp_path)
    assert read_snapshot_info(path) == info
    assert (info.format, info.provider, info.space, info.environment) == (
        1, "contentful", "testspace", "master")
    assert info.counts == {"entries": 25, "assets": 1}
    assert info.locales == ["en-US", "de-AT", "de-DE"]
    assert info.token_kind == "sync" and info.token and info.synced_at and info.created_at
    assert len(info.sha256) == 64 and info.library_version
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_create_is_consistent_while_a_sync_runs(emulator: Any, tmp_path: Path) -> None:
    _publish(emulator.space, 40)
    infos = []
    with make_cache(emulator, tmp_path / "busy.sqlite3", limit=10) as cache:
        def snap(sender: Any, changes: Any) -> None:
            if changes.page == 2:  # mid-sync: pages 1-2 committed, 3-5 to come
                infos.append(cache.create_snapshot(tmp_path / "mid.snap"))
        with signals.changes_committed.connected_to(snap, sender=cache):
            cache.sync()
    assert infos[0].counts["entries"] + infos[0].counts["assets"] == 20, infos[0].counts
    assert infos[0].token_kind == "page"
    seeded = tmp_path / "seeded.sqlite3"
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=seeded, snapshot=tmp_path / "mid.snap") as cache:
        assert cache.stats()["entries"] + cache.stats()["assets"] == 20
        cache.sync()                                   # resumes the snapshot's sync
        assert_converged(cache, emulator.space)


def test_seed_installs_then_syncs_only_the_delta(emulator: Any, tmp_path: Path) -> None:
    path, info = _built(emulator, tmp_path)
    emulator.space.publish_entry("s003", "article", article("changed after release"))
    emulator.space.delete_entry("s004")
    seen = _requests(emulator)
    target = tmp_path / "user" / "store.sqlite3"
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=target, snapshot=path) as cache:
        assert cache.seeded == info
        assert cache.stats()["entries"] == 25 and seen == []   # offline until sync()
        assert cache.entry("s001").field("title", "de-AT") == "de 1"
        result = cache.sync()
        assert not result.initial
        assert seen[0].get("sync_token") == [info.token] and "initial" not in seen[0]
        assert (result.entries.updated, result.entries.deleted) == (1, 1)
        assert_converged(cache, emulator.space)


def test_seeding_sends_signals_so_a_ui_renders_at_once(emulator: Any, tmp_path: Path) -> None:
    path, _ = _built(emulator, tmp_path, n=7)
    got: dict[str, Any] = {}

    def on_changes(sender: Any, changes: Any) -> None:
        got["changes"] = changes

    def on_finished(sender: Any, result: Any) -> None:
        got["result"] = result

    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with signals.changes_committed.connected_to(on_changes), \
            signals.sync_finished.connected_to(on_finished), \
            Cache(provider, path=tmp_path / "ui.sqlite3", snapshot=path):
        pass
    assert sorted(got["changes"].entries_added) == [f"s{i:03d}" for i in range(7)]
    assert got["changes"].assets_added == ("s-pic",)
    assert got["changes"].content_types == {"article"}
    assert got["result"].entries.added == 7 and got["result"].pages == 0


DAMAGES = ["flip a byte", "truncate", "not a snapshot", "bad format"]


def _damage(path: Path, damage: str) -> None:
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[-5000] ^= 0xFF
    elif damage == "truncate":
        del data[-8192:]
    elif damage == "not a snapshot":
        data[:5] = b"HELLO"
    else:  # a snapshot from a newer localcache
        data = bytearray(bytes(data).replace(b'"format": 1', b'"format": 9', 1))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_snapshot_on_first_launch_opens_an_empty_store(
    emulator: Any, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing of the snapshot is installed (and no temporary file is left), but the app
    opens: an empty store, which the next sync fills."""
    path, _ = _built(emulator, tmp_path)
    _damage(path, damage)
    user = tmp_path / "user"
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with caplog.at_level("WARNING", logger="localcache.snapshot"), \
            Cache(provider, path=user / "store.sqlite3", snapshot=path) as cache:
        assert isinstance(cache.snapshot_error, SnapshotError)
        assert str(path) in str(cache.snapshot_error)
        assert cache.seeded is None
        assert cache.stats()["entries"] == 0
        assert [p.name for p in user.iterdir() if p.name.startswith(".")] == []
        assert str(cache.snapshot_error) in caplog.text
        result = cache.sync()
        assert result.initial
        assert_converged(cache, emulator.space)


def test_snapshot_of_another_space_is_refused(emulator: Any, tmp_path: Path) -> None:
    path, _ = _built(emulator, tmp_path)
    provider = Contentful("otherspace", TOKEN, base_url=emulator.base_url)
    with pytest.raises(SnapshotError, match="not contentful space 'otherspace'"):
        Cache(provider, path=tmp_path / "other.sqlite3", snapshot=path)
    assert not (tmp_path / "other.sqlite3").exists()


def test_upgrade_replaces_an_older_store_and_keeps_a_newer_one(
    emulator: Any, tmp_path: Path
) -> None:
    space = emulator.space
    old_snap, _ = _built(emulator, tmp_path, n=10)
    user = tmp_path / "user.sqlite3"
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=user, snapshot=old_snap):
        pass                                           # installed v1, never synced since
    _publish(space, 30, prefix="v2-")
    with make_cache(emulator, tmp_path / "release2.sqlite3") as release:
        release.sync()
        new_info = release.create_snapshot(tmp_path / "v2.snap")
    with Cache(provider, path=user, snapshot=tmp_path / "v2.snap") as cache:
        assert cache.seeded == new_info                # older store: replaced, saves work
        assert cache.stats()["entries"] == 40
    space.publish_entry("after-v2", "article", article("after"))
    with Cache(provider, path=user) as cache:
        cache.sync()                                   # the user's store is now newer
    with Cache(provider, path=user, snapshot=tmp_path / "v2.snap") as cache:
        assert cache.seeded is None                    # newer store: kept
        assert cache.entry("after-v2") is not None


def test_from_recorded_pages(fixtures_dir: Path, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("MultilocalePreseedJSONFiles_0.json", "MultilocalePreseedJSONFiles_1.json",
                 "MultilocalePreseedJSONFiles_locales.json"):
        (pages / name).write_bytes((fixtures_dir / "contentful" / name).read_bytes())
    out = tmp_path / "pages.snap"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "localcache", "snapshot", "create",
                           "--from-pages", str(pages), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    info = read_snapshot_info(out)
    assert info.space == "smf0sqiu0c5s" and info.counts == {"entries": 118, "assets": 2}
    assert info.locales == ["en-US", "es-MX"] and info.token_kind == "sync"
    last = json.loads((pages / "MultilocalePreseedJSONFiles_1.json").read_text())
    assert info.token and info.token in last["nextSyncUrl"]
    shown = subprocess.run([sys.executable, "-m", "localcache", "snapshot", "info", str(out),
                            "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(shown.stdout)["sha256"] == info.sha256
    provider = Contentful(info.space, "t-123456", base_url="http://127.0.0.1:9")
    with Cache(provider, path=tmp_path / "app.sqlite3", snapshot=out) as cache:
        record = cache.entry("2mhGzgf3oQOquo0SyGWCQE")
        assert record is not None
        assert record.field("textBody", "es-MX") == record.field("textBody", "en-US")
        db = sqlite3.connect(tmp_path / "app.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()


def test_cli_create_info_and_seeded_sync(tmp_path: Path) -> None:
    from localcache.emulator import generate_space

    space = generate_space(entries=30, assets=3, seed=9)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "localcache", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    with Emulator(space, access_token=TOKEN) as emu:
        common = ["--space", space.space_id, "--token", TOKEN, "--base-url", emu.base_url]
        assert cli("sync", "--db", str(tmp_path / "r.sqlite3"), *common).returncode == 0
        made = cli("snapshot", "create", "--db", str(tmp_path / "r.sqlite3"),
                   "--output", str(tmp_path / "r.snap"))
        assert made.returncode == 0, made.stderr
        shown = cli("snapshot", "info", str(tmp_path / "r.snap"))
        assert "entries" in shown.stdout and "sha256" in shown.stdout
        assert TOKEN not in shown.stdout
        seeded = cli("sync", "--db", str(tmp_path / "u.sqlite3"), "--snapshot",
                     str(tmp_path / "r.snap"), *common)
        assert seeded.returncode == 0, seeded.stderr
        assert seeded.stdout.startswith("delta sync")
        missing = cli("snapshot", "create", "--db", str(tmp_path / "none.sqlite3"),
                      "--output", str(tmp_path / "x.snap"))
        assert missing.returncode == 1 and "no store at" in missing.stderr


# -- a bundled snapshot that cannot be used never stops the app from opening ------------------


def _seeded_user(emulator: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A user's store installed from release 1, and release 2's newer snapshot (due to
    replace it)."""
    old_snap, _ = _built(emulator, tmp_path, n=10)
    user = tmp_path / "user.sqlite3"
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=user, snapshot=old_snap) as cache:
        assert cache.seeded is not None and cache.snapshot_error is None
    _publish(emulator.space, 5, prefix="v2-")
    with make_cache(emulator, tmp_path / "release2.sqlite3") as release:
        release.sync()
        release.create_snapshot(tmp_path / "v2.snap")
    return user, tmp_path / "v2.snap"


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_snapshot_on_upgrade_keeps_the_users_store(
    emulator: Any, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    user, new_snap = _seeded_user(emulator, tmp_path)
    _damage(new_snap, damage)                 # "flip a byte" is found only while installing
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with caplog.at_level("WARNING", logger="localcache.snapshot"), \
            Cache(provider, path=user, snapshot=new_snap) as cache:
        assert isinstance(cache.snapshot_error, SnapshotError)
        assert str(new_snap) in str(cache.snapshot_error)
        assert cache.seeded is None
        assert cache.stats()["entries"] == 10                  # release 1's, offline
        assert cache.entry("s001") is not None
        assert "keeping the existing store" in caplog.text
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
        cache.sync()
        assert_converged(cache, emulator.space)


def test_usable_snapshot_reports_no_error(emulator: Any, tmp_path: Path) -> None:
    path, info = _built(emulator, tmp_path, n=3)
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=tmp_path / "a.sqlite3", snapshot=path) as cache:
        assert cache.seeded == info and cache.snapshot_error is None
    with Cache(provider, path=tmp_path / "a.sqlite3", snapshot=path) as cache:
        assert cache.seeded is None and cache.snapshot_error is None   # kept: not newer
    with Cache(provider, path=tmp_path / "b.sqlite3") as cache:
        assert cache.snapshot_error is None


@pytest.mark.parametrize("mistake", ["a directory", "no such file"])
@pytest.mark.parametrize("launch", ["first", "upgrade"])
def test_snapshot_path_mistakes_still_raise(
    emulator: Any, tmp_path: Path, mistake: str, launch: str
) -> None:
    """A caller's mistake is not a damaged bundle: it raises, on every launch, and creates no
    store."""
    target = tmp_path / "user.sqlite3"
    if launch == "upgrade":
        with make_cache(emulator, target) as cache:
            cache.sync()
    before = sorted(p.name for p in tmp_path.iterdir())
    snapshot = tmp_path / ("snapshots" if mistake == "a directory" else "missing.snap")
    if mistake == "a directory":
        snapshot.mkdir()
    provider = Contentful("testspace", TOKEN, base_url=emulator.base_url)
    expected = "is a directory" if mistake == "a directory" else "no snapshot file at"
    with pytest.raises(SnapshotError, match=expected):
        Cache(provider, path=target, snapshot=snapshot)
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != "snapshots")
    assert after == [n for n in before if n != "snapshots"]
