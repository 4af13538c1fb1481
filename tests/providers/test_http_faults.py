"""Each emulator fault on page N of a multi-page sync, over real loopback HTTP.

Faults are queued from the emulator's ``on_request`` hook when the Nth sync request arrives, so
they spoil exactly that request (the hook runs before the fault queue is read). Pages are small
(``limit=10``) so a sync of 50 articles takes five pages; HttpPolicy backoffs are tiny so the
retry paths cost milliseconds.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from replay import LoopbackServer, send
from support import TOKEN, article, assert_converged, make_cache

from localcache import HttpPolicy, PageError, SyncError, signals
from localcache.emulator import Emulator
from localcache.providers.http import HttpTransport, parse_float_header

FAST = HttpPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.02)
ARTICLES = 50
LIMIT = 10
PAGES = ARTICLES // LIMIT


def _publish(space: Any, n: int = ARTICLES) -> None:
    for i in range(n):
        space.publish_entry(f"a{i:04d}", "article", article(f"Title {i}", de=f"Titel {i}"))


class SyncRequests:
    """Counts sync requests (thread-safe) and runs ``action`` when the Nth one arrives."""

    def __init__(self, emulator: Any) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.actions: dict[int, Callable[[], None]] = {}
        emulator.faults.on_request = self

    def at(self, n: int, action: Callable[[], None]) -> SyncRequests:
        self.actions[n] = action
        return self

    def __call__(self, path: str, query: dict[str, list[str]]) -> None:
        with self.lock:
            self.times.append(time.monotonic())
            n = len(self.times)
        action = self.actions.get(n)
        if action is not None:
            action()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.times)


# -- transient faults on page 2: retried, the sync completes ----------------------------------

@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error_on_page_two_then_success_converges(
    emulator: Any, store_path: Path, status: int
) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(
        2, lambda: emulator.faults.server_error(times=2, status=status))
    with make_cache(emulator, store_path, limit=LIMIT, http=FAST) as cache:
        result = cache.sync()
        assert result.pages == PAGES and result.entries.added == ARTICLES
        assert_converged(cache, emulator.space)
        assert cache.stats()["synced"]
    assert emulator.faults.pending == 0
    assert watch.count == PAGES + 2          # page 2 was asked three times


def test_truncated_body_on_page_two_is_retried(emulator: Any, store_path: Path) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(2, lambda: emulator.faults.truncate(times=2))
    with make_cache(emulator, store_path, limit=LIMIT, http=FAST) as cache:
        result = cache.sync()
        assert result.pages == PAGES
        assert_converged(cache, emulator.space)
    assert emulator.faults.pending == 0
    assert watch.count == PAGES + 2


def test_malformed_json_on_page_two_is_a_page_error_and_next_sync_resumes(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(2, lambda: emulator.faults.malformed_json())
    with make_cache(emulator, store_path, limit=LIMIT, http=FAST) as cache:
        with pytest.raises(PageError) as failure:
            cache.sync()
        assert failure.value.page == 2
        assert "sync page 2" in str(failure.value)
        stats = cache.stats()
        assert stats["entries"] == LIMIT and stats["sync_in_progress"]
        before = watch.count
        resumed = cache.sync()
        assert resumed.initial
        assert resumed.entries.added == ARTICLES - LIMIT
        assert_converged(cache, emulator.space)
        # Resumed from page 2's token: pages 2-5 plus the closing delta, not a restart.
        assert watch.count - before == PAGES - 1 + 1


def test_rate_limit_reset_is_waited_for_then_succeeds(emulator: Any, store_path: Path) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(2, lambda: emulator.faults.rate_limit(times=1, reset=1))
    policy = HttpPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.02,
                        max_rate_limit_wait=5)
    with make_cache(emulator, store_path, limit=LIMIT, http=policy) as cache:
        started = time.monotonic()
        result = cache.sync()
        elapsed = time.monotonic() - started
        assert result.pages == PAGES
        assert_converged(cache, emulator.space)
    assert watch.count == PAGES + 1
    waited = watch.times[2] - watch.times[1]   # the 429'd page 2, then its retry
    assert waited >= 0.95, f"retried after {waited:.3f}s, before the 1 s reset"
    assert waited < 2.0, f"waited {waited:.3f}s for a 1 s reset"
    assert elapsed >= 0.95


def test_rate_limit_reset_above_the_cap_gives_up_at_once(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(
        2, lambda: emulator.faults.rate_limit(times=3, reset=60))
    policy = HttpPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.02,
                        max_rate_limit_wait=5)
    with make_cache(emulator, store_path, limit=LIMIT, http=policy) as cache:
        started = time.monotonic()
        with pytest.raises(SyncError) as failure:
            cache.sync()
        elapsed = time.monotonic() - started
        error = failure.value
        assert error.status == 429
        assert error.request_id and re.fullmatch(r"[0-9a-f]{32}", error.request_id)
        assert elapsed < 1.0, f"gave up after {elapsed:.2f}s"
        assert watch.count == 2                  # no retry of page 2
        stats = cache.stats()
        assert stats["entries"] == LIMIT and stats["sync_in_progress"]


def test_rate_limit_give_up_message_is_honest(emulator: Any, store_path: Path) -> None:
    """Giving up on a too-long 429 wait after ONE attempt must not claim six attempts, and
    should say the server asked for 60 s."""
    _publish(emulator.space, 5)
    SyncRequests(emulator).at(1, lambda: emulator.faults.rate_limit(times=1, reset=60))
    policy = HttpPolicy(max_attempts=6, backoff_base=0.01, max_rate_limit_wait=5)
    with make_cache(emulator, store_path, http=policy) as cache, \
            pytest.raises(SyncError) as failure:
        cache.sync()
    message = str(failure.value)
    assert "429" in message
    assert "after 6 attempts" not in message, message
    assert re.search(r"\b60(\.0+)?\s?s", message), message


def test_persistent_server_error_keeps_pages_and_next_sync_resumes(
    emulator: Any, store_path: Path
) -> None:
    space = emulator.space
    _publish(space)
    SyncRequests(emulator).at(3, lambda: emulator.faults.server_error(times=100, status=503))
    failures: list[Any] = []
    with make_cache(emulator, store_path, limit=LIMIT, http=FAST) as cache, \
            signals.sync_failed.connected_to(
                lambda sender, error: failures.append(error), sender=cache):
        with pytest.raises(SyncError) as failure:
            cache.sync()
        error = failure.value
        assert type(error) is SyncError
        assert error.status == 503
        assert error.request_id and re.fullmatch(r"[0-9a-f]{32}", error.request_id)
        assert error.request_id in str(error)
        assert "sync page 3" in str(error)
        assert "4 attempts" in str(error) and "503" in str(error)
        assert failures == [error]
        stats = cache.stats()
        assert stats["entries"] == 2 * LIMIT     # pages 1 and 2 committed, nothing of page 3
        assert stats["sync_in_progress"] and not stats["synced"]

        emulator.faults.clear()
        space.publish_entry("a0000", "article", article("edited while failing"))
        resumed = cache.sync()
        assert resumed.initial
        assert resumed.entries.added == ARTICLES - 2 * LIMIT
        assert resumed.entries.updated == 1
        assert_converged(cache, space)


def test_backoff_is_bounded(emulator: Any, store_path: Path) -> None:
    _publish(emulator.space, 20)
    watch = SyncRequests(emulator).at(
        2, lambda: emulator.faults.server_error(times=100, status=500))
    with make_cache(emulator, store_path, limit=LIMIT, http=FAST) as cache:
        started = time.monotonic()
        with pytest.raises(SyncError) as failure:
            cache.sync()
        elapsed = time.monotonic() - started
    assert failure.value.status == 500
    assert elapsed < 1.0, f"4 attempts with 20 ms max backoff took {elapsed:.2f}s"
    assert watch.count == 1 + 4                  # page 1, then exactly max_attempts for page 2


def test_backoff_max_caps_a_large_base(emulator: Any, store_path: Path) -> None:
    """backoff_base=5 s would mean up to 35 s of waiting; backoff_max=0.05 caps each wait."""
    _publish(emulator.space, 5)
    SyncRequests(emulator).at(1, lambda: emulator.faults.server_error(times=100))
    policy = HttpPolicy(max_attempts=4, backoff_base=5.0, backoff_max=0.05)
    with make_cache(emulator, store_path, http=policy) as cache:
        started = time.monotonic()
        with pytest.raises(SyncError):
            cache.sync()
    assert time.monotonic() - started < 1.0


def _transport(policy: HttpPolicy, delays: list[float]) -> HttpTransport:
    return HttpTransport(
        headers={"Authorization": f"Bearer {TOKEN}"},
        policy=policy,
        request_id_header="X-Contentful-Request-Id",
        wait_header=parse_float_header("X-Contentful-RateLimit-Reset"),
        sleep=delays.append,
    )


def _sync_url(emulator: Any) -> str:
    space = emulator.space
    return f"{emulator.base_url}/spaces/{space.space_id}/environments/{space.environment}/sync"


def test_backoff_is_exponential_capped_and_jittered(emulator: Any) -> None:
    policy = HttpPolicy(max_attempts=6, backoff_base=1.0, backoff_max=4.0)
    runs: list[list[float]] = []
    for _ in range(2):
        delays: list[float] = []
        emulator.faults.server_error(times=6)
        transport = _transport(policy, delays)
        try:
            with pytest.raises(SyncError) as failure:
                transport.request("GET", _sync_url(emulator), params={"initial": "true"})
        finally:
            transport.close()
        assert failure.value.status == 503
        assert len(delays) == 5                  # a wait between each of the 6 attempts
        for attempt, delay in enumerate(delays, start=1):
            assert 0 <= delay <= min(4.0, 2 ** (attempt - 1)), (attempt, delay)
        runs.append(delays)
    assert runs[0] != runs[1], "no jitter: two runs waited exactly the same"


def test_rate_limit_wait_comes_from_the_reset_header(emulator: Any) -> None:
    delays: list[float] = []
    emulator.faults.rate_limit(times=1, reset=7)
    policy = HttpPolicy(max_attempts=3, backoff_base=0.5, max_rate_limit_wait=60)
    transport = _transport(policy, delays)
    try:
        response = transport.request("GET", _sync_url(emulator), params={"initial": "true"})
    finally:
        transport.close()
    assert response.status == 200
    assert len(delays) == 1 and 7.0 <= delays[0] <= 7.5


class _RetryAfterServer(LoopbackServer):
    """Answers 429 with only ``Retry-After: 3`` once, then 200 with an empty JSON object."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.hits += 1
        status, extra = (429, [("Retry-After", "3")]) if self.hits == 1 else (200, [])
        send(request, status, b"{}", extra)

    def __enter__(self) -> str:
        super().__enter__()
        return f"{self.base_url}/sync"


def test_rate_limit_wait_falls_back_to_retry_after() -> None:
    delays: list[float] = []
    transport = _transport(HttpPolicy(max_attempts=3, backoff_base=0.5), delays)
    try:
        with _RetryAfterServer() as url:
            response = transport.request("GET", url)
    finally:
        transport.close()
    assert response.status == 200
    assert len(delays) == 1 and 3.0 <= delays[0] <= 3.5


# -- timeouts and connection failures ---------------------------------------------------------

def test_read_timeout_everywhere_is_retried_then_a_sync_error(
    emulator: Any, store_path: Path
) -> None:
    _publish(emulator.space, 5)
    emulator.faults.latency = 1.0
    policy = HttpPolicy(read_timeout=0.2, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    with make_cache(emulator, store_path, http=policy) as cache:
        started = time.monotonic()
        with pytest.raises(SyncError) as failure:
            cache.sync()
        elapsed = time.monotonic() - started
        assert cache.stats()["entries"] == 0
    error = failure.value
    assert type(error) is SyncError and error.status is None
    assert "2 attempts" in str(error) and "timeout" in str(error).lower()
    assert elapsed < 1.5, f"two 0.2 s read timeouts took {elapsed:.2f}s"


def test_read_timeout_on_page_two_is_retried(emulator: Any, store_path: Path) -> None:
    _publish(emulator.space)
    watch = SyncRequests(emulator).at(2, lambda: time.sleep(1.0))   # page 2 stalls once
    policy = HttpPolicy(read_timeout=0.3, max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    with make_cache(emulator, store_path, limit=LIMIT, http=policy) as cache:
        started = time.monotonic()
        result = cache.sync()
        elapsed = time.monotonic() - started
        assert result.pages == PAGES
        assert_converged(cache, emulator.space)
    assert watch.count == PAGES + 1
    assert elapsed < 1.0, f"the stalled request was waited for ({elapsed:.2f}s)"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_is_a_sync_error(tmp_path: Path) -> None:
    from localcache import Cache, Contentful

    provider = Contentful("s", TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}",
                          http=FAST)
    with Cache(provider, path=tmp_path / "s.sqlite3") as cache:
        started = time.monotonic()
        with pytest.raises(SyncError) as failure:
            cache.sync()
        assert time.monotonic() - started < 2.0
    error = failure.value
    assert not isinstance(error, requests.RequestException)
    assert type(error) is SyncError and error.status is None and error.request_id is None
    assert "4 attempts" in str(error) and "ConnectionError" in str(error)
    assert error.__suppress_context__ or error.__context__ is None


@pytest.fixture
def restartable(space: Any) -> Iterator[list[Emulator]]:
    servers: list[Emulator] = []
    yield servers
    for server in servers:
        server.stop()


def test_server_gone_mid_sync_keeps_whole_pages_and_resumes(
    space: Any, store_path: Path, restartable: list[Emulator]
) -> None:
    _publish(space)
    first = Emulator(space, access_token=TOKEN).start()
    restartable.append(first)
    port = first.port

    def stop_after_page_one(sender: Any, changes: Any) -> None:
        if changes.page == 1:
            first.stop()

    with make_cache(first, store_path, limit=LIMIT, http=FAST) as cache:
        with signals.changes_committed.connected_to(stop_after_page_one, sender=cache), \
                pytest.raises(SyncError) as failure:
            cache.sync()
        assert failure.value.status is None
        stats = cache.stats()
        # Page 2 may have been prefetched before the server went away, and page 3 asked for
        # ahead while page 2 was parsed (providers/ahead.py); whole pages only.
        assert stats["entries"] in (LIMIT, 2 * LIMIT, 3 * LIMIT)
        assert stats["sync_in_progress"]

        second = Emulator(space, access_token=TOKEN, port=port).start()
        restartable.append(second)
        resumed = cache.sync()
        assert resumed.initial
        assert_converged(cache, space)


def test_cli_failure_after_a_retry_is_still_one_line(emulator: Any, tmp_path: Path) -> None:
    """The CLI promises one line on stderr for a failure; a retry's warning must not add one."""
    _publish(emulator.space, 3)
    emulator.faults.server_error(times=1)
    emulator.faults.rate_limit(times=1, reset=3600)          # beyond any cap: give up at once
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get(
        "PYTHONPATH", "")])}
    env.pop("LOCALCACHE_ACCESS_TOKEN", None)
    space = emulator.space
    done = subprocess.run(
        [sys.executable, "-m", "localcache", "sync", "--db", str(tmp_path / "s.sqlite3"),
         "--space", space.space_id, "--environment", space.environment, "--token", TOKEN,
         "--base-url", emulator.base_url],
        capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    assert emulator.faults.pending == 0                      # the 503 really was retried
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("localcache: error:") and "429" in lines[0]
