"""The official Contentstack Python SDK, pointed at the emulator, must see a faithful sync API.

The SDK builds its endpoint as ``https://{host}/{version}`` and offers no option for plain
HTTP, so after construction the tests replace ``http_instance.endpoint`` (the one attribute its
requests are built from) with the emulator's ``http://`` URL.  Passing ``host=`` also keeps the
constructor from resolving a region (which may try to download the region list).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

from .test_contentstack_support import (
    API_KEY,
    ENVIRONMENT,
    TOKEN,
    Mirror,
    make_stack,
    publish_article,
)

contentstack = pytest.importorskip("contentstack")


@pytest.fixture
def stack() -> Stack:
    return make_stack()


@pytest.fixture
def emu(stack: Stack) -> Iterator[Emulator]:
    with Emulator(stack, access_token=TOKEN, page_size=5) as emulator:
        yield emulator


def make_sdk(emu: Emulator, **options: Any) -> Any:
    sdk = contentstack.Stack(API_KEY, TOKEN, ENVIRONMENT, host=emu.authority, **options)
    sdk.http_instance.endpoint = f"{emu.base_url}/v3"  # the SDK hard-codes https://
    return sdk


def sync_all(sdk: Any, first: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Follow pagination tokens with the SDK until a response carries a sync_token."""
    page, items = first, list(first["items"])
    while "pagination_token" in page:
        page = sdk.pagination(page["pagination_token"])
        items.extend(page["items"])
    return items, page


def test_sdk_initial_sync_pagination_and_delta(stack: Stack, emu: Emulator) -> None:
    sdk = make_sdk(emu)
    before = emu.requests_served
    first = sdk.sync_init()
    assert first["total_count"] == 13 and first["limit"] == 5 and "pagination_token" in first
    items, last = sync_all(sdk, first)
    assert emu.requests_served == before + 3
    mirror = Mirror().apply(items)
    assert mirror.records == stack.published()

    publish_article(stack, 1, "fr-fr")
    stack.unpublish_entry("article-0", "en-us")
    stack.delete_asset("asset-1", "en-us")
    stack.delete_content_type("author")
    delta = sdk.sync_token(last["sync_token"])
    assert [item["type"] for item in delta["items"]] == [
        "entry_published",
        "entry_unpublished",
        "asset_deleted",
        "content_type_deleted",
    ]
    assert delta["total_count"] == 4 and "sync_token" in delta
    assert mirror.apply(delta["items"]).records == stack.published()
    assert sdk.sync_token(delta["sync_token"])["items"] == []


def test_sdk_filtered_init_and_branch(stack: Stack, emu: Emulator) -> None:
    sdk = make_sdk(emu, branch="main")
    result = sdk.sync_init(
        content_type_uid="article", locale="fr-fr", publish_type="entry_published"
    )
    assert {(item["data"]["uid"], item["data"]["locale"]) for item in result["items"]} == {
        ("article-0", "fr-fr"),
        ("article-2", "fr-fr"),
        ("article-4", "fr-fr"),
    }
    stack.publish_entry("article-7", "article", "fr-fr", {"title": "new"})
    stack.publish_entry("article-8", "article", "en-us", {"title": "other locale"})
    delta = sdk.sync_token(result["sync_token"])
    assert [item["data"]["uid"] for item in delta["items"]] == ["article-7"]
    other = make_sdk(emu, branch="develop")
    assert other.sync_init()["errors"] == {"branch": ["is not valid."]}


def test_sdk_sees_contentstack_error_bodies(emu: Emulator) -> None:
    error = make_sdk(emu).sync_token("blt122334455667")
    assert error == {
        "error_message": "Failed to fetch items. Please try again with valid parameters.",
        "error_code": 141,
        "errors": {"sync_token": ["is not valid."]},
    }
    wrong = contentstack.Stack(API_KEY, "not-the-token", ENVIRONMENT, host=emu.authority)
    wrong.http_instance.endpoint = f"{emu.base_url}/v3"
    assert wrong.sync_init()["error_code"] == 109
