"""Compressed responses, as CDNs send them, over real loopback HTTP.

requests asks for gzip (and br where the ``brotli`` package is installed), and the vendors' CDNs
compress every body the client accepts, errors and tiny ones included. ``Content-Length`` then
counts compressed bytes, and a tiny body compresses to MORE bytes than it has (gzip adds about
20): ``{"items":[]}`` travels as 32 gzipped bytes. The client must check truncation against the
bytes on the wire, never the decoded body.

The emulator compresses on request like a CDN; a hand-scripted :class:`CdnServer` serves tiny
vendor-shaped bodies that grow under both codings. Tests that rest on a body growing (or
shrinking) assert it first, so a changed body cannot quietly stop exercising the case.
"""

from __future__ import annotations

import gzip
import http.client
import importlib
import json
import random
import string
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from replay import LoopbackServer
from support import TOKEN, article, assert_converged, make_cache, make_space

from localcache import (
    AuthenticationError,
    Cache,
    Contentful,
    Contentstack,
    HttpPolicy,
    Kontent,
    LocalCacheError,
    SyncError,
)
from localcache.emulator import Emulator, Project, Stack
from localcache.emulator.server import CONTENT_CODINGS, choose_coding
from localcache.providers.http import HttpTransport

FAST = HttpPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
ENV_ID = "975bf280-fd91-488c-994c-2f04416e5ee3"
JSON_TYPE = "application/json"

needs_brotli = pytest.mark.skipif(
    "br" not in CONTENT_CODINGS,
    reason="the brotli package is not installed: neither the emulator nor requests speak br")
CODINGS = ["gzip", pytest.param("br", marks=needs_brotli)]


def compress(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, mtime=0)
    return bytes(importlib.import_module("brotli").compress(body, quality=4))  # a CDN's


def decompress(data: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    return bytes(importlib.import_module("brotli").decompress(data))


def noise(length: int, seed: int = 0) -> bytes:
    """A JSON string of ``length`` bytes that compresses badly (random base64 letters)."""
    rng = random.Random(seed)
    letters = string.ascii_letters + string.digits + "+/"
    return json.dumps("".join(rng.choice(letters) for _ in range(length - 2))).encode()


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The transport's retry warnings: a response read whole the first time logs none."""
    return [r.getMessage() for r in caplog.records if r.name == "localcache.http"]


# -- a hand-scripted CDN ----------------------------------------------------------------------

Route = Callable[[str, str], "tuple[int, bytes]"]


class CdnServer(LoopbackServer):
    """Answers ``route(method, path)`` in ``coding`` when the request accepts it, as a CDN does.

    ``cut`` responses from now on go out as half their compressed bytes, then the connection
    closes; ``garble`` ones announce ``coding`` but carry bytes that are not in it.
    """

    def __init__(self, coding: str, route: Route) -> None:
        super().__init__()
        self.coding = coding
        self.route = route
        self.hits: list[str] = []
        self.codings_sent: list[str | None] = []
        self.cut = 0
        self.garble = False

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.hits.append(request.path)
        status, body = self.route(method, request.path)
        coding = choose_coding(request.headers.get("Accept-Encoding"), (self.coding,))
        self.codings_sent.append(coding)
        data = compress(body, coding) if coding else body
        if self.garble:
            data = b"\x00not-compressed" * 4
        cut = self.cut > 0
        self.cut -= cut
        request.send_response(status)
        request.send_header("Content-Type", JSON_TYPE)
        request.send_header("Vary", "Accept-Encoding")
        if coding:
            request.send_header("Content-Encoding", coding)
        request.send_header("Content-Length", str(len(data)))
        if cut:
            request.send_header("Connection", "close")
            request.close_connection = True
            data = data[: len(data) // 2]
        request.end_headers()
        request.wfile.write(data)

    def __enter__(self) -> CdnServer:
        super().__enter__()
        return self


def transport() -> HttpTransport:
    return HttpTransport(headers={}, policy=FAST)


def answer_with(status: int, body: bytes) -> Route:
    return lambda method, path: (status, body)


def grows(body: bytes, coding: str) -> bytes:
    assert len(compress(body, coding)) > len(body), "premise: the body grows when compressed"
    return body


# Bodies that compress to more bytes than they have, in both codings (asserted by the tests).
TINY = {
    "empty-object": b"{}",
    "no-changes": b'{"items":[]}',
    "noise-40": noise(40),
}
GZIP_ONLY_TINY = {"noise-93": noise(93)}          # 93 bytes travel as 113 gzipped ones


def _tiny_cases() -> list[Any]:
    cases = [pytest.param("gzip", body, id=f"{name}-gzip")
             for name, body in {**TINY, **GZIP_ONLY_TINY}.items()]
    cases += [pytest.param("br", body, id=f"{name}-br", marks=needs_brotli)
              for name, body in TINY.items()]
    return cases


# -- the transport: tiny, large, cut, undecodable ---------------------------------------------

@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(("coding", "body"), _tiny_cases())
def test_tiny_compressed_body_is_read_once(coding: str, body: bytes, status: int,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A body smaller than its compressed form is whole; a 400 comes back to the provider."""
    grows(body, coding)
    with CdnServer(coding, answer_with(status, body)) as server:
        http = transport()
        try:
            response = http.request("GET", f"{server.base_url}/sync")
        finally:
            http.close()
    assert server.codings_sent == [coding]
    assert (response.status, response.body) == (status, body)
    assert retries(caplog) == []


@pytest.mark.parametrize("coding", CODINGS)
def test_large_then_tiny_compressed_bodies_on_one_connection(
    coding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A large first page, then a tiny 'no changes' one over the same keep-alive connection:
    each body is checked against its own bytes on the wire."""
    items = [{"id": f"item-{i:05d}", "title": f"Title {i}", "body": "lorem ipsum " * 40}
             for i in range(3000)]
    large = json.dumps({"items": items}).encode()
    assert len(large) > 1_500_000 > 10 * len(compress(large, coding))   # many 256 KB reads
    tiny = grows(b'{"items":[]}', coding)
    bodies = {"/large": large, "/tiny": tiny}
    with CdnServer(coding, lambda method, path: (200, bodies[path])) as server:
        http = transport()
        try:
            got = [http.request("GET", f"{server.base_url}{path}").body
                   for path in ("/large", "/tiny", "/large", "/tiny")]
        finally:
            http.close()
    assert got == [large, tiny, large, tiny]
    assert server.codings_sent == [coding] * 4
    assert retries(caplog) == []


@pytest.mark.parametrize(("coding", "body"), _tiny_cases())
def test_cut_compressed_body_is_cut_short_and_retried(coding: str, body: bytes) -> None:
    """Half of a compressed body is 'cut short' (retried), never a decode error; a whole one
    after the cut is read."""
    grows(body, coding)
    with CdnServer(coding, answer_with(200, body)) as server:
        http = transport()
        try:
            server.cut = FAST.max_attempts
            with pytest.raises(SyncError) as failure:
                http.request("GET", f"{server.base_url}/sync")
            assert "cut short" in str(failure.value)
            assert len(server.hits) == FAST.max_attempts
            server.cut = 1
            response = http.request("GET", f"{server.base_url}/sync")
        finally:
            http.close()
    assert type(failure.value) is SyncError
    assert response.status == 200 and response.body == body
    assert len(server.hits) == FAST.max_attempts + 2


@pytest.mark.parametrize("coding", CODINGS)
def test_undecodable_body_is_retried_then_a_sync_error(coding: str) -> None:
    with CdnServer(coding, answer_with(200, b'{"items":[]}')) as server:
        server.garble = True
        http = transport()
        try:
            with pytest.raises(LocalCacheError) as failure:
                http.request("GET", f"{server.base_url}/sync", what="sync page 1")
        finally:
            http.close()
    error = failure.value
    assert type(error) is SyncError
    assert f"could not be decoded ({coding})" in str(error) and "sync page 1" in str(error)
    assert len(server.hits) == FAST.max_attempts


# -- vendor errors in tiny compressed bodies are recognised, not retried -----------------------

def _contentful(base_url: str) -> Contentful:
    return Contentful("space", TOKEN, base_url=base_url, http=FAST)


def _contentstack(base_url: str) -> Contentstack:
    return Contentstack("blt_api", TOKEN, "production", base_url=base_url, http=FAST)


def _kontent(base_url: str) -> Kontent:
    return Kontent(ENV_ID, api_key=TOKEN, base_url=base_url, http=FAST)


REJECTED_CREDENTIALS = [
    pytest.param(_contentful, 401, b'{"sys":{"type":"Error","id":"AccessTokenInvalid"}}',
                 "AccessTokenInvalid", id="contentful-401"),
    pytest.param(_contentstack, 412, b'{"error_message":"Bad token.","error_code":109}',
                 "error 109", id="contentstack-412"),
    pytest.param(_kontent, 401, b'{"message":"Bad key.","error_code":5}', "Bad key.",
                 id="kontent-401"),
]


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize(("provider", "status", "body", "detail"), REJECTED_CREDENTIALS)
def test_rejected_credentials_in_a_tiny_compressed_body(
    provider: Callable[[str], Any], status: int, body: bytes, detail: str, coding: str,
    store_path: Path,
) -> None:
    grows(body, coding)
    with CdnServer(coding, answer_with(status, body)) as server, \
            Cache(provider(server.base_url), path=store_path) as cache, \
            pytest.raises(AuthenticationError) as failure:
        cache.sync()
    assert failure.value.status == status
    assert detail in str(failure.value)              # the decoded vendor body, recognised
    assert len(server.hits) == 1 and server.codings_sent == [coding]


REJECTED_TOKEN = b'{"sys":{"type":"Error","id":"BadRequest"}}'


def _contentful_with_a_token_to_reject(coding: str) -> Route:
    """Contentful in tiny bodies: one entry, then every sync token is refused with 400."""
    locales = b'{"items":[{"code":"en-US","default":true}]}'
    entry = {"sys": {"type": "Entry", "id": "e1", "revision": 1,
                     "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
                     "contentType": {"sys": {"type": "Link", "linkType": "ContentType",
                                             "id": "article"}}},
             "fields": {"title": {"en-US": "Hi"}}}
    initial = json.dumps({"sys": {"type": "Array"}, "items": [entry],
                          "nextSyncUrl": "https://cdn.example/sync?sync_token=t1"}).encode()

    def route(method: str, path: str) -> tuple[int, bytes]:
        parts = urlsplit(path)
        if parts.path.endswith("/locales"):
            return 200, locales
        if parse_qs(parts.query).get("initial") == ["true"]:
            return 200, initial
        return 400, grows(REJECTED_TOKEN, coding)

    return route


@pytest.mark.parametrize("coding", CODINGS)
def test_rejected_sync_token_in_a_tiny_compressed_body_rebuilds(
    coding: str, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with CdnServer(coding, _contentful_with_a_token_to_reject(coding)) as server, \
            Cache(_contentful(server.base_url), path=store_path) as cache:
        assert cache.sync().initial
        result = cache.sync()               # 400 BadRequest: a fresh initial sync, no retry
        assert result.initial and cache.entry("e1") is not None
    token_requests = [hit for hit in server.hits if "sync_token=t1" in hit]
    assert len(token_requests) == 1
    assert set(server.codings_sent) == {coding}
    assert retries(caplog) == []


# -- the emulator compresses like a CDN ----------------------------------------------------------

def _stack(entries: int = 3, text: str = "") -> Stack:
    stack = Stack(api_key="blt_api", environment="production", locales=["en-us"])
    for i in range(entries):
        stack.publish_entry(f"blt{i:04d}", "blog", "en-us", {"title": f"Post {i}", "body": text})
    return stack


def _project(items: int = 3, text: str = "") -> Project:
    project = Project(environment_id=ENV_ID, languages=["default", "es-ES"])
    project.add_type("article", elements={"title": "text", "body": "text"})
    for i in range(items):
        item = f"00000000-0000-4000-8000-{i:012d}"
        project.upsert_variant(item, f"item_{i}", "article", "default",
                               {"title": f"T{i}", "body": text})
        if i % 2:
            project.upsert_variant(item, f"item_{i}", "article", "es-ES",
                                   {"title": f"E{i}", "body": text})
    return project


def fetch(emu: Emulator, method: str, path: str, headers: dict[str, str]
          ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request with http.client, which neither asks for nor decodes compression."""
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


VENDOR_REQUESTS = [  # (model, token, method, path, headers, status)
    pytest.param(make_space, TOKEN, "GET", "/spaces/testspace/environments/master/locales",
                 {"Authorization": f"Bearer {TOKEN}"}, 200, id="contentful"),
    pytest.param(make_space, TOKEN, "GET", "/spaces/testspace/environments/master/sync",
                 {"Authorization": "Bearer wrong"}, 401, id="contentful-error"),
    pytest.param(_stack, TOKEN, "GET", "/v3/stacks/sync?init=true&environment=production",
                 {"api_key": "blt_api", "access_token": TOKEN}, 200, id="contentstack"),
    pytest.param(_stack, TOKEN, "GET", "/v3/stacks/sync?init=true&environment=production",
                 {"api_key": "blt_api", "access_token": "wrong"}, 412,
                 id="contentstack-error"),
    pytest.param(_project, None, "POST", f"/{ENV_ID}/sync/init", {}, 200, id="kontent"),
    pytest.param(_project, None, "GET", f"/{ENV_ID}/sync", {"X-Continuation": "garbage"}, 400,
                 id="kontent-error"),
]


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize(("model", "token", "method", "path", "headers", "status"),
                         VENDOR_REQUESTS)
def test_emulator_compresses_every_vendor_when_asked(
    model: Callable[[], Any], token: str | None, method: str, path: str,
    headers: dict[str, str], status: int, coding: str,
) -> None:
    with Emulator(model(), access_token=token) as emu:
        got, plain_headers, plain = fetch(emu, method, path, headers)
        assert got == status and "Content-Encoding" not in plain_headers
        got, wire_headers, wire = fetch(emu, method, path,
                                        {**headers, "Accept-Encoding": "gzip, deflate, br"
                                         if coding == "br" else "gzip, deflate"})
    assert got == status
    assert wire_headers["Content-Encoding"] == coding
    assert wire_headers["Vary"] == "Accept-Encoding"
    assert int(wire_headers["Content-Length"]) == len(wire)     # compressed bytes counted
    decoded = json.loads(decompress(wire, coding))
    expected = json.loads(plain)
    for key in ("requestId", "request_id"):                      # fresh per response
        decoded.pop(key, None)
        expected.pop(key, None)
    assert decoded == expected


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0, br;q=0", "deflate", "zstd"])
def test_emulator_sends_the_body_as_it_is_unless_asked(accept: str | None) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if accept is not None:
        headers["Accept-Encoding"] = accept
    with Emulator(make_space(), access_token=TOKEN) as emu:
        status, got, body = fetch(emu, "GET", "/spaces/testspace/environments/master/locales",
                                  headers)
    assert status == 200 and "Content-Encoding" not in got
    assert got["Vary"] == "Accept-Encoding"
    assert int(got["Content-Length"]) == len(body) and json.loads(body)["items"]


def test_emulator_can_be_told_not_to_compress() -> None:
    with Emulator(make_space(), access_token=TOKEN, content_codings=()) as emu:
        _, got, _ = fetch(emu, "GET", "/spaces/testspace/environments/master/locales",
                          {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in got
    with pytest.raises(ValueError, match="zstd"):
        Emulator(make_space(), access_token=TOKEN, content_codings=("zstd",))


@pytest.mark.parametrize(("accept", "offered", "chosen"), [
    ("gzip, deflate, br", ("br", "gzip"), "br"),
    ("gzip, deflate", ("br", "gzip"), "gzip"),
    ("br;q=0.5, gzip", ("br", "gzip"), "gzip"),
    ("GZIP ; Q=0.8", ("br", "gzip"), "gzip"),
    ("*", ("br", "gzip"), "br"),
    ("*;q=0.1, br;q=0", ("br", "gzip"), "gzip"),
    ("br", ("gzip",), None),
    ("gzip;q=0", ("br", "gzip"), None),
    ("gzip;q=bogus", ("gzip",), None),
    ("", ("br", "gzip"), None),
    (None, ("br", "gzip"), None),
])
def test_emulator_picks_the_coding_the_client_weighs_highest(
    accept: str | None, offered: tuple[str, ...], chosen: str | None
) -> None:
    assert choose_coding(accept, offered) == chosen


@pytest.mark.parametrize("coding", CODINGS)
def test_emulator_truncates_the_compressed_body(coding: str) -> None:
    space = make_space()
    for i in range(30):
        space.publish_entry(f"a{i:03d}", "article", article(f"Title {i}"))
    path = "/spaces/testspace/environments/master/sync?initial=true"
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": coding}
    with Emulator(space, access_token=TOKEN) as emu:
        _, _, whole = fetch(emu, "GET", path, headers)
        emu.faults.truncate()
        connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        announced = int(response.headers["Content-Length"])
        assert response.headers["Content-Encoding"] == coding
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        connection.close()
    assert len(caught.value.partial) == announced // 2
    assert abs(announced - len(whole)) < 64          # the compressed length, not the plain one
    assert announced * 3 < len(decompress(whole, coding))


# -- whole syncs against the emulator, in each coding --------------------------------------------

def _no_changes_delta(emu: Emulator, version: int, coding: str) -> tuple[int, int]:
    """(plain, wire) bytes of a Kontent.ai sync page that holds no changes."""
    prefix = f"/{ENV_ID}" if version == 1 else f"/v2/{ENV_ID}"
    _, init_headers, _ = fetch(emu, "POST", f"{prefix}/sync/init", {})
    _, headers, wire = fetch(emu, "GET", f"{prefix}/sync",
                             {"X-Continuation": init_headers["X-Continuation"],
                              "Accept-Encoding": coding})
    assert headers["Content-Encoding"] == coding
    return len(decompress(wire, coding)), len(wire)


KONTENT_NO_CHANGES = [  # the v2 page has four empty arrays: br shrinks it, gzip does not
    pytest.param(1, "gzip", id="v1-gzip"),
    pytest.param(2, "gzip", id="v2-gzip"),
    pytest.param(1, "br", id="v1-br", marks=needs_brotli),
]


@pytest.fixture
def kontent_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    coding = request.node.callspec.params["coding"]
    with Emulator(_project(120, "lorem ipsum " * 60), access_token=None,
                  content_codings=(coding,)) as emu:
        yield emu


@pytest.mark.parametrize(("version", "coding"), KONTENT_NO_CHANGES)
def test_kontent_large_first_load_then_a_no_changes_delta(
    kontent_emulator: Emulator, version: int, coding: str, store_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = kontent_emulator
    plain, wire = _no_changes_delta(emu, version, coding)
    assert wire > plain, "premise: the no-changes page grows when compressed"
    with Cache(Kontent(ENV_ID, api_version=version, base_url=emu.base_url, http=FAST),
               path=store_path) as cache:
        first = cache.sync()
        assert first.entries.added == 120
        delta = cache.sync()                 # "no changes": a tiny page, every time
        assert not delta.initial
        assert (delta.entries.added, delta.entries.updated, delta.entries.deleted) == (0, 0, 0)
        emu.space.upsert_variant("00000000-0000-4000-8000-000000000000", "item_0", "article",
                                 "default", {"title": "edited", "body": ""})
        assert cache.sync().entries.updated == 1
        assert cache.sync().entries.updated == 0
    assert retries(caplog) == []


@pytest.mark.parametrize(("version", "coding"), KONTENT_NO_CHANGES)
def test_kontent_cut_no_changes_delta_is_retried(
    kontent_emulator: Emulator, version: int, coding: str, store_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = kontent_emulator
    with Cache(Kontent(ENV_ID, api_version=version, base_url=emu.base_url, http=FAST),
               path=store_path) as cache:
        cache.sync()

        def cut_the_delta(path: str, query: dict[str, list[str]]) -> None:
            if path.endswith("/sync"):
                emu.faults.on_request = None
                emu.faults.truncate()

        emu.faults.on_request = cut_the_delta
        delta = cache.sync()
        assert not delta.initial and delta.entries.updated == 0
    assert emu.faults.pending == 0
    assert [m for m in retries(caplog) if "cut short" in m] == retries(caplog)
    assert len(retries(caplog)) == 1


@pytest.mark.parametrize("coding", CODINGS)
def test_contentful_large_pages_cut_and_whole(coding: str, space: Any, store_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    for i in range(300):
        space.publish_entry(f"a{i:04d}", "article", article(f"Title {i}", de=f"Titel {i}"))
    with Emulator(space, access_token=TOKEN, content_codings=(coding,)) as emu:
        _, headers, _ = fetch(emu, "GET", "/spaces/testspace/environments/master/sync"
                              "?initial=true&limit=1000",
                              {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": coding})
        assert headers["Content-Encoding"] == coding
        emu.faults.truncate()
        with make_cache(emu, store_path, limit=1000, http=FAST) as cache:
            result = cache.sync()
            assert result.entries.added == 300
            assert_converged(cache, space)
            assert cache.sync().entries.added == 0
    assert emu.faults.pending == 0
    assert len(retries(caplog)) == 1 and "cut short" in retries(caplog)[0]


@pytest.mark.parametrize("coding", CODINGS)
def test_contentstack_large_pages_cut_and_whole(coding: str, store_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    stack = _stack(250, "lorem ipsum " * 60)
    with Emulator(stack, access_token=TOKEN, content_codings=(coding,)) as emu:
        emu.faults.truncate()
        with Cache(Contentstack("blt_api", TOKEN, "production", base_url=emu.base_url,
                                http=FAST), path=store_path) as cache:
            result = cache.sync()
            assert result.entries.added == 250 and result.pages == 3
            assert cache.sync().entries.added == 0
    assert emu.faults.pending == 0
    assert len(retries(caplog)) == 1 and "cut short" in retries(caplog)[0]
