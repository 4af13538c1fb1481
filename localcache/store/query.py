"""The read side: records as an app sees them, locale fallback, and the queries behind them.

Hot paths read through the thread's sqlite3 connection and build each :class:`Record` straight
from its row: no peewee model object per row (one cost 5x the JSON decoding of the row). The
SQL comes from typed arguments (``where.py``); no caller string ever becomes SQL text.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any, Protocol

from ..errors import QueryError
from ..model import LocaleInfo, RecordType
from .content_types import read_content_types
from .indexes import HotSchema
from .links import LinkTarget, codename_ids, holds_many, link_targets, links_from
from .models import BoundModels
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
    "LinkResolver",
    "LocaleChain",
    "ReadContext",
    "Record",
    "chain_for",
    "check_query",
    "count_entries",
    "entries_sql",
    "entry_query",
    "fetch_asset",
    "fetch_entries",
    "fetch_entry",
    "fetch_targets",
    "prefetch_links",
    "read_asset",
    "read_entries",
    "read_entry",
    "records",
    "resolve_field",
    "select_assets",
    "select_batch",
    "select_entries",
]

_MISSING = object()
# The C scanner json.loads uses (typeshed types make_scanner's argument wrongly).
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LocaleChain:
    """The space's locales: which is the default, and where each one falls back to; and the
    fields a content type does not localize (``unlocalized``: content type → field ids),
    which read the same in every locale (see :meth:`field_chain`)."""

    default: str | None = None
    fallbacks: dict[str, str | None] = field(default_factory=dict)
    unlocalized: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_locales(cls, locales: list[LocaleInfo],
                     unlocalized: Mapping[str, frozenset[str]] | None = None) -> LocaleChain:
        default = next((loc.code for loc in locales if loc.default), None)
        return cls(default, {loc.code: loc.fallback for loc in locales}, dict(unlocalized or {}))

    def chain(self, locale: str | None) -> Iterator[str]:
        """``locale``, then its fallbacks in order (a cycle ends the chain)."""
        seen: set[str] = set()
        code = locale if locale is not None else self.default
        while code is not None and code not in seen:
            seen.add(code)
            yield code
            code = self.fallbacks.get(code)

    def unlocalized_chain(self, locale: str | None) -> tuple[str, ...]:
        """The chain of a field its content type does not localize: the default locale's
        chain, then ``locale``'s. Contentful sends such a field under the default locale only
        and it reads the same in every locale, as the CDA does; where the default locale has
        no value (a Contentstack entry published in another locale only), the usual chain."""
        return tuple(dict.fromkeys([*self.chain(None), *self.chain(locale)]))

    def field_chain(self, content_type: str | None, name: str,
                    locale: str | None) -> Iterator[str]:
        """The locales ``record.field(name, locale)`` reads, in order, for an entry of
        ``content_type``."""
        fields = self.unlocalized.get(content_type) if content_type is not None else None
        if fields is not None and name in fields:
            return iter(self.unlocalized_chain(locale))
        return self.chain(locale)


def chain_for(conn: sqlite3.Connection) -> LocaleChain:
    """The store's locale chain with its content types' unlocalized fields, read through
    ``conn`` (in the caller's read transaction, so locales and types are of one state)."""
    rows = conn.execute("SELECT code, is_default, fallback FROM locales "
                        "ORDER BY is_default DESC, code").fetchall()
    default = next((code for code, is_default, _ in rows if is_default), None)
    unlocalized = {}
    for info in read_content_types(conn):
        fields = frozenset(f.id for f in info.fields if not f.localized)
        if fields:
            unlocalized[info.id] = fields
    return LocaleChain(default, {code: fallback for code, _, fallback in rows}, unlocalized)


class LinkResolver(Protocol):
    """What resolves the links of a record: the targets (see ``links.py``) as records, in
    order, None for each one the store does not hold."""

    def resolve_links(self, targets: Sequence[LinkTarget]) -> list[Record | None]: ...


@dataclass(frozen=True, slots=True)
class Record:
    """An entry or asset as stored. ``fields`` maps field name → locale → value."""

    type: RecordType
    id: str
    content_type: str | None
    revision: int
    created_at: str | None
    updated_at: str | None
    fields: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)
    locales: LocaleChain = field(default_factory=LocaleChain, repr=False, compare=False)
    #: What :meth:`resolve` asks; set on every record a Cache reads, None elsewhere.
    resolver: LinkResolver | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, record_type: RecordType, record_id: str, content_type: str | None,
           revision: int, created_at: str | None, updated_at: str | None,
           document: dict[str, Any], locales: LocaleChain,
           resolver: LinkResolver | None = None) -> Record:
        """A record from its stored document (whose ``fields`` it exposes) and columns."""
        fields = document.get("fields")
        return cls(record_type, record_id, content_type, revision, created_at, updated_at,
                   fields if isinstance(fields, dict) else {}, document, locales, resolver)

    def field(self, name: str, locale: str | None = None, default: Any = None) -> Any:
        """The value of ``name`` in ``locale`` (default: the space's default locale),
        following the space's fallback chain where the locale has no value. A field the
        content type does not localize reads from the default locale first, whatever
        ``locale`` is."""
        by_locale = self.fields.get(name)
        if not isinstance(by_locale, dict):
            return default
        locales = self.locales
        codes = locales.field_chain(self.content_type, name, locale) if locales.unlocalized \
            else locales.chain(locale)
        for code in codes:
            value = by_locale.get(code, _MISSING)
            if value is not _MISSING:
                return value
        return default

    def links(self, name: str, locale: str | None = None) -> list[LinkTarget]:
        """(link type, target) pairs of a link or link-array field, after fallback: the type
        is ``"Entry"`` or ``"Asset"`` with an id, or ``"Codename"`` with a Kontent.ai
        item's codename."""
        return link_targets(self.field(name, locale))

    def resolve(self, name: str, locale: str | None = None) -> Record | list[Record] | None:
        """The record(s) field ``name`` links to in ``locale`` (after fallback), for every
        vendor: for one link, the record or None (missing, unpublished or deleted); for an
        array (or a Kontent.ai linked-items or rich-text element), the targets the store
        holds, in the array's order. A value that holds no link reads as None (an array of
        none as []). Records a Cache returns resolve on their own; a record built elsewhere
        (a signal's) raises QueryError: resolve it with ``cache.resolve(record, name)``."""
        if self.resolver is None:
            raise QueryError(
                f"cannot resolve field {name!r} of {self.type} {self.id!r}: this record was "
                "not read from a Cache (a signal's record, or one built by hand); read it "
                "with cache.entry(id) or use cache.resolve(record, field)")
        return resolve_field(self, name, locale, self.resolver)


def resolve_field(record: Record, name: str, locale: str | None,
                  resolver: LinkResolver) -> Record | list[Record] | None:
    """:meth:`Record.resolve` through ``resolver``."""
    value = record.field(name, locale)
    targets = link_targets(value)
    found = resolver.resolve_links(targets) if targets else []
    if holds_many(value):
        return [target for target in found if target is not None]
    return found[0] if found else None


# -- rows to records ----------------------------------------------------------------------------

_ENTRY_COLUMNS = "e.id, e.content_type, e.revision, e.created_at, e.updated_at, e.raw"
_ASSET_COLUMNS = "e.id, NULL, e.revision, e.created_at, e.updated_at, e.raw"


def _decode(text: str) -> Any:
    """A stored document. SQLite or json.dumps wrote it compact, so the C scanner reads it
    straight, skipping json.loads's whitespace handling (a fifth of the decoding time)."""
    try:
        return _scan(text, 0)[0]
    except StopIteration:
        return json.loads(text)


def _record(row: Sequence[Any], record_type: RecordType, locales: LocaleChain,
            resolver: LinkResolver | None = None) -> Record:
    # The hot path of every read: exact type checks, positional construction.
    document = _decode(row[5])
    if type(document) is not dict:
        document = {}
    fields = document.get("fields")
    return Record(record_type, row[0], row[1], row[2], row[3], row[4],
                  fields if type(fields) is dict else {}, document, locales, resolver)


def fetch_entry(conn: sqlite3.Connection, entry_id: str, locales: LocaleChain,
                resolver: LinkResolver | None = None) -> Record | None:
    row = conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries AS e WHERE e.id = ?",
                       (entry_id,)).fetchone()
    return None if row is None else _record(row, "Entry", locales, resolver)


def fetch_asset(conn: sqlite3.Connection, asset_id: str, locales: LocaleChain,
                resolver: LinkResolver | None = None) -> Record | None:
    row = conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets AS e WHERE e.id = ?",
                       (asset_id,)).fetchone()
    return None if row is None else _record(row, "Asset", locales, resolver)


_BATCH = 900  # ids bound per statement, under SQLite's oldest limit (999)


def fetch_entries(conn: sqlite3.Connection, ids: Sequence[str], locales: LocaleChain,
                  resolver: LinkResolver | None = None, *,
                  record_type: RecordType = "Entry") -> dict[str, Record]:
    """The stored entries (or assets) among ``ids``, by id: batched primary-key lookups."""
    table, columns = (("entries", _ENTRY_COLUMNS) if record_type == "Entry"
                      else ("assets", _ASSET_COLUMNS))
    found: dict[str, Record] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), _BATCH):
        chunk = wanted[start:start + _BATCH]
        rows = conn.execute(f"SELECT {columns} FROM {table} AS e WHERE e.id IN "
                            f"({','.join('?' * len(chunk))})", chunk).fetchall()
        for row in rows:
            found[row[0]] = _record(row, record_type, locales, resolver)
    return found


def fetch_targets(conn: sqlite3.Connection, targets: Sequence[LinkTarget],
                  locales: LocaleChain, resolver: LinkResolver | None = None,
                  known: dict[LinkTarget, Record | None] | None = None
                  ) -> dict[LinkTarget, Record | None]:
    """Each link target (``links.py``) as the record the store holds, or None: Kontent.ai
    codenames through ``entry_codenames``, then one batched lookup per table. Targets
    already in ``known`` are not read again; the answer (and ``known``, when given) maps
    every target asked for."""
    out = known if known is not None else {}
    wanted = [t for t in dict.fromkeys(targets) if t not in out]
    ids = codename_ids(conn, [name for kind, name in wanted if kind == "Codename"])
    keys = {t: (("Entry", ids[t[1]]) if t[1] in ids else None) if t[0] == "Codename" else t
            for t in wanted}
    for record_type in ("Entry", "Asset"):
        missing = [key[1] for key in keys.values()
                   if key is not None and key[0] == record_type and key not in out]
        if missing:
            found = fetch_entries(conn, missing, locales, resolver, record_type=record_type)
            out.update({(record_type, i): found.get(i) for i in missing})
    for target, key in keys.items():
        out[target] = out.get(key) if key is not None else None
    return out


def prefetch_links(conn: sqlite3.Connection, root: Record, depth: int, locales: LocaleChain,
                   resolver: LinkResolver, known: dict[LinkTarget, Record | None]) -> None:
    """Read the records ``root`` links to, ``depth`` levels deep, breadth-first, into
    ``known`` (which ``resolver`` answers from): per level, one lookup of the level's links
    (every field and locale) and one per table of the targets not read yet. Each record is
    read once, so cycles end."""
    known[("Entry", root.id)] = root
    level = [root.id]
    for _ in range(depth):
        if not level:
            return
        before = set(known)
        fetch_targets(conn, links_from(conn, level), locales, resolver, known)
        level = [key[1] for key, record in known.items()
                 if key not in before and key[0] == "Entry" and record is not None]


def _connection(models: BoundModels) -> sqlite3.Connection:
    conn: sqlite3.Connection = models.entry._meta.database.connection()
    return conn


def read_entry(models: BoundModels, entry_id: str, locales: LocaleChain) -> Record | None:
    """:func:`fetch_entry` on the connection the models are bound to (this thread's)."""
    return fetch_entry(_connection(models), entry_id, locales)


def read_asset(models: BoundModels, asset_id: str, locales: LocaleChain) -> Record | None:
    return fetch_asset(_connection(models), asset_id, locales)


def read_entries(models: BoundModels, locales: LocaleChain, *, content_type: str | None = None,
                 ids: list[str] | None = None, limit: int | None = None,
                 offset: int = 0) -> list[Record]:
    """Entries in id order, of one content type or with the given ids."""
    query = entry_query(content_type, ids=ids, limit=limit, offset=offset)
    return select_entries(ReadContext(_connection(models), "", locales), query)


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
    return _select(compiled, f"SELECT {_ENTRY_COLUMNS}", limit=query.limit,
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


def records(rows: Sequence[Sequence[Any]], record_type: RecordType,
            locales: LocaleChain, resolver: LinkResolver | None = None) -> Iterator[Record]:
    """Records of rows, decoded one at a time: a stream whose consumer drops each record keeps
    the garbage collector's young generation small (decoding a whole batch first cost a
    third more time a record at 100k entries)."""
    for row in rows:
        yield _record(row, record_type, locales, resolver)


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
    statement = _select(compiled, f"SELECT {_ENTRY_COLUMNS}", after=after, limit=query.limit,
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
    compiled = _compile(ctx, query)
    by_id = len(compiled.order) == 1  # the order is the id alone
    statement = _select(
        compiled, f"SELECT {_ENTRY_COLUMNS}", keys=not by_id, limit=limit, offset=offset,
        after=None if after is None else after_clause(compiled.order, after),
        hints=_hints(ctx, query, compiled, limit))
    rows = _execute(ctx.conn, statement).fetchall()
    if not rows:
        return [], None
    last = rows[-1]
    return rows, [last[0]] if by_id else list(last[6:])


def select_assets(conn: sqlite3.Connection, *, after: str | None, limit: int) -> list[Any]:
    """Up to ``limit`` rows of assets in id order after the id ``after``, for :func:`records`."""
    if after is None:
        return conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets AS e ORDER BY e.id LIMIT ?",
                            (limit,)).fetchall()
    return conn.execute(f"SELECT {_ASSET_COLUMNS} FROM assets AS e WHERE e.id > ? "
                        "ORDER BY e.id LIMIT ?", (after, limit)).fetchall()
