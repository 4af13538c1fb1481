"""The ``localcache`` command, run as a real subprocess against the emulator."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, assert_converged, make_cache

from localcache.emulator import Emulator, generate_space

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("LOCALCACHE_ACCESS_TOKEN", None)
    return env


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localcache", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env())


def sync_args(emu: Any, db: Path, token: str = TOKEN) -> list[str]:
    return ["sync", "--db", str(db), "--space", emu.space.space_id, "--environment",
            emu.space.environment, "--token", token, "--base-url", emu.base_url]


def test_sync_export_and_stats(emulator: Any, tmp_path: Path) -> None:
    from support import article, asset_fields

    emulator.space.publish_entry("e1", "article", article("One", de="Eins"))
    emulator.space.publish_asset("a1", asset_fields("a1"))
    db = tmp_path / "s.sqlite3"
    done = run_cli(*sync_args(emulator, db))
    assert done.returncode == 0, done.stderr
    assert "initial sync: 1 page(s)" in done.stdout and "entries +1" in done.stdout

    exported = run_cli("export", "--db", str(db))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert lines == [
        {"type": "Entry", "id": "e1", "content_type": "article", "revision": 1,
         "fields": emulator.space.published_entries()["e1"]["fields"]},
        {"type": "Asset", "id": "a1", "content_type": None, "revision": 1,
         "fields": emulator.space.published_assets()["a1"]["fields"]},
    ]
    stats = run_cli("stats", "--db", str(db), "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert (figures["entries"], figures["assets"], figures["synced"]) == (1, 1, True)


def test_initial_sync_options_and_quiet_progress_off_a_terminal(tmp_path: Path) -> None:
    space = generate_space(entries=120, assets=5, seed=3)
    authors = sorted(i for i, e in space.published_entries().items()
                     if e["sys"]["contentType"]["sys"]["id"] == "author")
    with Emulator(space, access_token=TOKEN) as emu:
        done = run_cli(*sync_args(emu, tmp_path / "s.sqlite3"), "--limit", "25")
        only = run_cli(*sync_args(emu, tmp_path / "a.sqlite3"), "--content-type", "author")
        assets = run_cli(*sync_args(emu, tmp_path / "b.sqlite3"), "--type", "Asset")
        bad = run_cli(*sync_args(emu, tmp_path / "c.sqlite3"), "--limit", "1001")
    assert done.returncode == 0, done.stderr
    assert "initial sync: 5 page(s), 125 item(s)" in done.stdout
    assert done.stderr == ""  # off a terminal: a line every few seconds, not one per page
    assert only.returncode == 0 and f"entries +{len(authors)} " in only.stdout
    assert "assets +0" in only.stdout
    assert assets.returncode == 0 and "entries +0 " in assets.stdout
    assert "assets +5" in assets.stdout
    assert bad.returncode != 0 and "limit must be between 1 and 1000" in bad.stderr


class _Terminal:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.text = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_is_a_bar_on_a_terminal_and_a_line_every_few_seconds_elsewhere() -> None:
    from localcache.progress import SyncProgress

    now = [100.0]
    log = _Terminal(tty=False)
    progress = SyncProgress(log, every=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for page in range(1, 31):  # 30 pages, one a second
        now[0] += 1.0
        progress(None, page=page, items=page * 100, total=None)
    progress.done()
    lines = log.text.splitlines()
    assert len(lines) == 7  # at 5, 10, ... 30 s, and the end
    assert lines[0] == "sync: 500 items, 100 items/s, 0:05 elapsed"
    assert lines[-1] == "sync: 3,000 items, 100 items/s, 0:30 elapsed"

    now[0] = 0.0
    tty = _Terminal(tty=True)
    bar = SyncProgress(tty, clock=lambda: now[0])  # type: ignore[arg-type]
    for page in range(1, 5):
        now[0] += 2.0
        bar(None, page=page, items=page * 250, total=2000)
    bar.done()
    assert tty.text.count("\r") == 5 and tty.text.endswith("\n")
    assert "\rsync [============            ]  50% 1,000/2,000 items, 125 items/s, 0:08 elapsed, " \
           "ETA 0:08\x1b[K" in tty.text
    quiet = _Terminal(tty=True)
    SyncProgress(quiet, clock=lambda: 0.0).done()  # type: ignore[arg-type]
    assert quiet.text == ""


@pytest.mark.parametrize("args, expected", [
    (["export", "--db", "/nonexistent/x.sqlite3"], "no store at"),
    (["stats", "--db", "/nonexistent/x.sqlite3"], "no store at"),
    (["sync", "--space", "s", "--token", "t", "--base-url", "http://example.com"],
     "refusing plain http://"),
    (["sync", "--space", "s", "--db", "x.sqlite3"], "needs an access token"),
    (["sync"], "needs"),
    (["sync", "--provider", "contentstack", "--token", "tok-123456"], "--api-key"),
    (["sync", "--provider", "nosuch"], "invalid choice"),
])
def test_failures_are_one_line_without_traceback(args: list[str], expected: str) -> None:
    done = run_cli(*args)
    assert done.returncode != 0
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_rejected_access_token_is_named_but_never_printed(emulator: Any, tmp_path: Path) -> None:
    secret = "super-secret-token-value"
    done = run_cli(*sync_args(emulator, tmp_path / "s.sqlite3", token=secret))
    assert done.returncode == 1
    assert "401" in done.stderr and "access token" in done.stderr
    assert secret not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1


def _check_killed_store(db: Path, versions: dict[str, list[Any]], page: int) -> str | None:
    """Integrity ok; whole pages only; every stored record is a version the server published."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kind = conn.execute("SELECT value FROM sync_state WHERE key = 'token_kind'").fetchone()
        initial = conn.execute(
            "SELECT value FROM sync_state WHERE key = 'initial_in_progress'").fetchone()
        rows = conn.execute("SELECT id, raw FROM entries UNION ALL SELECT id, raw FROM assets")
        stored = 0
        for record_id, raw in rows:
            stored += 1
            assert json.loads(raw) in versions[record_id], record_id
        if initial and initial[0] == "1":  # mid-initial-sync: a whole number of pages
            assert stored % page == 0, stored
        return kind[0] if kind else None
    finally:
        conn.close()


def _kill_and_resume(tmp_path: Path, kills: int, seed: int) -> int:
    """SIGKILL ``localcache sync`` mid-sync ``kills`` times while content changes; returns how
    many kills landed while a sync was in progress."""
    rng = random.Random(seed)
    space = generate_space(entries=1200, assets=20, seed=seed)
    versions: dict[str, list[Any]] = {}

    def remember() -> None:
        for items in (space.published_entries(), space.published_assets()):
            for record_id, item in items.items():
                if item not in versions.setdefault(record_id, []):
                    versions[record_id].append(item)

    remember()
    page = 40
    mid_sync = 0
    with Emulator(space, access_token=TOKEN, page_size=page) as emu:
        emu.faults.latency = 0.02  # a sync lasts long enough for kills to land inside it
        db = tmp_path / "killed.sqlite3"
        for _ in range(kills):
            ids = sorted(space.published_entries())
            for entry_id in rng.sample(ids, 120):
                item = space.published_entries()[entry_id]
                fields = {**item["fields"], "title": {"en-US": f"edit {rng.random()}"}}
                space.publish_entry(entry_id, item["sys"]["contentType"]["sys"]["id"], fields)
            space.delete_entry(rng.choice(ids))
            remember()
            before = emu.requests_served
            proc = subprocess.Popen([sys.executable, "-m", "localcache", *sync_args(emu, db),
                                     "--limit", str(page)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=_env())
            target = before + rng.randint(2, 5)
            deadline = time.monotonic() + 30
            while emu.requests_served < target and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            if db.exists() and _check_killed_store(db, versions, page) == "page":
                mid_sync += 1
        emu.faults.latency = 0.0
        with make_cache(emu, db) as cache:
            cache.sync()
            assert_converged(cache, space)
    return mid_sync


def test_kill_9_during_sync_leaves_whole_pages_and_resumes(tmp_path: Path) -> None:
    assert _kill_and_resume(tmp_path, kills=4, seed=1) >= 2


@pytest.mark.slow
def test_many_kills_during_sync(tmp_path: Path) -> None:
    assert _kill_and_resume(tmp_path, kills=50, seed=2) >= 25


def test_python_dash_m_and_help_document_every_command() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("sync", "export", "stats", "snapshot", "emulator", "demo"):
        assert command in done.stdout
        helped = run_cli(command, "--help")
        assert helped.returncode == 0 and "example:" in helped.stdout
        assert f"localcache {command}" in (REPO / "docs" / "cli.md").read_text()


def test_emulator_command_serves_a_space_that_syncs(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "localcache", "emulator", "--port", "0",
                             "--entries", "30", "--token", "dev-token-123"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split(" ")[0]
        space = line.split("space '")[1].split("'")[0]
        done = run_cli("sync", "--db", str(tmp_path / "dev.sqlite3"), "--space", space,
                       "--token", "dev-token-123", "--base-url", url)
        assert done.returncode == 0, done.stderr
        assert "entries +30" in done.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_sync_with_an_unusable_snapshot_warns_and_syncs(emulator: Any, tmp_path: Path) -> None:
    from support import article

    emulator.space.publish_entry("e1", "article", article("One"))
    bad = tmp_path / "content.snap"
    bad.write_bytes(b"not a snapshot at all" * 10)
    db = tmp_path / "s.sqlite3"
    done = run_cli(*sync_args(emulator, db), "--snapshot", str(bad))
    assert done.returncode == 0, done.stderr
    assert "warning: snapshot not used" in done.stderr
    assert "entries +1" in done.stdout
