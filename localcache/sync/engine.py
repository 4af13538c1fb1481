"""The page loop: the only code that writes to the store.

For each page the provider yields, ONE ``BEGIN IMMEDIATE`` transaction holds the page's deltas
and the token for the next request. A kill at any instant leaves the store at a page boundary,
and the next sync resumes from the last committed token, in the middle of an initial sync too.
While page N is applied, a background thread already fetches page N+1 (a queue of one page
bounds memory, whatever the size of the space). Signals are sent after each commit.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .. import signals
from ..errors import LocalCacheError, TokenRejectedError
from ..model import ContentTypeInfo, ContinuationToken, Delta, LocaleInfo, Page
from ..providers.ahead import RequestAhead
from ..providers.base import Provider
from ..store.apply import LIVE, SHADOW, PageChanges, RecordChange, Tables, apply_deltas
from ..store.content_types import (
    delete_content_type,
    replace_content_types,
    upsert_content_types,
)
from ..store.database import Store
from ..store.links import referrers
from ..store.merge import merge_deltas
from ..store.query import LocaleChain, Record, chain_for, read_asset, read_entry
from ..store.rebuild import clear_shadow, swap_in
from ..store.search import Indexed, index_changes, indexed_texts, rebuild_index
from ..store.tally import NetCounts, net_counts, reset_tally, store_is_empty, tally_page
from .checkpoint import background_checkpoints
from .lock import SyncLock
from .memory import fix_mmap_threshold, trim_heap
from .pacing import paced_sync
from .prefetch import prefetched

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
    """One sync's progress. Net counts live in the store (store/tally.py), not here, so
    memory stays flat however many records the sync touches."""

    counts: NetCounts = field(default_factory=dict)
    pages: int = 0
    items: int = 0
    initial: bool = False
    from_empty: bool = False

    def of(self, record_type: str) -> TypeCounts:
        return TypeCounts(*(self.counts.get((record_type, w), 0)
                            for w in ("added", "updated", "deleted")))


class SyncEngine:
    """Joins a provider and a store for one sync; ``sender`` is what signals are sent from."""

    def __init__(self, store: Store, provider: Provider, sender: object, *,
                 lock_wait: float = 0.0, search: bool = False) -> None:
        self.store = store
        self.provider = provider
        self.sender = sender
        self.lock_wait = lock_wait
        #: Keep the full-text index (store/search.py) in step, page by page.
        self.search = search
        self._locales: list[LocaleInfo] | None = None
        self._locales_written = False
        self._chain = LocaleChain()
        self._reindex = False
        # Whether the page transaction must re-read the chain (locales or types written).
        self._chain_stale = True
        self._fallbacks: dict[str, str] | None = None
        self._fallbacks_checked = False
        self._content_types: list[ContentTypeInfo] | None = None
        self._types_ahead: RequestAhead[list[ContentTypeInfo] | None] | None = None
        self._content_types_written = False

    def run(self, *, full: bool = False) -> SyncResult:
        """One sync. ``full``: a fresh initial sync built beside the live data and swapped in."""
        started = time.monotonic()
        fix_mmap_threshold()  # a page's big buffers handed back whole: see sync/memory.py
        with SyncLock(self.store.path, wait=self.lock_wait), paced_sync(), \
                background_checkpoints(self.store.raw_connection(), self.store.path,
                                       lambda: self.store.closed):
            token = self.store.token()
            rebuilding = self.store.state("rebuild_token") is not None
            initial = (full or rebuilding or token is None
                       or self.store.state("initial_in_progress") == "1")
            signals.emit(signals.sync_started, self.sender, initial=initial)
            tally = _Tally(initial=initial)
            try:
                self._start_tally(tally)
                self._locales = self.provider.fetch_locales()
                self._locales_written = False
                self._fallbacks = _provider_fallbacks(self.provider)
                self._fallbacks_checked = False
                listing = getattr(self.provider, "fetch_content_types", None)
                self._content_types = None
                self._types_ahead = None
                if (callable(listing) and self._locales is not None and initial
                        and getattr(self.provider, "concurrent_requests", False)):
                    # The locales came from the vendor, so the credentials are good: the
                    # content types are asked for beside the first page and awaited before
                    # it is written, a round trip less before it. Not where the vendor lists
                    # no locales (a refused credential costs one request), nor in a delta,
                    # whose pages may carry type definitions newer than the start of the
                    # sync (Kontent.ai): the listing must be the older. Only for a provider
                    # that says it takes two requests at once (the three built in do).
                    self._types_ahead = RequestAhead("content types", listing)
                elif callable(listing):
                    self._content_types = listing()
                self._content_types_written = False
                self._chain_stale = True
                with self.store.reading():  # what the store reads with now
                    self._chain = chain_for(self.store.raw_connection())
                try:
                    if full or rebuilding:
                        self._rebuild(tally, resume=rebuilding and not full)
                    else:
                        self._sync_from(token, initial, tally)
                    self._await_types()  # a sync of no page still reports their error
                finally:
                    if self._types_ahead is not None:  # not left beside the next sync
                        self._types_ahead.settle()
                        self._types_ahead = None
                self._finish_tally(tally)
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

    def _await_types(self) -> None:
        """Before a page's transaction: the content types listed at the start of the sync,
        or their request's error, raised before any page is written, as it was before the
        first page was asked for."""
        if self._types_ahead is not None:
            ahead, self._types_ahead = self._types_ahead, None
            self._content_types = ahead.result()

    def _start_tally(self, tally: _Tally) -> None:
        with self.store.write():
            conn = self.store.raw_connection()
            tally.from_empty = store_is_empty(conn)
            reset_tally(conn)

    def _finish_tally(self, tally: _Tally) -> None:
        with self.store.write():
            conn = self.store.raw_connection()
            tally.counts = net_counts(conn, from_empty=tally.from_empty)
            reset_tally(conn)

    def _sync_from(self, token: ContinuationToken | None, initial: bool, tally: _Tally) -> None:
        started_at = tally.pages
        try:
            self._pages(token, initial, tally)
            if token is not None and token.kind == "page":
                self._catch_up(tally)
        except TokenRejectedError as rejected:
            if token is None and tally.pages == started_at:
                raise  # the first request of a fresh sync: no token of ours was refused
            log.warning("%s; rebuilding with a fresh initial sync beside the live data",
                        rejected)
            self._rebuild(tally, resume=False)

    def _catch_up(self, tally: _Tally) -> None:
        """A resumed sync continued a server-side view from before the interruption; one
        delta more brings what changed meanwhile, so sync() means "up to date"."""
        self._pages(self.store.token(), False, tally)

    def _rebuild(self, tally: _Tally, *, resume: bool) -> None:
        """A fresh initial sync into the shadow tables; its last page swaps them in.

        Readers keep the live data meanwhile, never an empty or half-built store. Resumable
        like any sync; if the rebuild's own token is refused, it starts over once.
        """
        tally.initial = True
        if self._build_shadow(tally, resume=resume) and resume:
            self._catch_up(tally)

    def _build_shadow(self, tally: _Tally, *, resume: bool) -> bool:
        """The rebuild's pages; True once swapped in."""
        value = self.store.state("rebuild_token") if resume else None
        token = ContinuationToken(value, "page") if value else None
        for attempt in (1, 2):
            fresh = token is None
            try:
                for page in prefetched(self.provider.pages(token)):
                    self._await_types()
                    with self.store.write():
                        conn = self.store.raw_connection()
                        self._write_locales(page)
                        self._write_content_types(conn, page)
                        self._refresh_chain(conn)
                        if fresh:
                            clear_shadow(conn)
                            fresh = False
                        _write_page(conn, page, SHADOW)
                        changes, indexed = self._swap_in(conn) if page.last \
                            else (PageChanges(), {})
                        self._tally_page(conn, changes, tally)
                        self._index(conn, changes, indexed)
                        affected = _affected(conn, changes)
                        self.store.set_state(**self._rebuild_state(page))
                    self._announce(page, changes, tally, affected)
                    trim_heap()
                return True
            except TokenRejectedError:
                if token is None or attempt == 2:
                    raise
                log.warning("the rebuild's own sync token was rejected; starting it over")
                token = None
        return False

    def _swap_in(self, conn: sqlite3.Connection) -> tuple[PageChanges, Indexed]:
        """The rebuild's last page: the shadow tables swapped in; what that changed, and what
        the search index held for the entries it changed, read before the swap."""
        indexed: Indexed = {}

        def read(found: PageChanges) -> None:
            indexed.update(self._indexed(conn, _entry_ids(found.updated, found.deleted)))

        return swap_in(conn, read), indexed

    @staticmethod
    def _rebuild_state(page: Page) -> dict[str, str | None]:
        limit = {"page_limit": str(page.limit)} if page.limit is not None else {}
        if not page.last:
            return {"rebuild_token": page.next_token.value, "last_page_at": _now(), **limit}
        return {"rebuild_token": None, "token": page.next_token.value, "token_kind": "sync",
                "initial_in_progress": "0", "last_page_at": _now(), "last_sync_at": _now(),
                **limit}

    def _pages(self, token: ContinuationToken | None, initial: bool, tally: _Tally) -> None:
        for page in prefetched(self.provider.pages(token)):
            changes, affected = self._commit(page, initial, tally)
            self._announce(page, changes, tally, affected)
            del page, changes, affected
            trim_heap()  # memory flat with size: see sync/memory.py

    @staticmethod
    def _tally_page(conn: sqlite3.Connection, changes: PageChanges, tally: _Tally) -> None:
        if not tally.from_empty:
            tally_page(conn, changes)

    def _write_locales(self, page: Page) -> None:
        """In a page's transaction: the space's locales once per sync when the vendor lists
        them; otherwise the locale codes this page's records use, learned as they come.
        Where the locales' fallbacks change, the search index is rewritten with them."""
        if self._locales is not None:
            if not self._locales_written:
                self.store.replace_locales(self._locales)
                self._locales_written = True
                self._chain_stale = True
            return
        # Codes the app's ``fallbacks=`` names are locales too, even before content uses
        # them: a chain runs through them.
        named = self._fallbacks or {}
        codes = list(dict.fromkeys([*_locale_codes(page.deltas),
                                    *(code for pair in named.items() for code in pair)]))
        preferred = getattr(self.provider, "default_locale", None)
        learned = bool(codes) and self.store.learn_locales(codes, preferred)
        if (learned or not self._fallbacks_checked) and self._fallbacks is not None:
            self._fallbacks_checked = True
            learned = self._store_fallbacks() or learned
        if learned:
            self._chain_stale = True

    def _store_fallbacks(self) -> bool:
        """Give the learned locales the fallbacks the provider names (``fallbacks=``); in the
        page's transaction. True when any changed."""
        named = self._fallbacks or {}
        stored = self.store.locales()
        wanted = [replace(loc, fallback=named.get(loc.code)) for loc in stored]
        if wanted == stored:
            return False
        self.store.replace_locales(wanted)
        return True

    def _refresh_chain(self, conn: sqlite3.Connection) -> None:
        """In a page's transaction, after its locales and content types were written: the
        chain records are read with (fallbacks, unlocalized fields). Where it changed, the
        search rows are rewritten with it."""
        if not self._chain_stale:
            return
        self._chain_stale = False
        fresh = chain_for(conn)
        if fresh != self._chain:
            self._chain = fresh
            self._reindex = True

    def _write_content_types(self, conn: sqlite3.Connection, page: Page) -> None:
        """In a page's transaction: the content types listed at the start of the sync (with
        its first page), then the changes this page reports. A deletion that predates a
        listed definition's last update is a type deleted and created again: it stays."""
        if self._content_types is not None and not self._content_types_written:
            replace_content_types(conn, self._content_types)
            self._content_types_written = True
            self._chain_stale = True
        for delta in page.deltas:
            if delta.whole_type and delta.content_type:
                delete_content_type(conn, delta.content_type, delta.updated_at)
                self._chain_stale = True
        if page.content_types:
            upsert_content_types(conn, page.content_types)
            self._chain_stale = True
        for type_id in page.deleted_content_types:
            delete_content_type(conn, type_id)
            self._chain_stale = True

    def _indexed(self, conn: sqlite3.Connection, ids: Iterable[str],
                 types: Iterable[str] = ()) -> Indexed:
        """Before a page's writes, in its transaction: what the search index holds for the
        entries ``ids`` and of the content types ``types`` (their rows, deleted by the text
        they were made of; see ``indexed_texts``). Nothing where search is off or every row
        is about to be written anew."""
        if not self.search or self._reindex:
            return {}
        return indexed_texts(conn, self._chain, ids, types)

    def _index(self, conn: sqlite3.Connection, changes: PageChanges,
               indexed: Indexed) -> None:
        """The search rows of what the page changed, in its transaction (after a change of
        locales: every row, with the new fallbacks). Entries' texts come extracted by the
        fetch thread where it had this chain (``_prefetched``); ``indexed`` is what the
        index held for them before the page (:meth:`_indexed`)."""
        if not self.search:
            return
        from ..store.search import TextsAhead

        prepared = TextsAhead.for_page(self._chain)
        if self._reindex:
            rebuild_index(conn, self._chain)
            self._reindex = False
        else:
            index_changes(conn, changes, self._chain, prepared, indexed)

    def _commit(self, page: Page, initial: bool,
                tally: _Tally) -> tuple[PageChanges, tuple[str, ...]]:
        """Write the page in one transaction; what it changed, and the entries linking to
        what it changed (read in that transaction)."""
        store = self.store
        self._await_types()
        with store.write():
            self._write_locales(page)
            conn = store.raw_connection()
            self._write_content_types(conn, page)
            self._refresh_chain(conn)
            indexed = self._indexed(
                conn, _entry_ids([d for d in page.deltas if not d.whole_type]),
                [d.content_type for d in page.deltas if d.whole_type and d.content_type])
            changes = _write_page(conn, page, LIVE)
            self._tally_page(conn, changes, tally)
            self._index(conn, changes, indexed)
            affected = _affected(conn, changes)
            store.set_state(
                token=page.next_token.value,
                token_kind=page.next_token.kind,
                initial_in_progress="1" if initial and not page.last else "0",
                last_page_at=_now(),
                **({"last_sync_at": _now()} if page.last else {}),
                **({"page_limit": str(page.limit)} if page.limit is not None else {}),
            )
        return changes, affected

    def _announce(self, page: Page, changes: PageChanges, tally: _Tally,
                  affected: tuple[str, ...] = ()) -> None:
        """After commit: a signal for every record the page changed, carrying the record as
        that commit stored it; then the page's ChangeSet and progress. Page numbers rise
        through the whole sync (catch-up delta and rebuild included)."""
        tally.pages += 1
        tally.items += len(page.deltas)
        for item in changes.added + changes.updated:
            self._changed_signal(item)
        for item in changes.deleted:
            signal = signals.entry_deleted if item.record_type == "Entry" \
                else signals.asset_deleted
            signals.emit(signal, self.sender, id=item.id)
        signals.emit(signals.changes_committed, self.sender,
                     changes=_change_set(tally.pages, changes, affected))
        signals.emit(signals.sync_progress, self.sender, page=tally.pages, items=tally.items,
                     total=page.total)

    def _changed_signal(self, item: RecordChange) -> None:
        signal = signals.entry_changed if item.record_type == "Entry" else signals.asset_changed
        if not signal.receivers:
            return
        record: Record | None
        if item.document is not None:
            record = Record.of(item.record_type, item.id, item.content_type,
                               _revision(item.document), *_times(item.document),
                               item.document, self._chain)
        else:  # swapped in from a rebuild: read what was committed
            read = read_entry if item.record_type == "Entry" else read_asset
            with self.store.reading():
                record = read(self.store.models, item.id, self._chain)
        signals.emit(signal, self.sender, id=item.id, record=record)


def _entry_ids(*groups: Iterable[Delta | RecordChange]) -> list[str]:
    return [r.id for group in groups for r in group if r.record_type == "Entry"]


def _write_page(conn: sqlite3.Connection, page: Page, tables: Tables) -> PageChanges:
    if any(d.merges for d in page.deltas):
        return merge_deltas(conn, page.deltas, page.number, tables)
    return apply_deltas(conn, page.deltas, page.number, page.source, tables)


def _provider_fallbacks(provider: Provider) -> dict[str, str] | None:
    """The fallbacks a provider stores with the locale codes it learns from content
    (Contentstack's ``fallbacks=``); None for one that lists its locales or names none."""
    read = getattr(provider, "locale_fallbacks", None)
    return dict(read()) if callable(read) else None


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


def _revision(document: dict[str, Any]) -> int:
    revision = document.get("sys", {}).get("revision")
    return revision if isinstance(revision, int) else 0


def _times(document: dict[str, Any]) -> tuple[str | None, str | None]:
    sys = document.get("sys", {})
    return sys.get("createdAt"), sys.get("updatedAt")


def _affected(conn: sqlite3.Connection, changes: PageChanges) -> tuple[str, ...]:
    """In the page's transaction, after it is written: the stored entries linking to a record
    the page added, updated or deleted (a deleted one's id is still named by the links of
    the entries that point to it). One batched lookup in the links' target index."""
    changed = [c.id for c in (*changes.added, *changes.updated, *changes.deleted)]
    return tuple(referrers(conn, changed)) if changed else ()


def _change_set(page: int, changes: PageChanges,
                affected: tuple[str, ...] = ()) -> signals.ChangeSet:
    def ids(items: list[Any], record_type: str) -> tuple[str, ...]:
        return tuple(c.id for c in items if c.record_type == record_type)

    touched = {c.content_type for c in (*changes.added, *changes.updated, *changes.deleted)
               if c.record_type == "Entry" and c.content_type}
    return signals.ChangeSet(
        page=page,
        entries_added=ids(changes.added, "Entry"),
        entries_updated=ids(changes.updated, "Entry"),
        entries_deleted=ids(changes.deleted, "Entry"),
        assets_added=ids(changes.added, "Asset"),
        assets_updated=ids(changes.updated, "Asset"),
        assets_deleted=ids(changes.deleted, "Asset"),
        content_types=frozenset(touched),
        affected=affected,
    )


def _now() -> str:
    """UTC, to the millisecond, in the CMS's own format (so timestamps compare as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
