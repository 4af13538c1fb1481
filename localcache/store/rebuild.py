"""Swapping a rebuilt store in: the net change between the live tables and the shadow ones.

When the CMS refuses the continuation token (or the app asks for a full re-sync), a fresh
initial sync is written page by page into ``rebuild_entries``/``rebuild_assets`` while readers
keep seeing the live tables. When its last page arrives, :func:`swap_in` runs inside that
page's transaction: records that are new or differ (revision or updatedAt) are written to the
live tables, records the rebuild no longer has are deleted (content deleted meanwhile
disappears), and records whose document is unchanged are not touched, so signals report the
net change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..model import RecordType
from .apply import PageChanges, RecordChange

__all__ = ["clear_shadow", "swap_in"]

_CHANGED_ENTRIES = (
    "SELECT r.id, r.content_type, e.id IS NULL FROM rebuild_entries AS r "
    "LEFT JOIN entries AS e ON e.id = r.id "
    "WHERE e.id IS NULL OR e.raw IS NOT r.raw"
)
_CHANGED_ASSETS = (
    "SELECT r.id, NULL, a.id IS NULL FROM rebuild_assets AS r "
    "LEFT JOIN assets AS a ON a.id = r.id "
    "WHERE a.id IS NULL OR a.raw IS NOT r.raw"
)
_GONE_ENTRIES = (
    "SELECT id, content_type FROM entries WHERE id NOT IN (SELECT id FROM rebuild_entries)"
)
_GONE_ASSETS = "SELECT id, NULL FROM assets WHERE id NOT IN (SELECT id FROM rebuild_assets)"
_COPY_ENTRIES = (
    "INSERT INTO entries (id, content_type, revision, created_at, updated_at, raw) "
    "SELECT id, content_type, revision, created_at, updated_at, raw FROM rebuild_entries "
    "WHERE true ON CONFLICT(id) DO UPDATE SET content_type = excluded.content_type, "
    "revision = excluded.revision, created_at = excluded.created_at, "
    "updated_at = excluded.updated_at, raw = excluded.raw "
    "WHERE entries.raw IS NOT excluded.raw"
)
_COPY_ASSETS = (
    "INSERT INTO assets (id, revision, created_at, updated_at, raw) "
    "SELECT id, revision, created_at, updated_at, raw FROM rebuild_assets "
    "WHERE true ON CONFLICT(id) DO UPDATE SET revision = excluded.revision, "
    "created_at = excluded.created_at, updated_at = excluded.updated_at, raw = excluded.raw "
    "WHERE assets.raw IS NOT excluded.raw"
)


def swap_in(conn: sqlite3.Connection,
            before: Callable[[PageChanges], None] | None = None) -> PageChanges:
    """Make the live tables equal the shadow ones; return what that changed. In the caller's
    transaction, which also stores the rebuild's sync token. ``before`` is called with what
    will change, before anything is written (the search index reads the old entries)."""
    changes = PageChanges()
    kinds: tuple[tuple[RecordType, str, str], ...] = (
        ("Entry", _CHANGED_ENTRIES, _GONE_ENTRIES), ("Asset", _CHANGED_ASSETS, _GONE_ASSETS))
    for record_type, changed, gone in kinds:
        for record_id, content_type, is_new in conn.execute(changed):
            bucket = changes.added if is_new else changes.updated
            bucket.append(RecordChange(record_type, record_id, content_type))
        changes.deleted.extend(
            RecordChange(record_type, record_id, content_type)
            for record_id, content_type in conn.execute(gone))
    if before is not None:
        before(changes)
    conn.execute("DELETE FROM entries WHERE id NOT IN (SELECT id FROM rebuild_entries)")
    conn.execute("DELETE FROM assets WHERE id NOT IN (SELECT id FROM rebuild_assets)")
    conn.execute(_COPY_ENTRIES)
    conn.execute(_COPY_ASSETS)
    clear_shadow(conn)
    return changes


def clear_shadow(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM rebuild_entries")
    conn.execute("DELETE FROM rebuild_assets")
