"""Applying one page of deltas: the write hot path, in raw SQL through peewee's connection.

Called by the sync engine inside the page's transaction. Every item simply overwrites, in page
order (the later item wins); nothing is ever dropped because of its revision, since ids can
come back with their revision restarted at 1. Applying the same page twice changes nothing.

Whether a record *changed* (and so is signalled) is decided against the stored
``(revision, updatedAt)`` pair, which differs for any new published version, including one
re-created under an old id. The links table and the id → content type index follow the entries
table through triggers (see ``schema.py``), inside SQLite, in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import PageError
from ..model import Delta, PageSource, RecordType

__all__ = ["LIVE", "SHADOW", "PageChanges", "RecordChange", "Tables", "apply_deltas"]

_CHUNK = 900  # stay under SQLite's oldest bound-parameter limit (999)


class Tables(NamedTuple):
    """Where a page is written: the live tables, or the shadow ones a rebuild fills."""

    entries: str
    assets: str


LIVE = Tables("entries", "assets")
SHADOW = Tables("rebuild_entries", "rebuild_assets")

_UPSERT_ENTRY = (
    "INSERT INTO {table} (id, content_type, revision, created_at, updated_at, raw) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, "
    "created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw"
)
_UPSERT_ASSET = (
    "INSERT INTO {table} (id, revision, created_at, updated_at, raw) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
    "revision = excluded.revision, created_at = excluded.created_at, "
    "updated_at = excluded.updated_at, raw = excluded.raw"
)
# The same upserts, with each record's JSON and columns read by SQLite from the page's own text.
# SQLite and Python parse the same text; they disagree only on an object repeating a key
# (JSON leaves the winner open). So a row is written only when SQLite reads the id, revision and
# updatedAt the delta has (``:expected``, indexed by position); a shortfall refuses the page.
_FROM_SOURCE = (
    "SELECT json_extract(i.value, :id), {content_type}coalesce(json_extract(i.value, :rev), 0), "
    "json_extract(i.value, :created), json_extract(i.value, :updated), i.value "
    "FROM page_items AS i WHERE "
    "json_extract(i.value, :id) || char(31) || coalesce(json_extract(i.value, :rev), 0) "
    "|| char(31) || coalesce(json_extract(i.value, :updated), '') "
    "= json_extract(:expected, '$[' || i.key || ']')"
)
# Each item's text is rendered once: json_each renders a value again at every use of its
# column, and the statement uses it nine times.
_PAGE_ITEMS = ("WITH page_items AS MATERIALIZED (SELECT key, value FROM json_each(:text, :items) "
               "WHERE key IN (SELECT value FROM json_each(:positions))) ")
_UPSERT_ENTRIES_FROM_SOURCE = _PAGE_ITEMS + _UPSERT_ENTRY.replace(
    "VALUES (?, ?, ?, ?, ?, ?)",
    _FROM_SOURCE.replace("{content_type}", "json_extract(i.value, :content_type), "))
_UPSERT_ASSETS_FROM_SOURCE = _PAGE_ITEMS + _UPSERT_ASSET.replace(
    "VALUES (?, ?, ?, ?, ?)", _FROM_SOURCE.replace("{content_type}", ""))
# An update leaves the content type alone (it is not in the upsert's SET), so the content type
# index and ``entry_types`` are not rewritten for every edit; an entry re-created under another
# type is moved first (``_retype``).
_PRIOR = "SELECT id, revision, updated_at{content_type} FROM {table} WHERE id IN ({marks})"
_RETYPE = "UPDATE {table} SET content_type = ? WHERE id = ?"
_DELETE = "DELETE FROM {table} WHERE id = ?"


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One record a page changed. ``document`` is the record as that page's commit stores it
    (None for a deletion, or where the writer did not hold it: read it back after commit)."""

    record_type: RecordType
    id: str
    content_type: str | None
    document: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class PageChanges:
    """What one page really changed in the store (unchanged re-sends are not here)."""

    added: list[RecordChange] = field(default_factory=list)
    updated: list[RecordChange] = field(default_factory=list)
    deleted: list[RecordChange] = field(default_factory=list)


def apply_deltas(
    conn: sqlite3.Connection,
    deltas: Sequence[Delta],
    page: int,
    source: PageSource | None = None,
    tables: Tables = LIVE,
) -> PageChanges:
    """Write ``deltas`` through ``conn``, inside the caller's transaction.

    With ``source``, records whose delta has a ``position`` are read from the page's JSON text
    by SQLite (no re-encoding in Python, and the GIL is free meanwhile for the next fetch).
    """
    latest: dict[tuple[str, str], Delta] = {}
    for delta in deltas:  # the later item wins; keep page order of the winners
        key = (delta.record_type, delta.id)
        latest.pop(key, None)
        latest[key] = delta
    changes = PageChanges()
    entries = [d for d in latest.values() if d.record_type == "Entry"]
    assets = [d for d in latest.values() if d.record_type == "Asset"]
    _apply_records(conn, "Entry", entries, changes, page, source, tables)
    _apply_records(conn, "Asset", assets, changes, page, source, tables)
    return changes


def _apply_records(
    conn: sqlite3.Connection, record_type: RecordType, deltas: list[Delta],
    changes: PageChanges, page: int, source: PageSource | None, tables: Tables,
) -> None:
    if not deltas:
        return
    entry = record_type == "Entry"
    table = tables.entries if entry else tables.assets
    prior = _prior(conn, table, [d.id for d in deltas], entry)
    upserts = [d for d in deltas if not d.deleted]
    if upserts:
        if entry:
            _retype(conn, table, upserts, prior)
        from_source, upsert = ((_UPSERT_ENTRIES_FROM_SOURCE, _UPSERT_ENTRY) if entry
                               else (_UPSERT_ASSETS_FROM_SOURCE, _UPSERT_ASSET))
        encoded = _write_from_source(conn, from_source.format(table=table), upserts, source,
                                     table, page)
        conn.executemany(upsert.format(table=table), [
            (d.id, *((d.content_type,) if entry else ()), d.revision, d.created_at,
             d.updated_at, _encode(d, page)) for d in encoded
        ])
        _classify(upserts, prior, changes)
    held = [d.id for d in deltas if d.deleted and d.id in prior]
    if held:
        # A DeletedEntry names no content type: the index kept beside the entries does.
        known = dict(_rows(conn, "SELECT id, content_type FROM entry_types WHERE id IN ({})",
                           held)) if entry else {}
        conn.executemany(_DELETE.format(table=table), [(i,) for i in held])
        changes.deleted.extend(RecordChange(record_type, i, known.get(i)) for i in held)


def _write_from_source(
    conn: sqlite3.Connection, sql: str, upserts: list[Delta], source: PageSource | None,
    table: str, page: int,
) -> list[Delta]:
    """Upsert the deltas the page's text holds verbatim; return the rest, to be encoded."""
    if source is None:
        return upserts
    verbatim = [d for d in upserts if d.position is not None]
    if verbatim:
        expected: list[str | None] = [None] * (max(d.position or 0 for d in verbatim) + 1)
        for d in verbatim:
            expected[d.position or 0] = f"{d.id}\x1f{d.revision}\x1f{d.updated_at or ''}"
        conn.execute(sql, {
            "text": source.text, "items": source.items_path,
            "positions": json.dumps([d.position for d in verbatim]),
            "expected": json.dumps(expected),
            "id": source.id_path, "content_type": source.content_type_path,
            "rev": source.revision_path, "created": source.created_path,
            "updated": source.updated_path,
        })
        # Not the cursor's rowcount: Python counts it only for statements that begin with
        # INSERT, and this one begins with WITH. changes() leaves out the triggers' rows.
        written = conn.execute("SELECT changes()").fetchone()[0]
        if written != len(verbatim):
            _name_ambiguous(conn, table, verbatim, page)
    return [d for d in upserts if d.position is None]


def _name_ambiguous(conn: sqlite3.Connection, table: str, deltas: list[Delta],
                    page: int) -> None:
    """Refuse the page, naming the first record SQLite did not read as Python did."""
    stored = _prior(conn, table, [d.id for d in deltas])
    culprit = next((d for d in deltas if stored.get(d.id) != (d.revision, d.updated_at)),
                   deltas[0])
    raise PageError(f"sync page {page}: {culprit.record_type} {culprit.id!r} is ambiguous "
                    "(its sys object repeats a key)", page=page)


def _classify(
    upserts: list[Delta], prior: dict[str, tuple[Any, ...]], changes: PageChanges
) -> None:
    for d in upserts:
        change = RecordChange(d.record_type, d.id, d.content_type, d.document)
        before = prior.get(d.id)
        if before is None:
            changes.added.append(change)
        elif before[:2] != (d.revision, d.updated_at):
            changes.updated.append(change)


def _prior(conn: sqlite3.Connection, table: str, ids: list[str],
           entry: bool = False) -> dict[str, tuple[Any, ...]]:
    """The stored ``(revision, updatedAt)`` of ``ids``, and the content type of an entry."""
    sql = _PRIOR.format(table=table, marks="{}", content_type=", content_type" if entry else "")
    return {row[0]: row[1:] for row in _rows(conn, sql, ids)}


def _retype(conn: sqlite3.Connection, table: str, upserts: list[Delta],
            prior: dict[str, tuple[Any, ...]]) -> None:
    moved = [(d.content_type, d.id) for d in upserts
             if d.id in prior and prior[d.id][2] != d.content_type]
    if moved:
        conn.executemany(_RETYPE.format(table=table), moved)


def _rows(conn: sqlite3.Connection, sql: str, ids: list[str]) -> Iterator[tuple[Any, ...]]:
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        yield from conn.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _encode(delta: Delta, page: int) -> str:
    try:
        return json.dumps(delta.document, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise PageError(
            f"sync page {page}: {delta.record_type} {delta.id!r} cannot be stored: {exc}",
            page=page,
        ) from None
