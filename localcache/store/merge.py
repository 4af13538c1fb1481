"""Applying per-locale deltas: vendors that publish one locale of a record at a time.

Contentstack sends one item per (record, locale); Kontent.ai one per language variant. The store
keeps one record per id with every locale, as Contentful does, so such a delta is merged into
the stored document: a publish replaces that locale's values in ``fields`` (and its vendor
payload under ``vendor``); an unpublish or delete removes the locale; the record goes when no
locale is left. Deltas apply in page order, so a page that publishes, unpublishes and publishes
again ends as the vendor intends. Applying a page twice changes nothing.

Whether a record changed is decided by comparing its document before and after the page.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..errors import PageError
from ..model import Delta, RecordType
from .apply import LIVE, PageChanges, RecordChange, Tables

__all__ = ["merge_deltas"]

_CHUNK = 900
_COLUMNS = "id, {ct}revision, created_at, updated_at, raw"


def merge_deltas(conn: sqlite3.Connection, deltas: Sequence[Delta], page: int,
                 tables: Tables = LIVE) -> PageChanges:
    """Merge a page of per-locale deltas into ``tables``, in the caller's transaction."""
    changes = PageChanges()
    for record_type, table in (("Entry", tables.entries), ("Asset", tables.assets)):
        mine = [d for d in deltas if d.record_type == record_type]
        if mine:
            _merge_table(conn, record_type, table, mine, page, changes)  # type: ignore[arg-type]
    return changes


def _merge_table(conn: sqlite3.Connection, record_type: RecordType, table: str,
                 deltas: list[Delta], page: int, changes: PageChanges) -> None:
    ids = {d.id for d in deltas if not d.whole_type}
    for content_type in {d.content_type for d in deltas if d.whole_type and d.content_type}:
        ids.update(row[0] for row in conn.execute(
            f"SELECT id FROM {table} WHERE content_type = ?", (content_type,)))
    before = _load(conn, table, sorted(ids))
    after: dict[str, dict[str, Any] | None] = dict(before)
    for delta in deltas:
        if delta.whole_type:
            for record_id, doc in after.items():
                if doc is not None and _content_type(doc) == delta.content_type:
                    after[record_id] = None
        elif delta.deleted:  # one locale, or (naming none) the whole record
            after[delta.id] = (_without_locale(after.get(delta.id), delta.locale)
                               if delta.locale is not None else None)
        else:
            after[delta.id] = _with_locale(after.get(delta.id), delta, page)
    upserts: list[tuple[Any, ...]] = []
    deletes: list[tuple[str]] = []
    for record_id, doc in after.items():
        old = before.get(record_id)
        if doc == old:
            continue
        if doc is None:
            deletes.append((record_id,))
            changes.deleted.append(RecordChange(record_type, record_id, _content_type(old)))
            continue
        upserts.append(_row(record_type, record_id, doc, page))
        bucket = changes.added if old is None else changes.updated
        bucket.append(RecordChange(record_type, record_id, _content_type(doc), doc))
    if deletes:
        conn.executemany(f"DELETE FROM {table} WHERE id = ?", deletes)
    if upserts:
        columns = _COLUMNS.format(ct="content_type, " if record_type == "Entry" else "")
        marks = ", ".join("?" * len(upserts[0]))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns.split(", ")[1:])
        conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
                         f"ON CONFLICT(id) DO UPDATE SET {updates}", upserts)


def _load(conn: sqlite3.Connection, table: str,
          ids: list[str]) -> dict[str, dict[str, Any] | None]:
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for record_id, raw in conn.execute(
                f"SELECT id, raw FROM {table} WHERE id IN ({marks})", chunk):
            doc = json.loads(raw)
            found[record_id] = doc if isinstance(doc, dict) else None
    return found


def _content_type(doc: dict[str, Any] | None) -> str | None:
    if doc is None:
        return None
    link = doc.get("sys", {}).get("contentType")
    value = link.get("sys", {}).get("id") if isinstance(link, dict) else None
    return value if isinstance(value, str) else None


def _with_locale(doc: dict[str, Any] | None, delta: Delta, page: int) -> dict[str, Any]:
    """``doc`` with ``delta.locale`` replaced by the delta's values."""
    locale = delta.locale or ""
    base = _without_locale(doc, locale) or {}
    fields = {name: dict(by_locale) for name, by_locale in base.get("fields", {}).items()}
    fragment = delta.document or {}
    for name, value in (fragment.get("fields") or {}).items():
        fields.setdefault(name, {})[locale] = value
    vendor = dict(base.get("vendor", {}))
    vendor[locale] = {"revision": delta.revision, "createdAt": delta.created_at,
                      "updatedAt": delta.updated_at, "payload": fragment.get("vendor")}
    return _assemble(delta.record_type, delta.id, delta.content_type, fields, vendor)


def _without_locale(doc: dict[str, Any] | None, locale: str | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    vendor = {code: v for code, v in doc.get("vendor", {}).items() if code != locale}
    if not vendor:
        return None  # no locale left: the record goes
    fields = {}
    for name, by_locale in doc.get("fields", {}).items():
        kept = {code: value for code, value in by_locale.items() if code != locale}
        if kept:
            fields[name] = kept
    sys = doc.get("sys", {})
    return _assemble(sys.get("type", "Entry"), sys.get("id", ""), _content_type(doc),
                     fields, vendor)


def _assemble(record_type: str, record_id: str, content_type: str | None,
              fields: dict[str, dict[str, Any]], vendor: dict[str, Any]) -> dict[str, Any]:
    """A stored document in the store's (Contentful's) shape; sys derived from the locales."""
    created = [v["createdAt"] for v in vendor.values() if v.get("createdAt")]
    updated = [v["updatedAt"] for v in vendor.values() if v.get("updatedAt")]
    sys: dict[str, Any] = {
        "id": record_id,
        "type": record_type,
        "revision": max((v.get("revision") or 0 for v in vendor.values()), default=0),
        "createdAt": min(created) if created else None,
        "updatedAt": max(updated) if updated else None,
    }
    if content_type is not None:
        sys["contentType"] = {"sys": {"type": "Link", "linkType": "ContentType",
                                      "id": content_type}}
    return {"sys": sys, "fields": fields, "vendor": vendor}


def _row(record_type: RecordType, record_id: str, doc: dict[str, Any],
         page: int) -> tuple[Any, ...]:
    try:
        raw = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise PageError(f"sync page {page}: {record_type} {record_id!r} cannot be stored: "
                        f"{exc}", page=page) from None
    sys = doc["sys"]
    columns = (record_id, sys["revision"], sys["createdAt"], sys["updatedAt"], raw)
    if record_type == "Entry":
        return (record_id, _content_type(doc) or "", *columns[1:])
    return columns
