"""The page loop: the only code that writes to the store.

For each page the provider yields, ONE ``BEGIN IMMEDIATE`` transaction holds the page's deltas
and the token for the next request. A kill at any instant leaves the store at a page boundary,
and the next sync resumes from the last committed token, in the middle of an initial sync too.
While page N is applied, a background thread already fetches page N+1 (a queue of one page
bounds memory, whatever the size of the space). Signals are sent after each commit.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import signals
from ..errors import LocalCacheError, SyncError, TokenRejectedError
from ..model import ContinuationToken, Delta, LocaleInfo, Page
from ..providers.base import Provider
from ..store.apply import LIVE, SHADOW, PageChanges, Tables, apply_deltas
from ..store.database import Store
from ..store.merge import merge_deltas
from ..store.query import LocaleChain, Record, read_asset, read_entry
from ..store.rebuild import clear_shadow, swap_in
from .lock import SyncLock

__all__ = ["SyncEngine", "SyncResult", "TypeCounts"]

log = logging.getLogger("localcache.sync")


@dataclass(frozen=True)
class TypeCounts:
    added: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.updated + self.deleted


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: pages committed, per-type counts of real changes, wall time."""

    pages: int
    entries: TypeCounts
    assets: TypeCounts
    seconds: float
    initial: bool
    items: int = 0

    @property
    def added(self) -> dict[str, int]:
        return {"Entry": self.entries.added, "Asset": self.assets.added}

    @property
    def updated(self) -> dict[str, int]:
        return {"Entry": self.entries.updated, "Asset": self.assets.updated}

    @property
    def deleted(self) -> dict[str, int]:
        return {"Entry": self.entries.deleted, "Asset": self.assets.deleted}

    def summary(self) -> str:
        kind = "initial sync" if self.initial else "delta sync"
        e, a = self.entries, self.assets
        return (
            f"{kind}: {self.pages} page(s), {self.items} item(s) in {self.seconds:.2f}s; "
            f"entries +{e.added} ~{e.updated} -{e.deleted}; "
            f"assets +{a.added} ~{a.updated} -{a.deleted}"
        )


@dataclass
class _Tally:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    # Hashes of (type, deleted?, id) already counted and signalled in this sync: ints, so the
    # set stays small (a few MB for 100k records) rather than holding every id string.
    seen: set[int] = field(default_factory=set)
    pages: int = 0
    items: int = 0
    initial: bool = False

    def add(self, record_type: str, what: str, n: int) -> None:
        key = (record_type, what)
        self.counts[key] = self.counts.get(key, 0) + n

    def of(self, record_type: str) -> TypeCounts:
        return TypeCounts(*(self.counts.get((record_type, w), 0)
                            for w in ("added", "updated", "deleted")))


class SyncEngine:
    """Joins a provider and a store for one sync; ``sender`` is what signals are sent from."""

    def __init__(self, store: Store, provider: Provider, sender: object, *,
                 lock_wait: float = 0.0) -> None:
        self.store = store
        self.provider = provider
        self.sender = sender
        self.lock_wait = lock_wait
        self._locales: list[LocaleInfo] | None = None
        self._locales_written = False
        self._chain = LocaleChain()

    def run(self, *, full: bool = False) -> SyncResult:
        """One sync. ``full``: a fresh initial sync built beside the live data and swapped in."""
        started = time.monotonic()
        with SyncLock(self.store.path, wait=self.lock_wait):
            token = self.store.token()
            rebuilding = self.store.state("rebuild_token") is not None
            initial = (full or rebuilding or token is None
                       or self.store.state("initial_in_progress") == "1")
            signals.emit(signals.sync_started, self.sender, initial=initial)
            tally = _Tally(initial=initial)
            try:
                self._locales = self.provider.fetch_locales()
                self._locales_written = False
                self._chain = LocaleChain.from_locales(
                    self._locales if self._locales is not None else self.store.locales())
                if full or rebuilding:
                    self._rebuild(tally, resume=rebuilding and not full)
                else:
                    self._sync_from(token, initial, tally)
            except LocalCacheError as error:
                signals.emit(signals.sync_failed, self.sender, error=error)
                raise
            result = SyncResult(
                pages=tally.pages,
                entries=tally.of("Entry"),
                assets=tally.of("Asset"),
                seconds=time.monotonic() - started,
                initial=tally.initial,
                items=tally.items,
            )
        signals.emit(signals.sync_finished, self.sender, result=result)
        return result

    def _sync_from(self, token: ContinuationToken | None, initial: bool, tally: _Tally) -> None:
        try:
            self._pages(token, initial, tally)
            if token is not None and token.kind == "page":
                # A resumed sync continued a server-side view from before the interruption;
                # one delta more brings what changed meanwhile, so sync() means "up to date".
                self._pages(self.store.token(), False, tally)
        except TokenRejectedError as rejected:
            if token is None:
                raise
            log.warning("%s; rebuilding with a fresh initial sync beside the live data",
                        rejected)
            self._rebuild(tally, resume=False)

    def _rebuild(self, tally: _Tally, *, resume: bool) -> None:
        """A fresh initial sync into the shadow tables; its last page swaps them in.

        Readers keep the live data meanwhile, never an empty or half-built store. Resumable
        like any sync; if the rebuild's own token is refused, it starts over once.
        """
        tally.initial = True
        value = self.store.state("rebuild_token") if resume else None
        token = ContinuationToken(value, "page") if value else None
        for attempt in (1, 2):
            fresh = token is None
            try:
                for page in _prefetched(self.provider.pages(token)):
                    with self.store.write():
                        conn = self.store.raw_connection()
                        self._write_locales(page)
                        if fresh:
                            clear_shadow(conn)
                            fresh = False
                        _write_page(conn, page, SHADOW)
                        changes = swap_in(conn) if page.last else PageChanges()
                        self.store.set_state(**self._rebuild_state(page))
                    tally.pages += 1
                    tally.items += len(page.deltas)
                    self._announce(page, changes, tally)
                return
            except TokenRejectedError:
                if token is None or attempt == 2:
                    raise
                log.warning("the rebuild's own sync token was rejected; starting it over")
                token = None

    @staticmethod
    def _rebuild_state(page: Page) -> dict[str, str | None]:
        if not page.last:
            return {"rebuild_token": page.next_token.value, "last_page_at": _now()}
        return {"rebuild_token": None, "token": page.next_token.value, "token_kind": "sync",
                "initial_in_progress": "0", "last_page_at": _now(), "last_sync_at": _now()}

    def _pages(self, token: ContinuationToken | None, initial: bool, tally: _Tally) -> None:
        for page in _prefetched(self.provider.pages(token)):
            changes = self._commit(page, initial)
            tally.pages += 1
            tally.items += len(page.deltas)
            self._announce(page, changes, tally)

    def _write_locales(self, page: Page) -> None:
        """In a page's transaction: the space's locales once per sync when the vendor lists
        them; otherwise the locale codes this page's records use, learned as they come."""
        if self._locales is not None:
            if not self._locales_written:
                self.store.replace_locales(self._locales)
                self._locales_written = True
            return
        codes = _locale_codes(page.deltas)
        preferred = getattr(self.provider, "default_locale", None)
        if codes and self.store.learn_locales(codes, preferred):
            self._chain = LocaleChain.from_locales(self.store.locales())

    def _commit(self, page: Page, initial: bool) -> PageChanges:
        store = self.store
        with store.write():
            self._write_locales(page)
            changes = _write_page(store.raw_connection(), page, LIVE)
            store.set_state(
                token=page.next_token.value,
                token_kind=page.next_token.kind,
                initial_in_progress="1" if initial and not page.last else "0",
                last_page_at=_now(),
                **({"last_sync_at": _now()} if page.last else {}),
            )
        return changes

    def _announce(self, page: Page, changes: PageChanges, tally: _Tally) -> None:
        """After commit: per-record signals (once per sync), the page's ChangeSet, progress."""
        wanted = signals.entry_changed.receivers or signals.asset_changed.receivers
        documents = {(d.record_type, d.id): d for d in page.deltas if not d.deleted} \
            if wanted else {}
        for what, items in (("added", changes.added), ("updated", changes.updated),
                            ("deleted", changes.deleted)):
            for item in items:
                key = hash((item.record_type, what == "deleted", item.id))
                if key in tally.seen:
                    continue  # once per sync: an update after an add stays an add
                tally.seen.add(key)
                tally.add(item.record_type, what, 1)
                self._record_signal(item.record_type, item.id, what,
                                    documents.get((item.record_type, item.id)), self._chain)
        signals.emit(signals.changes_committed, self.sender, changes=_change_set(page, changes))
        signals.emit(signals.sync_progress, self.sender, page=page.number, items=tally.items,
                     total=page.total)

    def _record_signal(self, record_type: str, record_id: str, what: str,
                       delta: Delta | None, chain: LocaleChain) -> None:
        if what == "deleted":
            signal = signals.entry_deleted if record_type == "Entry" else signals.asset_deleted
            signals.emit(signal, self.sender, id=record_id)
            return
        signal = signals.entry_changed if record_type == "Entry" else signals.asset_changed
        if not signal.receivers:
            return
        if delta is not None:
            record: Record | None = _record_of(delta, chain)
        else:  # swapped in from a rebuild: read what was committed
            read = read_entry if record_type == "Entry" else read_asset
            record = read(self.store.models, record_id, chain)
        signals.emit(signal, self.sender, id=record_id, record=record)


def _write_page(conn: sqlite3.Connection, page: Page, tables: Tables) -> PageChanges:
    if any(d.merges for d in page.deltas):
        return merge_deltas(conn, page.deltas, page.number, tables)
    return apply_deltas(conn, page.deltas, page.number, page.source, tables)


def _locale_codes(deltas: list[Delta]) -> list[str]:
    """Locale codes used in the fields of a page's documents, in order of appearance."""
    seen: dict[str, None] = {}
    for delta in deltas:
        if delta.locale is not None:
            seen[delta.locale] = None
            continue
        fields = (delta.document or {}).get("fields")
        if isinstance(fields, dict):
            for by_locale in fields.values():
                if isinstance(by_locale, dict):
                    seen.update(dict.fromkeys(by_locale))
    return list(seen)


def _record_of(delta: Delta, chain: LocaleChain) -> Record:
    return Record.of(delta.record_type, delta.id, delta.content_type, delta.revision,
                     delta.created_at, delta.updated_at, delta.document or {}, chain)


def _change_set(page: Page, changes: PageChanges) -> signals.ChangeSet:
    def ids(items: list[Any], record_type: str) -> tuple[str, ...]:
        return tuple(c.id for c in items if c.record_type == record_type)

    touched = {c.content_type for c in (*changes.added, *changes.updated, *changes.deleted)
               if c.record_type == "Entry" and c.content_type}
    return signals.ChangeSet(
        page=page.number,
        entries_added=ids(changes.added, "Entry"),
        entries_updated=ids(changes.updated, "Entry"),
        entries_deleted=ids(changes.deleted, "Entry"),
        assets_added=ids(changes.added, "Asset"),
        assets_updated=ids(changes.updated, "Asset"),
        assets_deleted=ids(changes.deleted, "Asset"),
        content_types=frozenset(touched),
    )


def _now() -> str:
    """UTC, to the millisecond, in the CMS's own format (so timestamps compare as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DONE = object()


def _prefetched(pages: Iterator[Page]) -> Iterator[Page]:
    """Fetch the next page on a thread while the caller applies the current one.

    At most two pages are alive at once (the one being applied and the one being fetched), so
    memory stays flat whatever the size of the space.
    """
    ready: queue.Queue[Any] = queue.Queue()
    budget = threading.Semaphore(2)
    stop = threading.Event()

    def acquire() -> bool:
        while not stop.is_set():
            if budget.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        outcome: Any = _DONE
        try:
            while acquire():
                page = next(pages, None)
                if page is None:
                    break
                ready.put(page)
        except BaseException as exc:  # handed to the consumer, who raises it
            outcome = exc
        ready.put(outcome)

    worker = threading.Thread(target=produce, name="localcache-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                if isinstance(item, LocalCacheError):
                    raise item
                raise SyncError(f"sync stopped: {type(item).__name__}: {item}") from item
            yield item
            del item
            budget.release()
    finally:
        stop.set()
        worker.join(timeout=5)
