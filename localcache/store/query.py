"""The read side: records as an app sees them, locale fallback, and link resolution.

Hot paths read through the thread's sqlite3 connection and build each :class:`Record` straight
from its row: no peewee model object per row (one cost 5x the JSON decoding of the row). The
queries that select rows (``where``, ``order_by``, pages, counts) are ``select.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any, Protocol

from ..errors import QueryError
from ..model import LocaleInfo, RecordType
from .content_types import read_content_types
from .links import LinkTarget, codename_ids, holds_many, link_targets, links_from
from .models import BoundModels

__all__ = [
    "ASSET_COLUMNS",
    "ENTRY_COLUMNS",
    "UNSEARCHED_TYPES",
    "LinkResolver",
    "LocaleChain",
    "Record",
    "chain_for",
    "connection_of",
    "fetch_asset",
    "fetch_entries",
    "fetch_entry",
    "fetch_targets",
    "prefetch_links",
    "read_asset",
    "read_entry",
    "records",
    "resolve_field",
]

#: Field types (each vendor's own names) whose values hold no text to search: dates,
#: numbers, booleans, places, links and files. A date is a string in all three vendors' JSON;
#: indexed, its 7 tokens a locale cost a sixth of the index's insert time, and a search for
#: "2022" would match every entry published that year. Filter dates with ``where``.
UNSEARCHED_TYPES = frozenset({
    "Date", "Integer", "Number", "Boolean", "Location", "Link",  # Contentful
    "isodate", "number", "boolean", "file", "reference",  # Contentstack
    "date_time", "asset", "modular_content", "taxonomy",  # Kontent.ai
})

_MISSING = object()
# The C scanner json.loads uses (typeshed types make_scanner's argument wrongly).
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LocaleChain:
    """The space's locales: which is the default, and where each one falls back to; and the
    fields a content type does not localize (``unlocalized``: content type → field ids),
    which read the same in every locale (see :meth:`field_chain`); and the fields whose
    declared type holds no searchable text (``unsearched``: content type → field ids, see
    :data:`UNSEARCHED_TYPES`), which the full-text index leaves out."""

    default: str | None = None
    fallbacks: dict[str, str | None] = field(default_factory=dict)
    unlocalized: Mapping[str, frozenset[str]] = field(default_factory=dict)
    unsearched: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Chains worked out once: (unlocalized?, locale) -> codes. Every field read walks one.
    _memo: dict[tuple[bool, str | None], tuple[str, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def from_locales(cls, locales: list[LocaleInfo],
                     unlocalized: Mapping[str, frozenset[str]] | None = None) -> LocaleChain:
        default = next((loc.code for loc in locales if loc.default), None)
        return cls(default, {loc.code: loc.fallback for loc in locales}, dict(unlocalized or {}))

    def chain(self, locale: str | None) -> Iterator[str]:
        """``locale``, then its fallbacks in order (a cycle ends the chain)."""
        return iter(self._codes(locale))

    def _codes(self, locale: str | None) -> tuple[str, ...]:
        codes = self._memo.get((False, locale))
        if codes is None:
            seen: dict[str, None] = {}
            code = locale if locale is not None else self.default
            while code is not None and code not in seen:
                seen[code] = None
                code = self.fallbacks.get(code)
            codes = self._memo[(False, locale)] = tuple(seen)
        return codes

    def unlocalized_chain(self, locale: str | None) -> tuple[str, ...]:
        """The chain of a field its content type does not localize: the default locale's
        chain, then ``locale``'s. Contentful sends such a field under the default locale only
        and it reads the same in every locale, as the CDA does; where the default locale has
        no value (a Contentstack entry published in another locale only), the usual chain."""
        codes = self._memo.get((True, locale))
        if codes is None:
            codes = self._memo[(True, locale)] = tuple(
                dict.fromkeys([*self._codes(None), *self._codes(locale)]))
        return codes

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
    unlocalized, unsearched = {}, {}
    for info in read_content_types(conn):
        fields = frozenset(f.id for f in info.fields if not f.localized)
        if fields:
            unlocalized[info.id] = fields
        untexted = frozenset(f.id for f in info.fields if f.type in UNSEARCHED_TYPES)
        if untexted:
            unsearched[info.id] = untexted
    return LocaleChain(default, {code: fallback for code, _, fallback in rows}, unlocalized,
                       unsearched)


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

ENTRY_COLUMNS = "e.id, e.content_type, e.revision, e.created_at, e.updated_at, e.raw"
ASSET_COLUMNS = "e.id, NULL, e.revision, e.created_at, e.updated_at, e.raw"


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
    row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries AS e WHERE e.id = ?",
                       (entry_id,)).fetchone()
    return None if row is None else _record(row, "Entry", locales, resolver)


def fetch_asset(conn: sqlite3.Connection, asset_id: str, locales: LocaleChain,
                resolver: LinkResolver | None = None) -> Record | None:
    row = conn.execute(f"SELECT {ASSET_COLUMNS} FROM assets AS e WHERE e.id = ?",
                       (asset_id,)).fetchone()
    return None if row is None else _record(row, "Asset", locales, resolver)


_BATCH = 900  # ids bound per statement, under SQLite's oldest limit (999)


def fetch_entries(conn: sqlite3.Connection, ids: Sequence[str], locales: LocaleChain,
                  resolver: LinkResolver | None = None, *,
                  record_type: RecordType = "Entry") -> dict[str, Record]:
    """The stored entries (or assets) among ``ids``, by id: batched primary-key lookups."""
    table, columns = (("entries", ENTRY_COLUMNS) if record_type == "Entry"
                      else ("assets", ASSET_COLUMNS))
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


def connection_of(models: BoundModels) -> sqlite3.Connection:
    conn: sqlite3.Connection = models.entry._meta.database.connection()
    return conn


def read_entry(models: BoundModels, entry_id: str, locales: LocaleChain) -> Record | None:
    """:func:`fetch_entry` on the connection the models are bound to (this thread's)."""
    return fetch_entry(connection_of(models), entry_id, locales)


def read_asset(models: BoundModels, asset_id: str, locales: LocaleChain) -> Record | None:
    return fetch_asset(connection_of(models), asset_id, locales)



def records(rows: Sequence[Sequence[Any]], record_type: RecordType,
            locales: LocaleChain, resolver: LinkResolver | None = None) -> Iterator[Record]:
    """Records of rows, decoded one at a time: a stream whose consumer drops each record keeps
    the garbage collector's young generation small (decoding a whole batch first cost a
    third more time a record at 100k entries)."""
    for row in rows:
        yield _record(row, record_type, locales, resolver)
