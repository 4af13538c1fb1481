"""Shared by the Kontent.ai emulator tests: a small project and a naive Delivery + Sync client.

The client is deliberately simple (requests + json, no retries) so the tests check the
emulator's wire behaviour, not the library's sync logic.  (A module of helpers, not tests: the
Kontent test files may only be named ``test_kontent*.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from localcache.emulator import Emulator
from localcache.emulator.project import Project

ENV = "975bf280-fd91-488c-994c-2f04416e5ee3"
KEY = "secure-key"
MAX_PAGES = 500  # a paging bug must fail a test, not hang it
Store = dict[tuple[str, str], dict[str, Any]]


def make_project(articles: int = 4, secure_api_key: str | None = None) -> Project:
    """Authors jane/joe, articles article_N (default language; even ones also in es-ES)."""
    project = Project(
        environment_id=ENV, languages=["default", "es-ES"], secure_api_key=secure_api_key
    )
    project.add_type(
        "article", elements={"title": "text", "body": "rich_text", "author": "modular_content"}
    )
    project.add_type("author", elements={"name": "text"})
    project.upsert_variant("a-jane", "jane", "author", "default", {"name": "Jane"})
    project.upsert_variant(
        "a-joe", "joe", "author", "default", {"name": "Joe"}, collection="people"
    )
    for number in range(articles):
        publish_article(project, number, "default")
        if number % 2 == 0:
            publish_article(project, number, "es-ES")
    return project


def publish_article(project: Project, number: int, language: str, title: str | None = None) -> None:
    text = title or f"Article {number} ({language})"
    elements = {"title": text, "body": f"<p>{text}</p>", "author": ["jane"]}
    project.upsert_variant(f"art-{number:02d}", f"article_{number}", "article", language, elements)


@contextmanager
def serve(project: Project, page_size: int = 100, token: str | None = None) -> Iterator[Emulator]:
    """The project on a loopback emulator; ``token`` is the emulator's own access token."""
    with Emulator(project, access_token=token, page_size=page_size) as emulator:  # type: ignore[arg-type]
        yield emulator


class Kontent:
    """Minimal Kontent.ai client over a keep-alive session."""

    def __init__(self, emu: Emulator, key: str | None = None, page_size: int = 100) -> None:
        self.base = emu.base_url
        self.page_size = page_size
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def url(self, suffix: str, v2: bool = False) -> str:
        return f"{self.base}{'/v2' if v2 else ''}/{ENV}{suffix}"

    def get(self, suffix: str, **params: Any) -> requests.Response:
        """GET a Delivery path; ``headers=`` is taken out, the rest is the query string."""
        headers = params.pop("headers", None)
        url = self.url(suffix)
        return self.session.get(url, params=params or None, headers=headers, timeout=10)

    def init(self, **params: Any) -> str:
        """POST sync/init (``v2=True`` for Sync API v2) with the rest as filters."""
        url = self.url("/sync/init", bool(params.pop("v2", False)))
        response = self.session.post(url, params=params or None, timeout=10)
        assert response.status_code == 200, response.text
        token = response.headers["X-Continuation"]
        assert token
        return token

    def sync(self, token: str, v2: bool = False) -> requests.Response:
        return self.session.get(
            self.url("/sync", v2), headers={"X-Continuation": token}, timeout=10
        )

    def page(self, token: str, v2: bool = False) -> tuple[dict[str, Any], str]:
        response = self.sync(token, v2)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json(), response.headers["X-Continuation"]

    def follow(self, token: str, v2: bool = False) -> tuple[list[dict[str, Any]], str]:
        """Pages until the documented stop: v1 an empty ``items``, v2 no full array."""
        pages: list[dict[str, Any]] = []
        while True:
            assert len(pages) < MAX_PAGES, "sync never reached its last page"
            body, token = self.page(token, v2)
            pages.append(body)
            if v2 and all(len(entries) < self.page_size for entries in body.values()):
                return pages, token
            if not v2 and not body["items"]:
                return pages, token

    def feed(self, **params: Any) -> list[dict[str, Any]]:
        """Every item of ``items-feed``, following the X-Continuation response header."""
        items: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        for _ in range(MAX_PAGES):
            response = self.get("/items-feed", headers=headers, **params)
            assert response.status_code == 200, response.text
            items.extend(response.json()["items"])
            if "X-Continuation" not in response.headers:
                return items
            headers = {"X-Continuation": response.headers["X-Continuation"]}
        raise AssertionError("items-feed never reached its last page")

    def load(self, project: Project) -> Store:
        """A first load as documented: every language through items-feed, exact language."""
        store: Store = {}
        for language in self.get("/languages").json()["languages"]:
            code = language["system"]["codename"]
            for item in self.feed(language=code, **{"system.language": code}):
                store[(item["system"]["id"], code)] = item
        return store

    def close(self) -> None:
        self.session.close()


def apply_v1(store: Store, pages: list[dict[str, Any]]) -> None:
    """What a correct v1 client does: overwrite on changed_item, drop on deleted_item."""
    for page in pages:
        for entry in page["items"]:
            system = entry["data"]["system"]
            key = (system["id"], system["language"])
            if entry["change_type"] == "changed_item":
                store[key] = entry["data"]
            else:
                assert entry["change_type"] == "deleted_item"
                store.pop(key, None)


def apply_v2(store: Store, client: Kontent, pages: list[dict[str, Any]]) -> None:
    """What a correct v2 client does: fetch each changed variant from Delivery, drop deletions."""
    for page in pages:
        for entry in page["items"]:
            system = entry["data"]["system"]
            key = (system["id"], system["language"])
            store.pop(key, None)
            if entry["change_type"] != "changed":
                continue
            response = client.get(f"/items/{system['codename']}", language=system["language"])
            if response.status_code == 404:
                continue  # gone again since the sync round: a later round reports it
            assert response.status_code == 200, response.text
            item = response.json()["item"]
            if (item["system"]["id"], item["system"]["language"]) == key:  # not a fallback
                store[key] = item
