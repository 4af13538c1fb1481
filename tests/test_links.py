"""Links for all three vendors, through Cache.sync() and the emulator over loopback: resolving
(single, array, missing, unpublished), ``entry(id, include=N)``, ``referrers``,
``ChangeSet.affected``, and fields a Contentful content type does not localize."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, asset_fields, make_cache

from localcache import Cache, Contentstack, Kontent, QueryError, StoreError, signals
from localcache.emulator import Emulator, Locale, Project, Space, Stack
from localcache.signals import ChangeSet

ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"


def ids(records: Any) -> list[str]:
    return [r.id for r in records]


def link(record_id: str, link_type: str = "Entry") -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": link_type, "id": record_id}}


class Statements:
    """Every SQL statement this thread's store connection runs while active."""

    def __init__(self, cache: Cache) -> None:
        self.conn: sqlite3.Connection = cache._store.raw_connection()
        self.seen: list[str] = []

    def __enter__(self) -> list[str]:
        self.conn.set_trace_callback(self.seen.append)
        return self.seen

    def __exit__(self, *exc: Any) -> None:
        self.conn.set_trace_callback(None)


class ChangeSets:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.seen: list[ChangeSet] = []

    def __enter__(self) -> list[ChangeSet]:
        signals.changes_committed.connect(self._receive, sender=self.cache, weak=False)
        return self.seen

    def __exit__(self, *exc: Any) -> None:
        signals.changes_committed.disconnect(self._receive, sender=self.cache)

    def _receive(self, sender: Any, *, changes: ChangeSet) -> None:
        self.seen.append(changes)


# -- Contentful ---------------------------------------------------------------------------------


@pytest.fixture
def linked(emulator: Any, store_path: Path) -> Iterator[Cache]:
    """a1 → image img, related [a2, gone, a3]; a2 → related [a3]; a3 → related [a1] (a
    cycle); a4 links to the unpublished u1 and the asset img."""
    space = emulator.space
    space.publish_asset("img", asset_fields("img"))
    space.publish_entry("u1", "article", article("Unpublished"))
    space.unpublish_entry("u1")
    space.publish_entry("a3", "article", article("Three", related=["a1"]))
    space.publish_entry("a2", "article", article("Two", related=["a3"]))
    space.publish_entry("a1", "article", article("One", related=["a2", "gone", "a3"],
                                                 image="img"))
    space.publish_entry("a4", "article", article("Four", related=["u1"], image="img"))
    space.publish_entry("lone", "article", article("Lone"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        yield cache


def test_contentful_resolves_single_links_and_arrays(linked: Cache) -> None:
    a1 = linked.entry("a1")
    assert a1 is not None
    image = a1.resolve("image")
    assert image is not None and image.type == "Asset" and image.id == "img"
    assert ids(a1.resolve("related")) == ["a2", "a3"]      # "gone" is skipped, order kept
    a4 = linked.entry("a4")
    assert a4 is not None
    assert a4.resolve("related") == []                     # unpublished
    assert a4.resolve("title") is None                     # no link in it
    lone = linked.entry("lone")
    assert lone is not None and lone.resolve("image") is None and lone.resolve("related") is None
    # Every read path hands out records that resolve on their own.
    assert ids(next(r for r in linked.entries() if r.id == "a2").resolve("related")) == ["a3"]
    assert ids(next(r for r in linked.iter_entries() if r.id == "a3").resolve("related")) == \
        ["a1"]
    assert ids(next(r for r in linked.iter_records() if r.id == "a1").resolve("related")) == \
        ["a2", "a3"]
    assert next(iter(linked.iter_records("Asset"))).resolve("title") is None
    asset = linked.asset("img")
    assert asset is not None and asset.resolve("file") is None
    assert ids(linked.resolve(a1, "related")) == ["a2", "a3"]   # the Cache's method stays
    assert ids(linked.resolve(a1, "image")) == ["img"]


def test_a_record_not_read_from_a_cache_cannot_resolve(linked: Cache) -> None:
    a1 = linked.entry("a1")
    assert a1 is not None
    bare = type(a1).of("Entry", a1.id, a1.content_type, a1.revision, a1.created_at,
                       a1.updated_at, a1.raw, a1.locales)
    assert bare == a1
    with pytest.raises(QueryError, match="not read from a Cache"):
        bare.resolve("image")
    assert ids(linked.resolve(bare, "related")) == ["a2", "a3"]


def test_a_signal_record_resolves_through_the_cache(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_asset("img", asset_fields("img"))
    emulator.space.publish_entry("a1", "article", article("One", image="img"))
    got: list[Any] = []

    def receive(sender: Any, *, id: str, record: Any) -> None:
        got.append(record)

    with make_cache(emulator, store_path) as cache:
        signals.entry_changed.connect(receive, sender=cache, weak=False)
        try:
            cache.sync()
        finally:
            signals.entry_changed.disconnect(receive, sender=cache)
        assert ids(cache.resolve(got[0], "image")) == ["img"]


def test_a_record_outliving_its_cache_says_so(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("a1", "article", article("One", image="img"))
    cache = make_cache(emulator, store_path)
    cache.sync()
    a1 = cache.entry("a1")
    cache.close()
    assert a1 is not None
    with pytest.raises(StoreError, match="closed"):
        a1.resolve("image")
    del cache
    gc.collect()
    with pytest.raises(StoreError, match="gone"):
        a1.resolve("image")


def test_include_reads_the_link_graph_in_one_transaction(linked: Cache) -> None:
    assert linked.entry("lone") is not None      # the locale chain is read (and kept)
    with Statements(linked) as seen:
        a1 = linked.entry("a1", include=2)
    assert a1 is not None
    assert sum(1 for s in seen if s.strip().upper().startswith("BEGIN")) == 1
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 2 + 2 * 3       # the entry, then per level: links, codenames, rows
    with Statements(linked) as after:
        related = a1.resolve("related")
        assert isinstance(related, list) and ids(related) == ["a2", "a3"]
        a2, a3 = related
        assert a1.resolve("image").id == "img"               # type: ignore[union-attr]
        assert ids(a2.resolve("related")) == ["a3"]          # level 1 resolves from the map
        assert ids(a3.resolve("related")) == ["a1"]          # the cycle: a1 itself
        assert a3.resolve("related")[0] is a1                # type: ignore[index]
    assert after == []                                       # no query at all
    # One level: a2 → a3 is read with a2, a3 → a1 is not, so resolving it reads the store.
    one = linked.entry("a2", include=1)
    assert one is not None
    three = one.resolve("related")[0]                        # type: ignore[index]
    with Statements(linked) as later:
        assert ids(three.resolve("related")) == ["a1"]
    assert later != []


def test_include_with_a_cycle_ends_and_stays_within_its_depth(linked: Cache) -> None:
    deep = linked.entry("a3", include=10)
    assert deep is not None
    chain = deep
    for _ in range(12):                                      # a3 → a1 → a2 → a3 → ...
        nxt = chain.resolve("related")
        assert isinstance(nxt, list) and nxt
        chain = nxt[0]
    assert chain.id in ("a1", "a2", "a3")
    assert linked.entry("a1", include=0) == linked.entry("a1")
    assert linked.entry("missing", include=3) is None
    for bad in (-1, 11, True, 1.5, "2"):
        with pytest.raises(QueryError, match="include"):
            linked.entry("a1", include=bad)  # type: ignore[arg-type]


def test_referrers_of_entries_and_assets(linked: Cache) -> None:
    assert ids(linked.referrers("img")) == ["a1", "a4"]
    assert ids(linked.referrers("a3")) == ["a1", "a2"]
    assert ids(linked.referrers("a1")) == ["a3"]
    assert ids(linked.referrers("u1")) == ["a4"]             # unpublished: its referrers stay
    assert linked.referrers("lone") == []
    assert linked.referrers("nothing") == []
    referrer = linked.referrers("a2")[0]
    assert ids(referrer.resolve("related")) == ["a2", "a3"]  # resolves on its own


def test_referrers_seek_the_target_index(linked: Cache) -> None:
    from localcache.store import links

    conn = linked._store.raw_connection()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        links.referrers(conn, ["img"])
    finally:
        conn.set_trace_callback(None)
    # The trace shows the statement with its parameters in place.
    plan = " | ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + seen[-1]))
    assert "links USING COVERING INDEX links_target (target_id=?" in plan, plan
    assert "SCAN links" not in plan and "SCAN l" not in plan, plan


def test_changeset_names_entries_linking_to_what_a_page_changed(
        emulator: Any, linked: Cache) -> None:
    space = emulator.space
    with ChangeSets(linked) as seen:
        space.publish_asset("img", asset_fields("img v2"))      # the linked image changes
        linked.sync()
        space.publish_entry("a2", "article", article("Two v2", related=["a3"]))
        linked.sync()
        space.delete_entry("a3")                                # a deleted target
        linked.sync()
        space.publish_entry("u1", "article", article("Back"))   # a target comes (back)
        linked.sync()
        space.publish_entry("lone", "article", article("Lone v2"))
        linked.sync()
    assert [c.affected for c in seen] == [("a1", "a4"), ("a1",), ("a1", "a2"), ("a4",), ()]
    assert seen[0].assets_updated == ("img",)
    assert ids(linked.entry("a1").resolve("related")) == ["a2"]  # type: ignore[union-attr]


# -- fields a content type does not localize (Contentful) ---------------------------------------


def test_unlocalized_fields_read_the_same_in_every_locale(tmp_path: Path) -> None:
    space = Space("unlocalized", "master", locales=[
        Locale("en-US", default=True), Locale("fr-FR"),
        Locale("de-DE", fallback="fr-FR"), Locale("de-AT", fallback="de-DE")])
    space.add_content_type("article", name="Article", fields=[
        {"id": "title", "type": "Symbol", "localized": True},
        {"id": "rank", "type": "Integer", "localized": False},
        {"id": "image", "type": "Link", "linkType": "Asset", "localized": False}])
    space.add_content_type("tag", name="Tag",
                           fields=[{"id": "rank", "type": "Integer", "localized": True}])
    space.publish_asset("img", asset_fields("img"))
    space.publish_entry("a1", "article", {"title": {"en-US": "One", "fr-FR": "Un"},
                                          "rank": {"en-US": 1}, "image": {"en-US": link(
                                              "img", "Asset")}})
    space.publish_entry("a2", "article", {"title": {"en-US": "Two"}, "rank": {"en-US": 2}})
    space.publish_entry("t1", "tag", {"rank": {"en-US": 1, "fr-FR": 5}})
    with Emulator(space, access_token=TOKEN) as emu, make_cache(emu, tmp_path / "u.sqlite3") \
            as cache:
        cache.sync()
        a1 = cache.entry("a1")
        assert a1 is not None
        for locale in (None, "en-US", "fr-FR", "de-DE", "de-AT"):
            assert a1.field("rank", locale) == 1, locale
            assert a1.field("image", locale) == link("img", "Asset"), locale
            assert a1.resolve("image", locale).id == "img"        # type: ignore[union-attr]
        assert a1.field("title", "de-AT") == "Un"                 # localized: the chain
        t1 = cache.entry("t1")
        assert t1 is not None and t1.field("rank", "fr-FR") == 5  # localized in its type
        assert ids(cache.entries("article", where={"rank": 1}, locale="fr-FR")) == ["a1"]
        assert ids(cache.entries("article", where={"rank": {"gte": 1}}, locale="de-AT",
                                 order_by=["-rank"])) == ["a2", "a1"]
        assert ids(cache.entries("article", where={"image": {"exists": True}},
                                 locale="fr-FR")) == ["a1"]
        # Without a content type, each entry reads by its own type's definition.
        assert ids(cache.entries(where={"rank": 1}, locale="fr-FR")) == ["a1"]
        assert ids(cache.entries(where={"rank": 5}, locale="fr-FR")) == ["t1"]
        assert cache.count(where={"rank": {"exists": True}}, locale="de-AT") == 3
        assert ids(cache.entries(order_by="rank", locale="fr-FR")) == ["a1", "a2", "t1"]


# -- Contentstack -------------------------------------------------------------------------------


def _contentstack(emu: Emulator) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url)


def test_contentstack_references_and_asset_fields(tmp_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    stack.publish_asset("pic", "en-us", {"title": "pic", "filename": "pic.png"})
    stack.publish_entry("ann", "author", "en-us", {"title": "Ann"})
    stack.publish_entry("bob", "author", "en-us", {"title": "Bob"})
    stack.publish_entry("post", "blog", "en-us", {
        "authors": [{"uid": "bob", "_content_type_uid": "author"},
                    {"uid": "nobody", "_content_type_uid": "author"},
                    {"uid": "ann", "_content_type_uid": "author"}],
        "hero": {"uid": "pic", "url": "https://images.example/pic.png", "filename": "pic.png"},
        "files": [{"uid": "pic", "url": "https://images.example/pic.png",
                   "filename": "pic.png"}]})
    stack.publish_entry("draft", "author", "en-us", {"title": "Draft"})
    stack.unpublish_entry("draft", "en-us")
    stack.publish_entry("other", "blog", "en-us", {
        "authors": [{"uid": "draft", "_content_type_uid": "author"}],
        "hero": {"uid": "gone", "url": "https://images.example/g.png", "filename": "g.png"}})
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(_contentstack(emu), path=tmp_path / "cs.sqlite3") as cache:
        cache.sync()
        post = cache.entry("post")
        assert post is not None
        assert ids(post.resolve("authors")) == ["bob", "ann"]
        hero = post.resolve("hero")
        assert hero is not None and hero.type == "Asset" and hero.id == "pic"  # type: ignore
        assert ids(post.resolve("files")) == ["pic"]
        other = cache.entry("other")
        assert other is not None
        assert other.resolve("authors") == [] and other.resolve("hero") is None
        assert ids(cache.referrers("pic")) == ["post"]
        assert ids(cache.referrers("ann")) == ["post"]
        deep = cache.entry("post", include=1)
        assert deep is not None
        with Statements(cache) as seen:
            assert ids(deep.resolve("authors")) == ["bob", "ann"]
        assert seen == []
        with ChangeSets(cache) as changes:
            stack.publish_asset("pic", "en-us", {"title": "pic 2", "filename": "pic.png"})
            cache.sync()
        assert [c.affected for c in changes] == [("post",)]


# -- Kontent.ai ---------------------------------------------------------------------------------


def _item(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def test_kontent_linked_items_resolve_by_codename(tmp_path: Path) -> None:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "related": "modular_content"})
    project.upsert_variant(_item(2), "second", "article", "default", {"title": "B"})
    project.upsert_variant(_item(3), "third", "article", "default",
                           {"title": "C", "related": ["first"]})
    project.upsert_variant(_item(1), "first", "article", "default",
                           {"title": "A", "related": ["third", "missing", "second"]})
    project.upsert_variant(_item(4), "fourth", "article", "default",
                           {"title": "D", "related": ["second"]})
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(ENV_ID, base_url=emu.base_url), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        first = cache.entry(_item(1))
        assert first is not None
        assert first.links("related") == [("Codename", "third"), ("Codename", "missing"),
                                          ("Codename", "second")]
        assert ids(first.resolve("related")) == [_item(3), _item(2)]
        assert ids(cache.resolve(first, "related")) == [_item(3), _item(2)]
        assert first.resolve("title") is None        # a text element holds no link
        assert ids(cache.referrers(_item(2))) == [_item(1), _item(4)]
        deep = cache.entry(_item(1), include=2)
        assert deep is not None
        with Statements(cache) as seen:
            third = deep.resolve("related")[0]       # type: ignore[index]
            assert third.resolve("related")[0] is deep
        assert seen == []
        with ChangeSets(cache) as changes:
            project.upsert_variant(_item(2), "second", "article", "default", {"title": "B2"})
            cache.sync()
            project.delete_item(_item(2))            # its codename still names it
            cache.sync()
        assert [c.affected for c in changes] == [(_item(1), _item(4)), (_item(1), _item(4))]
        first = cache.entry(_item(1))
        assert first is not None and ids(first.resolve("related")) == [_item(3)]
