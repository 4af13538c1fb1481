"""Contentstack's recorded sync responses, replayed through the real provider and store."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from replay import LoopbackServer, send

from localcache import Cache, Contentstack, TokenRejectedError, signals

API_KEY, TOKEN = "blt-api-key", "cs-delivery-token"
REJECTED = {"error_message": "Failed to fetch items. Please try again with valid parameters.",
            "error_code": 141, "errors": {"sync_token": ["is not valid."]}}


class StackReplay(LoopbackServer):
    """Answers init=true with ``init``, and each token with the page recorded for it."""

    def __init__(self, init: dict[str, Any], by_token: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.init, self.by_token = init, by_token
        self.requests: list[dict[str, list[str]]] = []

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        if not parts.path.endswith("/stacks/sync"):  # a listing these recordings lack
            send(request, 404, {"error_message": "not recorded", "error_code": 404},
                 content_type="application/json; charset=utf-8")
            return
        self.requests.append(query)
        status, body = 200, self.init
        if (request.headers.get("api_key"), request.headers.get("access_token")) != (
                API_KEY, TOKEN):
            status, body = 412, {"error_message": "bad key", "error_code": 109}
        elif query.get("init") != ["true"]:
            token = (query.get("pagination_token") or query.get("sync_token") or [""])[0]
            status, body = (200, self.by_token[token]) if token in self.by_token else (
                422, REJECTED)
        send(request, status, body, content_type="application/json; charset=utf-8")


@pytest.fixture
def recorded(load_fixture: Any) -> dict[str, dict[str, Any]]:
    return {name: load_fixture(f"contentstack/{name}.json")
            for name in ("sync_publish", "sync_mixed", "sync_empty")}


def _cache(server: StackReplay, path: Path) -> Cache:
    return Cache(Contentstack(API_KEY, TOKEN, "production", base_url=server.base_url), path=path)


def test_publish_page_then_mixed_page_then_empty_delta(recorded: dict[str, Any],
                                                       store_path: Path) -> None:
    pages = {"publish-token": recorded["sync_mixed"], "mixed-token": recorded["sync_empty"]}
    deleted: list[str] = []
    with StackReplay(recorded["sync_publish"], pages) as server, \
            _cache(server, store_path) as cache:
        def on_deleted(sender: Any, **kw: Any) -> None:
            deleted.append(kw["id"])

        with signals.asset_deleted.connected_to(on_deleted, sender=cache):
            result = cache.sync()
        assert result.pages == 2 and result.initial
        assert server.requests[0]["init"] == ["true"]
        assert server.requests[0]["environment"] == ["production"]
        assert server.requests[1]["pagination_token"] == ["publish-token"]
        entry = cache.entry("blt862233378d02b304")
        assert entry is not None and entry.content_type == "authors"
        assert entry.fields == {"title": {"es-es": "Test Global Search"}}
        assert entry.field("title") == "Test Global Search"     # es-es: the only locale
        assert entry.raw["vendor"]["es-es"]["payload"]["publish_details"]["locale"] == "es-es"
        # asset_published then asset_unpublished of its only locale: the asset is gone, and
        # as it was committed on page 1, its deletion is signalled.
        assert cache.asset("blt2a94dd7005d1229c") is None and deleted == ["blt2a94dd7005d1229c"]
        # Deletions of records the store never held, and of an unknown content type: no-ops.
        assert cache.stats()["entries"] == 1 and cache.stats()["assets"] == 0
        assert [loc.code for loc in cache.locales()] == ["es-es"]
        second = cache.sync()
        assert server.requests[-1]["sync_token"] == ["mixed-token"]
        assert not second.initial and second.entries.changed == 0


def test_token_rejected_with_error_141_rebuilds(recorded: dict[str, Any],
                                                store_path: Path) -> None:
    pages = {"publish-token": recorded["sync_mixed"]}  # "mixed-token" is then refused (422/141)
    with StackReplay(recorded["sync_publish"], pages) as server, \
            _cache(server, store_path) as cache:
        cache.sync()
        result = cache.sync()
        assert result.initial                       # rebuilt by a fresh init
        assert server.requests[-3]["sync_token"] == ["mixed-token"]
        assert server.requests[-2]["init"] == ["true"]
        assert cache.stats()["entries"] == 1


def test_a_rejected_init_token_is_typed(recorded: dict[str, Any], store_path: Path) -> None:
    with StackReplay(recorded["sync_publish"], {}) as server, \
            _cache(server, store_path) as cache, pytest.raises(TokenRejectedError):
        cache.sync()  # publish-token unknown: 422/141 during the init, then again on rebuild


def test_merge_of_locales_and_content_type_deletion(store_path: Path) -> None:
    def item(kind: str, uid: str, locale: str, ct: str = "blog", **data: Any) -> dict[str, Any]:
        payload = {"uid": uid, "locale": locale, **data}
        return {"type": kind, "content_type_uid": ct, "event_at": "2024-01-01T00:00:00.000Z",
                "data": payload}

    init = {"items": [
        item("entry_published", "b1", "en-us", title="Hello", _version=1,
             updated_at="2024-01-01T00:00:00.000Z"),
        item("entry_published", "b1", "fr-fr", title="Bonjour", _version=1,
             updated_at="2024-01-02T00:00:00.000Z"),
        item("entry_published", "b2", "en-us", title="Two", _version=3),
        item("entry_published", "p1", "en-us", ct="page", title="Page"),
    ], "skip": 0, "limit": 100, "total_count": 4, "sync_token": "t1"}
    delta = {"items": [
        item("entry_unpublished", "b1", "en-us"),
        {"type": "content_type_deleted", "content_type_uid": "page", "data": {},
         "event_at": "2024-01-03T00:00:00.000Z"},
        item("entry_deleted", "b2", "en-us"),
    ], "skip": 0, "limit": 100, "total_count": 3, "sync_token": "t2"}
    with StackReplay(init, {"t1": delta, "t2": {**delta, "items": []}}) as server, \
            _cache(server, store_path) as cache:
        first = cache.sync()
        assert first.entries.added == 3
        b1 = cache.entry("b1")
        assert b1.fields == {"title": {"en-us": "Hello", "fr-fr": "Bonjour"}}
        assert b1.updated_at == "2024-01-02T00:00:00.000Z"
        assert b1.field("title") == "Hello" and b1.field("title", "fr-fr") == "Bonjour"
        second = cache.sync()
        assert (second.entries.updated, second.entries.deleted) == (1, 2)
        assert cache.entry("b1").fields == {"title": {"fr-fr": "Bonjour"}}
        assert cache.entry("b2") is None and cache.entry("p1") is None
        assert cache.sync().entries.changed == 0


def test_items_that_name_no_locale(store_path: Path) -> None:
    """A published item without any locale is the master locale's; a deletion naming no locale
    removes the whole record."""
    def item(kind: str, **data: Any) -> dict[str, Any]:
        return {"type": kind, "content_type_uid": "blog", "data": data,
                "event_at": "2024-01-01T00:00:00.000Z"}

    init = {"items": [item("entry_published", uid="b1", title="One"),
                      item("entry_published", uid="b1", locale="fr-fr", title="Un")],
            "skip": 0, "limit": 100, "total_count": 2, "sync_token": "t1"}
    delta = {"items": [item("entry_deleted", uid="b1")], "skip": 0, "limit": 100,
             "total_count": 1, "sync_token": "t2"}
    with StackReplay(init, {"t1": delta}) as server, _cache(server, store_path) as cache:
        cache.sync()
        assert cache.entry("b1").fields == {"title": {"en-us": "One", "fr-fr": "Un"}}
        assert [(loc.code, loc.default) for loc in cache.locales()][:1] == [("en-us", True)]
        assert cache.sync().entries.deleted == 1 and cache.entry("b1") is None


def test_a_locale_published_by_fallback_is_filed_where_it_is_published(store_path: Path) -> None:
    """The shape of a live recording (the vendor's Swift SDK tests): en-us content published in
    en-gb by fallback. Contentstack's DataSync files it under ``publish_details.locale``; an
    unpublish names ``data.locale``, the locale it withdraws."""
    def published(uid: str, locale: str, where: str, title: str) -> dict[str, Any]:
        details = {"environment": "blt4c0468fe43dc5bdd", "locale": where,
                   "time": "2024-01-01T00:00:00.000Z", "user": "bltcd82b2c6bf913241"}
        return {"type": "entry_published", "content_type_uid": "session",
                "event_at": "2024-01-01T00:00:00.000Z",
                "data": {"uid": uid, "locale": locale, "title": title, "_version": 2,
                         "publish_details": details}}

    init = {"items": [published("b1", "en-us", "en-us", "Color"),
                      published("b1", "en-us", "en-gb", "Color")],
            "skip": 0, "limit": 100, "total_count": 2, "sync_token": "t1"}
    delta = {"items": [{"type": "entry_unpublished", "content_type_uid": "session",
                        "event_at": "2024-01-02T00:00:00.000Z",
                        "data": {"uid": "b1", "locale": "en-us"}}],
             "skip": 0, "limit": 100, "total_count": 1, "sync_token": "t2"}
    with StackReplay(init, {"t1": delta}) as server, _cache(server, store_path) as cache:
        cache.sync()
        assert cache.entry("b1").fields == {"title": {"en-us": "Color", "en-gb": "Color"}}
        assert cache.sync().entries.deleted == 0
        assert cache.entry("b1").fields == {"title": {"en-gb": "Color"}}
