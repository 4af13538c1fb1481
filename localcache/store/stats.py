"""What a store holds, in numbers: for ``localcache stats`` and ``Cache.stats()``."""

from __future__ import annotations

from typing import Any

from peewee import fn

from .database import Store
from .schema import SCHEMA_VERSION

__all__ = ["newest_update", "store_stats"]


def newest_update(store: Store) -> str | None:
    """The latest ``updatedAt`` of any stored record: how far the store's content reaches."""
    row = store.raw_connection().execute(
        "SELECT max(m) FROM (SELECT max(updated_at) AS m FROM entries "
        "UNION ALL SELECT max(updated_at) FROM assets)").fetchone()
    return None if row is None or row[0] is None else str(row[0])


def store_stats(store: Store) -> dict[str, Any]:
    models = store.models
    entry = models.entry
    by_type = {
        row.content_type: row.n
        for row in entry.select(entry.content_type, fn.COUNT(entry.id).alias("n"))
        .group_by(entry.content_type)
        .order_by(entry.content_type)
    }
    scope = store.scope
    token = store.token()
    return {
        "path": str(store.path),
        "schema_version": SCHEMA_VERSION,
        "provider": scope.provider if scope else None,
        "space": scope.space if scope else None,
        "environment": scope.environment if scope else None,
        "entries": sum(by_type.values()),
        "assets": models.asset.select().count(),
        "links": models.link.select().count(),
        "entries_by_content_type": by_type,
        "locales": [loc.code for loc in store.locales()],
        "synced": token is not None and token.kind == "sync",
        "sync_in_progress": token is not None and token.kind == "page",
        "last_sync_at": store.state("last_sync_at"),
        # The page size the last initial sync asked for (Contentful), where the client chose it.
        "page_limit": _number(store.state("page_limit")),
        "file_bytes": store.path.stat().st_size if store.path.exists() else 0,
    }


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
