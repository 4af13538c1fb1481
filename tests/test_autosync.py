"""Background sync: its states and signal, backoff while offline, pause, and stopping mid-page.

Over loopback HTTP against the emulator, on a real store file. Intervals are a fraction of a
second; every wait is bounded.
"""

from __future__ import annotations

import itertools
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, assert_converged, make_cache

from localcache import (
    AuthenticationError,
    AutoSync,
    Cache,
    Contentful,
    HttpPolicy,
    StoreError,
    SyncError,
    SyncStatus,
    signals,
)
from localcache.sync.lock import SyncLock

FAST = HttpPolicy(max_attempts=1, connect_timeout=2.0, read_timeout=5.0)
PAGE = 5


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def publish(space: Any, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        space.publish_entry(f"e{n:03d}", "article", article(f"Title {n}"))


def stored_state(path: Path) -> dict[str, str]:
    """The sync state as committed, read on a connection of the test's own."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM sync_state WHERE value IS NOT NULL"))
    finally:
        conn.close()


class Recorder:
    """Every status a cache's AutoSync signals, and the sync signals, with their times."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.statuses: list[SyncStatus] = []
        self.events: list[tuple[float, str, Any]] = []  # (monotonic, signal, payload)
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Recorder:
        connect = [(signals.sync_status_changed, self._status),
                   (signals.sync_started, self._event("started")),
                   (signals.sync_progress, self._event("progress")),
                   (signals.changes_committed, self._event("committed")),
                   (signals.sync_finished, self._event("finished")),
                   (signals.sync_failed, self._event("failed"))]
        self._connected = connect
        for signal, receiver in connect:
            signal.connect(receiver, sender=self.cache, weak=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver, sender=self.cache)

    def _status(self, sender: Any, *, status: SyncStatus) -> None:
        assert sender is self.cache
        with self._lock:
            self.statuses.append(status)

    def _event(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **payload: Any) -> None:
            assert sender is self.cache
            with self._lock:
                self.events.append((time.monotonic(), name, payload))
                if name == "started":
                    self.threads.append(threading.current_thread())
        return receive

    @property
    def states(self) -> list[str]:
        with self._lock:
            return [s.state for s in self.statuses]

    def count(self, name: str) -> int:
        with self._lock:
            return sum(1 for _, n, _ in self.events if n == name)

    def successes(self) -> list[SyncStatus]:
        with self._lock:
            return [s for s in self.statuses if s.state == "idle" and s.last_result is not None]

    def wait_status(self, check: Callable[[SyncStatus], bool], after: int = 0,
                    timeout: float = 10.0) -> SyncStatus:
        """The first status from index ``after`` on that passes ``check``."""
        found: list[SyncStatus] = []

        def seen() -> bool:
            with self._lock:
                found[:] = [s for s in self.statuses[after:] if check(s)]
            return bool(found)

        wait_for(seen, timeout)
        return found[0]


@pytest.fixture
def caches(emulator: Any, tmp_path: Path) -> Iterator[Callable[..., Cache]]:
    made: list[Cache] = []

    def make(name: str = "store.sqlite3", **provider_args: Any) -> Cache:
        provider_args.setdefault("http", FAST)
        cache = make_cache(emulator, tmp_path / name, **provider_args)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def test_states_are_signalled_in_order_on_every_change(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    publish(emulator.space, 3)
    cache = caches()
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=0.2)
        assert isinstance(auto, AutoSync)
        wait_for(lambda: len(rec.successes()) >= 2)
        auto.pause()
        assert auto.status.state == "paused" or rec.states[-1] == "syncing"
        rec.wait_status(lambda s: s.state == "paused")
        auto.resume()
        after_resume = len(rec.statuses)
        rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None,
                        after=after_resume)
        assert auto.stop(timeout=1.0) is True
    states = rec.states
    paused = states.index("paused")
    assert states[:paused] == ["syncing", "idle"] * (paused // 2)
    assert paused >= 4
    assert states[paused + 1:paused + 4] == ["idle", "syncing", "idle"]
    assert states[-1] == "stopped" and states.count("stopped") == 1
    assert all(a != b for a, b in itertools.pairwise(states))  # a signal is a change
    assert auto.status is rec.statuses[-1]
    for status in rec.statuses:
        assert status.next_at is None or status.state in ("idle", "offline")
    first = rec.successes()[0]
    assert first.failures == 0 and first.last_error is None
    assert first.last_result is not None and first.last_result.initial
    assert first.next_at is not None
    assert first.next_at - first.changed_at == pytest.approx(0.2, abs=1e-6)  # no jitter when ok
    assert_converged(cache, emulator.space)
    with pytest.raises(AttributeError):
        auto.status.state = "idle"  # type: ignore[misc]


def test_sync_now_syncs_at_once(emulator: Any, caches: Callable[..., Cache]) -> None:
    publish(emulator.space, 2)
    cache = caches()
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=60.0)
        rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None)
        publish(emulator.space, 1, start=2)
        started = time.monotonic()
        auto.sync_now()
        wait_for(lambda: cache.entry("e002") is not None, timeout=5)
        assert time.monotonic() - started < 1.0
        assert rec.count("started") == 2
        auto.stop()


def test_pause_holds_syncs_until_resume_and_sync_now_runs_one(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    publish(emulator.space, 2)
    cache = caches()
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=0.05)
        rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None)
        auto.pause()
        rec.wait_status(lambda s: s.state == "paused")
        assert auto.status.state == "paused" and auto.status.next_at is None
        syncs = rec.count("started")
        publish(emulator.space, 1, start=2)
        time.sleep(0.4)  # eight intervals
        assert rec.count("started") == syncs
        assert cache.entry("e002") is None

        mark = len(rec.statuses)
        auto.sync_now()  # one sync, and paused again
        rec.wait_status(lambda s: s.state == "paused", after=mark)
        assert rec.states[mark:] == ["syncing", "paused"]
        assert cache.entry("e002") is not None
        assert rec.count("started") == syncs + 1

        publish(emulator.space, 1, start=3)
        auto.resume()
        wait_for(lambda: cache.entry("e003") is not None, timeout=2)
        wait_for(lambda: rec.count("started") >= syncs + 3)  # and on with the interval
        auto.stop()


def test_a_receiver_may_call_back_in(emulator: Any, caches: Callable[..., Cache]) -> None:
    """Statuses go out with no lock held: a receiver pausing the AutoSync (on its thread)
    neither deadlocks nor reorders them."""
    cache = caches()
    seen: list[str] = []

    def pause_when_idle(sender: Any, *, status: SyncStatus) -> None:
        seen.append(status.state)
        if status.state == "idle":
            auto.pause()
            seen.append(auto.status.state)  # current at once, signalled after this returns

    with signals.sync_status_changed.connected_to(pause_when_idle, sender=cache):
        auto = cache.start_auto_sync(interval=0.05)
        wait_for(lambda: "paused" in seen[2:])
        time.sleep(0.2)
        auto.stop()
    assert seen == ["syncing", "idle", "paused", "paused", "stopped"]


def test_backoff_grows_while_offline_and_resets_on_success(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    interval = 0.4
    publish(emulator.space, 2)
    cache = caches()
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=interval)
        rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None)
        emulator.faults.server_error(times=1_000, status=503)  # an outage
        auto.sync_now()
        fifth = rec.wait_status(lambda s: s.failures == 5)
        emulator.faults.clear()
        mark = rec.statuses.index(fifth)
        back = rec.wait_status(lambda s: s.state == "idle", after=mark)
        auto.stop()
    offline = [s for s in rec.statuses if s.state == "offline"]
    assert [s.failures for s in offline] == [1, 2, 3, 4, 5]
    waits = []
    for status in offline:
        assert isinstance(status.last_error, SyncError) and status.last_error.status == 503
        assert status.next_at is not None
        nominal = min(interval, interval / 10 * 2 ** (status.failures - 1))
        wait = status.next_at - status.changed_at
        assert 0.75 * nominal - 1e-6 <= wait <= nominal + 1e-6, (status.failures, wait)
        waits.append(wait)
    assert waits[0] < waits[1] < waits[2] < waits[3]  # grows, then capped at the interval
    assert back.failures == 0 and back.last_error is None and back.last_result is not None
    assert back.next_at is not None
    assert back.next_at - back.changed_at == pytest.approx(interval, abs=1e-6)
    assert rec.count("failed") == 5  # sync() reports each failure as usual


@pytest.mark.parametrize("fault", ["truncate", "unreachable"])
def test_a_lost_connection_is_offline_and_retried(
        emulator: Any, caches: Callable[..., Cache], tmp_path: Path, fault: str) -> None:
    publish(emulator.space, 2)
    if fault == "truncate":
        emulator.faults.truncate(times=2)
        cache = caches()
    else:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cache = Cache(Contentful(emulator.space.space_id, TOKEN, emulator.space.environment,
                                 base_url=f"http://127.0.0.1:{port}", http=FAST),
                      path=tmp_path / "unreachable.sqlite3")
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=0.3)
        try:
            second = rec.wait_status(lambda s: s.failures == 2)
            assert second.state == "offline" and isinstance(second.last_error, SyncError)
            assert not isinstance(second.last_error, AuthenticationError)
            if fault == "truncate":  # the connection is back: normal again
                rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None)
                assert auto.status.failures == 0
                assert_converged(cache, emulator.space)
        finally:
            auto.stop()
            cache.close()


def test_a_refused_access_token_stops_retrying(emulator: Any, tmp_path: Path) -> None:
    wrong = "wrong-token-0123456789"
    cache = Cache(Contentful(emulator.space.space_id, wrong, emulator.space.environment,
                             base_url=emulator.base_url, http=FAST),
                  path=tmp_path / "store.sqlite3")
    with cache, Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=0.05)
        rec.wait_status(lambda s: s.state == "stopped")
        time.sleep(0.3)  # six intervals: nothing more
        status = auto.status
        assert rec.states == ["syncing", "stopped"]
        assert isinstance(status.last_error, AuthenticationError)
        assert status.next_at is None and status.failures == 1
        assert rec.count("started") == 1
        assert rec.threads and not rec.threads[0].is_alive()
        assert wrong not in repr(status) and wrong not in repr(auto)
        auto.sync_now()  # nothing to wake
        time.sleep(0.1)
        assert rec.count("started") == 1
        replaced = cache.start_auto_sync(interval=0.05)  # a stopped one is replaced
        assert replaced is not auto
        rec.wait_status(lambda s: s.state == "stopped", after=2)
        assert rec.count("started") == 2


def test_a_rejected_sync_token_rebuilds(emulator: Any, caches: Callable[..., Cache]) -> None:
    publish(emulator.space, 4)
    cache = caches()
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=60.0)
        rec.wait_status(lambda s: s.state == "idle" and s.last_result is not None)
        emulator.faults.invalidate_tokens_before_now()
        emulator.space.delete_entry("e001")
        publish(emulator.space, 1, start=4)
        mark = len(rec.statuses)
        auto.sync_now()
        done = rec.wait_status(lambda s: s.state != "syncing", after=mark)
        auto.stop()
    assert done.state == "idle" and done.failures == 0
    assert done.last_result is not None and done.last_result.initial  # the rebuild
    assert_converged(cache, emulator.space)


def test_a_second_start_returns_the_running_one(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    cache = caches()
    auto = cache.start_auto_sync(interval=0.2)
    assert cache.start_auto_sync(interval=5.0) is auto
    assert auto.interval == 0.2
    names = [t.name for t in threading.enumerate() if t.name == "localcache-autosync"]
    assert len(names) == 1
    auto.stop()
    again = cache.start_auto_sync(interval=0.2)
    assert again is not auto and again.status.state != "stopped"
    again.stop()
    with pytest.raises(Exception, match="interval"):
        cache.start_auto_sync(interval=0)


def test_a_busy_store_is_retried_soon_and_is_not_offline(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    interval = 1.0
    publish(emulator.space, 2)
    cache = caches()
    with Recorder(cache) as rec:
        with SyncLock(cache.path):  # another process's sync, as far as the store can tell
            auto = cache.start_auto_sync(interval=interval)
            busy = rec.wait_status(lambda s: s.state != "syncing")
            assert rec.count("started") == 0
        assert busy.state == "idle" and busy.failures == 0 and busy.last_error is None
        assert busy.next_at is not None
        assert 0.075 - 1e-6 <= busy.next_at - busy.changed_at <= 0.1 + 1e-6
        done = rec.wait_status(lambda s: s.last_result is not None, timeout=3)
        auto.stop()
    assert done.state == "idle" and done.failures == 0
    assert_converged(cache, emulator.space)


def test_two_caches_on_one_file_never_sync_at_once(
        emulator: Any, caches: Callable[..., Cache]) -> None:
    publish(emulator.space, 12)
    emulator.faults.latency = 0.01
    one, two = caches(limit=PAGE), caches(limit=PAGE)
    with Recorder(one) as rec_one, Recorder(two) as rec_two:
        autos = [one.start_auto_sync(interval=0.03), two.start_auto_sync(interval=0.03)]
        for n in range(3):  # changes to sync, while both keep trying
            time.sleep(0.3)
            publish(emulator.space, 1, start=20 + n)
        wait_for(lambda: one.entry("e022") is not None)
        wait_for(lambda: len(rec_one.successes()) >= 2 and len(rec_two.successes()) >= 2)
        for auto in autos:
            auto.stop()
    spans = []  # each sync, from sync_started to its last signal sent under the sync lock
    for rec in (rec_one, rec_two):
        for at, name, _ in rec.events:
            if name == "started":
                spans.append([at, at])
            elif name in ("progress", "committed", "failed"):
                spans[-1][1] = at
    spans.sort()
    assert len(spans) >= 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "two syncs ran at once"
    assert_converged(one, emulator.space)


def test_stop_mid_page_returns_in_time_and_nothing_commits_after(
        emulator: Any, caches: Callable[..., Cache], store_path: Path) -> None:
    latency = 0.3
    publish(emulator.space, 30)
    cache = caches(limit=PAGE)
    emulator.faults.latency = latency
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=60.0)
        wait_for(lambda: rec.count("committed") >= 1)  # page 2 is in flight now
        started = time.monotonic()
        assert auto.stop(timeout=0.2) is True
        assert time.monotonic() - started < 0.25
        assert auto.status.state == "stopped"
        pages = rec.count("committed")
        state = stored_state(store_path)
        entries = cache.stats()["entries"]
        time.sleep(2 * latency + 0.2)  # page 2 (and a prefetched page 3) arrived meanwhile
        assert rec.count("committed") == pages and rec.count("progress") == pages
        assert rec.count("finished") == 0 and rec.count("failed") == 0
        assert stored_state(store_path) == state
        assert cache.stats()["entries"] == entries == pages * PAGE
        assert rec.states[-1] == "stopped"
        thread = rec.threads[0]
        thread.join(timeout=3)
        assert not thread.is_alive()
    emulator.faults.latency = 0.0
    cache.sync()  # resumes at the page boundary the stop left
    assert_converged(cache, emulator.space)


def test_close_stops_auto_sync_promptly(emulator: Any, tmp_path: Path,
                                        store_path: Path) -> None:
    publish(emulator.space, 20)
    cache = make_cache(emulator, store_path, limit=PAGE, http=FAST)
    emulator.faults.latency = 0.3
    with Recorder(cache) as rec:
        auto = cache.start_auto_sync(interval=60.0)
        wait_for(lambda: rec.count("committed") >= 1)
        started = time.monotonic()
        cache.close()
        assert time.monotonic() - started < 1.5
        assert auto.status.state == "stopped"
        pages = rec.count("committed")
        state = stored_state(store_path)
        time.sleep(0.8)
        assert rec.count("committed") == pages
        assert stored_state(store_path) == state
        rec.threads[0].join(timeout=3)
        assert not rec.threads[0].is_alive()
    with pytest.raises(StoreError, match="closed"):
        cache.start_auto_sync()
