"""Background sync: one daemon thread that keeps a Cache current, and backs off while offline.

:meth:`Cache.start_auto_sync <localcache.Cache.start_auto_sync>` starts it. The thread runs
:meth:`Cache.sync` now, then every ``interval`` seconds; a sync that fails to reach the CMS is
retried sooner, with exponential backoff and jitter from about ``interval / 10`` up to
``interval``, and the first success brings back the normal interval. Its state, as an immutable
:class:`SyncStatus`, is :attr:`AutoSync.status`, and every change is sent as
``signals.sync_status_changed(status=)`` (sender: the Cache).

States::

    idle ──▶ syncing ──▶ idle        success (next_at = now + interval)
                    ├──▶ offline     a failure: network, 5xx, a page that could not be read ...
                    │                (failures += 1, next_at = now + backoff)
                    ├──▶ idle/offline  StoreBusyError: another sync holds the store; not a
                    │                failure, retried after about interval / 10
                    └──▶ stopped     AuthenticationError: a refused access token never heals by
                                     itself (last_error says why; the thread ends)
    any ──▶ paused (pause(); a sync under way finishes first) ──▶ idle/offline (resume())
    any ──▶ stopped (stop(), Cache.close())

Never two syncs at once: each sync takes the store's sync lock (sync/lock.py), so an AutoSync
and a manual :meth:`Cache.sync`, or two processes, take turns. A rejected continuation token
needs nothing here: the sync itself rebuilds (docs/reliability.md, section 2).

Stopping is safe at any instant. Every write transaction of an automatic sync passes a
:class:`CommitGate`: it is checked before ``BEGIN`` and again, under the gate's lock, right
before ``COMMIT``. :meth:`AutoSync.stop` closes the gate (waiting up to its timeout for a
``COMMIT`` under way), so once it returns no page of that thread commits any more: a page whose
HTTP response arrives later is rolled back whole, and the thread ends without sending
``sync_finished`` or ``sync_failed`` (a cancelled sync is no failure).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from . import signals
from .errors import (
    AuthenticationError,
    ConfigurationError,
    LocalCacheError,
    StoreBusyError,
    SyncError,
)
from .store.database import Store
from .sync.engine import SyncResult

if TYPE_CHECKING:
    from .cache import Cache

__all__ = ["AutoSync", "CommitGate", "SyncCancelled", "SyncState", "SyncStatus"]

log = logging.getLogger("localcache.autosync")

SyncState = Literal["idle", "syncing", "offline", "paused", "stopped"]

#: The first retry after a failure comes after about ``interval / BACKOFF_DIVISOR``.
BACKOFF_DIVISOR = 10.0
#: Each wait is its nominal length times a factor drawn from this range (jitter), so that many
#: devices that lost the network together do not come back together.
JITTER = (0.75, 1.0)


@dataclass(frozen=True)
class SyncStatus:
    """What an :class:`AutoSync` is doing, as of ``changed_at``; a new one for every change.

    ``state`` is ``"idle"`` (waiting for ``next_at``), ``"syncing"``, ``"offline"`` (the last
    attempt failed; retried at ``next_at``), ``"paused"`` or ``"stopped"``. ``last_result`` is
    the last successful sync's result, ``last_error`` the error of the last failed attempt
    (None again after a success), ``failures`` the consecutive failed attempts. ``next_at`` and
    ``changed_at`` are ``time.time()`` seconds; ``next_at`` is None while syncing, paused or
    stopped. A ``"stopped"`` status with an :class:`~localcache.AuthenticationError` in
    ``last_error`` means the CMS refused the access token and nothing will be retried.
    """

    state: SyncState
    last_result: SyncResult | None = None
    last_error: LocalCacheError | None = None
    next_at: float | None = None
    failures: int = 0
    changed_at: float = 0.0


class SyncCancelled(Exception):
    """A write transaction met a closed :class:`CommitGate` and was rolled back.

    Private plumbing between the gate and :class:`AutoSync`, which treats it as a clean stop;
    never raised to an app, hence not a LocalCacheError (and no ``sync_failed`` is sent).
    """


class CommitGate:
    """Lets the sync engine's transactions commit until :meth:`close`, and none after.

    The check right before ``COMMIT`` and the ``COMMIT`` itself run under one lock that
    :meth:`close` also takes, so there is no instant at which a closed gate lets one through.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float) -> bool:
        """Close the gate. True when no transaction can commit any more; False only when a
        ``COMMIT`` under way outlasted ``timeout`` (it may still complete, nothing after it)."""
        acquired = self._lock.acquire(timeout=max(0.0, timeout))
        self._closed = True
        if acquired:
            self._lock.release()
        return acquired

    @contextlib.contextmanager
    def transaction(self, store: Store) -> Iterator[None]:
        """``store.write()``, refused before it begins and rolled back before it commits
        once the gate is closed."""
        if self._closed:
            raise SyncCancelled("the automatic sync was stopped")
        # ``held`` exits last: the lock taken before COMMIT is released after it.
        with contextlib.ExitStack() as held, store.write():
            yield
            self._lock.acquire()
            held.callback(self._lock.release)
            if self._closed:
                raise SyncCancelled("the automatic sync was stopped")

    def guard(self, store: Store) -> Store:
        """``store`` with every write transaction passing this gate (reads untouched)."""
        return cast(Store, _GatedStore(store, self))


class _GatedStore:
    """A Store whose :meth:`write` passes a CommitGate; everything else is the Store's own.

    Wrapping the store, rather than hooking each place the engine writes, covers every write
    transaction of the sync: page commits, the rebuild's shadow pages and the tally.
    """

    def __init__(self, store: Store, gate: CommitGate) -> None:
        self._store = store
        self._gate = gate

    def write(self) -> contextlib.AbstractContextManager[None]:
        return self._gate.transaction(self._store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return f"gated {self._store!r}"


class AutoSync:
    """The background sync of one Cache. Start it with ``cache.start_auto_sync()``.

    Every method may be called from any thread, a signal receiver included, and
    :attr:`status` is current as soon as one returns. ``sync_status_changed`` goes out in the
    order of the changes, with no lock held (a receiver may block or call back in): on the
    thread that made the change (the sync thread, or the caller of :meth:`pause`,
    :meth:`resume` or :meth:`stop`), unless another thread is sending one at that moment, which
    then sends this one too, right after its own.
    """

    def __init__(self, cache: Cache, interval: float = 300.0) -> None:
        if not (isinstance(interval, (int, float)) and math.isfinite(interval)
                and interval > 0):
            raise ConfigurationError(
                f"start_auto_sync interval must be a positive number of seconds, not "
                f"{interval!r}")
        self.cache = cache
        self.interval = float(interval)
        self._gate = CommitGate()
        self._cond = threading.Condition()  # guards every field below; wakes the thread
        now = time.time()
        self._status = SyncStatus("idle", next_at=now, changed_at=now)
        self._outbox: deque[SyncStatus] = deque()  # made, not yet signalled
        self._sending = False
        self._due = time.monotonic()
        self._paused = False
        self._now_requested = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="localcache-autosync",
                                        daemon=True)

    def __repr__(self) -> str:
        return (f"AutoSync({self.cache!r}, interval={self.interval!r}, "
                f"state={self._status.state!r})")

    def start(self) -> None:
        """Start the thread; its first sync begins at once. Called by start_auto_sync."""
        self._thread.start()

    @property
    def status(self) -> SyncStatus:
        """The current state, as an immutable snapshot."""
        with self._cond:
            return self._status

    def sync_now(self) -> None:
        """Sync as soon as possible, skipping the wait (a backoff too). Returns at once.

        A sync under way is followed by another; while paused, one sync runs and the state
        returns to ``"paused"``. Does nothing once stopped.
        """
        with self._cond:
            if self._stopping:
                return
            self._now_requested = True
            self._cond.notify_all()

    def pause(self) -> None:
        """No more syncs until :meth:`resume`. A sync under way finishes (its state stays
        ``"syncing"`` until then), and the state becomes ``"paused"``."""
        with self._cond:
            if self._stopping or self._paused:
                return
            self._paused = True
            self._cond.notify_all()
            if self._status.state != "syncing":
                self._change(state="paused", next_at=None)
        self._send()

    def resume(self) -> None:
        """Undo :meth:`pause`: sync now (a sync due while paused is not skipped), then go on
        with the interval, or with the backoff if the last attempt failed."""
        with self._cond:
            if self._stopping or not self._paused:
                return
            self._paused = False
            self._due = time.monotonic()
            self._cond.notify_all()
            if self._status.state != "syncing":
                self._change(state="offline" if self._status.failures else "idle",
                             next_at=time.time())
        self._send()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop for good, within ``timeout`` seconds, even in the middle of a page.

        A page in flight commits whole or not at all, and once this returns no page of this
        AutoSync commits any more. A thread waiting on an HTTP response is left to it (it is a
        daemon); when the response comes, the thread rolls back and ends. Returns True when
        that guarantee holds, False only if a ``COMMIT`` under way outlasted ``timeout``.
        Calling it again does nothing more.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        safe = self._gate.close(timeout)
        with self._cond:
            self._change(state="stopped", next_at=None)
        self._send()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        return safe

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._wait_until_due():
                self._attempt()
        except Exception:  # a bug of ours in the loop itself: say so, and stop visibly
            log.exception("automatic sync of %s stopped on an unexpected error", self.cache)
            with self._cond:
                self._stopping = True
                self._change(state="stopped", next_at=None)
            self._send()

    def _wait_until_due(self) -> bool:
        """Sleep until a sync is due, sync_now() or resume(); False when stopping."""
        with self._cond:
            while True:
                if self._stopping:
                    return False
                if self._now_requested:
                    self._now_requested = False
                    self._change(state="syncing", next_at=None)
                    break
                if self._paused:
                    self._cond.wait()
                    continue
                remaining = self._due - time.monotonic()
                if remaining <= 0:
                    self._change(state="syncing", next_at=None)
                    break
                self._cond.wait(remaining)
        self._send()
        return True

    def _attempt(self) -> None:
        """One sync, and the state it leads to."""
        try:
            result = self.cache._sync(gate=self._gate)
            self._after_sync(result)
        except Exception as exc:
            if self._stopping or isinstance(exc, SyncCancelled):
                return  # stop() has said "stopped"; what the cut-off sync raised is moot
            self._failed(exc)
            return
        self._schedule(self.interval, jitter=False, last_result=result, last_error=None,
                       failures=0)

    def _after_sync(self, result: SyncResult) -> None:
        """What follows each successful sync on this thread, while the state is still
        ``"syncing"``: the one place for work that must see the synced store. With
        ``Cache(..., assets=)``, the asset files the sync queued are downloaded here; the run
        gives up within a chunk once :meth:`stop` is called (docs/assets.md), and a full disk
        is logged and kept in ``cache.assets.last_error``, not counted as a failed sync."""
        files = self.cache._asset_files
        if files is not None and not self._stopping:
            files.download_after_sync(lambda: self._stopping)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, StoreBusyError):
            # Another sync (thread or process) holds the store: it is bringing it up to date
            # anyway. Not a failure and not offline; look again soon.
            self._schedule(self.interval / BACKOFF_DIVISOR, jitter=True)
            return
        if isinstance(exc, LocalCacheError):
            error = exc
        else:  # a bug of ours, not the network's: keep retrying, but show where it broke
            log.error("automatic sync of %s failed unexpectedly", self.cache, exc_info=exc)
            error = _unexpected(exc)
        failures = self.status.failures + 1
        if isinstance(error, AuthenticationError):
            log.warning("automatic sync stopped: %s", error)
            with self._cond:
                self._stopping = True
                self._change(state="stopped", next_at=None, last_error=error,
                             failures=failures)
            self._send()
            return
        wait = min(self.interval, self.interval / BACKOFF_DIVISOR * 2 ** (failures - 1))
        log.warning("automatic sync failed (%d in a row), retrying in about %.1fs: %s",
                    failures, wait, error)
        self._schedule(wait, jitter=True, last_error=error, failures=failures)

    def _schedule(self, wait: float, *, jitter: bool, **changes: Any) -> None:
        """The next attempt in ``wait`` seconds, times a random factor when ``jitter``."""
        if jitter:
            wait *= random.uniform(*JITTER)
        with self._cond:
            self._due = time.monotonic() + wait
            if self._paused:
                self._change(state="paused", next_at=None, **changes)
            else:
                now = time.time()
                failures = changes.get("failures", self._status.failures)
                self._change(state="offline" if failures else "idle", next_at=now + wait,
                             changed_at=now, **changes)
        self._send()

    # -- status --------------------------------------------------------------------------------

    def _change(self, **changes: Any) -> None:
        """With ``_cond`` held: the new status, queued for :meth:`_send`. Nothing changes
        once stopped, and a change that changes nothing is no change."""
        before = self._status
        if before.state == "stopped":
            return
        changes.setdefault("changed_at", time.time())
        status = replace(before, **changes)
        if replace(status, changed_at=before.changed_at) == before:
            return
        self._status = status
        self._outbox.append(status)

    def _send(self) -> None:
        """Signal the queued statuses in order, unless another thread is at it already."""
        with self._cond:
            if self._sending:
                return
            self._sending = True
        try:
            while True:
                with self._cond:
                    if not self._outbox:
                        self._sending = False  # in the same hold that found it empty
                        return
                    status = self._outbox.popleft()
                signals.emit(signals.sync_status_changed, self.cache, status=status)
        except BaseException:
            with self._cond:
                self._sending = False
            raise


def _unexpected(exc: Exception) -> SyncError:
    """A non-localcache error from a sync, for the status (by its type only: its message
    might quote a request)."""
    error = SyncError(f"automatic sync failed unexpectedly: {type(exc).__name__}; "
                      "see the log of localcache.autosync")
    error.__cause__ = exc
    return error
