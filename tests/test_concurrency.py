"""Readers on other threads during a sync, and second syncs from threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged, make_cache

from localcache import Cache, Contentful, StoreBusyError, signals

REPO = Path(__file__).resolve().parent.parent
PAGE = 5


def _publish(space: Any, n: int) -> None:
    for i in range(n):
        space.publish_entry(f"a{i:04d}", "article", article(f"Title {i}", de=f"Titel {i}"))


def _sync_with_readers(
    emulator: Any, store_path: Path, check: Callable[[Cache, Any], None], readers: int = 4
) -> tuple[list[list[int]], list[BaseException]]:
    """Sync 60 articles in pages of 5 while ``readers`` threads read the same Cache in a loop;
    ``check(cache, record)`` runs on the last few records each reader lists."""
    total = 60
    _publish(emulator.space, total)
    emulator.faults.latency = 0.02
    done = threading.Event()
    errors: list[BaseException] = []
    counts: list[list[int]] = []

    with make_cache(emulator, store_path, limit=PAGE) as cache:
        def read(seen: list[int]) -> None:
            try:
                while not done.is_set():
                    listed = cache.entries()
                    seen.append(len(listed))
                    seen.append(cache.stats()["entries"])
                    for record in listed[-3:]:
                        check(cache, record)
                    assert cache.entry("a9999") is None
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = []
        for i in range(readers):
            seen: list[int] = []
            counts.append(seen)
            threads.append(threading.Thread(target=read, args=(seen,), name=f"reader-{i}"))
        for thread in threads:
            thread.start()
        try:
            result = cache.sync()
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=10)
        assert result.pages == total // PAGE
        assert_converged(cache, emulator.space)
    return counts, errors


def test_readers_see_whole_pages_and_never_fail(emulator: Any, store_path: Path) -> None:
    def check(cache: Cache, record: Any) -> None:
        again = cache.entry(record.id)
        assert again is not None and again.fields == record.fields
        assert set(record.fields["title"]) == {"en-US", "de-DE"}

    counts, errors = _sync_with_readers(emulator, store_path, check)
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    observed = [n for seen in counts for n in seen]
    assert all(n % PAGE == 0 for n in observed), sorted(set(observed))
    # The readers really ran during the sync: they saw several intermediate states.
    assert len({n for n in observed if 0 < n < 60}) >= 3, sorted(set(observed))
    for seen in counts:                       # an initial sync only adds: never backwards
        listed = seen[0::2]
        assert listed == sorted(listed)


def test_readers_during_first_sync_resolve_the_default_locale(
    emulator: Any, store_path: Path
) -> None:
    """The locales arrive with page 1; a reader after that commit must see them. (A locale
    chain cached from the empty store before page 1 made field() return None.)"""
    def check(cache: Cache, record: Any) -> None:
        number = int(record.id[1:])
        assert record.field("title") == f"Title {number}", record.id
        assert record.field("body", "de-DE") == f"Body of Title {number}", record.id

    _, errors = _sync_with_readers(emulator, store_path, check, readers=2)
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors][:2]


class Held:
    """A changes_committed receiver that parks the sync on ``thread`` after page 1's commit
    (inside the sync, holding the sync lock) until released."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self.owner: int | None = None
        self.commits: list[tuple[str, int]] = []

    def __call__(self, sender: Any, changes: Any) -> None:
        name = threading.current_thread().name
        self.commits.append((name, changes.page))
        if self.owner is None:
            self.owner = threading.get_ident()
            self.inside.set()
            assert self.release.wait(timeout=20), "never released"


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # inspected by the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="first-sync")
    thread.start()
    return thread, outcome


def _other_cache(emulator: Any, path: Path, **kwargs: Any) -> Cache:
    provider = Contentful(emulator.space.space_id, TOKEN, emulator.space.environment,
                          base_url=emulator.base_url, limit=PAGE)
    return Cache(provider, path=path, **kwargs)


@pytest.mark.parametrize("same_object", [True, False], ids=["same-cache", "second-cache"])
def test_second_sync_from_another_thread_fails_busy(
    emulator: Any, store_path: Path, same_object: bool
) -> None:
    _publish(emulator.space, 20)
    held = Held()
    with make_cache(emulator, store_path, limit=PAGE) as cache, \
            signals.changes_committed.connected_to(held):
        thread, outcome = _in_thread(cache.sync)
        try:
            assert held.inside.wait(timeout=10)
            started = time.monotonic()
            if same_object:
                with pytest.raises(StoreBusyError) as busy:
                    cache.sync()
            else:
                with _other_cache(emulator, store_path) as other, \
                        pytest.raises(StoreBusyError) as busy:
                    other.sync()
            assert time.monotonic() - started < 1.0
            assert "another sync" in str(busy.value)
            assert cache.stats()["entries"] == PAGE                # the first one's page 1
        finally:
            held.release.set()
            thread.join(timeout=20)
        assert "error" not in outcome, outcome
        assert_converged(cache, emulator.space)
    assert {name for name, _ in held.commits} == {"first-sync"}


def test_second_sync_with_lock_wait_runs_after_the_first(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 20)
    held = Held()
    with make_cache(emulator, store_path, limit=PAGE) as cache, \
            signals.changes_committed.connected_to(held):
        thread, outcome = _in_thread(cache.sync)
        assert held.inside.wait(timeout=10)
        emulator.space.publish_entry("late", "article", article("late"))
        threading.Timer(0.4, held.release.set).start()
        with _other_cache(emulator, store_path, lock_wait=10) as other:
            started = time.monotonic()
            second = other.sync()
            waited = time.monotonic() - started
            thread.join(timeout=20)
            assert "error" not in outcome, outcome
            first = outcome["result"]
            assert first.initial and first.pages == 4
            assert waited >= 0.3, f"the second sync did not wait ({waited:.2f}s)"
            assert not second.initial
            assert_converged(other, emulator.space)
    # Never interleaved: every commit of the first sync precedes every commit of the second.
    names = [name for name, _ in held.commits]
    assert names == sorted(names, key=lambda n: n != "first-sync"), names
    assert names.count("first-sync") == 4 and len(names) > 4


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("LOCALCACHE_ACCESS_TOKEN", None)
    return env


def test_second_sync_from_another_process_fails_with_one_line(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 20)
    held = Held()
    with make_cache(emulator, store_path, limit=PAGE) as cache, \
            signals.changes_committed.connected_to(held):
        thread, outcome = _in_thread(cache.sync)
        try:
            assert held.inside.wait(timeout=10)
            done = subprocess.run(
                [sys.executable, "-m", "localcache", "sync", "--db", str(store_path),
                 "--space", emulator.space.space_id, "--environment",
                 emulator.space.environment, "--token", TOKEN, "--base-url", emulator.base_url],
                capture_output=True, text=True, timeout=60, env=_env())
            assert cache.stats()["entries"] == PAGE
        finally:
            held.release.set()
            thread.join(timeout=20)
        assert done.returncode != 0, done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "another sync" in lines[0]
        assert "Traceback" not in done.stderr and TOKEN not in done.stderr
        assert "error" not in outcome, outcome
        assert_converged(cache, emulator.space)
