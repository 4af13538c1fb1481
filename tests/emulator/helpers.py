"""Helpers for the emulator tests: a small predictable space and a tiny CDA sync client.

The client here is deliberately naive (requests + json, no retries) so that the tests check the
emulator's wire behaviour, not the library's sync logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from localcache.emulator import Emulator, Locale, Space

TOKEN = "secret-token"
MEDIA_TYPE = "application/vnd.contentful.delivery.v1+json"

ARTICLE_FIELDS: list[dict[str, Any]] = [
    {"id": "title", "name": "Title", "type": "Symbol", "localized": True},
    {"id": "body", "name": "Body", "type": "Text", "localized": True},
    {"id": "author", "name": "Author", "type": "Link", "linkType": "Entry"},
    {"id": "image", "name": "Image", "type": "Link", "linkType": "Asset"},
]
AUTHOR_FIELDS: list[dict[str, Any]] = [{"id": "name", "name": "Name", "type": "Symbol"}]


def article(title: str, author: str = "author-0", image: str | None = "asset-0") -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": {"en-US": title, "de-DE": f"{title} (de)"},
        "body": {"en-US": f"Body of {title}", "de-DE": f"Inhalt von {title}"},
        "author": {"en-US": {"sys": {"type": "Link", "linkType": "Entry", "id": author}}},
    }
    if image is not None:
        fields["image"] = {"en-US": {"sys": {"type": "Link", "linkType": "Asset", "id": image}}}
    return fields


def asset(title: str) -> dict[str, Any]:
    file = {
        "url": f"//images.example.net/{title}.png",
        "fileName": f"{title}.png",
        "contentType": "image/png",
        "details": {"size": 10},
    }
    return {"title": {"en-US": title}, "file": {"en-US": file}}


def make_space(articles: int = 20, authors: int = 3, assets: int = 4) -> Space:
    """A small space with predictable ids: article-N, author-N, asset-N."""
    space = Space(
        space_id="demo",
        environment="master",
        locales=[
            Locale("en-US", default=True),
            Locale("de-DE", fallback="en-US"),
            Locale("fr-FR", fallback="de-DE", optional=True),
        ],
    )
    space.add_content_type("article", name="Article", fields=ARTICLE_FIELDS, display_field="title")
    space.add_content_type("author", name="Author", fields=AUTHOR_FIELDS, display_field="name")
    for number in range(assets):
        space.publish_asset(f"asset-{number}", asset(f"Asset {number}"))
    for number in range(authors):
        space.publish_entry(f"author-{number}", "author", {"name": {"en-US": f"Author {number}"}})
    for number in range(articles):
        space.publish_entry(
            f"article-{number:03d}",
            "article",
            article(f"Article {number}", author=f"author-{number % max(authors, 1)}"),
        )
    return space


@dataclass
class SyncResult:
    """Everything one initial sync or delta returned."""

    pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for page in self.pages for item in page["items"]]

    @property
    def next_sync_url(self) -> str:
        url = self.pages[-1]["nextSyncUrl"]
        assert isinstance(url, str)
        return url

    def item_keys(self) -> list[tuple[str, str]]:
        return [(item["sys"]["type"], item["sys"]["id"]) for item in self.items]


class Cda:
    """Minimal CDA sync client over a keep-alive session."""

    def __init__(self, emu: Emulator, token: str = TOKEN) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, suffix: str, legacy: bool = False) -> str:
        env = "" if legacy else "/environments/master"
        return f"{self.emu.base_url}/spaces/demo{env}{suffix}"

    def get(self, url: str, **params: Any) -> requests.Response:
        return self.session.get(url, params=params or None, timeout=10)

    def follow(self, url: str, params: dict[str, Any] | None = None) -> SyncResult:
        """GET url, then every nextPageUrl, until a page carries nextSyncUrl."""
        result = SyncResult()
        while True:
            response = self.session.get(url, params=params, timeout=10)
            assert response.status_code == 200, response.text
            page = response.json()
            result.pages.append(page)
            assert ("nextPageUrl" in page) != ("nextSyncUrl" in page)
            if "nextSyncUrl" in page:
                return result
            url, params = page["nextPageUrl"], None

    def initial(self, legacy: bool = False, **params: Any) -> SyncResult:
        return self.follow(self.url("/sync", legacy), {"initial": "true", **params})

    def close(self) -> None:
        self.session.close()


def apply(store: dict[tuple[str, str], dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """What a correct client does with sync items: overwrite, or drop on Deleted*."""
    for item in items:
        kind = item["sys"]["type"]
        if kind.startswith("Deleted"):
            store.pop((kind[len("Deleted") :], item["sys"]["id"]), None)
        else:
            store[(kind, item["sys"]["id"])] = item


def expected_store(space: Space) -> dict[tuple[str, str], dict[str, Any]]:
    store = {("Entry", key): value for key, value in space.published_entries().items()}
    store.update({("Asset", key): value for key, value in space.published_assets().items()})
    return store


def assert_error(response: Any, status: int, error_id: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == MEDIA_TYPE
    assert response.headers["X-Contentful-Request-Id"]
    body: dict[str, Any] = response.json()
    assert body["sys"] == {"type": "Error", "id": error_id}
    assert body["message"]
    assert body["requestId"] == response.headers["X-Contentful-Request-Id"]
    return body
