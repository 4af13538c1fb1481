"""The search index after updates, deletions and re-creations, synced page by page: every
table holds exactly the words an index built afresh from the stored entries holds, row for row.

The tables keep no copy of the text (FTS5 ``content=''``), so a row is deleted by the words it
was made of, worked out again from the entry as stored before the page. A word left behind (or
one deleted that was not there) would not show in most searches, which look rows up in
``search_index``; it shows here, in FTS5's own list of every word of every row (``fts5vocab``),
and in the bm25 statistics every search ranks with.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TOKEN, article, make_cache, make_space

from localcache import Cache, Contentstack, Kontent
from localcache.emulator import Emulator, Project, Stack
from localcache.store.query import chain_for
from localcache.store.search import TextPlan


def _postings(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    """Every (word, row, position) of an FTS5 table, and its row count and total size."""
    conn.execute("DROP TABLE IF EXISTS temp.vocab")
    conn.execute(f"CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, '{table}', "
                 "'instance')")
    found = sorted(conn.execute("SELECT term, doc, offset FROM temp.vocab"))
    conn.execute("DROP TABLE temp.vocab")
    sizes = conn.execute(f"SELECT count(*), sum(sz) FROM {table}_docsize").fetchone()
    return [*found, ("rows and size", *sizes)]


def assert_index_exact(path: Path) -> int:
    """Each locale's table holds what one built afresh from the stored entries holds, under
    the same rowids; returns how many rows the index maps."""
    conn = sqlite3.connect(path)
    try:
        plan = TextPlan(chain_for(conn))
        mapped = conn.execute("SELECT s.row, s.content_type, e.raw FROM search_index AS s "
                              "JOIN entries AS e ON e.id = s.entry_id").fetchall()
        assert len(mapped) == conn.execute("SELECT count(*) FROM search_index").fetchone()[0]
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE name GLOB 'search_text_*' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
        assert tables
        for table in tables:
            locale = bytes.fromhex(table[len("search_text_"):]).decode()
            conn.execute("DROP TABLE IF EXISTS fresh")
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                               (table,)).fetchone()[0]
            conn.execute(sql.replace(f"TABLE {table}", "TABLE fresh")
                         .replace("IF NOT EXISTS ", ""))
            for row, content_type, raw in sorted(mapped):
                text = plan.texts(json.loads(raw), content_type).get(locale)
                if text:
                    conn.execute("INSERT INTO fresh (rowid, text) VALUES (?, ?)", (row, text))
            assert _postings(conn, table) == _postings(conn, "fresh"), locale
            conn.execute("DROP TABLE fresh")
        conn.rollback()
        return len(mapped)
    finally:
        conn.close()


_WORDS = st.sampled_from(["apple", "Äpfel", "pear", "plum", "fig", "kiwi", "lime"])
_TEXT = st.lists(_WORDS, min_size=1, max_size=4).map(" ".join)
_EDIT = st.tuples(st.sampled_from(["publish", "publish", "delete", "unpublish"]),
                  st.integers(0, 5), _TEXT, st.one_of(st.none(), _TEXT))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rounds=st.lists(st.lists(_EDIT, min_size=1, max_size=6), min_size=1, max_size=4),
       limit=st.sampled_from([1, 2, 100]))
def test_contentful_rows_stay_exact_through_edits(tmp_path_factory: Any,
                                                  rounds: list[list[Any]],
                                                  limit: int) -> None:
    space = make_space()
    live: set[str] = set()
    path = tmp_path_factory.mktemp("upkeep") / "store.sqlite3"
    with Emulator(space, access_token=TOKEN) as emu, make_cache(emu, path, limit=limit) \
            as cache:
        for edits in rounds:
            for action, n, text, german in edits:
                entry_id = f"e{n}"
                if action == "publish":
                    space.publish_entry(entry_id, "article", article(text, de=german))
                    live.add(entry_id)
                elif entry_id in live:
                    (space.delete_entry if action == "delete" else space.unpublish_entry)(
                        entry_id)
                    live.discard(entry_id)
            cache.sync()
            assert assert_index_exact(path) == len(live)
            for word in ("apple", "pear", "äpfel"):
                expected = sorted(r.id for r in cache.entries()
                                  if word in str(r.field("title")).casefold().split())
                assert sorted(h.id for h in cache.search(word, limit=100)) == expected


def test_a_rebuild_after_a_rejected_token_keeps_the_rows_exact(emulator: Any,
                                                               store_path: Path) -> None:
    """The rebuild's last page swaps the whole store in: rows of entries it changed or
    deleted are deleted by the words of the entries as they were before the swap."""
    space = emulator.space
    for n in range(6):
        space.publish_entry(f"e{n}", "article", article(f"apple {n}", de=f"pear {n}"))
    with make_cache(emulator, store_path, limit=2) as cache:
        cache.sync()
        space.publish_entry("e1", "article", article("plum", de="fig"))
        space.delete_entry("e2")
        space.publish_entry("e9", "article", article("kiwi"))
        emulator.faults.invalidate_tokens_before_now()
        assert cache.sync().initial
        assert assert_index_exact(store_path) == 6
        assert [h.id for h in cache.search("plum")] == ["e1"]
        assert sorted(h.id for h in cache.search("apple")) == ["e0", "e3", "e4", "e5"]


def test_contentstack_locales_published_and_withdrawn_keep_the_rows_exact(
        store_path: Path) -> None:
    """Contentstack publishes one locale at a time: each merges into the stored entry, whose
    row is rewritten from the entry as it stood before."""
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    stack.publish_entry("b1", "blog", "en-us", {"title": "apple pie"})
    stack.publish_entry("b2", "blog", "en-us", {"title": "pear tart"})
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url,
                               fallbacks={"fr-fr": "en-us"}), path=store_path) as cache:
        cache.sync()
        stack.publish_entry("b1", "blog", "fr-fr", {"title": "tarte aux pommes"})
        stack.publish_entry("b2", "blog", "en-us", {"title": "plum cake"})
        cache.sync()
        assert assert_index_exact(store_path) == 2
        assert [h.id for h in cache.search("pommes", locale="fr-fr")] == ["b1"]
        assert [h.id for h in cache.search("plum", locale="fr-fr")] == ["b2"]  # fallback
        stack.unpublish_entry("b1", "fr-fr")
        stack.delete_entry("b2", "en-us")
        cache.sync()
        assert assert_index_exact(store_path) == 1
        assert cache.search("pommes", locale="fr-fr") == []
        assert [h.id for h in cache.search("apple", locale="fr-fr")] == ["b1"]


def test_kontent_variants_changed_and_deleted_keep_the_rows_exact(store_path: Path) -> None:
    project = Project(environment_id="975bf280-fd91-488c-994c-2f04416e5ee3",
                      languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "body": "rich_text"})
    first, second = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2))
    project.upsert_variant(first, "item_1", "article", "default",
                           {"title": "apple", "body": "<p>deep <b>ocean</b></p>"})
    project.upsert_variant(second, "item_2", "article", "default",
                           {"title": "pear", "body": "<p>river</p>"})
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(project.environment_id, base_url=emu.base_url),
                  path=store_path) as cache:
        cache.sync()
        project.upsert_variant(first, "item_1", "article", "es-ES",
                               {"title": "manzana", "body": "<p>mar</p>"})
        project.upsert_variant(second, "item_2", "article", "default",
                               {"title": "plum", "body": "<p>lake</p>"})
        cache.sync()
        assert assert_index_exact(store_path) == 2
        assert [h.id for h in cache.search("manzana", locale="es-ES")] == [first]
        assert cache.search("river") == []
        project.delete_variant(first, "es-ES")
        project.delete_item(second)
        cache.sync()
        assert assert_index_exact(store_path) == 1
        assert cache.search("manzana", locale="es-ES") == []
        assert [h.id for h in cache.search("ocean", locale="es-ES")] == [first]
