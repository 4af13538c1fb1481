"""The query API of a Cache (docs/querying.md): entries/count/iter_entries with where,
order_by, locale and paging; QueryError; Kontent.ai element values; hot-field indexes and the
plans SQLite makes with them. (Random combinations against a model: tests/store/test_where.py.)
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from support import TOKEN, article, make_cache

from localcache import Cache, ConfigurationError, Kontent, LocalCacheError, QueryError
from localcache.emulator import Emulator, Project
from localcache.store.indexes import field_chains
from localcache.store.query import chain_for
from localcache.store.select import ReadContext, entries_sql, entry_query

ARTICLES = [
    # id, en-US title, de-DE title, rank (en-US), tags (en-US)
    ("a1", "Apple", "Apfel", 5, ["fruit", "red"]),
    ("a2", "Banana", None, 2, ["fruit"]),
    ("a3", "Cherry", "Kirsche", 9, ["red"]),
    ("a4", "Damson", "Pflaume", None, None),
    ("a5", "elder", None, 5, []),
]


def _publish(space: Any) -> None:
    for entry_id, title, de, rank, tags in ARTICLES:
        fields = article(title, de=de)
        if rank is not None:
            fields["rank"] = {"en-US": rank}
        if tags is not None:
            fields["tags"] = {"en-US": tags}
        space.publish_entry(entry_id, "article", fields)
    space.add_content_type("note", name="Note", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": True}])
    space.publish_entry("n1", "note", {"title": {"en-US": "Apple note"}})


@pytest.fixture
def cache(emulator: Any, store_path: Path) -> Any:
    _publish(emulator.space)
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        yield cache


def ids(records: Any) -> list[str]:
    return [r.id for r in records]


# -- the API ------------------------------------------------------------------------------------


def test_where_order_and_paging(cache: Cache) -> None:
    assert ids(cache.entries("article", where={"rank": {"gte": 5}})) == ["a1", "a3", "a5"]
    assert ids(cache.entries(where={"rank": 5})) == ["a1", "a5"]
    assert ids(cache.entries(where={"tags": "red"})) == ["a1", "a3"]          # an element
    assert ids(cache.entries(where={"tags": {"in": ["fruit", "x"]}})) == ["a1", "a2"]
    assert ids(cache.entries(where={"tags": {"nin": ["red"]}})) == ["a2", "a4", "a5", "n1"]
    assert ids(cache.entries(where={"rank": {"ne": 5}}, content_type="article")) == \
        ["a2", "a3", "a4"]                                                     # a4: missing
    assert ids(cache.entries(where={"rank": {"exists": False}})) == ["a4", "n1"]
    assert ids(cache.entries(where={"title": {"match": "APP"}})) == ["a1", "n1"]
    assert ids(cache.entries(where={"sys.contentType": "note"})) == ["n1"]
    assert ids(cache.entries(where={"sys.id": {"in": ["a2", "n1", "zz"]}})) == ["a2", "n1"]
    ordered = ["a4", "n1", "a2", "a1", "a5", "a3"]                # missing first, ties by id
    assert ids(cache.entries(order_by=["rank"])) == ordered
    assert ids(cache.entries(order_by="-rank")) == ["a3", "a1", "a5", "a2", "a4", "n1"]
    assert ids(cache.entries(order_by=["rank"], limit=2, offset=3)) == ordered[3:5]
    assert cache.count("article", where={"rank": {"gte": 5}}) == 3
    assert cache.count() == 6
    assert ids(cache.iter_entries(order_by=["rank"], batch=2)) == ordered
    assert ids(cache.iter_entries(order_by=["rank"], offset=1, limit=4, batch=3)) == \
        ordered[1:5]


def test_fields_compare_in_the_query_locale_after_fallback(cache: Cache) -> None:
    # de-AT falls back to de-DE, then en-US: a2 and a5 have no German title.
    assert ids(cache.entries("article", where={"title": {"match": "a"}}, locale="de-AT")) == \
        ["a1", "a2", "a4"]
    assert ids(cache.entries("article", where={"title": "Banana"}, locale="de-DE")) == ["a2"]
    assert ids(cache.entries("article", where={"title": "Banana"}, locale="en-US")) == ["a2"]
    assert ids(cache.entries("article", where={"title": "Apple"}, locale="de-DE")) == []
    in_german = cache.entries("article", order_by=["-title"], locale="de-DE")
    assert [r.field("title", "de-DE") for r in in_german] == \
        ["elder", "Pflaume", "Kirsche", "Banana", "Apfel"]               # binary order


def test_backward_compatible_entries(cache: Cache) -> None:
    assert ids(cache.entries("article", ids=["a3", "a1", "n1"])) == ["a1", "a3"]
    assert ids(cache.entries(limit=2, offset=1)) == ["a2", "a3"]
    assert ids(cache.entries(offset=5)) == ["n1"]
    assert cache.entries("nothing") == []
    assert cache.entry("a1") is not None and cache.entry("missing") is None


@pytest.mark.parametrize("call,named", [
    (lambda c: c.entries(where={"rank": {"between": 1}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"in": 5}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {}}), "'rank'"),
    (lambda c: c.entries(where={"rank": None}), "'rank'"),
    (lambda c: c.entries(where={"rank": [1, 2]}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"eq": {"a": 1}}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"gte": True}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"exists": "yes"}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"match": 5}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"eq": float("nan")}}), "'rank'"),
    (lambda c: c.entries(where={"rank": {"eq": 1 << 70}}), "'rank'"),
    (lambda c: c.entries(where={"sys.revision": 1}), "'sys.revision'"),
    (lambda c: c.entries(where={"sys.id": 5}), "'sys.id'"),
    (lambda c: c.entries(where={'ti"tle': "x"}), "'ti\"tle'"),
    (lambda c: c.entries(where={"fields.title": "x"}), "'fields.title'"),
    (lambda c: c.entries(where=[("rank", 1)]), "where"),
    (lambda c: c.entries(order_by=["-"]), "'-'"),
    (lambda c: c.entries(order_by=[5]), "5"),
    (lambda c: c.entries(order_by={"rank": 1}), "order_by"),
    (lambda c: c.entries(order_by=["sys.version"]), "'sys.version'"),
    (lambda c: c.entries(limit=-1), "limit"),
    (lambda c: c.entries(offset=-5), "offset"),
    (lambda c: c.entries(limit=True), "limit"),
    (lambda c: c.entries(locale="fr-FR"), "'fr-FR'"),
    (lambda c: c.entries(ids="a1"), "ids"),
    (lambda c: c.count(where={"rank": {"lt": None}}), "'rank'"),
    (lambda c: c.iter_entries(where={"x": {"nope": 1}}), "'x'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_queries_raise_query_error_naming_the_key(cache: Cache, call: Any,
                                                            named: str) -> None:
    with pytest.raises(QueryError) as raised:
        call(cache)
    assert named in str(raised.value)
    assert isinstance(raised.value, LocalCacheError)


def test_iter_entries_memory_stays_flat(emulator: Any, store_path: Path) -> None:
    for n in range(300):
        emulator.space.publish_entry(f"e{n:03d}", "article", article(f"title {n}" * 20))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        with pytest.raises(QueryError, match="batch"):
            cache.iter_entries(batch=0)
        tracemalloc.start()
        try:
            streamed = sum(1 for _ in cache.iter_entries(batch=20))
            _, stream_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            everything = cache.entries()
            _, list_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert streamed == len(everything) == 300
        assert stream_peak * 4 < list_peak, (stream_peak, list_peak)


# -- Kontent.ai ---------------------------------------------------------------------------------

ENV = "975bf280-fd91-488c-994c-2f04416e5ee3"


def test_kontent_fields_compare_their_element_value(tmp_path: Path) -> None:
    project = Project(environment_id=ENV, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "rank": "number",
                                          "related": "modular_content"})
    rows = [("i1", "one", 3, ["x", "y"]), ("i2", "two", None, []), ("i3", "Three", 8, ["y"])]
    for item_id, title, rank, related in rows:
        project.upsert_variant(item_id, f"c_{item_id}", "article", "default",
                               {"title": title, "rank": rank, "related": related})
    project.upsert_variant("i1", "c_i1", "article", "es-ES", {"title": "uno", "rank": 30})
    with Emulator(project, access_token=None) as emulator, \
            Cache(Kontent(ENV, base_url=emulator.base_url), path=tmp_path / "k.sqlite3") as cache:
        cache.sync()
        assert cache.entry("i1").fields["rank"]["default"]["value"] == 3   # an element
        assert ids(cache.entries(where={"rank": {"gte": 3}})) == ["i1", "i3"]
        assert ids(cache.entries(where={"rank": {"exists": False}})) == ["i2"]  # value null
        assert ids(cache.entries(where={"related": "y"})) == ["i1", "i3"]       # an element
        assert ids(cache.entries(where={"title": {"match": "THREE"}})) == ["i3"]
        assert ids(cache.entries(order_by=["-rank"])) == ["i3", "i1", "i2"]
        for record in cache.entries():  # in es-ES: as record.field reads it, element's value
            element = record.field("rank", "es-ES")
            expected = element.get("value") if isinstance(element, dict) else None
            found = cache.count(ids=[record.id], where={"rank": {"exists": True}},
                                locale="es-ES")
            assert found == (expected is not None)
        assert ids(cache.entries(where={"rank": 30}, locale="es-ES")) == ["i1"]
        cache._use_field_indexes({"article": ["rank", "related"]})
        assert ids(cache.entries("article", where={"rank": {"gte": 3}})) == ["i1", "i3"]
        assert ids(cache.entries("article", where={"related": "y"})) == ["i1", "i3"]
        assert "USING INDEX lc_hot_article_rank_" in _plan(cache, "article",
                                                           where={"rank": {"gte": 3}})


# -- hot fields ---------------------------------------------------------------------------------


def _plan(cache: Cache, content_type: str | None = None, **query: Any) -> str:
    built = entry_query(content_type, **query)
    with cache._store.reading():
        context = cache._context(cache._locale_chain())
        sql = entries_sql(context, built)
        conn = context.conn
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql.text, sql.params).fetchall()
    return "\n".join(str(row[3]) for row in rows)


def _hot_objects(cache: Cache) -> set[str]:
    conn = cache._store.raw_connection()
    names = {r[0] for r in conn.execute("SELECT name FROM pragma_table_xinfo('entries')")}
    names |= {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    return {name for name in names if name.startswith("lc_hot_")}


def test_declared_hot_fields_are_indexed_and_used_by_the_planner(cache: Cache) -> None:
    assert "USING INDEX entries_content_type_id" in _plan(cache, "article", limit=2, offset=1)
    assert "TEMP B-TREE" not in _plan(cache, "article", limit=2)
    queries: list[dict[str, Any]] = [
        {"where": {"rank": {"gte": 5}}}, {"where": {"rank": 5}}, {"order_by": ["-rank"]},
        {"where": {"tags": "red"}}, {"where": {"title": "Apple"}, "locale": "de-DE"}]
    before = [ids(cache.entries("article", **q)) for q in queries]
    done = cache._use_field_indexes({"article": ["rank", "tags", "title"]})
    with cache._store.reading():
        chains = chain_for(cache._store.raw_connection())
    per_field = {field: field_chains(chains, "article", field)
                 for field in ("rank", "tags", "title")}
    # a column and an index for each locale's chain (en-US; de-AT falls back to de-DE, then
    # en-US)
    assert per_field["title"] == [("en-US",), ("de-AT", "de-DE", "en-US"), ("de-DE", "en-US")]
    assert len(done.created) == 2 * sum(map(len, per_field.values())) and not done.pending
    assert [ids(cache.entries("article", **q)) for q in queries] == before
    assert "USING INDEX lc_hot_article_rank_" in _plan(cache, "article",
                                                       where={"rank": {"gte": 5}})
    assert "lc_hot_article_rank_" in _plan(cache, "article", where={"rank": 5})
    ordered = _plan(cache, "article", order_by=["rank"], limit=2)
    assert "lc_hot_article_rank_" in ordered and "TEMP B-TREE" not in ordered
    # tags holds arrays: equality must test elements, so no index lookup (still correct).
    assert "lc_hot_article_tags_" not in _plan(cache, "article", where={"tags": "red"})
    # a non-default locale reads its own column, the value after fallback (a2 has no de-DE
    # title, a4's is its own)
    assert "USING INDEX lc_hot_article_title_" in _plan(cache, "article",
                                                        where={"title": "x"}, locale="de-DE")
    assert ids(cache.entries("article", where={"title": {"in": ["Banana", "Pflaume", "Damson"]}},
                             locale="de-DE")) == ["a2", "a4"]
    assert ids(cache.entries("article", order_by=["title"], locale="de-DE")) == \
        ["a1", "a2", "a3", "a4", "a5"]
    assert "TEMP B-TREE" not in _plan(cache, "article", order_by=["title"], limit=2,
                                      locale="de-DE")
    assert cache._use_field_indexes({"article": ["rank", "tags", "title"]}).created == ()
    done = cache._use_field_indexes({"article": ["rank"]})
    assert not done.created
    assert len(_hot_objects(cache)) == 2 * len(per_field["rank"])
    cache._use_field_indexes(None)
    assert _hot_objects(cache) == set()
    with pytest.raises(ConfigurationError, match=r"sys\.id"):
        cache._use_field_indexes({"article": ["sys.id"]})
    with pytest.raises(ConfigurationError, match="list of field ids"):
        cache._use_field_indexes({"article": "rank"})  # type: ignore[dict-item]


def test_hot_fields_wait_for_the_first_sync(emulator: Any, store_path: Path) -> None:
    _publish(emulator.space)
    with make_cache(emulator, store_path) as cache:
        assert cache._use_field_indexes({"article": ["rank"]}).pending  # no locales yet
        assert _hot_objects(cache) == set()
        cache.sync()
        assert ids(cache.entries("article", where={"rank": 5})) == ["a1", "a5"]
        with cache._store.reading():
            chains = field_chains(chain_for(cache._store.raw_connection()), "article", "rank")
        built = _hot_objects(cache)
        assert len(built) == 2 * len(chains) >= 4                   # built after that sync
        assert "lc_hot_article_rank_" in _plan(cache, "article", where={"rank": 5})
    with Cache.open(store_path) as reader:                        # Cache.open keeps them
        assert _hot_objects(reader) == built
        assert ids(reader.entries("article", where={"rank": {"lt": 5}})) == ["a2"]


def test_hot_columns_follow_the_chains_a_sync_changes(emulator: Any, store_path: Path) -> None:
    """A content type that stops localizing a field changes the chain every locale reads it
    in (the default locale first): after that sync, the field's columns are the new chains',
    even for a Cache opened just before it and read from while it ran."""
    from localcache import Contentful, signals

    _publish(emulator.space)

    def open_cache() -> Cache:
        space = emulator.space
        return Cache(Contentful(space.space_id, TOKEN, space.environment,
                                base_url=emulator.base_url),
                     path=store_path, indexes={"note": ["title"]})

    with open_cache() as cache:
        cache.sync()
        before = _hot_objects(cache)
        assert before and "lc_hot_note_title_" in _plan(cache, "note", where={"title": "x"},
                                                        locale="de-DE")
    emulator.space.add_content_type("note", name="Note", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": False}])
    emulator.space.publish_entry("n2", "note", {"title": {"en-US": "Pear note"}})
    with open_cache() as cache:
        seen: list[int] = []

        def read_meanwhile(sender: object, **_: Any) -> None:
            seen.append(cache.count("note", where={"title": {"match": "note"}},
                                    locale="de-DE"))

        signals.sync_progress.connect(read_meanwhile)
        try:
            cache.sync()
        finally:
            signals.sync_progress.disconnect(read_meanwhile)
        assert seen == [2]
        after = _hot_objects(cache)
        assert after != before and len(after) == len(before)
        assert "lc_hot_note_title_" in _plan(cache, "note", where={"title": "x"},
                                             locale="de-DE")
        assert ids(cache.entries("note", where={"title": {"match": "note"}}, locale="de-DE",
                                 order_by=["title"])) == ["n1", "n2"]


def test_hot_columns_a_busy_store_kept_from_following_are_built_by_a_later_read(
        emulator: Any, store_path: Path) -> None:
    """Another connection holds the write lock when the sync ends: the columns of the new
    chains are not built then (the sync does not wait), and the next read builds them."""
    import sqlite3

    from localcache import Contentful, signals

    _publish(emulator.space)
    space = emulator.space
    with Cache(Contentful(space.space_id, TOKEN, space.environment, base_url=emulator.base_url),
               path=store_path, indexes={"note": ["title"]}) as cache:
        cache.sync()
        before = _hot_objects(cache)
        space.add_content_type("note", name="Note", fields=[
            {"id": "title", "name": "Title", "type": "Symbol", "localized": False}])
        space.publish_entry("n2", "note", {"title": {"en-US": "Pear note"}})
        blocker = sqlite3.connect(store_path, timeout=0)

        def hold_the_lock(sender: object, **_: Any) -> None:
            blocker.execute("BEGIN IMMEDIATE")

        signals.sync_finished.connect(hold_the_lock)
        try:
            cache.sync()
        finally:
            signals.sync_finished.disconnect(hold_the_lock)
        assert _hot_objects(cache) == before  # not followed yet
        blocker.rollback()
        blocker.close()
        assert ids(cache.entries("note", where={"title": {"match": "note"}},
                                 locale="de-DE")) == ["n1", "n2"]
        after = _hot_objects(cache)
        assert after != before and len(after) == len(before)


def test_index_locales_limits_the_hot_columns_to_those_locales(emulator: Any,
                                                               store_path: Path) -> None:
    """``index_locales=["de-DE"]``: columns for the default locale and de-DE only; a query in
    another locale gives the same rows, unindexed."""
    from localcache import Contentful

    _publish(emulator.space)
    space = emulator.space

    def open_cache(**options: Any) -> Cache:
        return Cache(Contentful(space.space_id, TOKEN, space.environment,
                                base_url=emulator.base_url), path=store_path, **options)

    with open_cache() as cache:
        cache.sync()
        everywhere = {locale: ids(cache.entries("article", order_by=["title"], locale=locale))
                      for locale in ("en-US", "de-DE", "de-AT")}
    with open_cache(indexes={"article": ["title"]}, index_locales=["de-DE"]) as cache:
        assert len(_hot_objects(cache)) == 4  # a column and an index: en-US, de-DE
        assert "lc_hot_article_title_" in _plan(cache, "article", where={"title": "x"},
                                                locale="de-DE")
        assert "lc_hot_" not in _plan(cache, "article", where={"title": "x"}, locale="de-AT")
        for locale, expected in everywhere.items():
            assert ids(cache.entries("article", order_by=["title"], locale=locale)) == expected
    with open_cache(indexes={"article": ["title"]}, index_locales=iter(["de-DE"])) as cache:
        assert len(_hot_objects(cache)) == 4  # an iterator is read once, and used
    with open_cache(indexes={"article": ["title"]}) as cache:  # every locale again
        assert len(_hot_objects(cache)) == 6
    with pytest.raises(ConfigurationError, match="index_locales"):
        open_cache(indexes={"article": ["title"]}, index_locales="de-DE")
    with pytest.raises(ConfigurationError, match="index_locales"):
        open_cache(index_locales=["de-DE", ""])


def test_a_wide_filter_reads_a_page_in_the_order_index(
        emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rank >= 1`` keeps nearly everything: the page is read in ``published`` order
    rather than sorting every match; a narrow filter keeps its own index."""
    from localcache.store import select as query_module

    monkeypatch.setattr(query_module, "_WIDE", 50)  # as 1000 is to 100k entries
    for n in range(200):
        emulator.space.publish_entry(f"w{n:04d}", "article", {
            "title": {"en-US": f"t{n}"}, "rank": {"en-US": n % 7 + 1},
            "published": {"en-US": f"2024-01-{n % 28 + 1:02d}"}})
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        cache._use_field_indexes({"article": ["rank", "published"]})
        wide = {"where": {"rank": {"gte": 1}}, "order_by": ["-published"], "limit": 10}
        assert "lc_hot_article_published_" in _plan(cache, "article", **wide)
        narrow = {"where": {"rank": {"gte": 7}}, "order_by": ["-published"], "limit": 10}
        assert "lc_hot_article_rank_" in _plan(cache, "article", **narrow)
        one = {"where": {"title": "t5"}, "order_by": ["-published"], "limit": 10}
        cache._use_field_indexes({"article": ["rank", "published", "title"]})
        assert "lc_hot_article_title_" in _plan(cache, "article", **one)
        everything = cache.entries("article")
        for query in (wide, narrow, one):
            expected = sorted(
                (r for r in everything
                 if all(_holds(r, k, c) for k, c in query["where"].items())),
                key=lambda r: r.id)
            expected.sort(key=lambda r: r.field("published"), reverse=True)
            assert ids(cache.entries("article", **query)) == ids(expected[:10]), query


def _holds(record: Any, key: str, condition: Any) -> bool:
    value = record.field(key)
    if isinstance(condition, dict):
        return all(value is not None and value >= x for op, x in condition.items()
                   if op == "gte")
    return bool(value == condition)


def test_read_context_is_usable_alone(cache: Cache) -> None:
    """What the lead's later modules (links, search) can build on: a context and a query."""
    with cache._store.reading():
        context = cache._context(cache._locale_chain())
        assert isinstance(context, ReadContext) and context.provider == "contentful"
