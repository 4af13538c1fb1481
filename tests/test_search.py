"""Full-text search: what a search box finds, in each locale after fallback, kept in step with
every page, checked against a brute-force scan of the same words."""

from __future__ import annotations

import math
import re
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import TOKEN, article, make_cache, make_space

from localcache import Cache, ConfigurationError, Contentful, Contentstack, Kontent, QueryError
from localcache.emulator import Emulator, Locale, Project, Space, Stack
from localcache.model import Delta
from localcache.store.query import LocaleChain
from localcache.store.search import TextsAhead, plain_text, snippet


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


def test_an_index_opened_without_fts5_is_dropped_and_built_again_with_it(
        emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store moved to a Python without FTS5 cannot keep its index; dropped there, it is
    built again (with what the syncs meanwhile brought) where FTS5 is back."""
    import localcache.store.search as search_module

    space = emulator.space
    space.publish_entry("e1", "article", article("kiwi"))
    with make_cache(emulator, store_path) as cache:
        cache.sync()
    monkeypatch.setattr(search_module, "_CREATE", search_module._CREATE.replace(
        "USING fts5(", "USING fts5_absent("))
    with make_cache(emulator, store_path) as cache:
        with pytest.raises(ConfigurationError, match="unavailable"):
            cache.search("kiwi")
        space.publish_entry("e2", "article", article("fresh kiwi"))
        cache.sync()
    assert "search_index" not in _tables(store_path)
    monkeypatch.undo()
    with make_cache(emulator, store_path) as cache:
        assert [h.id for h in cache.search("fresh")] == ["e2"]
        assert sorted(h.id for h in cache.search("kiwi")) == ["e1", "e2"]


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


def test_arrays_links_and_rich_text_of_an_entry_are_searched_as_text(
        emulator: Any, store_path: Path) -> None:
    space = emulator.space
    space.add_content_type("note", name="Note", fields=[
        {"id": "tags", "name": "Tags", "type": "Array", "items": {"type": "Symbol"}},
        {"id": "mixed", "name": "Mixed", "type": "Object"},
        {"id": "body", "name": "Body", "type": "RichText"},
        {"id": "link", "name": "Link", "type": "Link", "linkType": "Entry"},
        {"id": "count", "name": "Count", "type": "Integer"},
    ], display_field="tags")
    space.publish_entry("n1", "note", {
        "tags": {"en-US": ["Alpha", "", "<strong>Beta</strong>"]},
        "mixed": {"en-US": ["gamma", 7, {"nodeType": "document", "content": [
            {"nodeType": "text", "value": "delta"}]}]},
        "body": {"en-US": {"nodeType": "document", "content": [{"nodeType": "paragraph",
                           "content": [{"nodeType": "text", "value": "epsilon"}]}]}},
        "link": {"en-US": {"sys": {"type": "Link", "linkType": "Entry", "id": "zeta"}}},
        "count": {"en-US": 42}})
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        for word in ("alpha", "beta", "gamma", "delta", "epsilon"):
            assert [h.id for h in cache.search(word)] == ["n1"], word
        for word in ("strong", "zeta", "link", "entry", "42", "7"):
            assert cache.search(word) == [], word


def test_fields_of_a_type_without_text_are_not_searched(emulator: Any,
                                                        store_path: Path) -> None:
    """Dates (strings in the JSON) are left out by their declared type; a Symbol holding the
    same characters is searched."""
    space = emulator.space
    space.add_content_type("event", name="Event", fields=[
        {"id": "title", "name": "Title", "type": "Symbol"},
        {"id": "code", "name": "Code", "type": "Symbol"},
        {"id": "startsAt", "name": "Starts at", "type": "Date"},
    ], display_field="title")
    space.publish_entry("ev1", "event", {"title": {"en-US": "Launch"},
                                         "startsAt": {"en-US": "2031-05-17T09:00:00Z"}})
    space.publish_entry("ev2", "event", {"title": {"en-US": "Rehearsal"},
                                         "code": {"en-US": "2031-05-17"}})
    with make_cache(emulator, store_path) as cache:
        cache.sync()
        assert [h.id for h in cache.search("launch")] == ["ev1"]
        assert [h.id for h in cache.search("2031")] == ["ev2"]
        assert [h.id for h in cache.search("17t09")] == []


def test_contentstack_date_fields_are_not_searched(store_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    stack.add_content_type("show", title="Show", schema=[
        {"uid": "title", "data_type": "text", "display_name": "Title"},
        {"uid": "opens", "data_type": "isodate", "display_name": "Opens"}])
    stack.publish_entry("s1", "show", "en-us", {"title": "Premiere", "opens": "2031-05-17"})
    with Emulator(stack, access_token=TOKEN) as emu, \
            Cache(Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url),
                  path=store_path) as cache:
        cache.sync()
        assert [h.id for h in cache.search("premiere")] == ["s1"]
        assert cache.search("2031") == []


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


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    return [_fold(w) for w in re.findall(r"[^\W_]+", text)]


def _texts(cache: Any, locale: str) -> dict[str, str]:
    """Each entry's text in ``locale`` as ``record.field`` shows it: its string values."""
    texts = {}
    for record in cache.entries():
        values = [record.field(name, locale) for name in record.fields]
        text = "\n".join(v for v in values if isinstance(v, str) and v)
        if text:
            texts[record.id] = text
    return texts


def _bm25(texts: dict[str, str], query: str) -> dict[str, float]:
    """FTS5's bm25 (k1 = 1.2, b = 0.75; a word found in more than half the rows weighs 1e-6)
    of every entry of one locale matching ``query``: each query word begins a word of the
    text."""
    terms = _words(query)
    rows = {entry_id: _words(text) for entry_id, text in texts.items()}
    sizes = {entry_id: len(found) for entry_id, found in rows.items()}
    average = sum(sizes.values()) / len(rows)
    weights = []
    for term in terms:
        hits = sum(1 for found in rows.values() if any(w.startswith(term) for w in found))
        idf = math.log((len(rows) - hits + 0.5) / (hits + 0.5))
        weights.append(idf if idf > 0 else 1e-6)
    scores = {}
    for entry_id, found in rows.items():
        counts = [sum(1 for w in found if w.startswith(term)) for term in terms]
        if terms and all(counts):
            scores[entry_id] = sum(
                weight * count * 2.2 / (count + 1.2 * (0.25 + 0.75 * sizes[entry_id] / average))
                for weight, count in zip(weights, counts, strict=True))
    return scores


def _assert_agrees(cache: Any, query: str, locale: str, limit: int = 1000,
                   content_type: str | None = None) -> None:
    """The hits are the matches of a brute-force scan, with its bm25 scores, the best
    ``limit`` of them (ties in any order), best first."""
    hits = cache.search(query, locale=locale, content_type=content_type, limit=limit)
    expected = _bm25(_texts(cache, locale), query)
    if content_type not in (None, "article"):
        expected = {}
    assert len(hits) == min(limit, len(expected))
    for hit in hits:
        assert hit.score == pytest.approx(expected.pop(hit.id), rel=1e-9), (query, hit.id)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    if hits:  # nothing left out scores above what was returned
        assert max(expected.values(), default=0.0) <= hits[-1].score * (1 + 1e-9)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(titles=st.lists(WORDS, min_size=1, max_size=8),
       german=st.lists(st.one_of(st.none(), WORDS), min_size=8, max_size=8),
       query=st.text(alphabet="abcAB -\"*éÄ1_", min_size=1, max_size=6),
       locale=st.sampled_from(["en-US", "de-DE", "de-AT"]),
       limit=st.sampled_from([1, 3, 1000]),
       content_type=st.sampled_from([None, "article", "other"]))
def test_search_agrees_with_a_brute_force_scan(tmp_path_factory: Any, titles: list[str],
                                               german: list[str | None], query: str,
                                               locale: str, limit: int,
                                               content_type: str | None) -> None:
    space = make_space()
    for n, title in enumerate(titles):
        space.publish_entry(f"e{n}", "article", article(title, de=german[n]))
    path = tmp_path_factory.mktemp("search") / "store.sqlite3"
    with Emulator(space, access_token=TOKEN) as emu, make_cache(emu, path) as cache:
        cache.sync()
        _assert_agrees(cache, query, locale, limit, content_type)


def test_pages_indexed_ahead_agree_with_a_scan(emulator: Any, store_path: Path) -> None:
    """Past its first pages, a sync indexes texts the fetch thread extracted ahead: what it
    finds is what a scan finds, after later syncs that update and delete too."""
    space = emulator.space
    syllables = ["ka", "lo", "mi", "nu", "pe"]
    for n in range(14):
        title = " ".join(syllables[(n + k) % 5] * (1 + k % 2) for k in range(n % 4 + 1))
        space.publish_entry(f"e{n:02d}", "article",
                            article(title, de=f"{title} grün" if n % 3 else None))
    queries = ["ka", "kaka lo", "mi", "pepe", "gr", "body", "nu of"]
    with make_cache(emulator, store_path, limit=2) as cache:
        assert cache.sync().pages >= 7
        for query in queries:
            for locale in ("en-US", "de-DE", "de-AT"):
                _assert_agrees(cache, query, locale)
        for n in range(0, 14, 3):
            space.publish_entry(f"e{n:02d}", "article", article(f"pe {n} ka", de="nu nu"))
        space.delete_entry("e01")
        cache.sync()
        for query in queries:
            for locale in ("en-US", "de-DE"):
                _assert_agrees(cache, query, locale, limit=4)


def test_texts_extracted_ahead_with_another_chain_are_left_to_the_writer() -> None:
    """The fetch thread extracts with the chain the writer last named; texts extracted with
    another one are not used (the writer extracts again)."""
    old = LocaleChain("en-US", {"en-US": None})
    new = LocaleChain("en-US", {"en-US": None, "de-DE": "en-US"})
    document = {"fields": {"title": {"en-US": "kiwi"}}}
    ahead = TextsAhead.begin()
    try:
        assert ahead.start() is None  # no chain named yet: nothing is extracted
        assert TextsAhead.for_page(old) is None
        prepared = ahead.start()
        assert prepared is not None
        prepared.add_deltas([Delta("Entry", "e1", False, document, "article"),
                             Delta("Entry", "e2", True)])
        ahead.page = prepared
        assert TextsAhead.for_page(old) is prepared
        assert prepared.take(dict(document)) is None  # an equal document is not the one
        assert prepared.take(document) == {"en-US": "kiwi"}
        assert TextsAhead.for_page(new) is None
        inner = TextsAhead.begin()  # a signal receiver syncing another cache meanwhile
        assert TextsAhead.for_page(new) is None
        inner.end()
        again = ahead.start()  # the outer loop goes on, with the chain it was last given
        assert again is not None and again.plan.chain is new
        ahead.page = again
        assert TextsAhead.for_page(new) is again
    finally:
        ahead.end()
    assert TextsAhead.for_page(old) is None  # the page loop is over


def test_a_common_word_ranks_the_newest_matches(
        emulator: Any, store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past RANKED_MATCHES matches (of the type asked for), bm25 ranks the newest that many
    (entries synced or changed last), with the whole locale's statistics."""
    import localcache.store.search as search_module

    space = emulator.space
    space.add_content_type("note", name="Note", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": True}],
        display_field="title")
    bodies = ["apple apple apple", "apple pie", "apple", "apple apple tart", "an apple a day",
              "apple crumble with cream", "plum", "apple"]
    with make_cache(emulator, store_path) as cache:
        for n, body in enumerate(bodies):  # one sync each: e0 is the oldest row
            space.publish_entry(f"e{n}", "article", article(body))
            cache.sync()
        for n in range(2):  # the newest of all: notes
            space.publish_entry(f"n{n}", "note", {"title": {"en-US": "apple apple"}})
            cache.sync()
        everything = _bm25(_texts(cache, "en-US"), "apple")
        articles = [i for i in everything if i.startswith("e")]

        synced = [f"e{n}" for n in range(8)] + ["n0", "n1"]

        def best(ids: list[str]) -> list[str]:  # ties: the newest first
            return sorted(ids, key=lambda i: (-round(everything[i], 9), -synced.index(i)))

        assert [h.id for h in cache.search("apple", limit=3)] == best(list(everything))[:3]
        assert [h.id for h in cache.search("apple", limit=2, content_type="article")] == \
            best(articles)[:2]  # exact
        monkeypatch.setattr(search_module, "RANKED_MATCHES", 3)
        hits = cache.search("apple", limit=2)
        assert [h.id for h in hits] == best(["n1", "n0", "e7"])[:2]
        assert [h.score for h in hits] == [pytest.approx(everything[h.id]) for h in hits]
        newest = ["e7", "e5", "e4"]  # the 3 newest matching articles (e6 has no apple)
        hits = cache.search("apple", limit=2, content_type="article")
        assert [h.id for h in hits] == best(newest)[:2]
        assert hits[0].id != best(articles)[0]  # the approximation is visible here
        space.publish_entry("e0", "article", article("apple apple apple"))
        cache.sync()  # changed: now among the newest
        assert [h.id for h in cache.search("apple", limit=1, content_type="article")] == ["e0"]
        assert len(cache.search("apple", limit=20)) == 9  # limit beyond the cap: all of them


def test_a_field_the_type_does_not_localize_is_searched_as_record_field_shows_it(
        store_path: Path) -> None:
    space = Space("unloc", "master", locales=[Locale("en-US", default=True),
                                              Locale("fr-FR")])  # no fallback
    space.add_content_type("page", name="Page", fields=[
        {"id": "title", "name": "Title", "type": "Symbol", "localized": True},
        {"id": "slug", "name": "Slug", "type": "Symbol", "localized": False},
        {"id": "note", "name": "Note", "type": "Text", "localized": False},
    ], display_field="title")
    space.publish_entry("p1", "page", {
        "title": {"en-US": "Hello", "fr-FR": "Bonjour"},
        "slug": {"en-US": "welcome-home"},
        "note": {"en-US": "english note", "fr-FR": "stray remark"}})
    with Emulator(space, access_token=TOKEN) as emu, make_cache(emu, store_path) as cache:
        cache.sync()
        record = cache.entry("p1")
        assert record is not None
        assert (record.field("slug", "fr-FR"), record.field("note", "fr-FR")) == (
            "welcome-home", "english note")
        for query, found in [("welcome", True), ("english", True), ("bonjour", True),
                             ("remark", False), ("hello", False)]:
            assert [h.id for h in cache.search(query, locale="fr-FR")] == \
                (["p1"] if found else []), query
        _assert_agrees(cache, "home", "fr-FR")


def test_a_locale_learned_on_a_later_page_is_indexed(store_path: Path) -> None:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us", "fr-fr"])
    for n in range(6):
        stack.publish_entry(f"s{n}", "blog", "en-us", {"title": f"river {n}"})
    stack.publish_entry("s1", "blog", "fr-fr", {"title": "fleuve"})
    with Emulator(stack, access_token=TOKEN, page_size=2) as emu, \
            Cache(Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url,
                               fallbacks={"fr-fr": "en-us"}), path=store_path) as cache:
        assert cache.sync().pages >= 4
        assert [h.id for h in cache.search("fleuve", locale="fr-fr")] == ["s1"]
        assert len(cache.search("river", locale="fr-fr")) == 5  # fallback to en-us
        assert len(cache.search("river")) == 6


# -- snippets --------------------------------------------------------------------------------


def _reference_snippet(body: str, text: str, width: int) -> str:
    """Every match found, then the window around the first, matches inside it bracketed."""
    prefixes = tuple(_fold(t) for t in re.findall(r"[^\W_]+", text))
    found = [m for m in re.finditer(r"[^\W_]+", body)
             if prefixes and _fold(m.group()).startswith(prefixes)]
    first = found[0].start() if found else 0
    start, end = max(0, first - width), min(len(body), first + width * 2)
    pieces, at = [], start
    for m in found:
        if start <= m.start() and m.end() <= end:
            pieces.append(body[at:m.start()] + "[" + m.group() + "]")
            at = m.end()
    pieces.append(body[at:end])
    window = " ".join("".join(pieces).split())
    return ("…" if start > 0 else "") + window + ("…" if end < len(body) else "")


@settings(max_examples=500)
@given(body=st.text(alphabet="abAÉé  .\n1", max_size=120),
       text=st.text(alphabet="abAé 1", max_size=5), width=st.integers(1, 20))
@example(body="ab   ab", text="ab", width=3)  # a match one past the window's end
def test_snippet_brackets_the_matches_around_the_first(body: str, text: str,
                                                        width: int) -> None:
    assert snippet(body, text, width) == _reference_snippet(body, text, width)
