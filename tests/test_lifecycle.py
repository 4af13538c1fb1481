"""Closing a Cache: every connection it opened, on every thread, and nothing after."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import article, make_cache

from localcache import StoreError

CLOSED = "the cache is closed"


def open_store_files(store: Path) -> list[str]:
    """The store's file, -wal and -shm among this process's open file descriptors."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to list open files")
    base = os.path.realpath(store)
    wanted = {base, f"{base}-wal", f"{base}-shm"}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, now closed
            continue
        if target.removesuffix(" (deleted)") in wanted:
            found.append(target)
    return sorted(found)


class Worker:
    """A long-lived thread (like a UI app's pool) that runs the calls it is handed."""

    def __init__(self, name: str) -> None:
        self._jobs: list[tuple[Callable[[], Any], threading.Event, dict[str, Any]]] = []
        self._ready = threading.Condition()
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._jobs or self._stop)
                if not self._jobs:
                    return
                job, done, outcome = self._jobs.pop(0)
            try:
                outcome["result"] = job()
            except BaseException as exc:  # handed back to the caller of run()
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            done.set()

    def run(self, job: Callable[[], Any]) -> dict[str, Any]:
        done, outcome = threading.Event(), {}
        with self._ready:
            self._jobs.append((job, done, outcome))
            self._ready.notify()
        assert done.wait(timeout=30)
        return outcome

    def stop(self) -> None:
        with self._ready:
            self._stop = True
            self._ready.notify()
        self.thread.join(timeout=10)


@pytest.fixture
def workers() -> Any:
    made: list[Worker] = []

    def make(name: str) -> Worker:
        made.append(Worker(name))
        return made[-1]

    yield make
    for worker in made:
        worker.stop()


def _publish(space: Any, n: int) -> None:
    for i in range(n):
        space.publish_entry(f"e{i:03d}", "article", article(f"Title {i}"))


def test_close_releases_every_connection_opened_on_any_thread(
    emulator: Any, store_path: Path, workers: Any
) -> None:
    _publish(emulator.space, 12)
    syncer, reader = workers("syncer"), workers("reader")
    cache = make_cache(emulator, store_path, limit=5)
    synced = syncer.run(cache.sync)
    assert "error" not in synced, synced
    read = reader.run(lambda: len(cache.entries()))
    assert read == {"result": 12}
    assert len(open_store_files(store_path)) >= 3          # file, -wal and -shm are open
    cache.close()                                          # both threads are still alive
    assert open_store_files(store_path) == []
    for worker in (syncer, reader):
        outcome = worker.run(lambda: cache.entry("e001"))
        assert CLOSED in outcome.get("error", ""), outcome
    assert open_store_files(store_path) == []


def test_every_use_after_close_raises_and_reopens_nothing(
    emulator: Any, store_path: Path, tmp_path: Path
) -> None:
    _publish(emulator.space, 3)
    cache = make_cache(emulator, store_path)
    cache.sync()
    cache.close()
    uses: dict[str, Callable[[], Any]] = {
        "entry": lambda: cache.entry("e001"),
        "asset": lambda: cache.asset("a1"),
        "entries": lambda: cache.entries(),
        "iter_records": lambda: list(cache.iter_records()),
        "locales": lambda: cache.locales(),
        "stats": lambda: cache.stats(),
        "sync": lambda: cache.sync(),
        "create_snapshot": lambda: cache.create_snapshot(tmp_path / "x.snap"),
    }
    for name, use in uses.items():
        with pytest.raises(StoreError, match=CLOSED):
            use()
        assert open_store_files(store_path) == [], name
    assert not (tmp_path / "x.snap").exists()
    cache.close()                                          # a second close does nothing
    with make_cache(emulator, store_path) as again:        # the file itself is fine
        assert len(again.entries()) == 3


class HeldRead:
    """Holds the next read transaction of the thread named ``name`` open: before its queries
    (``at="start"``) or after them, before its commit (``at="end"``), until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, at: str) -> None:
        from localcache.store.database import Store

        self.armed, self.inside, self.release = (threading.Event() for _ in range(3))
        for method in ("reading", "reading_one"):  # a transaction, and one lone SELECT
            monkeypatch.setattr(Store, method, self._held(getattr(Store, method), name, at))

    def _held(self, real: Any, name: str, at: str) -> Any:
        @contextmanager
        def reading(store: Any) -> Iterator[None]:
            with real(store):
                if at == "start":
                    self._hold(name)
                yield
                if at == "end":
                    self._hold(name)

        return reading

    def _hold(self, name: str) -> None:
        if (self.armed.is_set() and threading.current_thread().name == name
                and not self.inside.is_set()):
            self.inside.set()
            assert self.release.wait(timeout=10)


def test_close_lets_a_read_under_way_on_another_thread_finish(
    emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader inside its read transaction when close() is called gets its whole answer;
    close() returns once it is done, with every file released."""
    _publish(emulator.space, 8)
    held = HeldRead(monkeypatch, "slow-reader", at="end")
    cache = make_cache(emulator, store_path)
    cache.sync()
    outcome: dict[str, Any] = {}

    def read() -> None:
        cache.entries()                  # the locale chain is read and kept from now on
        held.armed.set()
        outcome["ids"] = [r.id for r in cache.entries()]
        try:
            cache.entries()
        except StoreError as exc:
            outcome["after"] = str(exc)

    thread = threading.Thread(target=read, name="slow-reader")
    thread.start()
    try:
        assert held.inside.wait(timeout=10)
        threading.Timer(0.3, held.release.set).start()
        started = time.monotonic()
        cache.close()
        waited = time.monotonic() - started
    finally:
        held.release.set()
        thread.join(timeout=10)
    assert waited >= 0.2, f"close() did not wait for the reader ({waited:.2f}s)"
    assert outcome["ids"] == [f"e{i:03d}" for i in range(8)]
    assert CLOSED in outcome["after"]                       # its next read: closed
    assert open_store_files(store_path) == []


def test_close_does_not_hang_on_a_stuck_reader(
    emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import localcache.store.database as database_module

    _publish(emulator.space, 3)
    monkeypatch.setattr(database_module, "_CLOSE_GRACE_SECONDS", 0.2, raising=False)
    held = HeldRead(monkeypatch, "stuck-reader", at="start")
    cache = make_cache(emulator, store_path)
    cache.sync()
    outcome: dict[str, str] = {}

    def read() -> None:
        cache.entry("e001")
        held.armed.set()
        try:
            cache.entry("e001")
        except StoreError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=read, name="stuck-reader")
    thread.start()
    try:
        assert held.inside.wait(timeout=10)
        started = time.monotonic()
        cache.close()
        assert time.monotonic() - started < 3
        assert open_store_files(store_path) == []
    finally:
        held.release.set()
        thread.join(timeout=10)
    assert CLOSED in outcome["error"]                      # its queries met a closed store


def test_readers_racing_close_get_an_answer_or_closed(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 20)
    cache = make_cache(emulator, store_path)
    cache.sync()
    problems: list[str] = []
    closed_seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                listed = cache.entries()
                assert len(listed) == 20
                record = cache.entry(listed[-1].id)
                assert record is not None and record.field("title") == "Title 19"
            except StoreError as exc:
                if CLOSED in str(exc):
                    closed_seen.append(threading.current_thread().name)
                    return
                problems.append(f"{type(exc).__name__}: {exc}")
                return
            except BaseException as exc:  # reported below
                problems.append(f"{type(exc).__name__}: {exc}")
                return

    threads = [threading.Thread(target=read, name=f"reader-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    cache.close()
    for thread in threads:
        thread.join(timeout=5)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    assert problems == []
    assert sorted(closed_seen) == [f"reader-{i}" for i in range(4)]
    assert open_store_files(store_path) == []
