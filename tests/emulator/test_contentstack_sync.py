"""Contentstack Synchronization over loopback: initial sync, pagination, deltas, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

from .test_contentstack_support import (
    API_KEY,
    ENVIRONMENT,
    TOKEN,
    CsClient,
    Mirror,
    make_stack,
    publish_article,
)

ITEM_KEYS = {"type", "event_at", "content_type_uid", "data"}
ALL_TYPES = {
    "entry_published",
    "entry_unpublished",
    "entry_deleted",
    "asset_published",
    "asset_unpublished",
    "asset_deleted",
    "content_type_deleted",
}


@pytest.fixture
def stack() -> Stack:
    return make_stack()


@pytest.fixture
def emu(stack: Stack) -> Iterator[Emulator]:
    with Emulator(stack, access_token=TOKEN, page_size=4) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[CsClient]:
    cs = CsClient(emu)
    yield cs
    cs.close()


def test_initial_sync_delivers_every_published_locale(stack: Stack, client: CsClient) -> None:
    # article-1 has no fr-fr version of its own: fr-fr is published by fallback, with en-us content
    stack.publish_entry("article-1", "article", "fr-fr", {"title": "Article 1 (en-us)"},
                        content_locale="en-us")
    run = client.initial()
    # 2 assets + 2 authors + 6 articles in en-us + 3 in fr-fr + 1 by fallback, at 4 per page
    assert [len(page["items"]) for page in run.pages] == [4, 4, 4, 2]
    assert len(set(run.keys())) == len(run.items) == 14
    assert {item["type"] for item in run.items} == {"entry_published", "asset_published"}
    assert Mirror().apply(run.items).records == stack.published()
    by_fallback = []
    for item in run.items:
        assert set(item) == ITEM_KEYS
        data = item["data"]
        assert item["event_at"] == data["publish_details"]["time"] == data["updated_at"]
        if data["publish_details"]["locale"] != data["locale"]:
            by_fallback.append((data["uid"], data["locale"], data["publish_details"]["locale"]))
        assert data["publish_details"]["environment"] == stack.environment_uid
        if item["type"] == "asset_published":
            assert item["content_type_uid"] == "sys_assets"
    assert by_fallback == [("article-1", "en-us", "fr-fr")]
    stamps = [item["event_at"] for item in run.items]
    assert stamps == sorted(stamps), "items come in event order"


def test_pages_report_skip_limit_and_total(client: CsClient) -> None:
    run = client.initial()
    assert [page["skip"] for page in run.pages] == [0, 4, 8, 12]
    assert {page["limit"] for page in run.pages} == {4}
    assert {page["total_count"] for page in run.pages} == {13}
    assert all("pagination_token" in page for page in run.pages[:-1])
    assert set(run.pages[-1]) == {"items", "skip", "limit", "total_count", "sync_token"}


def test_shapes_match_the_recorded_responses(client: CsClient, load_fixture: Any) -> None:
    run = client.initial()
    for name, page in (("sync_publish", run.pages[0]), ("sync_empty", run.pages[-1])):
        recorded = load_fixture(f"contentstack/{name}.json")
        assert set(recorded) == set(page)
        for item in recorded["items"]:
            assert set(item) == ITEM_KEYS
    empty = client.delta(run.sync_token).pages
    assert len(empty) == 1
    assert empty[0]["items"] == [] and empty[0]["skip"] == 0 and empty[0]["total_count"] == 0
    assert set(empty[0]) == set(load_fixture("contentstack/sync_empty.json"))
    mixed = load_fixture("contentstack/sync_mixed.json")
    for item in mixed["items"]:
        if item["type"] in ("entry_deleted", "entry_unpublished", "asset_deleted"):
            assert set(item["data"]) == {"uid", "locale"}


def test_published_data_shapes(stack: Stack) -> None:
    published = stack.published()
    article = published[("entry", "article-0")]
    assert set(article) == {"en-us", "fr-fr"}
    data = article["fr-fr"]
    assert data["uid"] == "article-0" and data["locale"] == "fr-fr"
    assert data["_version"] == 1 and data["title"] == "Article 0 (fr-fr)"
    assert data["author"] == [{"uid": "author-0", "_content_type_uid": "author"}]
    assert set(data["publish_details"]) == {"environment", "locale", "time", "user"}
    assert data["created_at"].endswith("Z") and len(data["created_at"]) == 24
    logo = published[("asset", "asset-1")]["en-us"]
    assert logo["filename"] == "asset-1.png" and logo["file_size"] == "101"
    assert logo["content_type"] == "image/png" and logo["parent_uid"] is None
    assert logo["url"].startswith(f"https://images.contentstack.io/v3/assets/{API_KEY}/asset-1/")
    assert publish_article(stack, 0, "fr-fr", " v2") == 2
    assert stack.published()[("entry", "article-0")]["fr-fr"]["_version"] == 2
    assert stack.published()[("entry", "article-0")]["en-us"]["_version"] == 1


def test_delta_carries_every_item_type(stack: Stack, client: CsClient) -> None:
    run = client.initial()
    mirror = Mirror().apply(run.items)
    publish_article(stack, 1, "en-us", " edited")  # update
    publish_article(stack, 1, "fr-fr")  # new locale of an existing entry
    stack.publish_entry("article-9", "article", "en-us", {"title": "New"})
    stack.unpublish_entry("article-2", "fr-fr")
    stack.delete_entry("article-3", "en-us")
    stack.publish_asset("asset-5", "fr-fr", {"filename": "five.pdf"})
    stack.unpublish_asset("asset-0", "en-us")
    stack.delete_asset("asset-1", "en-us")
    stack.delete_content_type("author")
    delta = client.delta(run.sync_token)
    assert {item["type"] for item in delta.items} == ALL_TYPES
    assert len(delta.items) == 9
    assert {page["total_count"] for page in delta.pages} == {9}
    by_type = {item["type"]: item for item in delta.items}
    assert by_type["entry_unpublished"]["data"] == {"uid": "article-2", "locale": "fr-fr"}
    assert by_type["entry_unpublished"]["content_type_uid"] == "article"
    assert by_type["asset_deleted"]["content_type_uid"] == "sys_assets"
    assert by_type["content_type_deleted"]["data"] == {}
    assert by_type["content_type_deleted"]["content_type_uid"] == "author"
    assert mirror.apply(delta.items).records == stack.published()
    assert not any(key[0] == "entry" and key[1].startswith("author") for key in mirror.records)
    assert client.delta(delta.sync_token).items == []


def test_delta_keeps_only_the_latest_event_per_locale(stack: Stack, client: CsClient) -> None:
    token = client.initial().sync_token
    publish_article(stack, 0, "en-us", " a")
    publish_article(stack, 0, "en-us", " b")
    stack.unpublish_entry("article-0", "fr-fr")
    publish_article(stack, 0, "fr-fr", " back")
    stack.unpublish_asset("asset-0", "en-us")
    stack.delete_asset("asset-0", "en-us")
    delta = client.delta(token)
    assert delta.keys() == [
        ("entry_published", "article-0", "en-us"),
        ("entry_published", "article-0", "fr-fr"),
        ("asset_deleted", "asset-0", "en-us"),
    ]
    assert delta.items[0]["data"]["title"].endswith(" b")
    assert delta.items[0]["data"]["_version"] == 3
    assert delta.items[1]["data"]["_version"] == 2, "unpublish keeps the version count"


def test_republish_after_delete_restarts_version(stack: Stack) -> None:
    stack.delete_entry("article-4", "en-us")
    assert publish_article(stack, 4, "en-us") == 1
    with pytest.raises(KeyError):
        stack.delete_entry("article-4", "de-de")
    with pytest.raises(ValueError):
        publish_article(stack, 4, "de-de")
    with pytest.raises(ValueError, match="content type"):
        stack.publish_entry("article-4", "other", "en-us", {"title": "x"})
    with pytest.raises(ValueError, match="set by the stack"):
        stack.publish_entry("x", "article", "en-us", {"uid": "y"})
    with pytest.raises(KeyError):
        stack.delete_content_type("nope")
    stack.unpublish_entry("article-5", "en-us")
    head = stack.head
    stack.unpublish_entry("article-5", "en-us")
    assert stack.head == head, "unpublishing twice tells sync clients nothing new"


def test_content_type_deleted_precedes_entries_of_its_successor(
    stack: Stack, client: CsClient
) -> None:
    token = client.initial().sync_token
    mirror = Mirror().apply(client.initial().items)
    stack.delete_content_type("article")
    stack.publish_entry("article-1", "article", "en-us", {"title": "re-created type"})
    delta = client.delta(token)
    assert [item["type"] for item in delta.items] == ["content_type_deleted", "entry_published"]
    assert mirror.apply(delta.items).records == stack.published()
    assert ("entry", "article-1") in mirror.records and ("entry", "article-0") not in mirror.records


def test_large_delta_pages_with_progress(stack: Stack, client: CsClient) -> None:
    token = client.initial().sync_token
    for number in range(10, 20):
        publish_article(stack, number, "en-us")
    delta = client.delta(token)
    assert [page["skip"] for page in delta.pages] == [0, 4, 8]
    assert {page["total_count"] for page in delta.pages} == {10}


@pytest.fixture
def timed() -> Stack:
    """Entries published at pinned times, for start_from."""
    stack = Stack(api_key=API_KEY, environment=ENVIRONMENT, locales=["en-us", "fr-fr"])
    for day in range(1, 5):
        moment = datetime(2024, 1, day, 12, tzinfo=timezone.utc)
        for locale in ("en-us", "fr-fr"):
            stack.publish_entry(f"e{day}", "news", locale, {"title": f"Day {day}"}, at=moment)
        stack.publish_asset(f"a{day}", "en-us", {"title": f"A{day}"}, at=moment)
    return stack


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"content_type_uid": "news"}, 8),
        ({"content_type_uid": "sys_assets"}, 4),
        ({"locale": "fr-fr"}, 4),
        ({"type": "asset_published"}, 4),
        ({"type": "entry_published,asset_published"}, 12),
        ({"type": "entry_deleted,asset_unpublished"}, 0),  # an initial sync has no removals
        ({"start_from": "2024-01-03"}, 6),
        ({"start_from": "2024-01-03T12:00:00.000Z"}, 6),
        ({"start_from": "2024-01-03T12:00:00.001Z"}, 3),
        ({"locale": "en-us", "start_from": "2024-01-02", "content_type_uid": "news"}, 3),
    ],
)
def test_initial_filters(timed: Stack, filters: dict[str, str], expected: int) -> None:
    with Emulator(timed, access_token=TOKEN, page_size=2) as emu:
        cs = CsClient(emu)
        run = cs.initial(**filters)
        assert len(run.items) == expected
        assert {page["total_count"] for page in run.pages} == {expected}
        cs.close()


def test_filters_stay_with_the_sync_and_its_deltas(timed: Stack) -> None:
    with Emulator(timed, access_token=TOKEN, page_size=1) as emu:
        cs = CsClient(emu)
        run = cs.initial(locale="fr-fr", type="entry_published,entry_deleted,content_type_deleted")
        assert run.keys() == [("entry_published", f"e{day}", "fr-fr") for day in range(1, 5)]
        timed.publish_entry("e1", "news", "en-us", {"title": "en edit"})
        timed.publish_entry("e1", "news", "fr-fr", {"title": "fr edit"})
        timed.unpublish_entry("e2", "fr-fr")  # type filtered out
        timed.delete_entry("e3", "fr-fr")
        timed.delete_asset("a1", "en-us")
        timed.publish_entry("p1", "promo", "fr-fr", {"title": "gone with its type"})
        timed.delete_content_type("promo")
        delta = cs.delta(run.sync_token)
        assert delta.keys() == [
            ("entry_published", "e1", "fr-fr"),
            ("entry_deleted", "e3", "fr-fr"),
            ("content_type_deleted", "promo", ""),
        ]
        timed.delete_content_type("news")  # its entries get no items of their own
        assert cs.delta(delta.sync_token).keys() == [("content_type_deleted", "news", "")]
        cs.close()


def test_a_locale_published_by_fallback(stack: Stack, client: CsClient) -> None:
    """A locale published by fallback holds another language's content: ``data.locale`` names
    that language, ``publish_details.locale`` where it is published. The ``locale`` filter and
    unpublishing go by where it is published."""
    stack.publish_entry("article-1", "article", "fr-fr", {"title": "Article 1 (en-us)"},
                        content_locale="en-us")
    stack.publish_asset("asset-1", "fr-fr", {"title": "Asset 1"}, content_locale="en-us")
    with pytest.raises(ValueError, match="unknown locale"):
        stack.publish_entry("article-1", "article", "fr-fr", {}, content_locale="de-de")
    run = client.initial(locale="fr-fr")
    assert sorted(run.keys()) == sorted(
        [("entry_published", f"article-{n}", "fr-fr") for n in (0, 1, 2, 4)]
        + [("asset_published", "asset-1", "fr-fr")]
    )
    fallback = {item["data"]["uid"]: item["data"] for item in run.items
                if item["data"]["locale"] == "en-us"}
    assert set(fallback) == {"article-1", "asset-1"}
    assert {data["publish_details"]["locale"] for data in fallback.values()} == {"fr-fr"}
    assert fallback["article-1"]["title"] == "Article 1 (en-us)"
    mirror = Mirror().apply(run.items)
    assert mirror.records[("entry", "article-1")].keys() == {"fr-fr"}
    stack.unpublish_entry("article-1", "en-us")  # its own language: fr-fr stays published
    stack.unpublish_entry("article-0", "fr-fr")
    delta = client.delta(run.sync_token)
    assert delta.keys() == [("entry_unpublished", "article-0", "fr-fr")]
    assert stack.published()[("entry", "article-1")] == {"fr-fr": fallback["article-1"]}
    stack.unpublish_entry("article-1", "fr-fr")
    last = client.delta(delta.sync_token)
    assert [item["data"] for item in last.items] == [{"uid": "article-1", "locale": "fr-fr"}]
    assert ("entry", "article-1") not in stack.published()
