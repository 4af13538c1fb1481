"""The official contentful SDK, pointed at the emulator, must see a faithful CDA."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcache.emulator import Emulator, Space

from .helpers import TOKEN, article, make_space

contentful = pytest.importorskip("contentful")


@pytest.fixture
def sdk_space() -> Space:
    return make_space(articles=9, authors=2, assets=3)


@pytest.fixture
def sdk_emu(sdk_space: Space) -> Iterator[Emulator]:
    with Emulator(sdk_space, access_token=TOKEN, page_size=4) as emulator:
        yield emulator


def make_client(emu: Emulator, **options: Any) -> Any:
    return contentful.Client(
        "demo",
        TOKEN,
        api_url=emu.base_url.removeprefix("http://"),
        https=False,
        environment="master",
        timeout_s=5,
        **options,
    )


def sync_all(client: Any, query: dict[str, Any]) -> tuple[list[Any], Any]:
    """Follow the pages the way the SDK documents it; returns (items, last page)."""
    page = client.sync(query)
    items = list(page.items)
    while page.next_page_url:
        page = client.sync({"sync_token": page.next_sync_token})
        items.extend(page.items)
    assert page.next_sync_url
    return items, page


def test_sdk_initial_sync_then_delta(sdk_space: Space, sdk_emu: Emulator) -> None:
    before = sdk_emu.requests_served
    client = make_client(sdk_emu)
    assert sdk_emu.requests_served == before + 1  # content types, fetched at construction
    items, last = sync_all(client, {"initial": True})
    assert sdk_emu.requests_served == before + 1 + 4  # 14 items at 4 per page
    entries = {item.id: item for item in items if isinstance(item, contentful.Entry)}
    assets = {item.id: item for item in items if isinstance(item, contentful.Asset)}
    assert set(entries) == set(sdk_space.published_entries())
    assert set(assets) == set(sdk_space.published_assets())
    first = entries["article-001"]
    assert first.content_type.id == "article"
    assert first.revision == 1
    assert first.fields()["title"] == "Article 1"
    assert first.fields("de-DE")["title"] == "Article 1 (de)"
    assert first.fields()["author"].id == "author-1"
    assert assets["asset-0"].url() == "//images.example.net/Asset 0.png"

    sdk_space.publish_entry("article-001", "article", article("Edited"))
    sdk_space.delete_entry("article-002")
    sdk_space.unpublish_asset("asset-1")
    delta, _ = sync_all(client, {"sync_token": last.next_sync_token})
    kinds = {(type(item).__name__, item.id) for item in delta}
    assert kinds == {
        ("Entry", "article-001"),
        ("DeletedEntry", "article-002"),
        ("DeletedAsset", "asset-1"),
    }
    edited = next(item for item in delta if item.id == "article-001")
    assert edited.revision == 2
    assert edited.fields()["title"] == "Edited"
    deleted = next(item for item in delta if item.id == "article-002")
    assert deleted.deleted_at is not None


def test_sdk_filtered_sync_and_metadata(sdk_emu: Emulator) -> None:
    client = make_client(sdk_emu)
    items, _ = sync_all(client, {"initial": True, "type": "Entry", "content_type": "author"})
    assert sorted(item.id for item in items) == ["author-0", "author-1"]
    locales = client.locales()
    assert [(loc.code, loc.default, loc.fallback_code) for loc in locales] == [
        ("en-US", True, None),
        ("de-DE", False, "en-US"),
        ("fr-FR", False, "de-DE"),
    ]
    assert client.space().name == "demo"
    assert client.content_type("article").display_field == "title"


def test_sdk_retries_rate_limit_using_the_reset_header(sdk_emu: Emulator) -> None:
    client = make_client(sdk_emu, max_rate_limit_retries=1)
    sdk_emu.faults.rate_limit(times=1, reset=0)
    items, _ = sync_all(client, {"initial": True})
    assert len(items) == 14
    assert sdk_emu.faults.pending == 0


def test_sdk_raises_on_invalid_token_and_auth(sdk_emu: Emulator) -> None:
    client = make_client(sdk_emu)
    _, last = sync_all(client, {"initial": True})
    sdk_emu.faults.invalidate_tokens_before_now()
    with pytest.raises(contentful.errors.BadRequestError):
        client.sync({"sync_token": last.next_sync_token})
    with pytest.raises(contentful.errors.UnauthorizedError):
        contentful.Client(
            "demo", "wrong", api_url=sdk_emu.base_url.removeprefix("http://"), https=False
        )
