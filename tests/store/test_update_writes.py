"""Schema version 8: an update writes only what it changes (real SQLite store).

An edit of an entry's text used to delete and insert every one of its links and rewrite its
content type in two indexes: pages of random indexes dirtied for nothing, at every commit of a
delta sync. Now the links the document gained or lost are written, the content type only when
it changed, and the result is the same as deriving everything afresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcache.model import Delta, StoreScope
from localcache.store.apply import apply_deltas
from localcache.store.database import Store

SCOPE = StoreScope("contentful", "s", "master")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "writes.sqlite3", SCOPE)
    yield opened
    opened.close()


def link(target: str, kind: str = "Entry") -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": kind, "id": target}}


def entry(entry_id: str, fields: dict[str, Any], content_type: str = "article",
          revision: int = 1) -> Delta:
    document = {"sys": {"type": "Entry", "id": entry_id, "revision": revision,
                        "updatedAt": f"2026-01-01T00:00:{revision:02d}Z",
                        "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                                "id": content_type}}},
                "fields": fields}
    return Delta("Entry", entry_id, False, document, content_type=content_type,
                 revision=revision, updated_at=document["sys"]["updatedAt"])


def write(store: Store, *deltas: Delta) -> int:
    """Apply ``deltas`` in one transaction; the rows SQLite wrote (triggers included)."""
    with store.write():
        conn = store.raw_connection()
        before = conn.total_changes
        apply_deltas(conn, list(deltas), 1)
        return conn.total_changes - before


def links(store: Store, source: str) -> list[tuple[Any, ...]]:
    with store.reading():
        return [tuple(r) for r in store.raw_connection().execute(
            "SELECT field, locale, position, target_type, target_id FROM links "
            "WHERE source_id = ? ORDER BY 1, 2, 3", (source,))]


def entry_type(store: Store, entry_id: str) -> tuple[Any, ...]:
    with store.reading():
        conn = store.raw_connection()
        return (conn.execute("SELECT content_type FROM entries WHERE id = ?",
                             (entry_id,)).fetchone()[0],
                conn.execute("SELECT content_type FROM entry_types WHERE id = ?",
                             (entry_id,)).fetchone()[0])


def test_an_edit_that_leaves_links_and_type_alone_writes_the_entry_only(store: Store) -> None:
    fields = {"title": {"en-US": "one"}, "related": {"en-US": [link("a"), link("b")]},
              "image": {"en-US": link("p", "Asset")}}
    assert write(store, entry("e", fields)) == 1 + 1 + 3  # entry, its type, three links
    fields["title"] = {"en-US": "two"}
    assert write(store, entry("e", fields, revision=2)) == 1
    assert links(store, "e") == [("image", "en-US", 0, "Asset", "p"),
                                 ("related", "en-US", 0, "Entry", "a"),
                                 ("related", "en-US", 1, "Entry", "b")]


def test_an_edit_writes_the_links_it_changes_only(store: Store) -> None:
    fields = {"related": {"en-US": [link("a"), link("b"), link("c")]}}
    write(store, entry("e", fields))
    fields["related"] = {"en-US": [link("a"), link("x")], "de-DE": [link("y")]}
    # b → x at position 1 (a delete and an insert), c gone, y new: 1 + 2 + 1 + 1.
    assert write(store, entry("e", fields, revision=2)) == 1 + 4
    assert links(store, "e") == [("related", "de-DE", 0, "Entry", "y"),
                                 ("related", "en-US", 0, "Entry", "a"),
                                 ("related", "en-US", 1, "Entry", "x")]


def test_an_entry_recreated_under_another_type_moves_in_every_index(store: Store) -> None:
    write(store, entry("e", {"title": {"en-US": "t"}}, content_type="article"))
    write(store, entry("e", {"title": {"en-US": "t"}}, content_type="author", revision=1))
    assert entry_type(store, "e") == ("author", "author")
    with store.reading():
        found = store.raw_connection().execute(
            "SELECT id FROM entries WHERE content_type = 'author'").fetchall()
    assert found == [("e",)]


_LINKS = st.lists(st.builds(link, st.sampled_from(["a", "b", "c"]),
                            st.sampled_from(["Entry", "Asset"])), max_size=3)
_FIELDS = st.dictionaries(
    st.sampled_from(["related", "hero", "title"]),
    st.dictionaries(st.sampled_from(["en-US", "de-DE"]),
                    st.one_of(_LINKS, st.builds(link, st.sampled_from(["a", "b"])),
                              st.just("text")), max_size=2),
    max_size=3)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=st.lists(_FIELDS, min_size=1, max_size=4))
def test_links_after_any_edits_equal_a_fresh_derivation(
    store: Store, versions: list[dict[str, Any]]
) -> None:
    for revision, fields in enumerate(versions, start=1):
        write(store, entry("edited", fields, revision=revision))
    write(store, entry("fresh", versions[-1]))
    assert links(store, "edited") == links(store, "fresh")
    with store.write():
        store.raw_connection().execute("DELETE FROM entries")
    assert json.dumps(links(store, "edited")) == "[]"


def test_a_v7_store_gets_the_version_8_triggers_and_keeps_its_links(tmp_path: Path) -> None:
    from localcache.store import schema

    path = tmp_path / "v7.sqlite3"
    store = Store(path, SCOPE)
    write(store, entry("e", {"related": {"en-US": [link("a"), link("b")]}}))
    with store.write():  # as version 7 left it: its triggers, its version number
        conn = store.raw_connection()
        for statement in schema._v5_triggers(7):
            conn.execute(f"DROP TRIGGER {statement.split()[2]}")
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 7")
    assert write(store, entry("e", {"related": {"en-US": [link("a"), link("b")]}},
                              revision=2)) == 1 + 1 + 2 + 2  # version 7 rewrote them all
    store.close()
    store = Store(path, SCOPE)
    try:
        with store.reading():
            version = store.raw_connection().execute("PRAGMA user_version").fetchone()[0]
        assert version == schema.SCHEMA_VERSION == 8
        assert links(store, "e") == [("related", "en-US", 0, "Entry", "a"),
                                     ("related", "en-US", 1, "Entry", "b")]
        assert write(store, entry("e", {"related": {"en-US": [link("a"), link("b")]}},
                                  revision=3)) == 1
    finally:
        store.close()


@pytest.mark.parametrize("vendor", ["contentstack", "kontent", "any"])
def test_other_vendors_edits_leave_their_links_alone(tmp_path: Path, vendor: str) -> None:
    """Their link queries are compounds (single and array references; modular content and
    rich text): an edit of a text writes the entry only, with links of every shape."""
    fields: dict[str, Any] = {
        "title": {"en": "one"},
        "single": {"en": {"uid": "a1", "_content_type_uid": "author"}},
        "many": {"en": [{"uid": "a2", "_content_type_uid": "author"},
                        {"uid": "p1", "url": "u", "filename": "f"}]},
        "items": {"en": {"type": "modular_content", "value": ["c1", "c2"]}},
        "rich": {"en": {"type": "rich_text", "value": "<p/>", "modular_content": ["c3"]}},
    }
    scope = None if vendor == "any" else StoreScope(vendor, "s", "master")
    store = Store(tmp_path / f"{vendor}.sqlite3", scope)
    try:
        write(store, entry("e", fields))
        stored = links(store, "e")
        assert len(stored) >= 3
        fields["title"] = {"en": "two"}
        assert write(store, entry("e", fields, revision=2)) == 1
        assert links(store, "e") == stored
    finally:
        store.close()
