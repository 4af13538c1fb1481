"""Switchable faults for the emulator.

Real CDNs fail in a handful of recognisable ways (5xx, 429 with a wait header, connections cut
mid-body, garbage bodies, tokens the server no longer knows).  A client is only robust against
them if tests can trigger each one on demand, deterministically, on the next request.  This module
holds that switchboard; the vendor protocol module decides how a fault looks on its wire.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .wire import Response

MAX_RESPONSE_BYTES = 7_340_032  # Contentful's cap on a response body (7 MiB)

__all__ = ["Fault", "FaultKind", "Faults", "FileFaults", "RequestHook", "spoil"]

RequestHook = Callable[[str, dict[str, list[str]]], None]
"""Called with (path, query) before a sync request is served; tests mutate the space in it."""


class FaultKind(Enum):
    """The one-shot faults; each queued instance spoils exactly one sync request."""

    SERVER_ERROR = "server_error"
    RATE_LIMIT = "rate_limit"
    TRUNCATE = "truncate"
    MALFORMED_JSON = "malformed_json"
    CORRUPT = "corrupt"  # asset files: the right length, the wrong bytes


@dataclass(frozen=True)
class Fault:
    """One queued fault. ``status`` matters for server errors, ``reset`` for rate limits."""

    kind: FaultKind
    status: int = 0
    reset: int = 0


class Faults:
    """Thread-safe fault switchboard shared by the test thread and the server threads.

    One-shot faults form a FIFO queue, so a test can script a sequence such as "503, then 429,
    then success" and each sync request consumes the next entry.  ``latency``, ``reject_tokens``
    and ``on_request`` are plain switches that stay until changed or :meth:`clear` is called.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._token_generation = 0
        self.latency: float = 0.0
        self.reject_tokens: bool = False
        self.on_request: RequestHook | None = None
        #: Contentful refuses a sync page whose body would exceed this many bytes (400
        #: BadRequest, "Response size too big"), as the real CDA does near 7 MB.
        self.max_response_bytes: int = MAX_RESPONSE_BYTES

    # -- one-shot faults -------------------------------------------------------------------

    def server_error(self, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` sync requests with ``status`` (5xx) and an error body."""
        if not 500 <= status <= 599:
            raise ValueError(f"server_error status must be 5xx, got {status}")
        self._enqueue(Fault(FaultKind.SERVER_ERROR, status=status), times)

    def rate_limit(self, times: int = 1, reset: int = 1) -> None:
        """Answer the next ``times`` sync requests with 429 and a reset header of ``reset`` s."""
        if reset < 0:
            raise ValueError("reset must be >= 0")
        self._enqueue(Fault(FaultKind.RATE_LIMIT, status=429, reset=reset), times)

    def truncate(self, times: int = 1) -> None:
        """Cut the body of the next ``times`` sync responses in half and drop the connection."""
        self._enqueue(Fault(FaultKind.TRUNCATE), times)

    def malformed_json(self, times: int = 1) -> None:
        """Answer the next ``times`` sync requests with 200 and a body that is not JSON."""
        self._enqueue(Fault(FaultKind.MALFORMED_JSON), times)

    def _enqueue(self, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._queue.extend([fault] * times)

    def take(self) -> Fault | None:
        """Pop the fault for the sync request being served now, if any."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    @property
    def pending(self) -> int:
        """Number of one-shot faults still queued (lets tests assert they were consumed)."""
        with self._lock:
            return len(self._queue)

    # -- token invalidation ----------------------------------------------------------------

    def invalidate_tokens_before_now(self) -> None:
        """Reject every sync token issued so far; tokens issued afterwards work.

        Simulates a server-side token reset: the only documented recovery is a fresh initial
        sync, and clients must discover that themselves.
        """
        with self._lock:
            self._token_generation += 1

    @property
    def token_generation(self) -> int:
        """Stamped into every token; tokens from an older generation are refused."""
        with self._lock:
            return self._token_generation

    def clear(self) -> None:
        """Back to a healthy server: no queued faults, no latency, no rejection, no hook.

        The token generation is kept on purpose: tokens invalidated stay invalid, as they
        would on a real server.
        """
        with self._lock:
            self._queue.clear()
            self.latency = 0.0
            self.reject_tokens = False
            self.on_request = None
            self.max_response_bytes = MAX_RESPONSE_BYTES


def spoil(response: Response, fault: Fault | None, malformed_body: bytes) -> Response:
    """Apply a body-level one-shot fault to an otherwise finished response: cut it short
    (``truncate``) or replace it with ``malformed_body`` (a vendor-shaped body that breaks
    off into garbage). Every vendor protocol spoils its responses the same way."""
    if fault is not None and fault.kind is FaultKind.TRUNCATE:
        response.truncate = True
    elif fault is not None and fault.kind is FaultKind.MALFORMED_JSON:
        response.status, response.body = 200, malformed_body
    return response


class FileFaults:
    """Faults of asset file requests (``emulator.file_faults``): a queue of their own, so a
    test scripting sync faults is not disturbed by downloads, and the other way round.

    One-shot faults, in order, one per file request: ``server_error``, ``rate_limit`` (429
    with ``Retry-After`` and ``X-Contentful-RateLimit-Reset``), ``cut_halfway`` (half the
    bytes of the response, then the connection closes), ``corrupt`` (the right length, the
    wrong bytes: only a checksum or the ETag can tell). Switches: ``bytes_per_second`` paces
    every file response (0: as fast as the socket goes), so a test can kill a process in the
    middle of a file; ``on_request(path, headers)`` runs before each file request is served
    (``path`` below ``/files``, with its query; ``headers`` lower-cased).
    The emulator-wide ``faults.latency`` applies to file requests too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self.bytes_per_second: float = 0.0
        self.on_request: Callable[[str, dict[str, str]], None] | None = None

    def server_error(self, times: int = 1, status: int = 503) -> None:
        if not 500 <= status <= 599:
            raise ValueError(f"server_error status must be 5xx, got {status}")
        self._enqueue(Fault(FaultKind.SERVER_ERROR, status=status), times)

    def rate_limit(self, times: int = 1, reset: int = 1) -> None:
        if reset < 0:
            raise ValueError("reset must be >= 0")
        self._enqueue(Fault(FaultKind.RATE_LIMIT, status=429, reset=reset), times)

    def cut_halfway(self, times: int = 1) -> None:
        """Send half of the next ``times`` file responses, then drop the connection."""
        self._enqueue(Fault(FaultKind.TRUNCATE), times)

    def corrupt(self, times: int = 1) -> None:
        """Flip bytes in the next ``times`` file responses, keeping their length."""
        self._enqueue(Fault(FaultKind.CORRUPT), times)

    def _enqueue(self, fault: Fault, times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._queue.extend([fault] * times)

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.bytes_per_second = 0.0
            self.on_request = None
