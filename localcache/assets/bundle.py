"""Asset files in a snapshot: which travel with it, and the bookkeeping that travels too.

``Cache.create_snapshot(path, with_assets=...)`` hands :func:`bundler` to
``snapshot.create_snapshot``, which runs it on its copy of the store. The copy's bookkeeping must
describe the device that installs the snapshot, not the machine that made it: rows of files
that travel stay ``ready`` (the seeded device has them the moment it launches), every other row
goes back to ``pending`` (or stays ``skipped``), and the settings (the maker's directory,
policy, asset base URL) are dropped. Pins travel: an app that pins its splash images before
building the snapshot keeps them pinned everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from .check import file_sha256
from .policy import AssetPolicy

__all__ = ["bundler"]


def bundler(directory: Path | None,
            select: AssetPolicy | None = None) -> Callable[[sqlite3.Connection],
                                                           list[tuple[str, Path]]]:
    """The snapshot's hook: with ``directory``, the files on disk there (those ``select``
    keeps: locales, MIME types, ``max_file_size``), each checked against the SHA-256 it
    landed with; without, none. Either way the copy's bookkeeping is made to match."""

    def prepare(conn: sqlite3.Connection) -> list[tuple[str, Path]]:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                        "AND name = 'asset_files'").fetchone() is None:
            return []  # a store that never kept asset files
        keep: dict[str, Path] = {}
        if directory is not None:
            for name, size, sha, locale, kind in conn.execute(
                    "SELECT name, bytes, sha256, locale, content_type FROM asset_files "
                    "WHERE state = 'ready' AND path = name ORDER BY name").fetchall():
                if name in keep or (select is not None and (
                        not select.wants_locale(locale or None)
                        or not select.wants_type(kind) or select.too_big(size))):
                    continue
                if sha is not None and file_sha256(directory / name) == sha:
                    keep[name] = directory / name
        conn.execute("CREATE TEMP TABLE bundled (name TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO bundled (name) VALUES (?)", [(n,) for n in keep])
        conn.execute(
            "UPDATE asset_files SET path = NULL, bytes = NULL, etag = NULL, sha256 = NULL, "
            "error = NULL, state = CASE WHEN state = 'skipped' THEN 'skipped' "
            "ELSE 'pending' END WHERE path IS NULL OR path NOT IN (SELECT name FROM bundled)")
        conn.execute("DELETE FROM asset_settings")
        conn.execute("DROP TABLE bundled")
        return list(keep.items())

    return prepare
