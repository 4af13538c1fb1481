"""The disk budget: least recently used files go while the total exceeds ``budget_bytes``.

The order is decided in SQLite, from the bookkeeping alone: files of pinned assets never go;
files of assets that no entry links to go first (a Contentful or Contentstack link in the
``links`` table, a Kontent.ai asset element in ``asset_refs``), then the least recently used
(``last_used``, which :meth:`Cache.asset_path` refreshes). Eviction stops as soon as the total
fits. An evicted file's row says ``evicted``: ``download()`` leaves it alone (no churn), and
:meth:`AssetFiles.fetch` brings it back on demand.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["Usage", "evict", "usage"]

_ON_DISK = """
    SELECT f.path, max(f.bytes), max(f.last_used),
           max(EXISTS (SELECT 1 FROM asset_pins AS p WHERE p.asset_id = f.asset_id)),
           max(EXISTS (SELECT 1 FROM links AS l
                        WHERE l.target_id = f.asset_id AND l.target_type = 'Asset')
               OR EXISTS (SELECT 1 FROM asset_refs AS r WHERE r.asset_id = f.asset_id))
      FROM asset_files AS f
     WHERE f.path IS NOT NULL
     GROUP BY f.path
"""


@dataclass(frozen=True)
class Usage:
    """Files on disk and their bytes; the pinned share of them."""

    files: int
    bytes: int
    pinned_files: int
    pinned_bytes: int


def usage(conn: sqlite3.Connection) -> Usage:
    files = total = pinned = pinned_bytes = 0
    for _path, size, _used, is_pinned, _linked in conn.execute(_ON_DISK):
        files += 1
        total += size or 0
        if is_pinned:
            pinned += 1
            pinned_bytes += size or 0
    return Usage(files, total, pinned, pinned_bytes)


def evict(conn: sqlite3.Connection, budget: int,
          keep: frozenset[str] = frozenset()) -> dict[str, list[tuple[str, str]]]:
    """In the caller's write transaction: mark the files to evict, least wanted first, until
    the total fits ``budget`` (or only pinned files, and ``keep``, are left). Returns each
    evicted file with its rows, ``(asset_id, locale)``: the caller unlinks them after the
    commit."""
    files = conn.execute(_ON_DISK).fetchall()
    total = sum(size or 0 for _, size, _, _, _ in files)
    if total <= budget:
        return {}
    victims: dict[str, list[tuple[str, str]]] = {}
    # Unlinked before linked, then the least recently used; the path breaks ties stably.
    for path, size, _used, _pinned, _linked in sorted(
            (f for f in files if not f[3] and f[0] not in keep),
            key=lambda f: (bool(f[4]), f[2], f[0])):
        if total <= budget:
            break
        rows = conn.execute("SELECT asset_id, locale FROM asset_files WHERE path = ?",
                            (path,)).fetchall()
        conn.execute("UPDATE asset_files SET path = NULL, bytes = NULL, etag = NULL, "
                     "sha256 = NULL, state = 'evicted' WHERE path = ?", (path,))
        victims[path] = [(str(a), str(b)) for a, b in rows]
        total -= size or 0
    return victims
