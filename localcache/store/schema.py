"""Schema versions, connection settings and the migration path.

A store file carries ``PRAGMA application_id`` (so a stranger's SQLite file is not mistaken for
a store) and ``PRAGMA user_version`` (its schema version). Both are read through a read-only
connection *before* anything could write: a file from a newer localcache is refused and left
byte for byte as it was, because even switching it to WAL would alter it.

Migrations are steps ``version -> version + 1``, each run inside one transaction; version 0 is
an empty file. Each step makes the schema of its version, so an old file and a new one end
up alike:

- 1: the tables, the triggers deriving links and entry types, an index on content_type;
- 2: lists of a content type page through ``(content_type, id)``, an index that covers the
  default order, instead of sorting the whole type for every page (issue 10); the shadow
  table's content_type index, which nothing reads, is gone.
- 3: links for all three vendors (``links.py``: Contentstack references and asset fields,
  Kontent.ai linked items by codename, with the ``entry_codenames`` index); an index on the
  link target, so a reverse lookup costs O(referrers); the ``source_id`` index is gone (the
  primary key starts with it); the content types table is part of the schema. The links and
  codenames of the entries already stored are derived again.
- 4: the search index (``search.py``) keeps a table per locale, so a query reads one locale's
  lists, and ``search_index`` maps entries to their rows there. A store whose index has the
  earlier layout (one FTS5 table with a locale token on each row) gets it built again in the
  new one, from the stored entries; a store without an index stays without.
- 5: the links are derived by one trigger per vendor (the store's recorded provider), so an
  entry's JSON is walked for its own vendor's link shapes only (an object field that looks
  like another vendor's link is no longer one); the stored entries' links are derived again.
- 6: the Contentful links trigger walks an entry once; the same rows, nothing derived again.
- 7: the search index's tables keep no copy of the text (FTS5 ``content=''``, see
  ``search.py``): an index with one is built again from the stored entries, once, on the
  first open (about 10 s for 100,000 entries in 3 locales).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peewee import Database

from ..errors import SchemaVersionError, StoreCorruptError, StoreError
from .content_types import CONTENT_TYPES_DDL
from .links import (
    ANY_LINKS_OF_NEW,
    CODENAME_TRIGGER_SQL,
    CODENAMES_DDL,
    CONTENTFUL_LINKS,
    LINK_ROWS_OF_NEW,
    LINKS_OF_NEW,
    VENDOR_LINKS_OF_NEW,
    links_update_body,
)
from .models import BoundModels
from .search import upgrade_legacy_index, upgrade_stored_text_index

__all__ = [
    "APPLICATION_ID",
    "PAGE_SIZE",
    "SCHEMA_VERSION",
    "FileHeader",
    "connection_pragmas",
    "migrate",
    "read_header",
]

SCHEMA_VERSION = 8
APPLICATION_ID = 0x4C434348  # "LCCH"
# Measured with benchmarks/page_size.py (20k records of ~1.5 KB): 8 KiB pages write 20% faster
# than 4 KiB and make a smaller file; 16 KiB wrote 3% faster still but read 12% slower.
PAGE_SIZE = 8192
BUSY_TIMEOUT_MS = 30_000
WAL_AUTOCHECKPOINT_PAGES = 10_000


def connection_pragmas() -> list[tuple[str, Any]]:
    """Pragmas for every connection; page_size first, so it applies before the first table."""
    return [
        ("page_size", PAGE_SIZE),
        ("journal_mode", "wal"),
        ("synchronous", "normal"),
        ("foreign_keys", 1),
        ("busy_timeout", BUSY_TIMEOUT_MS),
        ("cache_size", -8_000),
        ("temp_store", "memory"),
        # Checkpoint every ~80 MB of WAL rather than SQLite's 4-8 MB: an initial sync writes
        # megabytes per page, and checkpointing (with its fsync) every page or two cost ~8% of
        # an initial sync. The WAL file is cut back to 64 MB after each checkpoint.
        ("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES),
        ("journal_size_limit", 64 * 1024 * 1024),
    ]


@dataclass(frozen=True, slots=True)
class FileHeader:
    exists: bool
    application_id: int = 0
    user_version: int = 0


def read_header(path: Path) -> FileHeader:
    """Read the version pragmas without writing anything to the file."""
    if not path.exists():
        return FileHeader(exists=False)
    if path.is_dir():
        raise StoreError(f"store path {str(path)!r} is a directory, not a file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise store_error(path, exc) from None
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as exc:
        raise store_error(path, exc) from None
    finally:
        conn.close()
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
        raise StoreError(
            f"{str(path)!r} is an SQLite file but not a localcache store; choose another path"
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"store {str(path)!r} has schema version {version}, newer than this localcache "
            f"understands ({SCHEMA_VERSION}); upgrade localcache or use another path. "
            "The file was not changed."
        )
    return FileHeader(exists=True, application_id=app_id, user_version=version)


# Links and the id → content type index are derived from each entry's stored document by
# triggers: SQLite walks the JSON in C while the GIL is free for the next page's fetch, and the
# derived rows can never disagree with the entry they came from. Version 1's link is a
# Contentful Link object as a field's value in a locale, or an element of an array there;
# version 3 derives every vendor's links (links.py).
_V1_LINKS_OF_NEW = (
    "INSERT INTO links (source_id, field, locale, position, target_type, target_id) "
    + CONTENTFUL_LINKS + ";"
)
_TYPE_OF_NEW = (
    "INSERT INTO entry_types (id, content_type) VALUES (NEW.id, NEW.content_type) "
    "ON CONFLICT(id) DO UPDATE SET content_type = excluded.content_type;"
)


def _triggers(links_of_new: str) -> list[str]:
    return [
        "CREATE TRIGGER entries_after_insert AFTER INSERT ON entries BEGIN "
        + _TYPE_OF_NEW + links_of_new + " END",
        "CREATE TRIGGER entries_after_update AFTER UPDATE OF raw, content_type ON entries "
        "BEGIN " + _TYPE_OF_NEW + "DELETE FROM links WHERE source_id = OLD.id;"
        + links_of_new + " END",
    ]


_V1_TRIGGERS = _triggers(_V1_LINKS_OF_NEW)
_V3_TRIGGERS = _triggers(LINKS_OF_NEW + CODENAME_TRIGGER_SQL)

_VENDOR = "(SELECT value FROM sync_state WHERE key = 'provider')"


def _v5_triggers(version: int = 5) -> list[str]:
    """Version 5: the id → content type index for every entry; the links (and Kontent.ai's
    codenames) by one trigger per vendor, chosen by the store's recorded provider, so an entry's
    JSON is walked for its own vendor's shapes only. Exactly one vendor trigger fires for a
    row: a store with no provider recorded (or another) takes all three vendors' queries.

    From version 8, an update writes only what it changes: the content type index when the
    content type changed (the entries upsert no longer sets it otherwise: see ``apply.py``),
    the links the document gained or lost (:func:`links_update_body`), a codename that
    changed. A delta sync of 10,000 edits on a 100k store wrote a fifth less."""
    bodies = dict(VENDOR_LINKS_OF_NEW)
    bodies["any"] = ANY_LINKS_OF_NEW
    if version >= 8:
        updates = {vendor: links_update_body(LINK_ROWS_OF_NEW[vendor]) for vendor in bodies}
        type_update = ("AFTER UPDATE OF content_type ON entries "
                       "WHEN OLD.content_type IS NOT NEW.content_type")
    else:
        updates = {vendor: f"DELETE FROM links WHERE source_id = OLD.id; {body}"
                   for vendor, body in bodies.items()}
        type_update = "AFTER UPDATE OF raw, content_type ON entries"
    for vendor in ("kontent", "any"):
        bodies[vendor] += CODENAME_TRIGGER_SQL
        updates[vendor] += CODENAME_TRIGGER_SQL
    known = ", ".join(f"'{vendor}'" for vendor in VENDOR_LINKS_OF_NEW)
    conditions = {vendor: f"{_VENDOR} = '{vendor}'" for vendor in VENDOR_LINKS_OF_NEW}
    conditions["any"] = f"coalesce({_VENDOR}, '') NOT IN ({known})"
    statements = [
        f"CREATE TRIGGER entries_after_insert AFTER INSERT ON entries BEGIN {_TYPE_OF_NEW} END",
        f"CREATE TRIGGER entries_after_update {type_update} BEGIN {_TYPE_OF_NEW} END",
    ]
    for vendor, body in bodies.items():
        statements += [
            f"CREATE TRIGGER entries_links_{vendor}_insert AFTER INSERT ON entries "
            f"WHEN {conditions[vendor]} BEGIN {body} END",
            f"CREATE TRIGGER entries_links_{vendor}_update AFTER UPDATE OF raw ON entries "
            f"WHEN {conditions[vendor]} BEGIN {updates[vendor]} END",
        ]
    return statements


def store_error(path: Path, exc: Exception) -> StoreError:
    """The one place SQLite's errors become localcache's, by what the user can do about them."""
    text = str(exc)
    lowered = text.lower()
    where = f"store {str(path)!r}"
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StoreCorruptError(
            f"{where} is damaged ({text}); it was not changed. Open the Cache with "
            "rebuild_if_corrupt=True to move it aside and rebuild it with a fresh sync")
    if "full" in lowered:
        return StoreError(f"{where}: the disk is full; free space and sync again")
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{where} is read-only; choose a writable location")
    if "unable to open" in lowered:
        return StoreError(f"{where} cannot be opened ({text}); check that its directory "
                          "exists and is readable and writable")
    return StoreError(f"{where}: {text}")


# Version 1's content_type indexes, by the names peewee gave them; version 2 drops them.
_V1_INDEXES = {
    "entryrecord_content_type": 'CREATE INDEX "entryrecord_content_type" '
                                'ON "entries" ("content_type")',
    "rebuildentry_content_type": 'CREATE INDEX "rebuildentry_content_type" '
                                 'ON "rebuild_entries" ("content_type")',
}


def _create_v1(db: Database, models: BoundModels) -> None:
    db.create_tables(models.all())
    for statement in [*_V1_TRIGGERS, *_V1_INDEXES.values()]:
        _sql(db, statement)


def _upgrade_v2(db: Database, models: BoundModels) -> None:
    for name in _V1_INDEXES:
        _sql(db, f'DROP INDEX IF EXISTS "{name}"')
    _sql(db, "CREATE INDEX IF NOT EXISTS entries_content_type_id ON entries (content_type, id)")


def _upgrade_v3(db: Database, models: BoundModels) -> None:
    for trigger in ("entries_after_insert", "entries_after_update"):
        _sql(db, f"DROP TRIGGER IF EXISTS {trigger}")
    _sql(db, CODENAMES_DDL)
    _sql(db, "CREATE INDEX IF NOT EXISTS entry_codenames_codename "
             "ON entry_codenames (codename)")
    # A links row is found by its target; the index holds the primary key (source_id first)
    # too, so a reverse lookup never reads the table.
    _sql(db, "CREATE INDEX IF NOT EXISTS links_target ON links (target_id, target_type)")
    _sql(db, 'DROP INDEX IF EXISTS "linkrecord_source_id"')
    _sql(db, CONTENT_TYPES_DDL)
    for statement in _V3_TRIGGERS:
        _sql(db, statement)
    # Derive the stored entries' links and codenames again: the update trigger rewrites them.
    _sql(db, "UPDATE entries SET raw = raw")


def _upgrade_v4(db: Database, models: BoundModels) -> None:
    upgrade_legacy_index(db.connection())  # type: ignore[no-untyped-call]


def _upgrade_v5(db: Database, models: BoundModels) -> None:
    for trigger in ("entries_after_insert", "entries_after_update"):
        _sql(db, f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in _v5_triggers():
        _sql(db, statement)
    # Derive the links again: another vendor's shapes in this store's fields are not links.
    _sql(db, "DELETE FROM links")
    _sql(db, "UPDATE entries SET raw = raw")


def _upgrade_v6(db: Database, models: BoundModels) -> None:
    """The links triggers walk a Contentful entry once (``CONTENTFUL_LINKS_ONE_PASS``): the
    same rows, so nothing is derived again."""
    _replace_triggers(db, _v5_triggers(), "entries_links_")


def _replace_triggers(db: Database, statements: list[str], prefix: str) -> None:
    for statement in statements:
        name = statement.split()[2]
        if name.startswith(prefix):
            _sql(db, f"DROP TRIGGER IF EXISTS {name}")
            _sql(db, statement)


def _upgrade_v7(db: Database, models: BoundModels) -> None:
    """The search index keeps no copy of the text (``content=''``): one that does is built
    again from the stored entries; a store without an index stays without."""
    upgrade_stored_text_index(db.connection())  # type: ignore[no-untyped-call]


def _upgrade_v8(db: Database, models: BoundModels) -> None:
    """Updates write only what they change (:func:`_v5_triggers`): the same rows, so nothing
    is derived again."""
    _replace_triggers(db, _v5_triggers(8), "entries_")


MIGRATIONS: dict[int, Callable[[Database, BoundModels], None]] = {
    0: _create_v1,
    1: _upgrade_v2,
    2: _upgrade_v3,
    3: _upgrade_v4,
    4: _upgrade_v5,
    5: _upgrade_v6,
    6: _upgrade_v7,
    7: _upgrade_v8,
}


def _sql(db: Database, statement: str) -> Any:
    return db.execute_sql(statement)  # type: ignore[no-untyped-call]


def migrate(db: Database, models: BoundModels) -> int:
    """Bring the open store up to SCHEMA_VERSION, one step per transaction."""
    version = int(_sql(db, "PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:  # raced with a newer writer since read_header
        raise SchemaVersionError(
            f"store schema version {version} is newer than {SCHEMA_VERSION}; not changed"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS[version]
        with db.atomic("IMMEDIATE"):
            step(db, models)
            version += 1
            _sql(db, f"PRAGMA application_id = {APPLICATION_ID}")
            _sql(db, f"PRAGMA user_version = {version}")
    return version
