"""Content type definitions for every vendor, stored by Cache.sync() from the emulator.

Each sync lists the vendor's content types at its start and stores the whole set with its first
page; what a page reports (Contentstack's ``content_type_deleted``, Kontent.ai v2's ``types``)
is applied in that page's transaction. Read back through store/content_types.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localcache import Cache, Contentful, Contentstack, Kontent
from localcache.emulator import Emulator, Locale, Project, Space, Stack
from localcache.model import ContentTypeInfo, FieldInfo
from localcache.providers import contentful as contentful_provider
from localcache.store.content_types import (
    delete_content_type,
    read_content_type,
    read_content_types,
    replace_content_types,
)
from localcache.store.database import Store

TOKEN = "vendor-types-token"
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


def _types(cache: Cache) -> dict[str, ContentTypeInfo]:
    with cache._store.reading():
        return {info.id: info for info in read_content_types(cache._store.raw_connection())}


def _one(cache: Cache, type_id: str) -> ContentTypeInfo | None:
    with cache._store.reading():
        return read_content_type(cache._store.raw_connection(), type_id)


# -- Contentful -----------------------------------------------------------------------------

def _space() -> Space:
    space = Space("typespace", "master", locales=[Locale("en-US", default=True),
                                                  Locale("fr-FR", fallback="en-US")])
    space.add_content_type("article", name="Article", display_field="title", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": True, "required": True},
        {"id": "image", "name": "Image", "type": "Link", "linkType": "Asset"},
        {"id": "secret", "name": "Secret", "type": "Symbol", "omitted": True},
    ])
    space.add_content_type("tag", name="Tag", fields=[{"id": "label", "type": "Symbol"}])
    space.publish_entry("a1", "article", {"title": {"en-US": "Hello"}})
    return space


def _contentful(emu: Emulator) -> Contentful:
    return Contentful(emu.space.space_id, TOKEN, "master", base_url=emu.base_url)


def test_contentful_types_are_stored_and_follow_changes(tmp_path: Path) -> None:
    space = _space()
    with Emulator(space, access_token=TOKEN) as emu, \
            Cache(_contentful(emu), path=tmp_path / "cf.sqlite3") as cache:
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["article", "tag"]
        article = types["article"]
        assert (article.name, article.display_field) == ("Article", "title")
        # The omitted field is not delivered, so it is no field of the stored type.
        assert article.fields == (
            FieldInfo("title", "Title", "Symbol", localized=True, required=True),
            FieldInfo("image", "Image", "Link", localized=False))
        assert article.field("image") is not None and not article.field("image").localized
        assert article.raw["fields"][1]["linkType"] == "Asset"       # the definition as sent
        assert types["tag"].display_field is None
        assert types["tag"].fields == (FieldInfo("label", "label", "Symbol", localized=False),)

        space.add_content_type("article", name="Story", display_field="body", fields=[
            {"id": "title", "type": "Symbol", "localized": True},
            {"id": "body", "type": "Text", "localized": True}])
        space.delete_content_type("tag")
        space.add_content_type("page", name="Page", fields=[{"id": "slug", "type": "Symbol"}])
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["article", "page"]
        assert (types["article"].name, types["article"].display_field) == ("Story", "body")
        assert [f.id for f in types["article"].fields] == ["title", "body"]
        assert _one(cache, "tag") is None


def test_contentful_types_are_paged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contentful_provider, "CONTENT_TYPES_LIMIT", 2)
    space = _space()
    for number in range(3):
        space.add_content_type(f"extra{number}", name=f"Extra {number}",
                               fields=[{"id": "x", "type": "Symbol"}])
    with Emulator(space, access_token=TOKEN) as emu, \
            Cache(_contentful(emu), path=tmp_path / "cf.sqlite3") as cache:
        cache.sync()                                   # three pages of two
        assert sorted(_types(cache)) == ["article", "extra0", "extra1", "extra2", "tag"]


# -- Contentstack ---------------------------------------------------------------------------

def _stack() -> Stack:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    stack.add_content_type("blog", "Blog post", [
        {"uid": "headline", "display_name": "Headline", "data_type": "text", "mandatory": True},
        {"uid": "body", "display_name": "Body", "data_type": "text"},
        {"uid": "cover", "display_name": "Cover", "data_type": "file", "non_localizable": True},
    ], title_field="headline")
    stack.publish_entry("b1", "blog", "en-us", {"headline": "Hi"})
    stack.publish_entry("n1", "news", "en-us", {"title": "Implicit type"})
    return stack


def _contentstack(emu: Emulator) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url)


def test_contentstack_types_are_stored_and_removed_on_deletion(tmp_path: Path) -> None:
    stack = _stack()
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["blog", "news"]
        blog = types["blog"]
        assert (blog.name, blog.display_field) == ("Blog post", "headline")
        assert blog.fields == (
            FieldInfo("headline", "Headline", "text", localized=True, required=True),
            FieldInfo("body", "Body", "text"),
            FieldInfo("cover", "Cover", "file", localized=False),
        )
        assert blog.field("cover") is not None and not blog.field("cover").localized
        assert types["news"].display_field == "title"     # every entry has a title field

        stack.delete_content_type("news")
        result = cache.sync()
        assert result.entries.deleted == 1
        assert sorted(_types(cache)) == ["blog"]


def test_contentstack_deletion_after_the_listing_removes_the_type(tmp_path: Path) -> None:
    """The type goes between the listing at the start of the sync and the sync page that
    reports its ``content_type_deleted``: the page removes it."""
    stack = _stack()
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()

        def delete_news_once(path: str, query: dict[str, list[str]]) -> None:
            emu.faults.on_request = None
            stack.delete_content_type("news")          # the listing already named it

        emu.faults.on_request = delete_news_once        # sync requests only
        cache.sync()
        assert sorted(_types(cache)) == ["blog"]


def test_contentstack_type_deleted_and_created_again_stays(tmp_path: Path) -> None:
    """A delta that reports the deletion of a type created again since (under the same uid)
    keeps the new definition the listing gave."""
    stack = _stack()
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        stack.delete_content_type("news")
        stack.add_content_type("news", "News again")
        stack.publish_entry("n2", "news", "en-us", {"title": "Back"})
        cache.sync()
        news = _one(cache, "news")
        assert news is not None and news.name == "News again"
        assert [r.id for r in cache.entries(content_type="news")] == ["n2"]


def test_contentstack_types_are_paged(tmp_path: Path) -> None:
    stack = _stack()
    for number in range(105):                          # the CDA returns 100 at most
        stack.add_content_type(f"type_{number:03d}")
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        assert len(_types(cache)) == 107


# -- Kontent.ai -----------------------------------------------------------------------------

def _project() -> Project:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"summary": "rich_text", "title": "text",
                                          "subtitle": "text"}, name="Article")
    project.add_type("author", elements={"photo": "asset", "name": "text"})
    project.add_type("gallery", elements={"images": "asset"})
    project.upsert_variant("i1", "item_1", "article", "default", {"title": "Hello"})
    return project


def _kontent(emu: Emulator, version: int = 2) -> Kontent:
    return Kontent(ENV_ID, base_url=emu.base_url, api_version=version)


@pytest.mark.parametrize("version", [1, 2])
def test_kontent_types_are_stored_and_follow_changes(tmp_path: Path, version: int) -> None:
    project = _project()
    with Emulator(project, access_token=None) as emu, \
            Cache(_kontent(emu, version), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["article", "author", "gallery"]
        article = types["article"]
        assert article.name == "Article"
        assert article.fields == (FieldInfo("summary", "Summary", "rich_text"),
                                  FieldInfo("title", "Title", "text"),
                                  FieldInfo("subtitle", "Subtitle", "text"))
        assert all(f.localized for f in article.fields)  # Kontent.ai localizes every element
        # The display field: the text element "title", else the first text element, else none.
        assert article.display_field == "title"
        assert types["author"].display_field == "name"
        assert types["gallery"].display_field is None
        project.add_type("author", elements={"name": "text", "bio": "rich_text"})
        project.delete_type("gallery")
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["article", "author"]
        assert [f.id for f in types["author"].fields] == ["name", "bio"]


def test_kontent_v2_types_changes_in_a_sync_page_are_applied(tmp_path: Path) -> None:
    """Types changed after the listing at the start of the sync arrive in the sync page's
    ``types`` array; the page stores them (deletions too), with its token."""
    project = _project()
    with Emulator(project, access_token=None) as emu, \
            Cache(_kontent(emu), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()

        def change_types(path: str, query: dict[str, list[str]]) -> None:
            if path.endswith("/sync"):                 # after the /types listing
                emu.faults.on_request = None
                project.add_type("author", elements={"name": "text", "bio": "rich_text"},
                                 name="Writer")
                project.delete_type("gallery")

        emu.faults.on_request = change_types
        cache.sync()
        types = _types(cache)
        assert sorted(types) == ["article", "author"]
        assert types["author"].name == "Writer"
        assert [f.id for f in types["author"].fields] == ["name", "bio"]


# -- the table itself -----------------------------------------------------------------------

def test_a_store_that_never_listed_types_reads_none(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    try:
        with store.reading():
            conn = store.raw_connection()
            assert read_content_types(conn) == [] and read_content_type(conn, "x") is None
        with store.write():
            conn = store.raw_connection()
            replace_content_types(conn, [ContentTypeInfo("x", "X", "t", (FieldInfo("t"),),
                                                         "2024-01-02T00:00:00.000Z",
                                                         {"uid": "x"})])
            # A deletion from before the definition's last update leaves it (created again).
            assert not delete_content_type(conn, "x", "2024-01-01T00:00:00.000Z")
        with store.reading():
            stored = read_content_type(store.raw_connection(), "x")
            assert stored is not None and stored.raw == {"uid": "x"}
            assert stored.fields == (FieldInfo("t"),)
        with store.write():
            assert delete_content_type(store.raw_connection(), "x", "2024-01-03T00:00:00.000Z")
    finally:
        store.close()

