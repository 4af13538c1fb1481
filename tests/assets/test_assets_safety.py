"""Files as safe as records: kill -9 during downloads, a deletion while its file downloads, a
kill between a commit and its unlink, a full disk."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asset_support import (
    assert_every_file_whole,
    files_in,
    make_asset_cache,
    publish,
    space_with_files,
)
from support import TOKEN

from localcache import AssetError
from localcache.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"),
                                         str(REPO / "tests" / "assets"),
                                         env.get("PYTHONPATH", "")])
    return env


def _kill_downloads(emu: Any, tmp_path: Path, kills: int, seed: int) -> int:
    """SIGKILL ``localcache assets download`` ``kills`` times, each while files are being
    written; after each kill every file on disk is whole. Returns the kills that left a
    partial file behind (so they came in the middle of a file)."""
    rng = random.Random(seed)
    directory = tmp_path / "assets"
    mid_file = 0
    for _ in range(kills):
        served = emu.requests_served
        proc = subprocess.Popen(
            [sys.executable, "-m", "localcache", "assets", "download", "--db",
             str(tmp_path / "store.sqlite3")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        deadline = time.monotonic() + 30
        while emu.requests_served < served + 3 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert_every_file_whole(emu.space, directory)
        mid_file += any(n.endswith(".part") for n in files_in(directory))
    return mid_file


def _killed_then_clean(tmp_path: Path, kills: int, seed: int, files: int = 24,
                       rate: float = 400_000.0) -> int:
    space = space_with_files(files, size=120_000)
    with Emulator(space, access_token=TOKEN) as emu:
        with make_asset_cache(emu, tmp_path, workers=4) as cache:
            cache.sync()
        emu.file_faults.bytes_per_second = rate
        mid_file = _kill_downloads(emu, tmp_path, kills, seed)
        emu.file_faults.bytes_per_second = 0.0
        with make_asset_cache(emu, tmp_path, workers=4) as cache:
            cache.assets.download()
            assert cache.assets.check().clean
            assert all(cache.asset_path(f"asset{n}") is not None for n in range(files))
        assert assert_every_file_whole(space, tmp_path / "assets") == files
    return mid_file


def test_kill_9_during_downloads_leaves_only_whole_files_and_a_clean_check(
        tmp_path: Path) -> None:
    assert _killed_then_clean(tmp_path, kills=3, seed=1) >= 2


@pytest.mark.slow
def test_many_kills_during_downloads(tmp_path: Path) -> None:
    assert _killed_then_clean(tmp_path, kills=25, seed=2, files=100, rate=150_000.0) >= 20


def test_a_deletion_while_its_file_downloads(emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    publish(space, "doomed", 300_000)
    publish(space, "kept", 1_000)
    serving = threading.Event()
    emulator.file_faults.on_request = (
        lambda path, headers: serving.set() if "doomed" in path else None)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        emulator.file_faults.bytes_per_second = 600_000.0  # half a second for "doomed"
        run = cache.assets.download(wait=False)
        assert serving.wait(10)
        space.delete_asset("doomed")
        cache.sync()  # commits the deletion while the file is still arriving
        assert cache.asset_path("doomed") is None
        assert run.wait(30)
        assert cache.asset_path("doomed") is None
        assert not any(n.startswith("doomed") for n in files_in(tmp_path / "assets"))
        assert cache.asset_path("kept") is not None
        assert cache.assets.check().clean


def test_a_kill_between_the_commit_and_the_unlink_leaves_an_orphan_the_next_run_removes(
        emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "doomed", 5_000)
    publish(emulator.space, "kept", 5_000)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        cache.assets.download()
        doomed = cache.asset_path("doomed")
    emulator.space.delete_asset("doomed")
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from asset_support import make_asset_cache
        from localcache import signals

        class Emu:
            space = None
            base_url = {emulator.base_url!r}
            asset_base_url = {emulator.asset_base_url!r}

        class Space:
            space_id, environment = {emulator.space.space_id!r}, "master"

        Emu.space = Space
        def die(sender, **kwargs):  # after the commit that removed the record, before unlink
            os.kill(os.getpid(), signal.SIGKILL)
        signals.asset_deleted.connect(die)
        with make_asset_cache(Emu, Path({str(tmp_path)!r})) as cache:
            cache.sync()
        """)
    done = subprocess.run([sys.executable, "-c", script], env=_env(), timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert doomed.exists()  # the kill came between the commit and the unlink
    with make_asset_cache(emulator, tmp_path) as cache:
        assert cache.asset_path("doomed") is None  # the record is gone
        report = cache.assets.check()
        assert report.orphaned == (doomed.name,) and not report.clean
        cache.assets.download()
        assert not doomed.exists()
        assert cache.assets.check().clean and cache.asset_path("kept") is not None


# -- a full disk ----------------------------------------------------------------------------------

@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "2m") -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``where``; False when this machine cannot mount one
    (not root), so the test falls back to RLIMIT_FSIZE."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(where)], capture_output=True).returncode == 0 \
        if sys.platform.startswith("linux") else False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_stops_downloads_with_one_asset_error(tmp_path: Path) -> None:
    space = space_with_files(8, size=400_000)  # 3.2 MB for a 2 MB disk
    with Emulator(space, access_token=TOKEN) as emu, \
            small_tmpfs(tmp_path / "assets") as mounted:
        if mounted:
            _disk_full_on_tmpfs(emu, tmp_path)
        else:
            _disk_full_by_file_size_limit(emu, tmp_path)


def _disk_full_on_tmpfs(emu: Any, tmp_path: Path) -> None:
    # One worker: files land one after the other, so exactly five whole 400 kB files fit the
    # 2 MiB tmpfs (512 pages of 4 KiB; a file takes 98) and the sixth runs out of space.
    with make_asset_cache(emu, tmp_path, workers=1) as cache:
        cache.sync()
        with pytest.raises(AssetError, match="full") as caught:
            cache.assets.download()
        assert "free some space" in str(caught.value)
        assert cache.assets.stats().last_error is not None
        # The store is unharmed, and so are the files already there.
        assert len(cache.entries()) == 0 and cache.asset("asset0") is not None
        landed = assert_every_file_whole(emu.space, tmp_path / "assets")
        assert landed == 5
        report = cache.assets.check()
        assert not report.damaged and not report.missing and len(report.pending) == 8 - landed
    # With a budget that fits the disk, the next run evicts first and fetches the rest.
    with make_asset_cache(emu, tmp_path, workers=1, budget_bytes=1_500_000) as cache:
        run = cache.assets.download()
        assert run.error is None and run.downloaded == 8 - landed
        assert cache.assets.stats().bytes <= 1_500_000
        assert cache.assets.check().clean
        assert_every_file_whole(emu.space, tmp_path / "assets")


def _disk_full_by_file_size_limit(emu: Any, tmp_path: Path) -> None:
    """Without a tmpfs: a real EFBIG from RLIMIT_FSIZE in a child process."""
    with make_asset_cache(emu, tmp_path, workers=2) as cache:
        cache.sync()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from localcache import AssetError, Cache
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        with Cache.open({str(tmp_path / "store.sqlite3")!r}, assets=True) as cache:
            try:
                cache.assets.download()
            except AssetError as exc:
                print("ASSET-ERROR", exc)
                sys.exit(3)
        """)
    done = subprocess.run([sys.executable, "-c", script], env=_env(), timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "ASSET-ERROR" in done.stdout and "full" in done.stdout
    assert_every_file_whole(emu.space, tmp_path / "assets")
    with make_asset_cache(emu, tmp_path) as cache:
        assert cache.asset("asset0") is not None
        assert not cache.assets.check().damaged
