"""Bad sync pages through the real Contentful provider and sync engine, and a fuzz test.

A loopback server in this file serves page 1 (valid) and then whatever raw bytes and headers a
test scripts for page 2. Whatever is wrong with page 2, the app must get a typed error naming
"sync page 2" and the problem, page 1 must stay committed, and nothing of page 2 may be stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from replay import LoopbackServer, send

from localcache import Cache, Contentful, HttpPolicy, LocalCacheError, PageError, SyncError
from localcache import signals as lc_signals
from localcache.model import StoreScope
from localcache.providers.http import HttpResponse
from localcache.store.apply import apply_deltas
from localcache.store.database import Store
from localcache.store.query import LocaleChain, read_asset
from localcache.store.select import read_entries

TOKEN = "bad-input-token-7f3a9c"
SPACE = "badspace"
JSON_TYPE = "application/vnd.contentful.delivery.v1+json"
FAST = HttpPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
LOCALES = {"sys": {"type": "Array"}, "items": [
    {"code": "en-US", "default": True}, {"code": "de-DE", "fallbackCode": "en-US"}]}


def link(kind: str, target: str) -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": kind, "id": target}}


def entry(entry_id: str, title: str = "t", revision: int = 1) -> dict[str, Any]:
    return {
        "sys": {"type": "Entry", "id": entry_id, "revision": revision,
                "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z",
                "contentType": link("ContentType", "article")},
        "fields": {"title": {"en-US": title, "de-DE": f"{title} (de)"}},
    }


def asset(asset_id: str) -> dict[str, Any]:
    return {
        "sys": {"type": "Asset", "id": asset_id, "revision": 1,
                "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z"},
        "fields": {"title": {"en-US": asset_id},
                   "file": {"en-US": {"url": f"//x/{asset_id}.png", "fileName": "x.png"}}},
    }


def page(items: list[Any], *, next_page: str | None = None,
         next_sync: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"sys": {"type": "Array"}, "items": items}
    base = f"https://cdn.contentful.com/spaces/{SPACE}/environments/master/sync"
    if next_page is not None:
        body["nextPageUrl"] = f"{base}?sync_token={next_page}"
    if next_sync is not None:
        body["nextSyncUrl"] = f"{base}?sync_token={next_sync}"
    return body


@dataclass
class Reply:
    body: bytes
    content_type: str = JSON_TYPE
    status: int = 200
    chunked: bool = False


def reply(data: Any) -> Reply:
    return Reply(json.dumps(data).encode())


PAGE_ONE = page([entry("p1-a"), entry("p1-b")], next_page="tok2")
DONE = page([], next_sync="tok-done")


class ScriptedServer(LoopbackServer):
    """Page 1 on ``initial=true``; ``script[token]`` for every ``sync_token``."""

    def __init__(self, script: dict[str, Reply]) -> None:
        super().__init__()
        self.script = script
        self.requests: list[str] = []

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.requests.append(request.path)
        reply_ = self.route(request.path, request.headers.get("Authorization"))
        if not reply_.chunked:
            send(request, reply_.status, reply_.body, content_type=reply_.content_type)
            return
        request.send_response(reply_.status)
        request.send_header("Content-Type", reply_.content_type)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        for start in range(0, len(reply_.body), 8192):
            chunk = reply_.body[start:start + 8192]
            request.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        request.wfile.write(b"0\r\n\r\n")

    def route(self, path: str, auth: str | None) -> Reply:
        if auth != f"Bearer {TOKEN}":
            return Reply(b'{"sys":{"type":"Error","id":"AccessTokenInvalid"}}', status=401)
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path.endswith("/locales"):
            return reply(LOCALES)
        if query.get("initial") == ["true"]:
            return reply(PAGE_ONE)
        token = query.get("sync_token", [""])[0]
        if token in self.script:
            return self.script[token]
        return Reply(b'{"sys":{"type":"Error","id":"BadRequest"}}', status=400)

    def page_requests(self, token: str) -> int:
        return sum(f"sync_token={token}" in p for p in self.requests)


@contextlib.contextmanager
def serving(page_two: Reply, path: Path,
            policy: HttpPolicy = FAST) -> Iterator[tuple[ScriptedServer, Cache]]:
    with ScriptedServer({"tok2": page_two, "tok-done": reply(DONE)}) as server:
        provider = Contentful(SPACE, TOKEN, base_url=server.base_url, http=policy)
        with Cache(provider, path=path) as cache:
            yield server, cache


def assert_only_page_one(cache: Cache) -> None:
    assert sorted(r.id for r in cache.entries()) == ["p1-a", "p1-b"]
    stats = cache.stats()
    assert stats["assets"] == 0
    assert stats["sync_in_progress"] and not stats["synced"]
    for record_id in ("p2-good", "p2-bad", "p2-other"):
        assert cache.entry(record_id) is None
        assert cache.asset(record_id) is None


def _good() -> dict[str, Any]:
    return entry("p2-good", "second page")


def _with(bad_item: dict[str, Any]) -> Reply:
    """Page 2 holding a valid entry, then ``bad_item``."""
    return reply(page([_good(), bad_item], next_sync="tok-done"))


def _entry_with(**sys: Any) -> dict[str, Any]:
    item = entry("p2-bad")
    item["sys"].update(sys)
    return item


def _without(key: str) -> dict[str, Any]:
    item = entry("p2-bad")
    del item["sys"][key]
    return item


def _fields(value: Any) -> dict[str, Any]:
    item = entry("p2-bad")
    item["fields"] = value
    return item


def _valid_page_two_text() -> str:
    return json.dumps(page([_good()], next_sync="tok-done"))


DEPTH = 100_000
BAD_PAGES: dict[str, tuple[Reply, str]] = {
    "invalid JSON": (Reply(_valid_page_two_text()[:-20].encode()), "not valid JSON"),
    "invalid UTF-8": (Reply(_valid_page_two_text().replace("second", "sec\udcffond").encode(
        "utf-8", "surrogateescape")), "not valid JSON"),
    "body is an array": (Reply(b"[1, 2, 3]"), "not an object"),
    "items not a list": (reply({**page([], next_sync="tok-done"), "items": {"0": _good()}}),
                         "'items' array"),
    "items missing": (reply({"sys": {"type": "Array"},
                             "nextSyncUrl": "https://x/sync?sync_token=tok-done"}),
                      "'items' array"),
    "no next URL": (reply({"sys": {"type": "Array"}, "items": [_good()]}), "nextSyncUrl"),
    "next URL without token": (reply({"sys": {"type": "Array"}, "items": [_good()],
                                      "nextSyncUrl": "https://x/sync"}), "sync_token"),
    "item not an object": (_with(["not", "an", "item"]), "'sys'"),  # type: ignore[arg-type]
    "sys missing": (_with({"fields": {}}), "'sys'"),
    "sys.type missing": (_with(_without("type")), "sys.type"),
    "sys.id missing": (_with(_without("id")), "sys.id"),
    "sys.id an int": (_with(_entry_with(id=42)), "sys.id"),
    "sys.id empty": (_with(_entry_with(id="")), "sys.id"),
    "revision a string": (_with(_entry_with(revision="3")), "revision"),
    "revision a bool": (_with(_entry_with(revision=True)), "revision"),
    "createdAt a number": (_with(_entry_with(createdAt=1700000000)), "createdAt"),
    "contentType missing": (_with(_without("contentType")), "contentType"),
    "contentType not a link": (_with(_entry_with(contentType="article")), "contentType"),
    "fields a list": (_with(_fields([{"en-US": "x"}])), "locale"),
    "field not a locale map": (_with(_fields({"title": "plain string"})), "locale"),
    "text/html": (Reply(b"<html><body>Service Unavailable</body></html>",
                        content_type="text/html; charset=utf-8"), "text/html"),
    "nested 100000 levels": (Reply(
        ('{"sys":{"type":"Array"},"items":[' + "[" * DEPTH + "]" * DEPTH
         + '],"nextSyncUrl":"https://x/sync?sync_token=tok-done"}').encode()), "nested"),
    "NaN in a field": (Reply(_valid_page_two_text().replace('"second page"', "NaN").encode()),
                       "NaN"),
    "Infinity in a field": (Reply(
        _valid_page_two_text().replace('"second page"', "-Infinity").encode()), "Infinity"),
}


@pytest.mark.parametrize("case", list(BAD_PAGES))
def test_bad_page_two_is_a_page_error_and_page_one_stays(case: str, tmp_path: Path) -> None:
    bad, problem = BAD_PAGES[case]
    with serving(bad, tmp_path / "s.sqlite3") as (server, cache):
        with pytest.raises(PageError) as failure:
            cache.sync()
        error = failure.value
        message = str(error)
        assert error.page == 2, message
        assert "sync page 2" in message
        assert problem in message, message
        assert TOKEN not in message
        assert_only_page_one(cache)
        assert server.page_requests("tok2") == 1     # a bad body is not fetched again


# Bodies that reach SQLite with values Python's json accepts but the store cannot hold as they
# are. The library must refuse them as a PageError like any other bad page, not let a
# UnicodeEncodeError / OverflowError / StoreError out of Cache.sync().
UNSTORABLE: dict[str, Reply] = {
    "sys.id a lone surrogate": _with(_entry_with(id="p2-\ud800")),
    "updatedAt a lone surrogate": _with(_entry_with(updatedAt="\udfff")),
    "revision beyond 64 bits, no fields": _with(
        {k: v for k, v in _entry_with(revision=2**70).items() if k != "fields"}),
    # 1e400 parses as float('inf'); re-encoded by Python it becomes the non-JSON "Infinity".
    "1e400 in sys, no fields": Reply(json.dumps(
        page([_good(), {"sys": {**entry("p2-bad")["sys"], "x": "__BIG__"}}],
             next_sync="tok-done")).replace('"__BIG__"', "1e400").encode()),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_unstorable_values_are_a_page_error(case: str, tmp_path: Path) -> None:
    with serving(UNSTORABLE[case], tmp_path / "s.sqlite3") as (_, cache):
        outcome: LocalCacheError | None = None
        try:
            cache.sync()
        except LocalCacheError as error:
            outcome = error
        cache.entries()                           # whatever happened, reads still work
        assert isinstance(outcome, PageError), f"sync ended with {outcome!r}"
        assert outcome.page == 2 and "sync page 2" in str(outcome)
        assert_only_page_one(cache)


def test_repeated_sys_id_is_refused_or_stored_as_reported(tmp_path: Path) -> None:
    """Python's json keeps the LAST duplicate key, SQLite's json_extract the FIRST. A page whose
    item says ``"id": "p2-good"`` twice over must not report one id and store another."""
    text = json.dumps(page([entry("p2-first")], next_sync="tok-done"))
    text = text.replace('"id": "p2-first"', '"id": "p2-first", "id": "p2-second"')
    reported: list[str] = []
    with serving(Reply(text.encode()), tmp_path / "s.sqlite3") as (_, cache), \
            lc_signals.changes_committed.connected_to(
                lambda sender, changes: reported.extend(changes.entries_added), sender=cache):
        try:
            cache.sync()
        except PageError as error:
            assert error.page == 2
            assert_only_page_one(cache)
            return
        stored = sorted(r.id for r in cache.entries())
        assert sorted(reported) == stored, f"signalled {reported}, stored {stored}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_page_two_is_refused(chunked: bool, tmp_path: Path) -> None:
    items = [entry(f"p2-{i:04d}", "x" * 200) for i in range(300)]
    body = json.dumps(page(items, next_sync="tok-done")).encode()
    assert len(body) > 100_000
    policy = HttpPolicy(max_attempts=3, backoff_base=0.01, max_response_bytes=20_000)
    with serving(Reply(body, chunked=chunked), tmp_path / "s.sqlite3", policy) as (server, cache):
        with pytest.raises(SyncError) as failure:
            cache.sync()
        message = str(failure.value)
        assert "sync page 2" in message and "20000" in message, message
        assert "cap" in message
        assert getattr(failure.value, "page", 2) == 2
        assert_only_page_one(cache)
        assert cache.entry("p2-0000") is None
        assert server.page_requests("tok2") == 1     # over the cap is final, not retried


def test_fixed_page_two_resumes_from_page_one(tmp_path: Path) -> None:
    with serving(_with(_without("id")), tmp_path / "s.sqlite3") as (server, cache):
        with pytest.raises(PageError):
            cache.sync()
        server.script["tok2"] = reply(page([_good()], next_sync="tok-done"))
        result = cache.sync()
        assert result.initial and result.entries.added == 1
        assert sorted(r.id for r in cache.entries()) == ["p1-a", "p1-b", "p2-good"]
        assert cache.stats()["synced"]
        assert sum("initial=true" in p for p in server.requests) == 1   # not restarted


def test_unknown_item_type_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content_type = {"sys": {"type": "ContentType", "id": "article"}, "name": "Article",
                    "fields": [{"id": "title", "type": "Symbol"}]}
    body = page([_good(), content_type, asset("p2-img"), entry("p2-other")],
                next_sync="tok-done")
    caplog.set_level(logging.WARNING)
    with serving(reply(body), tmp_path / "s.sqlite3") as (_, cache):
        result = cache.sync()
        assert result.pages == 2 and result.items == 5
        ids = sorted(r.id for r in cache.entries())
        assert ids == ["p1-a", "p1-b", "p2-good", "p2-other"]
        assert cache.asset("p2-img") is not None
        assert cache.entry("article") is None and cache.asset("article") is None
        assert cache.stats()["synced"]
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("localcache")]
    assert any("ContentType" in r.getMessage() and "sync page 2" in r.getMessage()
               for r in warnings), [r.getMessage() for r in warnings]


# -- fuzz: parser + apply on a real store ------------------------------------------------------

ENTRY_IDS = ["e1", "e2", "e3"]
BASE_PAGE = page([
    {**entry("e1", "one"), "fields": {
        "title": {"en-US": "one", "de-DE": "eins"},
        "related": {"en-US": [link("Entry", "e2"), link("Entry", "gone")]},
        "image": {"en-US": link("Asset", "img")}}},
    entry("e2", "two", revision=2),
    {"sys": {**entry("e3")["sys"]}},        # no fields: stored through the Python encoder
    asset("img"),
    {"sys": {"type": "DeletedEntry", "id": "old", "revision": 3,
             "deletedAt": "2024-01-03T00:00:00.000Z"}},
    {"sys": {"type": "DeletedAsset", "id": "old-img", "revision": 1}},
], next_page="fuzz-next")
SEED_PAGE = page([entry("old"), entry("e2", "two-before"), asset("old-img")],
                 next_page="seed-next")
BIG = "__1e400__"   # replaced by the bare number 1e400 (json reads it as inf) after encoding
SYS_KEYS = ["id", "type", "revision", "createdAt", "updatedAt", "contentType"]
KEYS = ["sys", "id", "type", "fields", "revision", "contentType", "items", "nextPageUrl",
        "nextSyncUrl", "createdAt", "updatedAt", "linkType", "en-US", "title"]
STRINGS = st.text(max_size=12) | st.sampled_from(
    ["Entry", "Asset", "DeletedEntry", "DeletedAsset", "Link", "e1", "img", "\ud800", "\x00",
     "x' OR 1=1 --", "https://x/sync?sync_token=t", "$.items", "2024-01-01T00:00:00Z"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | STRINGS
           | st.integers(min_value=2**62, max_value=2**80))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
# Values that are valid JSON but hostile to a store: lone surrogates, integers beyond 64 bits,
# numbers beyond a double, NUL characters.
HOSTILE = st.sampled_from(["\ud800", "x\udfff", 2**64, -(2**70), 10**30, BIG, "a\x00b", "",
                           {"sys": {"id": "\ud800"}}, {"sys": {"id": 7}}, [], {}])
SYS_VALUES = HOSTILE | JSON_VALUES


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate_json(data: st.DataObject) -> bytes:
    doc = json.loads(json.dumps(BASE_PAGE))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths), label="path")
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["delete", "replace", "add", "duplicate", "sys"]))
        key = path[-1]
        if action == "sys":         # aim at what parse_page validates and SQLite stores
            items = doc.get("items")
            candidates = items if isinstance(items, list) and items else [{}]
            item = data.draw(st.sampled_from(candidates), label="item")
            if isinstance(item, dict) and isinstance(item.get("sys"), dict):
                item["sys"][data.draw(st.sampled_from(SYS_KEYS))] = data.draw(SYS_VALUES)
            elif isinstance(item, dict):
                item["fields"] = {"title": {"en-US": data.draw(SYS_VALUES)}}
        elif action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = data.draw(JSON_VALUES, label="value")
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(KEYS), label="key")] = data.draw(JSON_VALUES)
        elif isinstance(parent, list):
            parent.append(json.loads(json.dumps(parent[key])))
    return json.dumps(doc).replace(f'"{BIG}"', "1e400").encode()


def _mutate_bytes(data: st.DataObject) -> bytes:
    body = json.dumps(BASE_PAGE).encode()
    action = data.draw(st.sampled_from(["truncate", "overwrite", "insert", "random"]))
    if action == "random":
        return data.draw(st.binary(max_size=200), label="random body")
    at = data.draw(st.integers(0, len(body)), label="at")
    if action == "truncate":
        return body[:at]
    chunk = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
    if action == "overwrite":
        return body[:at] + chunk + body[at + len(chunk):]
    return body[:at] + chunk + body[at:]


def _dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def seeded_store() -> Iterator[Path]:
    """A store holding one committed page (so the fuzzed page updates and deletes)."""
    directory = Path(tempfile.mkdtemp(prefix="lc-fuzz-"))
    path = directory / "seed.sqlite3"
    store = Store(path, StoreScope("contentful", SPACE, "master"))
    seed = Contentful.parse_page(
        HttpResponse(200, {"Content-Type": JSON_TYPE}, json.dumps(SEED_PAGE).encode(), None), 1)
    with store.write():
        apply_deltas(store.raw_connection(), seed.deltas, 1, seed.source)
        store.set_state(token="seed-next", token_kind="page")
    store.close()                                 # last connection: the WAL is checkpointed
    yield path
    shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_parse_and_apply(seeded_store: Path, data: st.DataObject) -> None:
    body = _mutate_json(data) if data.draw(st.booleans(), label="json?") else _mutate_bytes(data)
    content_type = data.draw(st.sampled_from(
        [JSON_TYPE, JSON_TYPE, "application/json; charset=utf-8", "", "text/plain"]))
    headers = {"Content-Type": content_type} if content_type else {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "store.sqlite3"
        shutil.copyfile(seeded_store, path)
        store = Store(path, StoreScope("contentful", SPACE, "master"))
        try:
            before = _dump(path)
            try:
                parsed = Contentful.parse_page(HttpResponse(200, headers, body, None), 2)
                with store.write():
                    apply_deltas(store.raw_connection(), parsed.deltas, 2, parsed.source)
                    store.set_state(token=parsed.next_token.value,
                                    token_kind=parsed.next_token.kind)
            except LocalCacheError as error:
                event(f"refused: {type(error).__name__}")
                assert _dump(path) == before, "a failed page changed the store"
                return
            event("applied")
            # Applied: every record reads back without error.
            chain = LocaleChain.from_locales(store.locales())
            read_entries(store.models, chain)
            for delta in parsed.deltas:
                if delta.record_type == "Asset" and not delta.deleted:
                    assert read_asset(store.models, delta.id, chain) is not None
        finally:
            store.close()
