"""The content types table: each vendor's content type definitions, kept current by the sync.

The sync engine replaces the whole set in the first page's transaction of every sync (the
providers list them at the start of each sync) and applies the changes a page reports (a
Contentstack ``content_type_deleted``, Kontent.ai v2's ``types``) in that page's transaction.
The table is created on first write (:func:`ensure_table`), so nothing depends on a schema
migration, and a store written before it existed reads as having no content types.

Each row keeps the normalized columns an app reads (``name``, ``display_field``, ``fields``)
and the vendor's definition as sent (``raw``), so nothing the CMS sent is lost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..model import ContentTypeInfo, FieldInfo

__all__ = [
    "CONTENT_TYPES_DDL",
    "delete_content_type",
    "ensure_table",
    "read_content_type",
    "read_content_types",
    "replace_content_types",
    "upsert_content_types",
]

TABLE = "content_types"

CONTENT_TYPES_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    display_field TEXT,
    fields TEXT NOT NULL DEFAULT '[]',   -- JSON: [{{id, name, type, localized, required}}]
    updated_at TEXT,
    raw TEXT NOT NULL DEFAULT '{{}}'      -- the vendor's definition, as sent
)
"""

_COLUMNS = "id, name, display_field, fields, updated_at, raw"


def ensure_table(conn: sqlite3.Connection) -> None:
    """Create the table when it is missing; in the caller's (write) transaction."""
    conn.execute(CONTENT_TYPES_DDL)


def _has_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (TABLE,)).fetchone()
    return row is not None


def _row(info: ContentTypeInfo) -> tuple[Any, ...]:
    fields = [{"id": f.id, "name": f.name, "type": f.type, "localized": f.localized,
               "required": f.required} for f in info.fields]
    return (info.id, info.name, info.display_field,
            json.dumps(fields, ensure_ascii=False, separators=(",", ":")), info.updated_at,
            json.dumps(info.raw, ensure_ascii=False, separators=(",", ":")))


def _info(row: tuple[Any, ...]) -> ContentTypeInfo:
    type_id, name, display_field, fields, updated_at, raw = row
    return ContentTypeInfo(
        id=type_id, name=name, display_field=display_field,
        fields=tuple(FieldInfo(id=f["id"], name=f.get("name", ""), type=f.get("type", ""),
                               localized=bool(f.get("localized", True)),
                               required=bool(f.get("required", False)))
                     for f in json.loads(fields)),
        updated_at=updated_at, raw=json.loads(raw))


def replace_content_types(conn: sqlite3.Connection, types: Iterable[ContentTypeInfo]) -> None:
    """The whole set, as the vendor lists it now; in the caller's transaction."""
    ensure_table(conn)
    conn.execute(f"DELETE FROM {TABLE}")
    upsert_content_types(conn, types)


def upsert_content_types(conn: sqlite3.Connection, types: Iterable[ContentTypeInfo]) -> None:
    """Add or replace these definitions; in the caller's transaction."""
    ensure_table(conn)
    conn.executemany(f"INSERT OR REPLACE INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                     [_row(info) for info in types])


def delete_content_type(conn: sqlite3.Connection, type_id: str,
                        deleted_at: str | None = None) -> bool:
    """Remove a definition; in the caller's transaction. True when one was removed.

    ``deleted_at`` (the vendor's time of the deletion) keeps a definition updated after it:
    the type was deleted and created again under the same id before this sync listed it, and
    the deletion reaches us only now. Timestamps compare as text (the vendors' ISO format)."""
    ensure_table(conn)
    cursor = conn.execute(
        f"DELETE FROM {TABLE} WHERE id = ? AND (? IS NULL OR updated_at IS NULL "
        "OR updated_at <= ?)", (type_id, deleted_at, deleted_at))
    return cursor.rowcount > 0


def read_content_types(conn: sqlite3.Connection) -> list[ContentTypeInfo]:
    """Every stored definition, by id; none for a store that never listed any."""
    if not _has_table(conn):
        return []
    rows = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY id").fetchall()
    return [_info(row) for row in rows]


def read_content_type(conn: sqlite3.Connection, type_id: str) -> ContentTypeInfo | None:
    """One definition, or None."""
    if not _has_table(conn):
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = ?", (type_id,)).fetchone()
    return None if row is None else _info(row)
