"""Opening a store file: version and identity checks before any write, pragmas, migration."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from localcache import (
    Cache,
    Contentful,
    SchemaVersionError,
    StoreError,
    StoreMismatchError,
)
from localcache.model import StoreScope
from localcache.store import schema
from localcache.store.database import Store

SCOPE = StoreScope("contentful", "space1", "master")
TABLES = {"entries", "assets", "links", "entry_types", "locales", "sync_state"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_for(path: Path, space: str = "space1", environment: str = "master") -> Cache:
    # No network I/O: a Cache only opens its store until sync() is called.
    return Cache(Contentful(space, "token", environment, base_url="http://127.0.0.1:9"),
                 path=path)


def pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def tables(path: Path) -> set[str]:
    conn = read_only(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def bump_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


# -- refused files, left as they were ------------------------------------------------------------


def test_newer_schema_version_is_refused_and_left_untouched(store_path: Path) -> None:
    with cache_for(store_path):
        pass
    bump_version(store_path, schema.SCHEMA_VERSION + 1)
    before = digest(store_path)
    with pytest.raises(SchemaVersionError) as raised:
        cache_for(store_path)
    assert str(schema.SCHEMA_VERSION + 1) in str(raised.value)
    with pytest.raises(SchemaVersionError):
        Store(store_path, SCOPE)
    assert digest(store_path) == before
    conn = read_only(store_path)
    try:
        assert pragma(conn, "user_version") == schema.SCHEMA_VERSION + 1
        assert pragma(conn, "application_id") == schema.APPLICATION_ID
    finally:
        conn.close()


def test_newer_schema_in_rollback_journal_mode_is_not_switched_to_wal(store_path: Path) -> None:
    # A newer localcache might not use WAL: even switching the journal mode would alter it.
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 5}")
    conn.execute("CREATE TABLE future_things (id TEXT PRIMARY KEY, payload BLOB)")
    conn.execute("INSERT INTO future_things VALUES ('a', x'00ff')")
    conn.commit()
    conn.close()
    before = digest(store_path)
    with pytest.raises(SchemaVersionError):
        cache_for(store_path)
    assert digest(store_path) == before
    conn = read_only(store_path)
    try:
        assert pragma(conn, "journal_mode") == "delete"
    finally:
        conn.close()
    assert not Path(f"{store_path}-wal").exists()


@pytest.mark.parametrize("application_id", [0, 0x12345678])
def test_foreign_sqlite_file_is_refused(store_path: Path, application_id: int) -> None:
    conn = sqlite3.connect(store_path)
    conn.execute(f"PRAGMA application_id = {application_id}")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('mine')")
    conn.commit()
    conn.close()
    before = digest(store_path)
    with pytest.raises(StoreError) as raised:
        cache_for(store_path)
    assert type(raised.value) is StoreError
    assert "not a localcache store" in str(raised.value)
    assert digest(store_path) == before
    assert tables(store_path) == {"notes"}


def test_sqlite_file_of_another_application_is_refused_even_when_empty(store_path: Path) -> None:
    conn = sqlite3.connect(store_path)
    conn.execute("PRAGMA application_id = 7")
    conn.commit()
    conn.close()
    before = digest(store_path)
    with pytest.raises(StoreError) as raised:
        cache_for(store_path)
    assert type(raised.value) is StoreError
    assert digest(store_path) == before


@pytest.mark.parametrize("content", [
    b"hello",
    b"not a database\n" * 500,
    b"SQLite format 3\x00" + b"\xff" * 4080,
    bytes(range(256)) * 32,
], ids=["short", "text", "bad-header", "binary"])
def test_garbage_file_is_refused(store_path: Path, content: bytes) -> None:
    store_path.write_bytes(content)
    with pytest.raises(StoreError) as raised:
        cache_for(store_path)
    assert not isinstance(raised.value, (SchemaVersionError, StoreMismatchError))
    assert str(store_path) in str(raised.value)
    assert store_path.read_bytes() == content


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        cache_for(tmp_path)


# -- scope ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("space,environment", [("space2", "master"), ("space1", "staging")])
def test_store_of_another_space_is_refused(store_path: Path, space: str,
                                           environment: str) -> None:
    with cache_for(store_path) as cache:
        assert cache.stats()["space"] == "space1"
    with pytest.raises(StoreMismatchError) as raised:
        cache_for(store_path, space, environment)
    assert "space1" in str(raised.value)
    with cache_for(store_path) as cache:  # still the first space's store
        stats = cache.stats()
    assert (stats["space"], stats["environment"]) == ("space1", "master")


# -- a created store -----------------------------------------------------------------------------


def test_created_store_has_its_pragmas(store_path: Path) -> None:
    store = Store(store_path, SCOPE)
    try:
        conn = store.raw_connection()
        assert pragma(conn, "journal_mode") == "wal"
        assert pragma(conn, "synchronous") == 1  # NORMAL
        assert pragma(conn, "foreign_keys") == 1
        assert pragma(conn, "page_size") == schema.PAGE_SIZE
        assert pragma(conn, "user_version") == schema.SCHEMA_VERSION
        assert pragma(conn, "application_id") == schema.APPLICATION_ID
    finally:
        store.close()
    # The file-level settings persist for any other connection.
    conn = read_only(store_path)
    try:
        assert pragma(conn, "journal_mode") == "wal"
        assert pragma(conn, "page_size") == schema.PAGE_SIZE
        assert pragma(conn, "user_version") == schema.SCHEMA_VERSION
        assert pragma(conn, "application_id") == schema.APPLICATION_ID
    finally:
        conn.close()
    assert tables(store_path) >= TABLES
    assert os.path.getsize(store_path) % schema.PAGE_SIZE == 0


def test_reopened_store_connection_has_its_pragmas(store_path: Path) -> None:
    Store(store_path, SCOPE).close()
    store = Store(store_path, SCOPE)
    try:
        conn = store.raw_connection()
        assert pragma(conn, "synchronous") == 1
        assert pragma(conn, "foreign_keys") == 1
        assert pragma(conn, "journal_mode") == "wal"
    finally:
        store.close()


def test_empty_file_is_migrated_to_the_current_version(store_path: Path) -> None:
    store_path.write_bytes(b"")
    store = Store(store_path, SCOPE)
    try:
        conn = store.raw_connection()
        assert pragma(conn, "user_version") == schema.SCHEMA_VERSION
        assert pragma(conn, "page_size") == schema.PAGE_SIZE
        assert store.scope == SCOPE
        assert store.token() is None
    finally:
        store.close()
    assert tables(store_path) >= TABLES
    conn = read_only(store_path)
    try:
        assert pragma(conn, "application_id") == schema.APPLICATION_ID
        assert pragma(conn, "user_version") == schema.SCHEMA_VERSION
    finally:
        conn.close()
    with cache_for(store_path) as cache:  # and it opens as a normal store afterwards
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        assert cache.entries() == []
