"""The links table and the Kontent.ai codename index, derived by the entries triggers from each
vendor's stored shapes (schema version 3; from version 5, the store's own vendor's shapes
only), in a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcache.model import StoreScope
from localcache.store.database import Store
from localcache.store.links import link_targets

Row = tuple[str, str, str, int, str, str]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store with no vendor recorded: its triggers derive all three vendors' links."""
    opened = Store(tmp_path / "links.sqlite3")
    yield opened
    opened.close()


def put(store: Store, entry_id: str, fields: dict[str, Any],
        vendor: dict[str, Any] | None = None) -> None:
    document: dict[str, Any] = {"sys": {"id": entry_id, "type": "Entry"}, "fields": fields}
    if vendor is not None:
        document["vendor"] = vendor
    with store.write():
        store.raw_connection().execute(
            "INSERT INTO entries (id, content_type, revision, raw) VALUES (?, 't', 1, ?) "
            "ON CONFLICT(id) DO UPDATE SET raw = excluded.raw", (entry_id, json.dumps(document)))


def delete(store: Store, entry_id: str) -> None:
    with store.write():
        store.raw_connection().execute("DELETE FROM entries WHERE id = ?", (entry_id,))


def rows(store: Store, source: str | None = None) -> list[Row]:
    with store.reading():
        return [tuple(r) for r in store.raw_connection().execute(  # type: ignore[misc]
            "SELECT source_id, field, locale, position, target_type, target_id FROM links "
            "WHERE ? IS NULL OR source_id = ? ORDER BY 1, 2, 3, 4", (source, source))]


def codenames(store: Store) -> dict[str, str]:
    with store.reading():
        return dict(store.raw_connection().execute("SELECT id, codename FROM entry_codenames"))


def cf(record_id: str, link_type: str = "Entry") -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": link_type, "id": record_id}}


def test_contentful_links_alone_and_in_arrays(store: Store) -> None:
    put(store, "a", {"title": {"en-US": "A"}, "image": {"en-US": cf("img", "Asset")},
                     "related": {"en-US": [cf("b"), cf("c")], "de-DE": [cf("c")]},
                     "json": {"en-US": {"sys": {"type": "Other"}}}})
    assert rows(store) == [
        ("a", "image", "en-US", 0, "Asset", "img"),
        ("a", "related", "de-DE", 0, "Entry", "c"),
        ("a", "related", "en-US", 0, "Entry", "b"),
        ("a", "related", "en-US", 1, "Entry", "c"),
    ]


def test_contentstack_references_and_asset_fields(store: Store) -> None:
    asset = {"uid": "pic", "url": "https://i.example/pic.png", "filename": "pic.png"}
    put(store, "post", {
        "authors": {"en-us": [{"uid": "ann", "_content_type_uid": "author"},
                              {"uid": "bob", "_content_type_uid": "author"}],
                    "fr-fr": [{"uid": "bob", "_content_type_uid": "author"}]},
        "hero": {"en-us": asset},
        "gallery": {"en-us": [asset, {"uid": "pic2", "_content_type_uid": "sys_assets"}]},
        "meta": {"en-us": {"uid": "not-a-link"}},   # neither a reference nor an asset
        "tags": {"en-us": ["a", "b"]}})
    assert rows(store) == [
        ("post", "authors", "en-us", 0, "Entry", "ann"),
        ("post", "authors", "en-us", 1, "Entry", "bob"),
        ("post", "authors", "fr-fr", 0, "Entry", "bob"),
        ("post", "gallery", "en-us", 0, "Asset", "pic"),
        ("post", "gallery", "en-us", 1, "Asset", "pic2"),
        ("post", "hero", "en-us", 0, "Asset", "pic"),
    ]


def kontent_vendor(codename: str) -> dict[str, Any]:
    return {"default": {"revision": 0, "payload": {"system": {"codename": codename}}}}


def test_kontent_linked_items_and_rich_text_by_codename(store: Store) -> None:
    put(store, "id-1", {
        "title": {"default": {"type": "text", "name": "Title", "value": "A"}},
        "related": {"default": {"type": "modular_content", "name": "R",
                                "value": ["second", "third"]},
                    "es-ES": {"type": "modular_content", "name": "R", "value": []}},
        "body": {"default": {"type": "rich_text", "name": "B", "images": {}, "links": {},
                             "modular_content": ["third"], "value": "<p>x</p>"}}},
        kontent_vendor("first"))
    assert rows(store) == [
        ("id-1", "body", "default", 0, "Codename", "third"),
        ("id-1", "related", "default", 0, "Codename", "second"),
        ("id-1", "related", "default", 1, "Codename", "third"),
    ]
    assert codenames(store) == {"id-1": "first"}
    put(store, "id-1", {}, kontent_vendor("renamed"))           # an update rewrites both
    assert rows(store) == [] and codenames(store) == {"id-1": "renamed"}
    delete(store, "id-1")                                         # kept after deletion
    assert codenames(store) == {"id-1": "renamed"}


def test_python_link_targets_match_the_triggers(store: Store) -> None:
    """Record.resolve reads targets in Python; the triggers derive the same ones."""
    values: dict[str, Any] = {
        "one": cf("x"), "many": [cf("y", "Asset"), "text", cf("z")],
        "cs": [{"uid": "u", "_content_type_uid": "author"}],
        "asset": {"uid": "p", "url": "u", "filename": "f"},
        "kontent": {"type": "modular_content", "name": "K", "value": ["c1", "c2"]},
        "rich": {"type": "rich_text", "name": "R", "modular_content": ["c3"], "value": ""},
        "plain": {"uid": 3}, "text": "hello"}
    put(store, "e", {name: {"en": value} for name, value in values.items()})
    derived: dict[str, list[tuple[str, str]]] = {}
    for _, name, _, _, kind, target in rows(store):
        derived.setdefault(name, []).append((kind, target))
    assert derived == {name: link_targets(value) for name, value in values.items()
                       if link_targets(value)}


def test_links_follow_updates_and_deletions(store: Store) -> None:
    put(store, "a", {"next": {"en-US": cf("b")}})
    put(store, "a", {"next": {"en-US": cf("c")}})
    assert rows(store) == [("a", "next", "en-US", 0, "Entry", "c")]
    delete(store, "a")
    assert rows(store) == []


def test_the_target_index_and_no_redundant_source_index(store: Store) -> None:
    with store.reading():
        conn = store.raw_connection()
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        plan = " ".join(str(r[3]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT source_id FROM links WHERE target_id = ?", ("x",)))
    assert "links_target" in names and "linkrecord_source_id" not in names
    assert "USING COVERING INDEX links_target" in plan


SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "contentful": ({"f": {"en-US": cf("x")}}, None),
    "contentstack": ({"f": {"en-us": [{"uid": "x", "_content_type_uid": "t"}]}}, None),
    "kontent": ({"f": {"en": {"type": "modular_content", "value": ["x"]}}},
                {"en": {"payload": {"system": {"codename": "me"}}}}),
}


@pytest.mark.parametrize("vendor", sorted(SHAPES))
def test_a_vendors_store_derives_its_own_shapes_only(tmp_path: Path, vendor: str) -> None:
    """Schema version 5: one trigger per vendor, chosen by the store's recorded provider. An
    object field that happens to look like another vendor's link is not a link here."""
    store = Store(tmp_path / f"{vendor}.sqlite3", StoreScope(vendor, "s", "master"))
    try:
        for shape, (fields, extra) in SHAPES.items():
            put(store, shape, fields, extra)
        assert [r[0] for r in rows(store)] == [vendor]
        assert codenames(store) == ({"kontent": "me"} if vendor == "kontent" else {})
        fields, extra = SHAPES[vendor]
        put(store, vendor, {"g": fields["f"]}, extra)  # an update derives its links again
        assert [(r[0], r[1]) for r in rows(store)] == [(vendor, "g")]
    finally:
        store.close()


# -- Contentful's links in one walk (schema 6) derive what two walks did --------------------

_LINK = st.builds(lambda kind, target: {"sys": {"type": "Link", "linkType": kind, "id": target}},
                  st.sampled_from(["Entry", "Asset"]), st.sampled_from(["a", "b", "Link"]))
_NOT_LINK = st.one_of(
    st.sampled_from(["Link", "plain \"Link\" text", "", 7, None, True]),
    st.just({"sys": {"type": "Entry", "id": "x"}}),
    st.just({"lat": 1.5, "lon": 2.0}),
    st.just({"nodeType": "document", "content": [{"sys": {"type": "Link", "id": "deep"}}]}),
)
_VALUE = st.one_of(_LINK, _NOT_LINK, st.lists(st.one_of(_LINK, _NOT_LINK), max_size=4))
_FIELDS = st.dictionaries(
    st.sampled_from(["author", "Link", "tags", "body", "images"]),
    st.one_of(st.dictionaries(st.sampled_from(["en-US", "de-DE", "fr-FR"]), _VALUE,
                              max_size=3), _VALUE),
    max_size=4)


@settings(max_examples=300, deadline=None)
@given(fields=_FIELDS)
def test_one_pass_contentful_links_equal_the_two_walks(fields: dict[str, Any]) -> None:
    import sqlite3

    from localcache.store.links import CONTENTFUL_LINKS, CONTENTFUL_LINKS_ONE_PASS

    conn = sqlite3.connect(":memory:")
    try:
        raw = json.dumps({"sys": {"id": "e1"}, "fields": fields}, separators=(",", ":"))

        def rows(query: str) -> list[Any]:
            sql = query.replace("NEW.id", ":id").replace("NEW.raw", ":raw")
            return sorted(conn.execute(sql, {"id": "e1", "raw": raw}).fetchall())

        assert rows(CONTENTFUL_LINKS_ONE_PASS) == rows(CONTENTFUL_LINKS)
    finally:
        conn.close()
