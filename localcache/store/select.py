"""Selecting entries: filtered, ordered pages, counts and batches, from typed arguments.

The SQL comes from ``where.py``; no caller string ever becomes SQL text. Rows become records in
``query.py``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import QueryError
from .indexes import HotSchema
from .models import BoundModels
from .query import (
    ASSET_COLUMNS,
    ENTRY_COLUMNS,
    LinkResolver,
    LocaleChain,
    Record,
    connection_of,
    records,
)
from .where import (
    CASEFOLD_FUNCTION,
    Condition,
    FieldReader,
    OrderKey,
    Param,
    Sql,
    after_clause,
    compile_order,
    compile_where,
    compose,
    join_sql,
    order_clause,
)

__all__ = [
    "EntryQuery",
    "ReadContext",
    "check_query",
    "count_entries",
    "entries_sql",
    "entry_query",
    "read_entries",
    "select_assets",
    "select_batch",
    "select_entries",
    "select_ordered",
]


# -- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """The checked arguments of ``entries``, ``count`` and ``iter_entries``; ``where`` and
    ``order_by`` are compiled when the query runs, in its read transaction."""

    content_type: str | None = None
    where: Mapping[str, Any] | None = None
    order_by: Sequence[str] | str | None = None
    locale: str | None = None
    limit: int | None = None
    offset: int = 0
    ids: tuple[str, ...] | None = None


def _count(name: str, value: object, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QueryError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def entry_query(content_type: str | None = None, *, where: Mapping[str, Any] | None = None,
                order_by: Sequence[str] | str | None = None, locale: str | None = None,
                limit: int | None = None, offset: int = 0,
                ids: Sequence[str] | None = None) -> EntryQuery:
    """Check the plain arguments of a query (QueryError names the bad one)."""
    if content_type is not None and not isinstance(content_type, str):
        raise QueryError(f"content_type must be a content type id, not {content_type!r}")
    if locale is not None and not isinstance(locale, str):
        raise QueryError(f"locale must be a locale code, not {locale!r}")
    checked_ids: tuple[str, ...] | None = None
    if ids is not None:
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise QueryError(f"ids must be a list of entry ids, not {ids!r}")
        checked_ids = tuple(ids)
    return EntryQuery(content_type, where, order_by, locale,
                      _count("limit", limit, optional=True),
                      _count("offset", offset, optional=False) or 0, checked_ids)


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What a query runs against: the connection (in a read transaction), the store's
    provider and locales, and its hot fields."""

    conn: sqlite3.Connection
    provider: str
    locales: LocaleChain
    hot: HotSchema = dataclasses.field(default_factory=HotSchema)
    resolver: LinkResolver | None = None


@dataclass(frozen=True, slots=True)
class _Compiled:
    conditions: list[Condition]
    order: list[OrderKey]


@dataclass(frozen=True, slots=True)
class _Hints:
    """Which indexes a page must not use: those of wide filters' columns, or the order's."""

    unindexed: frozenset[str] = frozenset()
    order_unindexed: bool = False


def _reader(ctx: ReadContext, query: EntryQuery) -> FieldReader:
    locales = ctx.locales
    if query.locale is not None and locales.fallbacks and query.locale not in locales.fallbacks:
        raise QueryError(f"locale {query.locale!r} is not one of the store's locales "
                         f"({', '.join(sorted(locales.fallbacks))})")
    scalar_only = None
    if query.content_type is not None:
        scalar_only = _ArrayProbe(ctx.conn, query.content_type, ctx.hot)
    unlocalized: dict[str, set[str]] = {}
    for content_type, fields in locales.unlocalized.items():
        if query.content_type is None or content_type == query.content_type:
            for field_id in fields:
                unlocalized.setdefault(field_id, set()).add(content_type)
    return FieldReader(ctx.provider, tuple(locales.chain(query.locale)), ctx.hot.columns,
                       scalar_only, {f: frozenset(types) for f, types in unlocalized.items()},
                       locales.unlocalized_chain(query.locale), query.content_type)


class _ArrayProbe:
    """Whether a hot field holds no array in any entry of a content type: one seek in its
    index (an array's JSON text starts with '['). Then equality needs no element test, which
    would keep SQLite from looking the value up in the index."""

    def __init__(self, conn: sqlite3.Connection, content_type: str, hot: HotSchema) -> None:
        self.conn, self.content_type, self.hot = conn, content_type, hot
        self.known: dict[str, bool] = {}

    def __call__(self, column: str) -> bool:
        if (self.content_type, column) not in self.hot.indexes:
            return False  # no index to ask: assume arrays
        if column not in self.known:
            row = self.conn.execute(
                f"SELECT NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.content_type = ? "
                f"AND e.{column} >= '[' AND e.{column} < '\\')", (self.content_type,)
            ).fetchone()
            self.known[column] = bool(row[0])
        return self.known[column]


def _compile(ctx: ReadContext, query: EntryQuery) -> _Compiled:
    reader = _reader(ctx, query)
    conditions = compile_where(query.where, reader)
    if query.content_type is not None:
        conditions.insert(0, Condition(compose("e.content_type = ", Param(query.content_type))))
    if query.ids is not None:
        conditions.append(Condition(compose("e.id IN (SELECT value FROM json_each(",
                                            Param(json.dumps(query.ids)), "))"), "id"))
    return _Compiled(conditions, compile_order(query.order_by, reader))


def _unindexed(condition: Condition) -> Sql:
    """The condition with its column behind SQLite's unary +, which no index may serve."""
    column = f"e.{condition.column}"
    return Sql(condition.sql.text.replace(column, "+" + column), condition.sql.params)


def _select(compiled: _Compiled, head: str, *, after: Sql | None = None, keys: bool = False,
            limit: int | None = None, offset: int = 0, ordered: bool = True,
            hints: _Hints = _Hints()) -> Sql:
    pieces: list[str | Sql | Param] = [head]
    if keys:
        pieces += [", ", join_sql([k.value for k in compiled.order], ", ")]
    pieces.append(" FROM entries AS e")
    conditions = [_unindexed(c) if c.column in hints.unindexed else c.sql
                  for c in compiled.conditions] + ([after] if after is not None else [])
    if conditions:
        pieces += [" WHERE ", join_sql(conditions, " AND ")]
    if ordered:
        order = compiled.order
        if hints.order_unindexed:
            first = order[0]
            order = [OrderKey(first.key, compose("+", first.value), first.descending),
                     *order[1:]]
        pieces += [" ", order_clause(order)]
    if limit is not None:
        pieces += [" LIMIT ", Param(limit), " OFFSET ", Param(offset)]
    elif offset:
        pieces += [" LIMIT -1 OFFSET ", Param(offset)]
    return compose(*pieces)


_WIDE = 1000  # a filter matching this many entries is no better than the order's index


def _hints(ctx: ReadContext, query: EntryQuery, compiled: _Compiled,
           limit: int | None) -> _Hints:
    """Steer SQLite's planner, which knows no selectivity, for a limited page ordered by an
    indexed key (a hot field, or the id) and filtered on hot fields.

    Left alone, it takes any index that narrows the filter, even ``rating >= 2`` that keeps
    most entries, then sorts them all for a page of 50 (250 ms at 100k entries); or it reads
    in the order's index and tests every entry against ``slug = 'x'`` that one entry passes.
    A probe of at most _WIDE index entries per filter tells the two cases apart: when every
    filter is wide, the page is read in order (a few hundred entries, 2 ms); when one is
    narrow, it is read through that filter and sorted.
    """
    first = compiled.order[0]
    if limit is None or query.content_type is None or first.column is None:
        return _Hints()
    lookups = [c for c in compiled.conditions if c.column not in (None, first.column)]
    ordered_index = first.column == "id" or (query.content_type, first.column) in ctx.hot.indexes
    if not ordered_index or not lookups:  # (content_type, id) orders by id: schema v2
        return _Hints()
    for condition in lookups:
        if (query.content_type, condition.column) not in ctx.hot.indexes:
            return _Hints()  # an id lookup: the planner knows best
        probe = compose("SELECT count(*) FROM (SELECT 1 FROM entries AS e WHERE "
                        "e.content_type = ", Param(query.content_type), " AND ",
                        condition.sql, " LIMIT ", Param(_WIDE), ")")
        if _execute(ctx.conn, probe).fetchone()[0] < _WIDE:
            return _Hints(order_unindexed=True)
    return _Hints(unindexed=frozenset(c.column for c in lookups if c.column is not None))


def check_query(ctx: ReadContext, query: EntryQuery) -> None:
    """Compile ``query`` without running it: QueryError now rather than at the first batch."""
    _compile(ctx, query)


def entries_sql(ctx: ReadContext, query: EntryQuery) -> Sql:
    """The statement a page of ``query`` runs (for EXPLAIN QUERY PLAN in tests)."""
    compiled = _compile(ctx, query)
    return _select(compiled, f"SELECT {ENTRY_COLUMNS}", limit=query.limit,
                   offset=query.offset, hints=_hints(ctx, query, compiled, query.limit))


def _casefold(text: str | None) -> str | None:
    return text.casefold() if isinstance(text, str) else None


def _execute(conn: sqlite3.Connection, statement: Sql) -> sqlite3.Cursor:
    if CASEFOLD_FUNCTION in statement.text:
        try:  # registered once per connection, on the first query that matches text
            conn.execute(f"SELECT {CASEFOLD_FUNCTION}('')")
        except sqlite3.OperationalError:
            conn.create_function(CASEFOLD_FUNCTION, 1, _casefold, deterministic=True)
    return conn.execute(statement.text, statement.params)


def select_entries(ctx: ReadContext, query: EntryQuery) -> list[Record]:
    """The page of entries ``query`` asks for."""
    compiled = _compile(ctx, query)
    after, offset = None, query.offset
    if (offset >= _DIRECTORY_FROM and not query.where and query.ids is None
            and len(compiled.order) == 1 and not compiled.order[0].descending):
        # A plain listing by id, far down: start from the directory's nearest block.
        starts = _block_ends(ctx.conn, query.content_type)
        block = offset // _STRIDE
        if block > len(starts):
            return []
        after = compose("e.id > ", Param(starts[block - 1]))
        offset -= block * _STRIDE
    statement = _select(compiled, f"SELECT {ENTRY_COLUMNS}", after=after, limit=query.limit,
                        offset=offset, hints=_hints(ctx, query, compiled, query.limit))
    return list(records(_execute(ctx.conn, statement).fetchall(), "Entry", ctx.locales,
                        ctx.resolver))


# -- a directory for deep pages -----------------------------------------------------------------

_STRIDE = 256
_DIRECTORY_FROM = 2048  # nearer pages step through the index (about 0.1 ms)


class _Directories(threading.local):
    """Per thread, as connections are: for each connection, the ids that end each block of
    _STRIDE entries in id order (per content type), valid until anything commits."""

    def __init__(self) -> None:
        self.known: dict[int, tuple[sqlite3.Connection, tuple[int, int],
                                    dict[str | None, list[str]]]] = {}


_directories = _Directories()


def _block_ends(conn: sqlite3.Connection, content_type: str | None) -> list[str]:
    """SQLite has no counted B-trees: OFFSET n steps through n index entries (about 50 ns
    each, 2-5 ms for a deep page of a 90k-entry type). Walking the index once per committed
    change, and keeping every 256th id, lets a deep page start at most 255 entries away."""
    version = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
    known = _directories.known.get(id(conn))
    if known is None or known[0] is not conn or known[1] != version:
        if len(_directories.known) >= 8:
            _directories.known.clear()
        known = (conn, version, {})
        _directories.known[id(conn)] = known
    ends = known[2].get(content_type)
    if ends is None:
        ends = known[2][content_type] = _walk_blocks(conn, content_type)
    return ends


def _walk_blocks(conn: sqlite3.Connection, content_type: str | None) -> list[str]:
    of_type = "e.content_type = ?" if content_type is not None else "1"
    first = (f"SELECT e.id FROM entries AS e WHERE {of_type} ORDER BY e.id "
             f"LIMIT 1 OFFSET {_STRIDE - 1}")
    step = (f"SELECT e.id FROM entries AS e WHERE {of_type} AND e.id > ? ORDER BY e.id "
            f"LIMIT 1 OFFSET {_STRIDE - 1}")
    typed: tuple[str, ...] = () if content_type is None else (content_type,)
    ends: list[str] = []
    row = conn.execute(first, typed).fetchone()
    while row is not None:
        ends.append(row[0])
        row = conn.execute(step, (*typed, row[0])).fetchone()
    return ends


def count_entries(ctx: ReadContext, query: EntryQuery) -> int:
    """How many entries ``query`` matches, ignoring its limit and offset."""
    statement = _select(_compile(ctx, query), "SELECT count(*)", ordered=False)
    return int(_execute(ctx.conn, statement).fetchone()[0])


def select_batch(ctx: ReadContext, query: EntryQuery, *, after: Sequence[Any] | None,
                 limit: int, offset: int = 0) -> tuple[list[Any], list[Any] | None]:
    """Up to ``limit`` rows of entries in the query's order after the row whose order-key
    values were ``after`` (keyset paging: no row is skipped or repeated between batches, each
    of which may run in its own read transaction), for :func:`records`; and the order-key
    values of the batch's last row."""
    rows, keys = select_ordered(ctx, query, after=after, limit=limit, offset=offset)
    return rows, (keys[-1] if rows else None)


def select_ordered(ctx: ReadContext, query: EntryQuery, *, after: Sequence[Any] | None,
                   limit: int | None, offset: int = 0) -> tuple[list[Any], list[list[Any]]]:
    """What :func:`select_batch` reads, with every row's order-key values (the values SQLite
    sorted on, in the order's keys): a live list places a changed record among the rows it
    holds by them."""
    compiled = _compile(ctx, query)
    by_id = len(compiled.order) == 1  # the order is the id alone
    statement = _select(
        compiled, f"SELECT {ENTRY_COLUMNS}", keys=not by_id, limit=limit, offset=offset,
        after=None if after is None else after_clause(compiled.order, after),
        hints=_hints(ctx, query, compiled, limit))
    rows = _execute(ctx.conn, statement).fetchall()
    return rows, [[row[0]] if by_id else list(row[6:]) for row in rows]


def select_assets(conn: sqlite3.Connection, *, after: str | None, limit: int) -> list[Any]:
    """Up to ``limit`` rows of assets in id order after the id ``after``, for :func:`records`."""
    if after is None:
        return conn.execute(f"SELECT {ASSET_COLUMNS} FROM assets AS e ORDER BY e.id LIMIT ?",
                            (limit,)).fetchall()
    return conn.execute(f"SELECT {ASSET_COLUMNS} FROM assets AS e WHERE e.id > ? "
                        "ORDER BY e.id LIMIT ?", (after, limit)).fetchall()


def read_entries(models: BoundModels, locales: LocaleChain, *, content_type: str | None = None,
                 ids: list[str] | None = None, limit: int | None = None,
                 offset: int = 0) -> list[Record]:
    """Entries in id order, of one content type or with the given ids."""
    query = entry_query(content_type, ids=ids, limit=limit, offset=offset)
    return select_entries(ReadContext(connection_of(models), "", locales), query)
