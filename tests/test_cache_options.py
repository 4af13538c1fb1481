"""Cache options an app sets on open: hot-field indexes, and the content types it reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from support import TOKEN, article

from localcache import Cache, Contentful, ContentTypeInfo


def _hot_indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'lc_hot_%'")}
    finally:
        conn.close()


def _cache(emulator: Any, path: Path, **options: Any) -> Cache:
    provider = Contentful(emulator.space.space_id, TOKEN, base_url=emulator.base_url)
    return Cache(provider, path=path, **options)


def test_declared_hot_fields_are_indexed_and_dropped_when_undeclared(
        emulator: Any, store_path: Path) -> None:
    for n in range(5):
        emulator.space.publish_entry(f"e{n}", "article", article(f"title {n}"))
    with _cache(emulator, store_path, indexes={"article": ["title"]}) as cache:
        cache.sync()  # the first sync brings the locales the index needs
        assert [r.id for r in cache.entries("article", where={"title": "title 3"})] == ["e3"]
        built = _hot_indexes(store_path)
        assert len(built) == len(cache.locales()) >= 2  # one per locale's fallback chain
    with _cache(emulator, store_path, indexes={"article": ["title"]}) as cache:
        assert _hot_indexes(store_path) == built  # kept as declared
    with _cache(emulator, store_path) as cache:
        assert _hot_indexes(store_path) == set()  # no longer declared: dropped on open
        assert cache.count("article", where={"title": "title 3"}) == 1


def test_content_types_as_the_space_defines_them(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("one"))
    with _cache(emulator, store_path) as cache:
        assert cache.content_types() == []
        cache.sync()
        (article_type,) = cache.content_types()
        assert isinstance(article_type, ContentTypeInfo)
        assert article_type.id == "article" and article_type.display_field == "title"
        assert [f.id for f in article_type.fields] == ["title", "body", "related", "image"]
        assert article_type.field("image") is not None
        assert article_type.field("image").localized is False
        assert cache.content_type("article") == article_type
        assert cache.content_type("nope") is None
        record = cache.entry("e1")
        assert record.field(article_type.display_field) == "one"
