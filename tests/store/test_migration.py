"""Schema versions 1 → 2 → 3 → 4 → 5 → 6: a store (or a bundled snapshot) written by a previous
localcache upgrades on open and ends exactly like a new store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localcache import Cache, Contentful
from localcache.model import StoreScope
from localcache.snapshot import create_snapshot
from localcache.store import schema
from localcache.store.database import Store

SCOPE = StoreScope("contentful", "space1", "master")

# Version 1 as localcache 0.1 wrote it (sqlite_master of a new store, verbatim).
_LINKS = """
    INSERT INTO links (source_id, field, locale, position, target_type, target_id)
    SELECT NEW.id, f.key, l.key, 0, json_extract(l.value, '$.sys.linkType'),
           json_extract(l.value, '$.sys.id')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l
     WHERE f.type = 'object' AND l.type = 'object'
       AND json_extract(l.value, '$.sys.type') = 'Link'
    UNION ALL
    SELECT NEW.id, f.key, l.key, a.key, json_extract(a.value, '$.sys.linkType'),
           json_extract(a.value, '$.sys.id')
      FROM json_each(NEW.raw, '$.fields') AS f, json_each(f.value) AS l, json_each(l.value) AS a
     WHERE f.type = 'object' AND l.type = 'array' AND a.type = 'object'
       AND json_extract(a.value, '$.sys.type') = 'Link';
"""
_TYPE = ("INSERT INTO entry_types (id, content_type) VALUES (NEW.id, NEW.content_type) "
         "ON CONFLICT(id) DO UPDATE SET content_type = excluded.content_type;")
_RECORD = ('"id" TEXT NOT NULL PRIMARY KEY, "revision" INTEGER NOT NULL, "created_at" TEXT, '
           '"updated_at" TEXT, "raw" TEXT NOT NULL, "fields" TEXT GENERATED ALWAYS AS '
           "(json_extract(raw, '$.fields')) VIRTUAL")
V1_SCHEMA = [
    f'CREATE TABLE "assets" ({_RECORD})',
    f'CREATE TABLE "entries" ({_RECORD}, "content_type" TEXT NOT NULL)',
    'CREATE INDEX "entryrecord_content_type" ON "entries" ("content_type")',
    'CREATE TABLE "entry_types" ("id" TEXT NOT NULL PRIMARY KEY, "content_type" TEXT NOT NULL)'
    " WITHOUT ROWID",
    'CREATE TABLE "links" ("source_id" TEXT NOT NULL, "field" TEXT NOT NULL, "locale" TEXT NOT '
    'NULL, "position" INTEGER NOT NULL, "target_type" TEXT NOT NULL, "target_id" TEXT NOT NULL,'
    ' PRIMARY KEY ("source_id", "field", "locale", "position"), FOREIGN KEY ("source_id") '
    'REFERENCES "entries" ("id") ON DELETE CASCADE) WITHOUT ROWID',
    'CREATE INDEX "linkrecord_source_id" ON "links" ("source_id")',
    'CREATE TABLE "locales" ("code" TEXT NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, '
    '"is_default" INTEGER NOT NULL, "fallback" TEXT, "optional" INTEGER NOT NULL)',
    f'CREATE TABLE "rebuild_assets" ({_RECORD})',
    f'CREATE TABLE "rebuild_entries" ({_RECORD}, "content_type" TEXT NOT NULL)',
    'CREATE INDEX "rebuildentry_content_type" ON "rebuild_entries" ("content_type")',
    'CREATE TABLE "sync_state" ("key" TEXT NOT NULL PRIMARY KEY, "value" TEXT)',
    "CREATE TRIGGER entries_after_insert AFTER INSERT ON entries BEGIN " + _TYPE + _LINKS
    + " END",
    "CREATE TRIGGER entries_after_update AFTER UPDATE OF raw, content_type ON entries BEGIN "
    + _TYPE + "DELETE FROM links WHERE source_id = OLD.id;" + _LINKS + " END",
]


def _document(entry_id: str, content_type: str, title: str, link: str | None) -> str:
    fields: dict[str, object] = {"title": {"en-US": title}}
    if link:
        fields["next"] = {"en-US": {"sys": {"type": "Link", "linkType": "Entry", "id": link}}}
    return json.dumps({"sys": {"id": entry_id, "type": "Entry", "revision": 1,
                               "createdAt": "2024-01-01T00:00:00.000Z",
                               "updatedAt": "2024-01-02T00:00:00.000Z",
                               "contentType": {"sys": {"id": content_type}}},
                       "fields": fields})


def make_v1_store(path: Path, entries: int = 12) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute("BEGIN")
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO locales VALUES ('en-US', 'English', 1, NULL, 0)")
    conn.executemany("INSERT INTO sync_state VALUES (?, ?)", [
        ("provider", "contentful"), ("space", "space1"), ("environment", "master"),
        ("token", "tok"), ("token_kind", "sync"), ("last_sync_at", "2024-01-03T00:00:00Z")])
    for n in range(entries):
        entry_id = f"e{n:02d}"
        kind = "article" if n % 3 else "author"
        conn.execute(
            "INSERT INTO entries (id, content_type, revision, created_at, updated_at, raw) "
            "VALUES (?, ?, 1, '2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', ?)",
            (entry_id, kind, _document(entry_id, kind, f"title {n}",
                                       f"e{n - 1:02d}" if n else None)))
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    conn.close()


def _schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {name: sql for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")}
    finally:
        conn.close()


def test_a_v1_store_upgrades_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    make_v1_store(path)
    assert "entryrecord_content_type" in _schema(path)
    with Cache.open(path) as cache:
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION == 8
        records = cache.entries("article")
        assert [r.id for r in records] == [f"e{n:02d}" for n in range(12) if n % 3]
        assert records[0].field("title") == "title 1"
        assert [r.id for r in cache.resolve(records[1], "next")] == ["e01"]
        assert cache.count("author") == 4
        assert [r.id for r in cache.entries("article", limit=2, offset=3)] == ["e05", "e07"]
        conn = cache._store.raw_connection()
        plan = [row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM entries WHERE content_type = ? ORDER BY id "
            "LIMIT 2 OFFSET 3", ("article",))]
        assert plan == ["SEARCH entries USING COVERING INDEX entries_content_type_id "
                        "(content_type=?)"]
    upgraded = _schema(path)
    assert "entryrecord_content_type" not in upgraded
    assert "rebuildentry_content_type" not in upgraded
    assert "entries_content_type_id" in upgraded
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_an_upgraded_store_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    make_v1_store(old, entries=0)
    Store(old, SCOPE).close()
    Store(new, SCOPE).close()
    assert _schema(old).keys() == _schema(new).keys()
    for name, sql in _schema(new).items():
        if name.startswith("entries_after_"):
            continue  # the triggers' text is the same statements, differently spaced
        assert _schema(old)[name] == sql, name


def test_a_v1_snapshot_seeds_an_upgraded_store(tmp_path: Path) -> None:
    """Snapshots carry the store's schema version inside the database: an app bundling one
    made by the previous localcache gets a store that upgrades as it opens."""
    source = tmp_path / "v1.sqlite3"
    make_v1_store(source)
    info = create_snapshot(source, tmp_path / "content.snap", library_version="0.1.0")
    assert info.counts == {"entries": 12, "assets": 0}
    target = tmp_path / "app" / "store.sqlite3"
    provider = Contentful("space1", "token", "master", base_url="http://127.0.0.1:9")
    with Cache(provider, path=target, snapshot=tmp_path / "content.snap") as cache:
        assert cache.seeded is not None
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        assert cache.count() == 12
        assert [r.id for r in cache.entries(where={"title": {"match": "TITLE 1"}})] == \
            ["e01", "e10", "e11"]
    assert "entries_content_type_id" in _schema(target)


# -- version 2 → 3: links for every vendor, the target index, content types -------------------

_V2_INDEX = "CREATE INDEX entries_content_type_id ON entries (content_type, id)"
# Shapes version 2's triggers did not derive: version 3 derives them for stored entries too.
_CONTENTSTACK_POST = json.dumps({
    "sys": {"id": "post", "type": "Entry", "revision": 1},
    "fields": {"authors": {"en-US": [{"uid": "e01", "_content_type_uid": "author"}]},
               "hero": {"en-US": {"uid": "pic", "url": "https://i.example/p.png",
                                  "filename": "p.png"}}}})
_KONTENT_ITEM = json.dumps({
    "sys": {"id": "k1", "type": "Entry", "revision": 0},
    "fields": {"related": {"en-US": {"type": "modular_content", "name": "R",
                                     "value": ["other"]}}},
    "vendor": {"en-US": {"payload": {"system": {"codename": "first"}}}}})


def make_v2_store(path: Path, entries: int = 12) -> None:
    make_v1_store(path, entries=0)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for name in ("entryrecord_content_type", "rebuildentry_content_type"):  # v2's indexes
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute(_V2_INDEX)
    for n in range(entries):
        entry_id = f"e{n:02d}"
        kind = "article" if n % 3 else "author"
        conn.execute(
            "INSERT INTO entries (id, content_type, revision, created_at, updated_at, raw) "
            "VALUES (?, ?, 1, '2024-01-01T00:00:00.000Z', '2024-01-02T00:00:00.000Z', ?)",
            (entry_id, kind, _document(entry_id, kind, f"title {n}",
                                       f"e{n - 1:02d}" if n else None)))
    conn.execute("INSERT INTO entries (id, content_type, revision, raw) VALUES "
                 "('post', 'blog', 1, ?), ('k1', 'article', 0, ?)",
                 (_CONTENTSTACK_POST, _KONTENT_ITEM))
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()


def _links(path: Path) -> list[tuple[str, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT source_id, field, locale, position, target_type, target_id "
                            "FROM links ORDER BY 1, 2, 3, 4").fetchall()
    finally:
        conn.close()


def test_a_v2_store_upgrades_on_open_and_derives_its_vendors_links(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    make_v2_store(path)
    before = _links(path)
    assert not any(row[0] in ("post", "k1") for row in before)     # v2 knew Contentful only
    assert "linkrecord_source_id" in _schema(path)
    with Cache.open(path) as cache:
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION == 8
        post = cache.entry("post")
        assert post is not None
        # Version 3 derived every vendor's shapes into the links table (the Contentstack
        # post's references were links there); from version 5 a Contentful store's table holds
        # Contentful links only. Resolving a field reads the record itself, any shape.
        assert [r.id for r in post.resolve("authors")] == ["e01"]  # type: ignore[union-attr]
        assert [r.id for r in cache.referrers("e01")] == ["e02"]
        assert [r.id for r in cache.referrers("k1")] == []
        assert [r.id for r in cache.referrers("e10")] == ["e11"]
    after = _links(path)
    assert [row for row in after if row[0] not in ("post", "k1")] == before  # unchanged
    assert [row for row in after if row[0] in ("post", "k1")] == []  # not Contentful shapes
    upgraded = _schema(path)
    assert "linkrecord_source_id" not in upgraded
    assert {"links_target", "entry_codenames", "entry_codenames_codename",
            "content_types"} <= upgraded.keys()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id, codename FROM entry_codenames").fetchall() == \
            [("k1", "first")]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_an_upgraded_v2_store_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    make_v2_store(old, entries=0)
    Store(old, SCOPE).close()
    Store(new, SCOPE).close()
    assert _schema(old) == _schema(new)


def test_a_v2_snapshot_seeds_an_upgraded_store(tmp_path: Path) -> None:
    source = tmp_path / "v2.sqlite3"
    make_v2_store(source)
    create_snapshot(source, tmp_path / "content.snap", library_version="0.2.0")
    target = tmp_path / "app" / "store.sqlite3"
    provider = Contentful("space1", "token", "master", base_url="http://127.0.0.1:9")
    with Cache(provider, path=target, snapshot=tmp_path / "content.snap") as cache:
        assert cache.seeded is not None
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        assert [r.id for r in cache.referrers("e03")] == ["e04"]
        assert [r.id for r in cache.referrers("pic")] == []  # a Contentstack shape, see above
    assert "links_target" in _schema(target)


# -- version 3 → 4: the search index keeps a table per locale ---------------------------------

# Version 3's search index, verbatim: one FTS5 table, a locale token on each row.
_V3_SEARCH = ("CREATE VIRTUAL TABLE search_index USING fts5(entry_id, locales, content_type, "
              "text, tokenize = 'unicode61 remove_diacritics 2', detail = 'full')")


def make_v3_store(path: Path, search: bool = True) -> None:
    """A version 2 store taken through version 3's own step; with ``search``, the index as
    version 3 kept it, holding a word ("stale") the entries no longer have."""
    from peewee import SqliteDatabase

    make_v2_store(path)
    db = SqliteDatabase(str(path))
    with db.atomic("IMMEDIATE"):
        schema.MIGRATIONS[2](db, None)  # type: ignore[arg-type]
        db.execute_sql("PRAGMA user_version = 3")
        if search:
            db.execute_sql(_V3_SEARCH)
            for n in range(12):
                db.execute_sql("INSERT INTO search_index VALUES (?, ?, ?, ?)", (
                    "x" + f"e{n:02d}".encode().hex(), "x" + b"en-US".hex(),
                    "x" + b"article".hex(), f"stale {n}"))
    db.close()


def test_a_v3_store_gets_its_search_index_built_again(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    make_v3_store(path)
    assert _schema(path)["search_index"] == _V3_SEARCH
    with Cache.open(path) as cache:  # a reader: the upgrade builds the index as it opens
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION == 8
        assert sorted(h.id for h in cache.search("title", limit=100)) == \
            [f"e{n:02d}" for n in range(12)]
        assert [h.id for h in cache.search("title 11")] == ["e11"]
        assert cache.search("stale") == []  # built from the entries, not the old rows
    upgraded = _schema(path)
    assert upgraded["search_index"].startswith("CREATE TABLE search_index")
    assert "search_text_" + b"en-US".hex() in upgraded
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_a_v3_store_without_search_stays_without(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    make_v3_store(old, search=False)
    Store(old, SCOPE).close()
    Store(new, SCOPE).close()
    assert "search_index" not in _schema(old)
    assert _schema(old).keys() == _schema(new).keys()


def test_a_v3_snapshot_seeds_a_store_that_searches_offline(tmp_path: Path) -> None:
    source = tmp_path / "v3.sqlite3"
    make_v3_store(source)
    create_snapshot(source, tmp_path / "content.snap", library_version="0.3.0")
    target = tmp_path / "app" / "store.sqlite3"
    provider = Contentful("space1", "token", "master", base_url="http://127.0.0.1:9")
    with Cache(provider, path=target, snapshot=tmp_path / "content.snap") as cache:
        assert cache.seeded is not None
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        assert [h.id for h in cache.search("title 4")] == ["e04"]
        assert cache.search("stale") == []


# -- version 4 → 5: one links trigger per vendor ----------------------------------------------


def make_v4_store(path: Path, *, then: Callable[[Any], None] | None = None) -> None:
    """A version 3 store (without search) taken through version 4's own step; ``then`` runs
    on its database in the same transaction (to take it further)."""
    from peewee import SqliteDatabase

    make_v3_store(path, search=False)
    db = SqliteDatabase(str(path))
    with db.atomic("IMMEDIATE"):
        schema.MIGRATIONS[3](db, None)  # type: ignore[arg-type]
        db.execute_sql("PRAGMA user_version = 4")
        if then is not None:
            then(db)
    db.close()


def test_a_v4_store_gets_a_links_trigger_per_vendor(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite3"
    make_v4_store(path)
    with Cache.open(path) as cache:
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        links = cache.stats()["links"]
    conn = sqlite3.connect(path)
    try:
        triggers = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        assert triggers == sorted(
            ["entries_after_insert", "entries_after_update"]
            + [f"entries_links_{v}_{w}" for v in ("contentful", "contentstack", "kontent", "any")
               for w in ("insert", "update")])
        assert conn.execute("SELECT count(*) FROM links").fetchone()[0] == links > 0
        conn.execute("UPDATE entries SET raw = raw")  # derived again: the same rows
        assert conn.execute("SELECT count(*) FROM links").fetchone()[0] == links
    finally:
        conn.close()


# -- version 5 → 6: Contentful's links derived in one walk of the entry -----------------------


def _as_version_5(db: Any) -> None:
    """Version 5's own step, with its Contentful triggers as it wrote them: two walks of the
    entry."""
    from localcache.store.links import CONTENTFUL_LINKS

    schema.MIGRATIONS[4](db, None)
    for when, on in (("insert", "AFTER INSERT"), ("update", "AFTER UPDATE OF raw")):
        db.execute_sql(f"DROP TRIGGER entries_links_contentful_{when}")
        delete = "DELETE FROM links WHERE source_id = OLD.id; " if when == "update" else ""
        db.execute_sql(
            f"CREATE TRIGGER entries_links_contentful_{when} {on} ON entries WHEN "
            "(SELECT value FROM sync_state WHERE key = 'provider') = 'contentful' BEGIN "
            f"{delete}INSERT OR IGNORE INTO links (source_id, field, locale, position, "
            f"target_type, target_id) {CONTENTFUL_LINKS}; END")
    db.execute_sql("PRAGMA user_version = 5")


def test_a_v5_store_gets_the_one_pass_links_triggers(tmp_path: Path) -> None:
    path = tmp_path / "v5.sqlite3"
    make_v4_store(path, then=_as_version_5)
    conn = sqlite3.connect(path)
    try:
        before = sorted(conn.execute("SELECT * FROM links"))
    finally:
        conn.close()
    assert before and "json_array" not in _schema(path)["entries_links_contentful_insert"]
    with Cache.open(path) as cache:
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
    assert "json_array" in _schema(path)["entries_links_contentful_update"]
    conn = sqlite3.connect(path)
    try:
        assert sorted(conn.execute("SELECT * FROM links")) == before  # nothing derived again
        conn.execute("DELETE FROM links")
        conn.execute("UPDATE entries SET raw = raw")  # derived by the new triggers: the same
        assert sorted(conn.execute("SELECT * FROM links")) == before
    finally:
        conn.close()


# -- version 6 → 7: the search index keeps no copy of the text --------------------------------

_V6_TABLE = ("CREATE VIRTUAL TABLE {table} USING fts5(text, tokenize = 'unicode61 "
             "remove_diacritics 2', detail = 'full')")


def _as_version_6(db: Any) -> None:
    """Versions 4 to 6's own steps, then the search index as version 6 kept it: each locale's
    table with a copy of the text, here a word ("stale") the entries do not have."""
    for step in (3, 4, 5):
        schema.MIGRATIONS[step](db, None)
    tables = [r[0] for r in db.execute_sql(
        "SELECT name FROM sqlite_master WHERE name GLOB 'search_text_*' AND sql IS NOT NULL "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    assert tables, "the version 4 step built the index"
    rows = [r[0] for r in db.execute_sql("SELECT row FROM search_index")]
    for table in tables:
        db.execute_sql(f"DROP TABLE {table}")
        db.execute_sql(_V6_TABLE.format(table=table))
        for row in rows:
            db.execute_sql(f"INSERT INTO {table} (rowid, text) VALUES (?, ?)",
                           (row, f"stale {row}"))
    db.execute_sql("PRAGMA user_version = 6")


def test_a_v6_search_index_is_built_again_without_its_copy_of_the_text(tmp_path: Path) -> None:
    from peewee import SqliteDatabase

    path = tmp_path / "v6.sqlite3"
    make_v3_store(path)
    db = SqliteDatabase(str(path))
    with db.atomic("IMMEDIATE"):
        _as_version_6(db)
    db.close()
    assert "content = ''" not in _schema(path)["search_text_" + b"en-US".hex()]
    with Cache.open(path) as cache:
        assert cache.stats()["schema_version"] == schema.SCHEMA_VERSION
        assert cache.search("stale") == []  # built from the entries, not the old copy
        hits = cache.search("title 11")
        assert [h.id for h in hits] == ["e11"] and "[11]" in hits[0].snippet
    assert "content = ''" in _schema(path)["search_text_" + b"en-US".hex()]
