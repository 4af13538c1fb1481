"""The core guarantees hold for Contentstack and Kontent.ai too: resume, rejected-token
recovery with net-change signals, real progress, snapshots, CLI and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localcache import Cache, Contentstack, HttpPolicy, Kontent, SyncError, signals
from localcache.emulator import Emulator, Project, Stack

TOKEN = "vendor-guarantee-token"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"
REPO = Path(__file__).resolve().parents[2]


def _stack(n: int = 12) -> Stack:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    for i in range(n):
        stack.publish_entry(f"blt{i:02d}", "blog", "en-us", {"title": f"Post {i}"})
        if i % 3 == 0:
            stack.publish_entry(f"blt{i:02d}", "blog", "fr-fr", {"title": f"Billet {i}"})
    return stack


def _project(n: int = 8) -> Project:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text"})
    for i in range(n):
        item = f"00000000-0000-4000-8000-{i:012d}"
        project.upsert_variant(item, f"item_{i}", "article", "default", {"title": f"T{i}"})
        if i % 2:
            project.upsert_variant(item, f"item_{i}", "article", "es-ES", {"title": f"E{i}"})
    return project


def _contentstack(emu: Emulator, **kw: Any) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url, **kw)


def _fields(cache: Cache) -> dict[str, dict[str, Any]]:
    return {r.id: r.fields for r in cache.entries()}


def test_contentstack_progress_uses_total_count(tmp_path: Path) -> None:
    with Emulator(_stack(), access_token=TOKEN, page_size=5) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        totals: list[Any] = []

        def progress(sender: Any, **kw: Any) -> None:
            totals.append((kw["items"], kw["total"]))

        with signals.sync_progress.connected_to(progress, sender=cache):
            cache.sync()
    assert totals == [(5, 16), (10, 16), (15, 16), (16, 16)]   # 12 en-us + 4 fr-fr


def test_contentstack_resume_and_rejected_token_rebuild(tmp_path: Path) -> None:
    stack = _stack()
    with Emulator(stack, access_token=TOKEN, page_size=4) as emu, \
            Cache(_contentstack(emu, http=HttpPolicy(max_attempts=1)),
                  path=tmp_path / "cs.sqlite3") as cache:
        served: list[str] = []

        def break_third(path: str, query: dict[str, list[str]]) -> None:
            served.append(path)
            if len(served) == 3:
                emu.faults.server_error(times=5)

        emu.faults.on_request = break_third
        with pytest.raises(SyncError):
            cache.sync()
        assert cache.stats()["sync_in_progress"]
        emu.faults.clear()
        cache.sync()                                     # resumes, then converges
        assert _fields(cache)["blt03"]["title"] == {"en-us": "Post 3", "fr-fr": "Billet 3"}
        stack.unpublish_entry("blt03", "fr-fr")
        stack.delete_entry("blt05", "en-us")
        emu.faults.invalidate_tokens_before_now()
        changed: list[str] = []
        deleted: list[str] = []
        with signals.entry_changed.connected_to(lambda s, **kw: changed.append(kw["id"]),
                                                sender=cache), \
                signals.entry_deleted.connected_to(lambda s, **kw: deleted.append(kw["id"]),
                                                   sender=cache):
            result = cache.sync()                        # 422/141: rebuilt beside live data
        assert result.initial and changed == ["blt03"] and deleted == ["blt05"]
        assert _fields(cache)["blt03"]["title"] == {"en-us": "Post 3"}
        assert "blt05" not in _fields(cache) and len(_fields(cache)) == 11


@pytest.mark.parametrize("version", [1, 2])
def test_kontent_resume_and_rejected_token_rebuild(tmp_path: Path, version: int) -> None:
    project = _project()
    with Emulator(project, access_token=None, page_size=3) as emu, \
            Cache(Kontent(ENV_ID, api_version=version, base_url=emu.base_url,
                          http=HttpPolicy(max_attempts=1)), path=tmp_path / "k.sqlite3") as cache:
        served: list[str] = []

        def break_feed(path: str, query: dict[str, list[str]]) -> None:
            served.append(path)
            if sum("items-feed" in p for p in served) == 2:
                emu.faults.server_error(times=5)

        emu.faults.on_request = break_feed
        with pytest.raises(SyncError):
            cache.sync()                                 # the first load breaks half-way
        partial = cache.stats()["entries"]
        emu.faults.clear()
        cache.sync()                                     # resumes the first load
        assert partial < 8 and cache.stats()["entries"] == 8
        assert _fields(cache)["00000000-0000-4000-8000-000000000001"]["title"].keys() == {
            "default", "es-ES"}
        project.delete_variant("00000000-0000-4000-8000-000000000001", "es-ES")
        emu.faults.invalidate_tokens_before_now()
        result = cache.sync()                            # 400: rebuilt beside live data
        assert result.initial and result.entries.updated == 1
        assert _fields(cache)["00000000-0000-4000-8000-000000000001"]["title"].keys() == {
            "default"}


def test_contentstack_snapshot_seeds_and_syncs_the_delta(tmp_path: Path) -> None:
    stack = _stack()
    with Emulator(stack, access_token=TOKEN) as emu:
        with Cache(_contentstack(emu), path=tmp_path / "release.sqlite3") as release:
            release.sync()
            info = release.create_snapshot(tmp_path / "cs.snap")
        assert (info.provider, info.space, info.environment) == (
            "contentstack", "blt_api", "production")
        stack.publish_entry("blt00", "blog", "fr-fr", {"title": "Nouveau"})
        with Cache(_contentstack(emu), path=tmp_path / "user.sqlite3",
                   snapshot=tmp_path / "cs.snap") as cache:
            assert cache.seeded == info and cache.stats()["entries"] == 12
            result = cache.sync()
            assert not result.initial and result.entries.updated == 1
            assert cache.entry("blt00").field("title", "fr-fr") == "Nouveau"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "localcache", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_cli_syncs_and_exports_every_provider(tmp_path: Path) -> None:
    with Emulator(_stack(3), access_token=TOKEN) as cs, \
            Emulator(_project(3), access_token=None) as kt:
        runs = {
            "contentstack": ["--provider", "contentstack", "--api-key", "blt_api",
                             "--environment", "production", "--token", TOKEN,
                             "--base-url", cs.base_url],
            "kontent": ["--provider", "kontent", "--environment-id", ENV_ID,
                        "--base-url", kt.base_url],
        }
        for name, args in runs.items():
            db = tmp_path / f"{name}.sqlite3"
            done = _cli("sync", "--db", str(db), *args)
            assert done.returncode == 0, done.stderr
            assert "entries +3" in done.stdout
            lines = [json.loads(line) for line in _cli("export", "--db", str(db)).stdout.split(
                "\n") if line]
            assert len(lines) == 3 and {line["type"] for line in lines} == {"Entry"}
            assert all(set(line) == {"type", "id", "content_type", "revision", "fields"}
                       for line in lines)


def test_kontent_v2_follows_pages_while_an_array_is_full(tmp_path: Path) -> None:
    project = _project(2)
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(ENV_ID, base_url=emu.base_url), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        for i in range(2, 152):
            project.upsert_variant(f"00000000-0000-4000-8000-{i:012d}", f"item_{i}", "article",
                                   "default", {"title": f"T{i}"})
        result = cache.sync()
        assert result.pages == 2 and result.entries.added == 150   # 100, then 50: done
        assert cache.stats()["entries"] == 152
