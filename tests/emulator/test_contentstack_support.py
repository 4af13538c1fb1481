"""Shared pieces of the Contentstack emulator tests (this module holds no tests itself).

The client here is deliberately naive (requests + json, no retries) so that the tests check the
emulator's wire behaviour, not the library's sync logic.  It lives in a ``test_contentstack*``
module because the emulator tests' shared helpers.py belongs to the Contentful suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from localcache.emulator import Emulator
from localcache.emulator.stack import Stack

API_KEY = "blt_api"
TOKEN = "cs_delivery_token"
ENVIRONMENT = "production"
LOCALES = ["en-us", "fr-fr"]

Published = dict[tuple[str, str], dict[str, dict[str, Any]]]


def make_stack(articles: int = 6, authors: int = 2, assets: int = 2) -> Stack:
    """Predictable uids: article-N (en-us, and fr-fr for even N), author-N, asset-N."""
    stack = Stack(api_key=API_KEY, environment=ENVIRONMENT, locales=LOCALES, branch="main")
    for number in range(assets):
        stack.publish_asset(
            f"asset-{number}",
            "en-us",
            {
                "title": f"Asset {number}",
                "filename": f"asset-{number}.png",
                "content_type": "image/png",
                "file_size": str(100 + number),
            },
        )
    for number in range(authors):
        stack.publish_entry(f"author-{number}", "author", "en-us", {"title": f"Author {number}"})
    for number in range(articles):
        publish_article(stack, number, "en-us")
        if number % 2 == 0:
            publish_article(stack, number, "fr-fr")
    return stack


def publish_article(stack: Stack, number: int, locale: str, note: str = "") -> int:
    return stack.publish_entry(
        f"article-{number}",
        "article",
        locale,
        {
            "title": f"Article {number} ({locale}){note}",
            "body": f"Body {number}",
            "author": [{"uid": f"author-{number % 2}", "_content_type_uid": "author"}],
        },
    )


@dataclass
class SyncRun:
    """Every page one sync (initial or delta) returned."""

    pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for page in self.pages for item in page["items"]]

    @property
    def sync_token(self) -> str:
        token = self.pages[-1]["sync_token"]
        assert isinstance(token, str)
        return token

    def keys(self) -> list[tuple[str, str, str]]:
        """(type, uid or content type, locale) of every item, in order."""
        return [
            (item["type"], item["data"].get("uid", item["content_type_uid"]), item_locale(item))
            for item in self.items
        ]


def item_locale(item: dict[str, Any]) -> str:
    """The locale an item concerns: where a published item is published (its content may be
    another language's, by fallback), the ``locale`` an unpublish or delete names."""
    data = item["data"]
    if item["type"].endswith("_published"):
        locale: str = data["publish_details"]["locale"]
        return locale
    return str(data.get("locale", ""))


class CsClient:
    """Minimal CDA sync client over a keep-alive session."""

    def __init__(self, emu: Emulator, api_key: str = API_KEY, token: str = TOKEN) -> None:
        self.url = f"{emu.base_url}/v3/stacks/sync"
        self.session = requests.Session()
        self.session.headers.update({"api_key": api_key, "access_token": token})

    def get(self, environment: str | None = ENVIRONMENT, **params: Any) -> requests.Response:
        if environment is not None:
            params["environment"] = environment
        return self.session.get(self.url, params=params, timeout=10)

    def follow(self, **params: Any) -> SyncRun:
        """Request, then follow every pagination_token until a page carries a sync_token."""
        run = SyncRun()
        while True:
            response = self.get(**params)
            assert response.status_code == 200, response.text
            page = response.json()
            run.pages.append(page)
            assert ("pagination_token" in page) != ("sync_token" in page)
            if "sync_token" in page:
                return run
            params = {"pagination_token": page["pagination_token"]}

    def initial(self, **filters: Any) -> SyncRun:
        return self.follow(init="true", **filters)

    def delta(self, sync_token: str) -> SyncRun:
        return self.follow(sync_token=sync_token)

    def close(self) -> None:
        self.session.close()


class Mirror:
    """What a correct client keeps: (kind, uid) -> {locale: data}, applied item by item."""

    def __init__(self) -> None:
        self.records: Published = {}
        self.entry_types: dict[str, str] = {}

    def apply(self, items: list[dict[str, Any]]) -> Mirror:
        for item in items:
            kind, data = item["type"], item["data"]
            if kind == "content_type_deleted":
                doomed = [
                    key
                    for key in self.records
                    if key[0] == "entry"
                    and self.entry_types.get(key[1]) == item["content_type_uid"]
                ]
                for key in doomed:
                    del self.records[key]
                continue
            record_kind = kind.split("_")[0]
            key = (record_kind, data["uid"])
            if kind.endswith("_published"):
                self.records.setdefault(key, {})[item_locale(item)] = data
                if record_kind == "entry":
                    self.entry_types[data["uid"]] = item["content_type_uid"]
            else:
                locales = self.records.get(key, {})
                locales.pop(item_locale(item), None)
                if not locales:
                    self.records.pop(key, None)
        return self


def assert_cs_error(
    response: requests.Response, status: int, code: int, field_name: str | None = None
) -> dict[str, Any]:
    """A Contentstack error body: error_message, error_code, and errors naming the field."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error_code"] == code
    assert isinstance(body["error_message"], str) and body["error_message"]
    if field_name is not None:
        assert list(body["errors"]) == [field_name]
        assert all(isinstance(text, str) for text in body["errors"][field_name])
    return body
