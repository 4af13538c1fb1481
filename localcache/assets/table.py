"""The bookkeeping of asset files: tables in the store's own SQLite file, and their SQL.

Keeping it in the store (not in a file beside the assets) makes it as safe as the records: it
is written in transactions, survives a kill at any instant, and an app that copies the store
copies it. The tables are created with ``CREATE TABLE IF NOT EXISTS`` in one write transaction
when a Cache with ``assets=`` opens, so the store's schema version is not involved::

    asset_files     one row per (asset, locale): the file wanted (url, version, name,
                    expected size), the file on disk now (path, bytes, etag, sha256; may be
                    an older version until the new one lands), state, last_used
    asset_pins      asset ids never evicted
    asset_refs      Kontent.ai only: which entries name which asset (an asset there has no
                    record of its own; it lives while an entry names it)
    asset_settings  the policy, directory and asset base URL the app uses (for the CLI), and
                    how far the bookkeeping has followed the store

``state`` is ``pending`` (wanted, not on disk in its current version), ``ready``, ``failed``
(gave up for this run; retried by the next), ``skipped`` (larger than ``max_file_size``) or
``evicted`` (removed for the budget; only :meth:`AssetFiles.fetch` brings it back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DDL",
    "FileRow",
    "chunks",
    "read_rows",
    "read_setting",
    "write_settings",
]

DDL = (
    """CREATE TABLE IF NOT EXISTS asset_files (
        asset_id TEXT NOT NULL,
        locale TEXT NOT NULL,
        variant TEXT NOT NULL DEFAULT '',
        url TEXT NOT NULL,
        version TEXT NOT NULL,
        name TEXT NOT NULL,
        expected_bytes INTEGER,
        content_type TEXT,
        checksum TEXT,
        state TEXT NOT NULL,
        path TEXT,
        bytes INTEGER,
        etag TEXT,
        sha256 TEXT,
        last_used REAL NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (asset_id, locale)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS asset_files_by_state ON asset_files (state)",
    "CREATE INDEX IF NOT EXISTS asset_files_by_name ON asset_files (name)",
    "CREATE INDEX IF NOT EXISTS asset_files_by_path ON asset_files (path)",
    "CREATE TABLE IF NOT EXISTS asset_pins (asset_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS asset_refs (
        source_id TEXT NOT NULL, asset_id TEXT NOT NULL,
        PRIMARY KEY (source_id, asset_id)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS asset_refs_by_asset ON asset_refs (asset_id)",
    "CREATE TABLE IF NOT EXISTS asset_settings (key TEXT PRIMARY KEY NOT NULL, value TEXT) "
    "WITHOUT ROWID",
)

COLUMNS = ("asset_id, locale, variant, url, version, name, expected_bytes, content_type, "
           "checksum, state, path, bytes, etag, sha256, last_used, error")

_CHUNK = 400  # ids bound per statement (two per id in some queries: under SQLite's 999)


@dataclass(frozen=True, slots=True)
class FileRow:
    """One row of ``asset_files``. ``locale`` is '' for a file the vendor does not localize."""

    asset_id: str
    locale: str
    variant: str
    url: str
    version: str
    name: str
    expected_bytes: int | None
    content_type: str | None
    checksum: str | None
    state: str
    path: str | None
    bytes: int | None
    etag: str | None
    sha256: str | None
    last_used: float
    error: str | None

    @property
    def key(self) -> tuple[str, str]:
        return self.asset_id, self.locale

    @property
    def current(self) -> bool:
        """Whether the file on disk is the version wanted."""
        return self.path is not None and self.path == self.name


def chunks(values: Sequence[str], size: int = _CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


def read_rows(conn: sqlite3.Connection, asset_ids: Sequence[str] | None = None,
              where: str = "", params: Sequence[object] = ()) -> list[FileRow]:
    """Rows of ``asset_ids`` (every row when None), optionally filtered by ``where``."""
    if asset_ids is None:
        sql = f"SELECT {COLUMNS} FROM asset_files" + (f" WHERE {where}" if where else "")
        return [FileRow(*row) for row in conn.execute(sql, params)]
    found: list[FileRow] = []
    for chunk in chunks(list(dict.fromkeys(asset_ids))):
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {COLUMNS} FROM asset_files WHERE asset_id IN ({marks})"
        sql += f" AND ({where})" if where else ""
        found.extend(FileRow(*row) for row in conn.execute(sql, [*chunk, *params]))
    return found


def read_setting(conn: sqlite3.Connection, key: str) -> str | None:
    """A stored setting; None when absent, or when the tables were never made."""
    try:
        row = conn.execute("SELECT value FROM asset_settings WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # no such table: no Cache with assets= opened it yet
        return None
    return None if row is None else str(row[0]) if row[0] is not None else None


def write_settings(conn: sqlite3.Connection, **values: str | None) -> None:
    """In the caller's write transaction."""
    conn.executemany("INSERT INTO asset_settings (key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     list(values.items()))
