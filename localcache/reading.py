"""The Cache's read API: records by id, filtered and ordered pages, counts, streams.

:class:`CacheReads` is a mixin of :class:`~localcache.Cache`; it relies on ``self._store`` (the
open :class:`~localcache.store.database.Store`) and ``self._locale_chain()``. Every call runs in
one read transaction, so what it returns is one committed state; a stream takes one per batch,
so it never holds the store's WAL back, and its memory stays flat. The SQL and its semantics
are in ``store/where.py``; docs/querying.md has the user's version, with costs.

Every record returned carries a :class:`_Links` resolver, so ``record.resolve(field)`` works on
its own: it holds the Cache weakly (a record an app keeps does not keep the Cache alive) and,
for ``entry(id, include=N)``, the targets read with the record.
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
    normalize_locales,
)
from .store.links import LinkTarget, referrers
from .store.query import (
    ENTRY_COLUMNS,
    LocaleChain,
    Record,
    fetch_asset,
    fetch_entries,
    fetch_entry,
    fetch_targets,
    prefetch_links,
    records,
)
from .store.schema import BUSY_TIMEOUT_MS
from .store.select import (
    EntryQuery,
    ReadContext,
    check_query,
    count_entries,
    entry_query,
    select_assets,
    select_batch,
    select_entries,
    select_ordered,
)

__all__ = ["CacheReads"]

# Per store: its hot fields, and the schema version they were read at.
_HOT: weakref.WeakKeyDictionary[Store, tuple[int, HotSchema]] = weakref.WeakKeyDictionary()

Where = Mapping[str, Any]
OrderBy = Sequence[str] | str

MAX_INCLUDE = 10


# A stored row's columns (id, content_type, revision, created_at, updated_at, raw): what a
# live list keeps of each entry; select_ordered's rows have the order keys after them.
_ROW_COLUMNS = ENTRY_COLUMNS.count(",") + 1


class _Links:
    """Resolves the links of the records one Cache read returned (see
    :class:`~localcache.store.query.LinkResolver`). ``known`` holds the targets read with
    them (``entry(id, include=N)``): a resolution it covers runs no query at all."""

    __slots__ = ("_cache", "_known")

    def __init__(self, cache: CacheReads,
                 known: dict[LinkTarget, Record | None] | None = None) -> None:
        self._cache = weakref.ref(cache)
        self._known = known

    def resolve_links(self, targets: Sequence[LinkTarget]) -> list[Record | None]:
        known = self._known
        if known is not None and all(target in known for target in targets):
            return [known[target] for target in targets]
        cache = self._cache()
        if cache is None:
            raise StoreError("cannot resolve a link: the Cache this record was read from is "
                             "gone; read the record again from an open Cache")
        return cache._resolve_links(targets, known)


class CacheReads:
    """Read methods of :class:`~localcache.Cache`."""

    _store: Store
    # Hot fields declared with Cache(..., indexes=...), and whether building them waits for
    # the store's locales (set by _use_field_indexes; class defaults for Cache.open).
    _declared_indexes: HotFields | None = None
    _index_locales: tuple[str, ...] | None = None  # besides the default; None: every locale
    _indexes_pending: bool = False

    def _locale_chain(self) -> LocaleChain:  # pragma: no cover - Cache defines it
        raise NotImplementedError

    # -- one record ---------------------------------------------------------------------------

    def entry(self, entry_id: str, include: int = 0) -> Record | None:
        """The entry with this id, or None.

        ``include=N`` (0 to 10) also reads the records it links to, N levels deep, in the
        same read transaction: ``record.resolve(field)`` on the entry, or on any record
        within N - 1 levels of it, then answers without reading the store. Cycles in the
        links are fine: each record is read once."""
        if isinstance(include, bool) or not isinstance(include, int) \
                or not 0 <= include <= MAX_INCLUDE:
            raise QueryError(f"include must be a whole number from 0 to {MAX_INCLUDE}, "
                             f"not {include!r}")
        if not include:
            chain = self._locale_chain()
            with self._store.reading_one():
                return fetch_entry(self._store.raw_connection(), str(entry_id), chain,
                                   self._link_resolver())
        known: dict[LinkTarget, Record | None] = {}
        shared = _Links(self, known)
        with self._store.reading():
            chain = self._locale_chain()
            conn = self._store.raw_connection()
            record = fetch_entry(conn, str(entry_id), chain, shared)
            if record is not None:
                prefetch_links(conn, record, include, chain, shared, known)
        return record

    def asset(self, asset_id: str) -> Record | None:
        """The asset with this id, or None."""
        chain = self._locale_chain()
        with self._store.reading_one():
            return fetch_asset(self._store.raw_connection(), str(asset_id), chain,
                               self._link_resolver())

    # -- links --------------------------------------------------------------------------------

    def referrers(self, record_id: str) -> list[Record]:
        """The stored entries whose fields link to the entry or asset with this id (for
        Kontent.ai, by its codename too), in id order: a reverse lookup in the links
        table's target index, costing O(referrers)."""
        resolver = self._link_resolver()
        with self._store.reading():
            chain = self._locale_chain()
            conn = self._store.raw_connection()
            ids = referrers(conn, [str(record_id)])
            found = fetch_entries(conn, ids, chain, resolver)
        return [found[i] for i in ids if i in found]

    def _link_resolver(self) -> _Links:
        """The resolver of records read without ``include`` (one per Cache)."""
        resolver: _Links | None = self.__dict__.get("_links")
        if resolver is None:
            resolver = self.__dict__["_links"] = _Links(self)
        return resolver

    def _resolve_links(self, targets: Sequence[LinkTarget],
                       known: dict[LinkTarget, Record | None] | None = None
                       ) -> list[Record | None]:
        """``targets`` as records, None where the store holds none; those in ``known`` (read
        earlier with an ``include``) are taken from there, the others read now, in one read
        transaction."""
        missing = [t for t in targets if known is None or t not in known]
        with self._store.reading():
            chain = self._locale_chain()  # in the transaction: one state
            found = fetch_targets(self._store.raw_connection(), missing, chain,
                                  self._link_resolver())
        if known is not None:
            found = {**found, **{t: known[t] for t in targets if t in known}}
        return [found.get(target) for target in targets]

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
        self._prepare_read()
        with self._store.reading():
            chain = self._locale_chain()  # in the transaction: one state
            return select_entries(self._context(chain, self._link_resolver()), query)

    def count(self, content_type: str | None = None, *, where: Where | None = None,
              locale: str | None = None, ids: Sequence[str] | None = None) -> int:
        """How many entries :meth:`entries` would return with no limit."""
        query = entry_query(content_type, where=where, locale=locale, ids=ids)
        self._prepare_read()
        with self._store.reading():
            chain = self._locale_chain()  # in the transaction: one state
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
        self._prepare_read()
        with self._store.reading():  # fail now on a malformed where or order_by
            chain = self._locale_chain()  # in the transaction: one state
            check_query(self._context(chain), query)
        return self._stream(query, batch)

    def _stream(self, query: EntryQuery, batch: int) -> Iterator[Record]:
        remaining, skip, after = query.limit, query.offset, None
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            self._prepare_read()
            with self._store.reading():
                chain = self._locale_chain()  # in the transaction: one state
                rows, after = select_batch(self._context(chain), query, after=after,
                                           limit=size, offset=skip)
            yield from records(rows, "Entry", chain, self._link_resolver())
            if len(rows) < size:
                return
            skip = 0
            if remaining is not None:
                remaining -= len(rows)

    def _ordered_rows(self, query: EntryQuery, *, after: Sequence[Any] | None,
                      limit: int | None
                      ) -> tuple[list[Record], list[list[Any]], list[tuple[Any, ...]]]:
        """For live lists (localcache/live.py): up to ``limit`` entries of ``query`` after the
        order-key values ``after``, with each one's order-key values and stored row (its
        columns and JSON text, for :meth:`_record_of_row`), from one read."""
        self._prepare_read()
        with self._store.reading():
            chain = self._locale_chain()  # in the transaction: one state
            rows, keys = select_ordered(self._context(chain), query, after=after, limit=limit)
        stored = [tuple(row[:_ROW_COLUMNS]) for row in rows]
        return list(records(stored, "Entry", chain, self._link_resolver())), keys, stored

    def _record_of_row(self, row: tuple[Any, ...]) -> Record:
        """The entry of a row :meth:`_ordered_rows` gave, decoded again."""
        return next(records([row], "Entry", self._locale_chain(), self._link_resolver()))

    def _asset_rows(self, *, after: str | None, limit: int) -> list[Record]:
        """Up to ``limit`` assets in id order after the id ``after``, from one read."""
        with self._store.reading():
            chain = self._locale_chain()  # in the transaction: one state
            rows = select_assets(self._store.raw_connection(), after=after, limit=limit)
        return list(records(rows, "Asset", chain, self._link_resolver()))

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
            assets = self._asset_rows(after=last, limit=batch)
            yield from assets
            if len(assets) < batch:
                return
            last = assets[-1].id

    # -- hot fields ---------------------------------------------------------------------------

    def _use_field_indexes(self, indexes: Mapping[str, Sequence[str]] | None,
                           locales: Sequence[str] | None = None) -> FieldIndexes:
        """Make the store's hot-field indexes exactly ``indexes`` (content type → field ids;
        None drops them all), for the default locale and ``locales`` (None: every locale):
        what ``Cache(..., indexes=..., index_locales=...)`` does on open. A store that has
        never synced knows no default locale yet: the declaration is kept, and the first
        read after a sync brought the locales builds the indexes (or call
        :meth:`_refresh_field_indexes` after a sync to spend that time there)."""
        self._declared_indexes = normalize_declaration(indexes)
        self._index_locales = normalize_locales(locales)
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
            differ = field_indexes_differ(self._store.raw_connection(), declared, provider,
                                          self._index_locales)
        if not differ:
            self._indexes_pending = differ is None
            return FieldIndexes(pending=differ is None)
        conn = self._store.raw_connection()
        if not wait:
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            with self._store.write():
                done = ensure_field_indexes(conn, declared, provider, self._index_locales)
        except StoreError:
            if wait:
                raise
            self._indexes_pending = True  # a store busy with a sync: a later read tries again
            return FieldIndexes(pending=True)
        finally:
            if not wait:
                with contextlib.suppress(Exception):
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._indexes_pending = done.pending
        return done

    def _prepare_read(self) -> None:
        """Before a query: build declared indexes still waiting for the first locales."""
        if self._indexes_pending and self._locale_chain().default is not None:
            self._refresh_field_indexes(wait=False)

    def _context(self, chain: LocaleChain, resolver: _Links | None = None) -> ReadContext:
        """What a query runs against; inside the read transaction (hot fields are schema)."""
        scope = self._store.scope
        return ReadContext(self._store.raw_connection(),
                           scope.provider if scope is not None else "", chain,
                           self._hot_schema(), resolver)

    def _hot_schema(self) -> HotSchema:
        conn = self._store.raw_connection()
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        known = _HOT.get(self._store)
        if known is None or known[0] != version:
            known = (version, hot_schema(conn))
            _HOT[self._store] = known
        return known[1]
