"""Contentful's next sync page is asked for while the page before it is parsed
(providers/ahead.py): over real loopback HTTP, each page requested once when the guess from the
raw body is right, and the sync still right when the guess is wrong."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from replay import ReplayServer, send

from localcache import Cache, Contentful, HttpPolicy, PageError, SyncError, signals
from localcache.providers.ahead import set_pages_awaited
from localcache.providers.contentful import _next_page_url

TOKEN = "replay-token"
BASE = "https://cdn.contentful.com/spaces/s/environments/master/sync"


def entry(entry_id: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"sys": {"type": "Entry", "id": entry_id, "revision": 1,
                    "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
                    "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                            "id": "t"}}},
            "fields": fields or {"title": {"en-US": entry_id}}}


def chain(count: int, *, key_first: bool = False,
          decoy: bool = False) -> list[dict[str, Any]]:
    """``count`` pages of two entries; with ``key_first`` the next URL comes before the items,
    and with ``decoy`` the last entry of every page holds a field object with a
    ``nextPageUrl`` key too."""
    pages = []
    for n in range(count):
        last = n == count - 1
        link = {"nextSyncUrl": f"{BASE}?sync_token=done"} if last else \
            {"nextPageUrl": f"{BASE}?sync_token=p{n + 1}"}
        items = [entry(f"e{n}a"), entry(f"e{n}b", {"meta": {"en-US": {
            "nextPageUrl": f"{BASE}?sync_token=decoy{n}"}}} if decoy else None)]
        pages.append({"sys": {"type": "Array"}, **link, "items": items} if key_first
                     else {"sys": {"type": "Array"}, "items": items, **link})
    return pages


def tokens(server: ReplayServer) -> list[str]:
    asked = [parse_qs(urlsplit(p).query) for p in server.requests if "/sync" in p]
    return [q.get("sync_token", ["initial"])[0] for q in asked]


def sync(server: ReplayServer, path: Path) -> Any:
    with Cache(Contentful("s", TOKEN, base_url=server.base_url), path=path) as cache:
        result = cache.sync()
        return result, sorted(r.id for r in cache.entries())


def test_the_guess_reads_the_key_not_a_string(tmp_path: Path) -> None:
    body = (b'{"items": [{"fields": {"t": {"en-US": "say \\"nextPageUrl\\": \\"x\\""}}}], '
            b'"nextPageUrl": "https://h/sync?sync_token=real"}')
    assert _next_page_url(body) == "https://h/sync?sync_token=real"
    assert _next_page_url(b'{"items": [], "nextSyncUrl": "https://h/sync?sync_token=t"}') \
        is None
    # An escaped slash is valid JSON: no guess then, the parsed page decides.
    assert _next_page_url(b'{"nextPageUrl": "https:\\/\\/h\\/sync?sync_token=t"}') is None


def test_each_page_is_asked_for_once_and_ahead_of_its_turn(tmp_path: Path) -> None:
    pages = chain(6)
    seen_at_page_one: list[list[str]] = []
    with ReplayServer(pages) as server:

        def hold(sender: Any, changes: Any) -> None:
            if changes.page == 1:  # the writer waits here; the fetch thread goes on
                time.sleep(0.3)
                seen_at_page_one.append(tokens(server))

        with Cache(Contentful("s", TOKEN, base_url=server.base_url),
                   path=tmp_path / "s.sqlite3") as cache, \
                signals.changes_committed.connected_to(hold, sender=cache):
            result = cache.sync()
            ids = [r.id for r in cache.entries()]
    assert result.pages == 6 and len(ids) == 12
    assert tokens(server) == ["initial", "p1", "p2", "p3", "p4", "p5"]
    # While page 1 was applied, page 2 was fetched and parsed (the prefetch: one page ahead
    # of the writer), and page 3 asked for as page 2 was parsed (the request ahead).
    assert seen_at_page_one == [["initial", "p1", "p2"]]


class SlowTokens(ReplayServer):
    """Answers a request for one of ``slow`` tokens 0.3 s late; notes each answer sent."""

    def __init__(self, pages: list[dict[str, Any]], slow: str) -> None:
        super().__init__(pages)
        self.slow = slow
        self.answered: list[str] = []

    def answer(self, request: Any, method: str) -> None:
        token = parse_qs(urlsplit(request.path).query).get("sync_token", [""])[0]
        if token.startswith(self.slow):
            time.sleep(0.3)
        super().answer(request, method)
        self.answered.append(token)


def test_a_wrong_guess_is_dropped_and_the_right_page_asked_for(tmp_path: Path) -> None:
    # The next URL comes before the items, and a field holds a nextPageUrl key: the guess
    # (the last such key) names a token the server refuses, late.
    pages = chain(3, key_first=True, decoy=True)
    with SlowTokens(pages, slow="decoy") as server:
        result, ids = sync(server, tmp_path / "s.sqlite3")
        answered_by_then = list(server.answered)
    assert result.pages == 3
    assert ids == sorted(f"e{n}{x}" for n in range(3) for x in "ab")
    # The last page's wrong guess is waited for too, before the sync ends: never a request
    # left running beside the next sync's.
    assert tokens(server) == ["initial", "decoy0", "p1", "decoy1", "p2", "decoy2"]
    assert "decoy2" in answered_by_then


def test_a_page_that_does_not_parse_waits_for_the_request_sent_ahead(tmp_path: Path) -> None:
    pages = chain(3)
    pages[0]["items"].append({"sys": {"type": "Entry"}})  # no id: a PageError
    with SlowTokens(pages, slow="p1") as server, \
            Cache(Contentful("s", TOKEN, base_url=server.base_url),
                  path=tmp_path / "s.sqlite3") as cache:
        with pytest.raises(PageError):
            cache.sync()
        assert "p1" in server.answered  # asked for ahead, and waited for before the error
        assert cache.count() == 0


def test_no_request_ahead_while_the_consumer_has_no_room(tmp_path: Path) -> None:
    """A prefetching engine that had to wait for room (its writer is the slower side) says
    so; the provider then asks for each page in its turn only."""
    with ReplayServer(chain(4)) as server:
        provider = Contentful("s", TOKEN, base_url=server.base_url)
        pages = provider.pages(None)
        try:
            set_pages_awaited(False)
            assert next(pages).number == 1
            time.sleep(0.2)
            assert tokens(server) == ["initial"]
            set_pages_awaited(True)
            assert next(pages).number == 2  # asked for now; page 3 asked for ahead
            time.sleep(0.2)
            assert tokens(server) == ["initial", "p1", "p2"]
        finally:
            pages.close()
            set_pages_awaited(True)
            provider.close()


class SlowTypes(ReplayServer):
    """Content types answered after 0.3 s (or refused with ``types_status``); notes which
    requests came in while they were awaited."""

    def __init__(self, pages: list[dict[str, Any]], types_status: int = 200) -> None:
        super().__init__(pages)
        self.types_status = types_status
        self.during_types: list[str] = []

    def answer(self, request: Any, method: str) -> None:
        if "/content_types" not in request.path:
            super().answer(request, method)
            return
        self.requests.append(request.path)
        seen = len(self.requests)
        time.sleep(0.3)
        self.during_types = self.requests[seen:]
        body = {"sys": {"type": "Array"}, "total": 1, "skip": 0, "limit": 1000, "items": [
            {"sys": {"id": "t"}, "name": "T", "displayField": "title",
             "fields": [{"id": "title", "name": "Title", "type": "Symbol"}]}]}
        send(request, self.types_status, body if self.types_status == 200 else
             {"sys": {"type": "Error", "id": "ServerError"}, "message": "down"})


def test_content_types_are_asked_for_beside_the_first_page(tmp_path: Path) -> None:
    with SlowTypes(chain(2)) as server:
        result, ids = sync(server, tmp_path / "s.sqlite3")
        with Cache.open(tmp_path / "s.sqlite3") as cache:
            types = [t.id for t in cache.content_types()]
    assert result.pages == 2 and len(ids) == 4 and types == ["t"]
    # The first sync page was asked for while the content types were on their way.
    assert any("initial=true" in path for path in server.during_types)


def test_content_types_that_fail_still_stop_the_sync_before_any_page(tmp_path: Path) -> None:
    with SlowTypes(chain(2), types_status=500) as server, \
            Cache(Contentful("s", TOKEN, base_url=server.base_url,
                             http=HttpPolicy(max_attempts=1)),
                  path=tmp_path / "s.sqlite3") as cache:
        with pytest.raises(SyncError, match="content types"):
            cache.sync()
        assert cache.count() == 0


def test_a_delta_asks_for_its_content_types_first(tmp_path: Path) -> None:
    """A delta's pages may carry type definitions newer than the sync's start (Kontent.ai):
    its listing is asked for before its first page, as it always was."""
    pages = chain(2)
    pages.append({"sys": {"type": "Array"}, "items": [entry("late")],
                  "nextSyncUrl": f"{BASE}?sync_token=done2"})
    with SlowTypes(pages) as server, \
            Cache(Contentful("s", TOKEN, base_url=server.base_url),
                  path=tmp_path / "s.sqlite3") as cache:
        assert cache.sync().initial
        assert any("initial=true" in path for path in server.during_types)
        delta = cache.sync()
        assert not delta.initial and delta.entries.added == 1
        assert not any("/sync" in path for path in server.during_types)
