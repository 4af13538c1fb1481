"""Kontent.ai's recorded sync responses (v1 and v2), replayed through the provider and store."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from replay import LoopbackServer, send

from localcache import Cache, Kontent

ENV = "975bf280-fd91-488c-994c-2f04416e5ee3"
Route = tuple[int, Any, dict[str, str]]


def variant(item_id: str, codename: str, language: str, title: str,
            modified: str = "2019-01-01T00:00:00Z") -> dict[str, Any]:
    return {"system": {"id": item_id, "name": title, "codename": codename, "language": language,
                       "type": "article", "collection": "default", "sitemap_locations": [],
                       "last_modified": modified, "workflow_step": "published"},
            "elements": {"title": {"type": "text", "name": "Title", "value": title}}}


class KontentReplay(LoopbackServer):
    """Routes (method, path, X-Continuation) to recorded answers; records every request."""

    def __init__(self, routes: dict[tuple[str, str, str | None], Route]) -> None:
        super().__init__()
        self.routes = routes
        self.requests: list[tuple[str, str, str | None]] = []

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        language = parse_qs(parts.query).get("language", [""])[0]
        key = (method, parts.path + (f"?{language}" if language else ""),
               request.headers.get("X-Continuation"))
        self.requests.append(key)
        status, body, headers = self.routes.get(key, (404, {"message": "no route"}, {}))
        send(request, status, body, headers.items())


def languages(*codes: str) -> Route:
    return 200, {"languages": [{"system": {"id": f"id-{c}", "name": c, "codename": c}}
                               for c in codes], "pagination": {}}, {}


def test_v1_first_load_then_recorded_changes(load_fixture: Any, store_path: Path) -> None:
    changes = load_fixture("kontent/sync_v1_changes.json")
    old = variant("135d17ac-b6ba-4c6a-ae31-23c1193215cb", "my_article", "en-US", "Old")
    routes: dict[tuple[str, str, str | None], Route] = {
        ("POST", f"/{ENV}/sync/init", None): (200, {"items": []}, {"X-Continuation": "t0"}),
        ("GET", f"/{ENV}/languages", None): languages("en-US"),
        ("GET", f"/{ENV}/items-feed?en-US", None): (200, {"items": [old],
                                                            "modular_content": {}}, {}),
        ("GET", f"/{ENV}/sync", "t0"): (200, changes, {"X-Continuation": "t1"}),
        ("GET", f"/{ENV}/sync", "t1"): (200, {"items": []}, {"X-Continuation": "t1"}),
    }
    with KontentReplay(routes) as server, \
            Cache(Kontent(ENV, api_version=1, base_url=server.base_url),
                  path=store_path) as cache:
        first = cache.sync()
        assert first.initial and first.entries.added == 1
        paths = [r[1] for r in server.requests]
        # The sync token is taken before any content is loaded, so nothing changes unseen.
        assert paths.index(f"/{ENV}/sync/init") < paths.index(f"/{ENV}/items-feed?en-US")
        assert cache.entry(old["system"]["id"]).field("title")["value"] == "Old"
        second = cache.sync()
        assert (second.entries.added, second.entries.deleted) == (1, 1)
        assert cache.entry("135d17ac-b6ba-4c6a-ae31-23c1193215cb") is None
        warrior = cache.entry("335d17ac-b6ba-4c6a-ae31-23c1193215cb")
        assert warrior.content_type == "article"
        assert warrior.fields == {"title": {"en-US": {"type": "text", "name": "Title",
                                                      "value": "Warrior"}}}
        assert warrior.updated_at == "2019-03-27T13:21:11.38Z"


def test_v2_delta_fetches_changed_content_from_delivery(load_fixture: Any,
                                                        store_path: Path) -> None:
    delta = load_fixture("kontent/sync_v2_delta.json")
    hello_old = variant("7adfb82a-1386-4228-bcc2-45073a0355f6", "hello_world", "default", "Hi")
    bye = variant("42a3cfbd-4967-43e7-987b-e1e69c483e26", "bye_world", "default", "Bye")
    hello_new = variant(hello_old["system"]["id"], "hello_world", "default", "Hello world!",
                        "2022-10-06T08:38:40.0088127Z")
    routes: dict[tuple[str, str, str | None], Route] = {
        ("POST", f"/v2/{ENV}/sync/init", None): (200, {"items": []}, {"X-Continuation": "t0"}),
        ("GET", f"/{ENV}/languages", None): languages("default"),
        ("GET", f"/{ENV}/items-feed?default", None): (200, {"items": [hello_old, bye]}, {}),
        ("GET", f"/v2/{ENV}/sync", "t0"): (200, delta, {"X-Continuation": "t1"}),
        ("GET", f"/{ENV}/items?default", None): (200, {"items": [hello_new],
                                                       "modular_content": {}}, {}),
    }
    with KontentReplay(routes) as server, \
            Cache(Kontent(ENV, api_key="secure-key-123", base_url=server.base_url),
                  path=store_path) as cache:
        assert cache.sync().entries.added == 2
        result = cache.sync()
        assert (result.entries.updated, result.entries.deleted) == (1, 1)
        record = cache.entry(hello_old["system"]["id"])
        assert record.field("title")["value"] == "Hello world!"
        assert cache.entry(bye["system"]["id"]) is None
        assert [loc.code for loc in cache.locales()] == ["default"]


def test_v2_filters_are_refused(store_path: Path) -> None:
    from localcache import ConfigurationError

    with pytest.raises(ConfigurationError, match="unsupported sync filter"):
        Kontent(ENV, filters={"system.type": "article"})
    Kontent(ENV, api_version=1, filters={"system.type[in]": "article,author"})


def test_first_load_without_a_languages_endpoint(store_path: Path) -> None:
    item = variant("135d17ac-b6ba-4c6a-ae31-23c1193215cb", "my_article", "en-US", "Hello")
    routes: dict[tuple[str, str, str | None], Route] = {
        ("POST", f"/v2/{ENV}/sync/init", None): (200, {"items": []}, {"X-Continuation": "t0"}),
        ("GET", f"/{ENV}/items-feed", None): (200, {"items": [item]}, {}),
    }
    with KontentReplay(routes) as server, \
            Cache(Kontent(ENV, base_url=server.base_url), path=store_path) as cache:
        assert cache.sync().entries.added == 1
        assert [loc.code for loc in cache.locales()] == ["en-US"]
        assert cache.entry(item["system"]["id"]).field("title")["value"] == "Hello"
