"""Full-text search: what a search box finds, in each locale after fallback, kept in step with
every page, checked against a brute-force scan of the same words."""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import TOKEN, article, make_cache, make_space

from localcache import Cache, ConfigurationError, Contentful, Contentstack, Kontent, QueryError
from localcache.emulator import Emulator, Project, Stack
from localcache.store.search import plain_text


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


def test_search_finds_words_ranks_and_highlights(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    space.publish_entry("e1", "article", article("The Green Garden", de="Der grüne Garten"))
    space.publish_entry("e2", "article", article("Greenhouse gases"))
    space.publish_entry("e3", "article", article("Blue sky"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        hits = cache.search("green")
        assert sorted(h.id for h in hits) == ["e1", "e2"]
        assert all(h.score > 0 for h in hits) and hits[0].score >= hits[1].score
        assert all(h.record.id == h.id for h in hits)
        assert hits[0].record.resolve("related") is None  # hits' records resolve on their own
        assert "[Green]" in next(h.snippet for h in hits if h.id == "e1")
        assert [h.id for h in cache.search("GREENHOU")] == ["e2"]  # a word's start, any case
        assert cache.search("eenhouse") == []                        # not inside a word
        assert [h.id for h in cache.search("garden green")] == ["e1"]  # every word
        assert cache.search("green", locale="de-DE")[0].id == "e2"  # e2 falls back to en-US
        assert [h.id for h in cache.search("grüne", locale="de-DE")] == ["e1"]
        assert [h.id for h in cache.search("grüne", locale="de-AT")] == ["e1"]  # chain of 2
        assert cache.search("grüne") == []                          # not in en-US
        assert cache.search("green", content_type="other") == []
        assert len(cache.search("body of", limit=2)) == 2  # every article has a body
        assert cache.search("   ") == []


def test_fts_syntax_in_the_query_is_searched_for(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    space.publish_entry("q", "article", article('say "hi" NEAR the star* -minus'))
    space.publish_entry("p", "article", article("plain words here"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        for text in ('"hi"', "NEAR", "star*", "-minus", '"', "*", "-", "NEAR(", "AND OR NOT"):
            hits = cache.search(text)
            assert all(h.id == "q" for h in hits), text
        assert [h.id for h in cache.search('"hi" NEAR')] == ["q"]
        assert cache.search("AND OR NOT") == []
        assert cache.search("plain NOT") == []


def test_search_follows_every_page(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    space.publish_entry("e1", "article", article("apple pie"))
    space.publish_entry("e2", "article", article("banana bread"))
    with make_cache(emulator, store_path, limit=1) as cache:
        cache.sync()
        space.publish_entry("e1", "article", article("cherry tart"))
        space.delete_entry("e2")
        space.publish_entry("e3", "article", article("apple crumble"))
        cache.sync()
        assert [h.id for h in cache.search("apple")] == ["e3"]
        assert [h.id for h in cache.search("cherry")] == ["e1"]
        assert cache.search("banana") == []


def test_rebuild_after_a_rejected_token_keeps_search_true(emulator: Any,
                                                          store_path: Path) -> None:
    space = emulator.space
    space.publish_entry("e1", "article", article("alpha"))
    space.publish_entry("e2", "article", article("beta"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        space.publish_entry("e1", "article", article("gamma"))
        space.delete_entry("e2")
        emulator.faults.invalidate_tokens_before_now()
        assert cache.sync().initial
        assert [h.id for h in cache.search("gamma")] == ["e1"]
        assert cache.search("alpha") == [] and cache.search("beta") == []


def test_search_off_keeps_no_index_and_on_builds_it(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("kiwi"))
    provider = Contentful(emulator.space.space_id, TOKEN, base_url=emulator.base_url)
    with Cache(provider, path=store_path, search=False) as cache:
        cache.sync()
        with pytest.raises(ConfigurationError, match="turned off"):
            cache.search("kiwi")
    assert "search_index" not in _tables(store_path)
    with make_cache(emulator, store_path) as cache:  # search on: built on open
        assert [h.id for h in cache.search("kiwi")] == ["e1"]
    assert "search_index" in _tables(store_path)
    with Cache.open(store_path) as reader:
        assert [h.id for h in reader.search("kiwi")] == ["e1"]


def test_bad_search_arguments_are_query_errors(emulator: Any, store_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("kiwi"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        for bad in ({"limit": 0}, {"limit": "5"}, {"locale": "xx-XX"}, {"content_type": 3}):
            with pytest.raises(QueryError):
                cache.search("kiwi", **bad)
        with pytest.raises(QueryError):
            cache.search(None)  # type: ignore[arg-type]


def test_a_sqlite_without_fts5_reports_search_unavailable(
        emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import localcache.store.search as search_module

    emulator.space.publish_entry("e1", "article", article("kiwi"))
    # A build without the module answers "no such module" to the CREATE, as this one would.
    monkeypatch.setattr(search_module, "_CREATE", search_module._CREATE.replace(
        "USING fts5(", "USING fts5_absent("))
    with make_cache(emulator, store_path) as cache:
        cache.sync()  # everything else works
        assert cache.entry("e1") is not None
        with pytest.raises(ConfigurationError, match="unavailable"):
            cache.search("kiwi")


def test_snapshot_carries_the_index(emulator: Any, tmp_path: Path) -> None:
    emulator.space.publish_entry("e1", "article", article("mango"))
    with make_cache(emulator, tmp_path / "build.sqlite3") as cache:
        cache.sync()
        cache.create_snapshot(tmp_path / "content.snap")
    provider = Contentful(emulator.space.space_id, TOKEN, base_url="http://127.0.0.1:9")
    with Cache(provider, path=tmp_path / "app.sqlite3",
               snapshot=tmp_path / "content.snap") as seeded:
        assert seeded.seeded is not None
        assert [h.id for h in seeded.search("mango")] == ["e1"]  # offline, no sync


# -- vendors' rich text ----------------------------------------------------------------------


def test_plain_text_of_the_vendors_rich_text() -> None:
    contentful = {"nodeType": "document", "content": [
        {"nodeType": "paragraph", "content": [
            {"nodeType": "text", "value": "Hello ", "marks": []},
            {"nodeType": "text", "value": "rich world", "marks": [{"type": "bold"}]}]},
        {"nodeType": "embedded-entry-block", "data": {"target": {"sys": {"id": "x"}}},
         "content": []}]}
    assert " ".join(plain_text(contentful)) == "Hello  rich world"
    json_rte = {"type": "doc", "uid": "u1", "children": [
        {"type": "p", "children": [{"text": "Stack "}, {"text": "text", "bold": True}]}]}
    assert " ".join(plain_text(json_rte)) == "Stack  text"
    assert list(plain_text("<p>Some <strong>bold</strong> &amp; more</p>")) == [
        "Some bold & more"]
    kontent = {"type": "rich_text", "name": "Body", "value": "<p>Kontent <em>rich</em></p>",
               "modular_content": []}
    assert list(plain_text(kontent)) == ["Kontent rich"]
    assert list(plain_text({"type": "number", "name": "N", "value": 3})) == []
    assert list(plain_text({"sys": {"type": "Link", "linkType": "Entry", "id": "x"}})) == []
    assert list(plain_text(["a", "b", 3])) == ["a", "b"]


def test_contentstack_html_and_json_rte_are_searched_as_text(store_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    stack.publish_entry("h1", "blog", "en-us", {
        "title": "Post", "body": "<p>The <strong>secret</strong> ingredient</p>",
        "rte": {"type": "doc", "children": [{"type": "p", "children": [{"text": "walnut"}]}]}})
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url),
                  path=store_path) as cache:
        cache.sync()
        assert [h.id for h in cache.search("secret ingredient")] == ["h1"]
        assert [h.id for h in cache.search("walnut")] == ["h1"]
        assert cache.search("strong") == []  # a tag name, not text


def test_kontent_rich_text_elements_are_searched(store_path: Path) -> None:
    project = Project(environment_id="975bf280-fd91-488c-994c-2f04416e5ee3",
                      languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "body": "rich_text", "n": "number"})
    project.upsert_variant("00000000-0000-4000-8000-000000000001", "item_1", "article",
                           "default", {"title": "Hello", "body": "<p>deep <b>ocean</b></p>",
                                       "n": 42})
    with Emulator(project, access_token=None) as emu, \
            Cache(Kontent(project.environment_id, base_url=emu.base_url),
                  path=store_path) as cache:
        cache.sync()
        assert [h.id for h in cache.search("deep ocean")] == [
            "00000000-0000-4000-8000-000000000001"]
        assert cache.search("42") == []
        # es-ES falls back to the default language, so the search there finds it too.
        assert len(cache.search("ocean", locale="es-ES")) == 1


# -- against a brute-force scan --------------------------------------------------------------

WORDS = st.text(alphabet="abcAB -\"*éÄ1_", min_size=1, max_size=12)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(titles=st.lists(WORDS, min_size=1, max_size=8),
       german=st.lists(st.one_of(st.none(), WORDS), min_size=8, max_size=8),
       query=st.text(alphabet="abcAB -\"*éÄ1_", min_size=1, max_size=6),
       locale=st.sampled_from(["en-US", "de-DE", "de-AT"]))
def test_search_agrees_with_a_substring_scan(tmp_path_factory: Any, titles: list[str],
                                             german: list[str | None], query: str,
                                             locale: str) -> None:
    space = make_space()
    for n, title in enumerate(titles):
        space.publish_entry(f"e{n}", "article", article(title, de=german[n]))
    path = tmp_path_factory.mktemp("search") / "store.sqlite3"
    with Emulator(space, access_token=TOKEN) as emu, make_cache(emu, path) as cache:
        cache.sync()
        found = {h.id for h in cache.search(query, locale=locale, limit=1000)}
        terms = [_fold(t) for t in re.findall(r"[^\W_]+", query)]
        expected = set()
        if terms:
            for record in cache.entries():
                text = " ".join(str(record.field(name, locale) or "")
                                for name in ("title", "body"))
                text_words = [_fold(w) for w in re.findall(r"[^\W_]+", text)]
                if all(any(w.startswith(t) for w in text_words) for t in terms):
                    expected.add(record.id)
        assert found == expected


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
