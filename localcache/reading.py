"""The Cache's read API: records by id, filtered and ordered pages, counts, streams.

:class:`CacheReads` is a mixin of :class:`~localcache.Cache`; it relies on ``self._store`` (the
open :class:`~localcache.store.database.Store`) and ``self._locale_chain()``. Every call runs in
one read transaction, so what it returns is one committed state; a stream takes one per batch,
so it never holds the store's WAL back, and its memory stays flat. The SQL and its semantics
are in ``store/where.py``; docs/querying.md has the user's version, with costs.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError, QueryError, StoreError
from .model import RecordType
from .store.database import Store
from .store.indexes import (
    FieldIndexes,
    HotFields,
    HotSchema,
    ensure_field_indexes,
    field_indexes_differ,
    hot_schema,
    normalize_declaration,
)
from .store.query import (
    EntryQuery,
    LocaleChain,
    ReadContext,
    Record,
    check_query,
    count_entries,
    entry_query,
    fetch_asset,
    fetch_entry,
    records,
    select_assets,
    select_batch,
    select_entries,
)
from .store.schema import BUSY_TIMEOUT_MS

__all__ = ["CacheReads"]

# Per store: its hot fields, and the schema version they were read at.
_HOT: weakref.WeakKeyDictionary[Store, tuple[int, HotSchema]] = weakref.WeakKeyDictionary()

Where = Mapping[str, Any]
OrderBy = Sequence[str] | str


class CacheReads:
    """Read methods of :class:`~localcache.Cache`."""

    _store: Store
    # Hot fields declared with Cache(..., indexes=...), and whether building them waits for
    # the store's locales (set by _use_field_indexes; class defaults for Cache.open).
    _declared_indexes: HotFields | None = None
    _indexes_pending: bool = False

    def _locale_chain(self) -> LocaleChain:  # pragma: no cover - Cache defines it
        raise NotImplementedError

    # -- one record ---------------------------------------------------------------------------

    def entry(self, entry_id: str) -> Record | None:
        """The entry with this id, or None."""
        chain = self._locale_chain()
        with self._store.reading():
            return fetch_entry(self._store.raw_connection(), str(entry_id), chain)

    def asset(self, asset_id: str) -> Record | None:
        """The asset with this id, or None."""
        chain = self._locale_chain()
        with self._store.reading():
            return fetch_asset(self._store.raw_connection(), str(asset_id), chain)

    # -- queries ------------------------------------------------------------------------------

    def entries(self, content_type: str | None = None, *, where: Where | None = None,
                order_by: OrderBy | None = None, locale: str | None = None,
                limit: int | None = None, offset: int = 0,
                ids: Sequence[str] | None = None) -> list[Record]:
        """Entries matching ``where`` (docs/querying.md), in ``order_by`` order then by id,
        a page of ``limit`` from ``offset``. Fields compare in ``locale`` (default: the
        default locale) after fallback. Raises QueryError naming a malformed key."""
        query = entry_query(content_type, where=where, order_by=order_by, locale=locale,
                            limit=limit, offset=offset, ids=ids)
        chain = self._prepare_read()
        with self._store.reading():
            return select_entries(self._context(chain), query)

    def count(self, content_type: str | None = None, *, where: Where | None = None,
              locale: str | None = None, ids: Sequence[str] | None = None) -> int:
        """How many entries :meth:`entries` would return with no limit."""
        query = entry_query(content_type, where=where, locale=locale, ids=ids)
        chain = self._prepare_read()
        with self._store.reading():
            return count_entries(self._context(chain), query)

    def iter_entries(self, content_type: str | None = None, *, where: Where | None = None,
                     order_by: OrderBy | None = None, locale: str | None = None,
                     limit: int | None = None, offset: int = 0,
                     ids: Sequence[str] | None = None, batch: int = 500) -> Iterator[Record]:
        """What :meth:`entries` returns, streamed ``batch`` records at a time, each batch in
        its own read transaction (keyset paging: a record is never repeated or skipped
        because of a page committed meanwhile, unless that page changed it). An order by
        ``sys.id`` (the default) or by a hot field streams in linear time; any other order
        sorts the matching entries once per batch."""
        query = entry_query(content_type, where=where, order_by=order_by, locale=locale,
                            limit=limit, offset=offset, ids=ids)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise QueryError(f"batch must be a whole number >= 1, not {batch!r}")
        chain = self._prepare_read()
        with self._store.reading():  # fail now on a malformed where or order_by
            check_query(self._context(chain), query)
        return self._stream(query, batch)

    def _stream(self, query: EntryQuery, batch: int) -> Iterator[Record]:
        remaining, skip, after = query.limit, query.offset, None
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            chain = self._prepare_read()
            with self._store.reading():
                rows, after = select_batch(self._context(chain), query, after=after,
                                           limit=size, offset=skip)
            yield from records(rows, "Entry", chain)
            if len(rows) < size:
                return
            skip = 0
            if remaining is not None:
                remaining -= len(rows)

    def iter_records(self, record_type: RecordType = "Entry", *,
                     batch: int = 500) -> Iterator[Record]:
        """Every entry (or ``"Asset"``) in id order, read in batches so memory stays flat."""
        if record_type not in ("Entry", "Asset"):
            raise ConfigurationError(
                f"iter_records takes 'Entry' or 'Asset', not {record_type!r}")
        if record_type == "Entry":
            yield from self.iter_entries(batch=batch)
            return
        last: str | None = None
        while True:
            chain = self._locale_chain()
            with self._store.reading():
                rows = select_assets(self._store.raw_connection(), after=last, limit=batch)
            yield from records(rows, "Asset", chain)
            if len(rows) < batch:
                return
            last = rows[-1][0]

    # -- hot fields ---------------------------------------------------------------------------

    def _use_field_indexes(self, indexes: Mapping[str, Sequence[str]] | None) -> FieldIndexes:
        """Make the store's hot-field indexes exactly ``indexes`` (content type → field ids;
        None drops them all): what ``Cache(..., indexes=...)`` does on open. A store that has
        never synced knows no default locale yet: the declaration is kept, and the first
        read after a sync brought the locales builds the indexes (or call
        :meth:`_refresh_field_indexes` after a sync to spend that time there)."""
        self._declared_indexes = normalize_declaration(indexes)
        self._indexes_pending = True
        return self._refresh_field_indexes(wait=True)

    def _refresh_field_indexes(self, *, wait: bool = True) -> FieldIndexes:
        """Bring the store's hot-field indexes to the declaration, if one was made. Only a
        difference takes the write lock; with ``wait=False`` a store busy with a sync is left
        alone (the next read tries again)."""
        declared = self._declared_indexes
        if declared is None:
            return FieldIndexes()
        scope = self._store.scope
        provider = scope.provider if scope is not None else ""
        with self._store.reading():
            differ = field_indexes_differ(self._store.raw_connection(), declared, provider)
        if not differ:
            self._indexes_pending = differ is None
            return FieldIndexes(pending=differ is None)
        conn = self._store.raw_connection()
        if not wait:
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            with self._store.write():
                done = ensure_field_indexes(conn, declared, provider)
        except StoreError:
            if wait:
                raise
            return FieldIndexes(pending=True)
        finally:
            if not wait:
                with contextlib.suppress(Exception):
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._indexes_pending = done.pending
        return done

    def _prepare_read(self) -> LocaleChain:
        """The locale chain for a query; first, declared indexes still waiting for locales."""
        chain = self._locale_chain()
        if self._indexes_pending and chain.default is not None:
            self._refresh_field_indexes(wait=False)
        return chain

    def _context(self, chain: LocaleChain) -> ReadContext:
        """What a query runs against; inside the read transaction (hot fields are schema)."""
        scope = self._store.scope
        return ReadContext(self._store.raw_connection(),
                           scope.provider if scope is not None else "", chain,
                           self._hot_schema())

    def _hot_schema(self) -> HotSchema:
        conn = self._store.raw_connection()
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        known = _HOT.get(self._store)
        if known is None or known[0] != version:
            known = (version, hot_schema(conn))
            _HOT[self._store] = known
        return known[1]
