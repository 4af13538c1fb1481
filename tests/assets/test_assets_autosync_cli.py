"""Downloads after each background sync, a prompt stop, and the ``localcache assets`` commands."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from asset_support import files_in, make_asset_cache, publish

from localcache import signals

REPO = Path(__file__).resolve().parents[2]


def test_auto_sync_downloads_after_each_sync(emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "first", 5_000)
    landed = threading.Event()
    ids: list[str] = []

    def on_ready(sender: Any, **kwargs: Any) -> None:
        ids.append(kwargs["id"])
        landed.set()

    with make_asset_cache(emulator, tmp_path) as cache, \
            signals.asset_file_ready.connected_to(on_ready, sender=cache):
        auto = cache.start_auto_sync(interval=60)
        assert landed.wait(10) and ids == ["first"]
        landed.clear()
        publish(emulator.space, "second", 5_000)
        auto.sync_now()
        assert landed.wait(10) and ids == ["first", "second"]
        assert cache.asset_path("second") is not None
        assert auto.status.state in ("idle", "syncing")


def test_stop_gives_up_a_download_promptly(emulator: Any, tmp_path: Path) -> None:
    for number in range(4):
        publish(emulator.space, f"slow{number}", 2_000_000)
    emulator.file_faults.bytes_per_second = 500_000.0  # 4 s a file
    serving = threading.Event()
    emulator.file_faults.on_request = lambda path, headers: serving.set()
    with make_asset_cache(emulator, tmp_path, workers=2) as cache:
        auto = cache.start_auto_sync(interval=60)
        assert serving.wait(10)
        started = time.monotonic()
        assert auto.stop(timeout=1.0)
        assert time.monotonic() - started < 2.0
        assert auto.status.state == "stopped"
        time.sleep(0.3)
        assert not any(not n.endswith(".part") for n in files_in(tmp_path / "assets"))
        assert cache.assets.stats().pending == 4  # partial files stay, resumable


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "localcache", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_assets_download_and_check_commands(emulator: Any, tmp_path: Path) -> None:
    for number in range(3):
        publish(emulator.space, f"a{number}", 20_000)
    with make_asset_cache(emulator, tmp_path, workers=2) as cache:
        cache.sync()  # the app's Cache stores its policy, directory and asset base URL
    db = str(tmp_path / "store.sqlite3")
    done = _run("assets", "download", "--db", db, "--workers", "3")
    assert done.returncode == 0, done.stderr
    assert "3 downloaded (60,000 bytes), 0 failed" in done.stdout
    assert len(files_in(tmp_path / "assets")) == 3
    done = _run("assets", "check", "--db", db, "--json")
    assert done.returncode == 0 and '"clean": true' in done.stdout
    (tmp_path / "assets" / files_in(tmp_path / "assets")[0]).unlink()
    done = _run("assets", "check", "--db", db)
    assert done.returncode == 1 and "missing: 1" in done.stdout
    done = _run("assets", "check", "--db", db, "--fix")
    assert done.returncode == 0
    done = _run("assets", "download", "--db", db)
    assert done.returncode == 0 and "1 downloaded" in done.stdout
    emulator.file_faults.server_error(times=100)
    (tmp_path / "assets" / files_in(tmp_path / "assets")[0]).unlink()
    _run("assets", "check", "--db", db, "--fix")
    done = _run("-v", "assets", "download", "--db", db)
    assert done.returncode == 1
    assert "localcache: error: 1 asset files could not be downloaded" in done.stderr


def test_assets_commands_are_documented() -> None:
    for command in ("download", "check"):
        helped = _run("assets", command, "--help")
        assert helped.returncode == 0 and "example:" in helped.stdout
        assert f"localcache assets {command}" in (REPO / "docs" / "cli.md").read_text()
    done = _run("assets", "download", "--db", "/nonexistent/x.sqlite3")
    assert done.returncode == 1 and "Traceback" not in done.stderr
