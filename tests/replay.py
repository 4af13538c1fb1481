"""Loopback HTTP servers for tests: a small base, and one that replays recorded sync pages.

:class:`LoopbackServer` is the plumbing every scripted test server shares (a threaded HTTP/1.1
server on 127.0.0.1, started and stopped as a context manager); subclasses answer in
:meth:`LoopbackServer.answer`. :class:`ReplayServer` replays recorded Contentful responses: each
page's ``nextPageUrl``/``nextSyncUrl`` token maps to the next recorded page, so a real provider
walks the recording exactly as it walked the vendor's API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_LOCALES = {"sys": {"type": "Array"}, "items": [{"code": "en-US", "default": True}]}


class LoopbackServer:
    """A threaded HTTP/1.1 server on an ephemeral port of 127.0.0.1."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.answer(self, "GET")

            def do_POST(self) -> None:
                outer.answer(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(request: BaseHTTPRequestHandler, status: int, body: Any,
         headers: Iterable[tuple[str, str]] = (),
         content_type: str = "application/json") -> None:
    """Answer with ``body`` (bytes as they are, anything else as JSON) and its length."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    for name, value in headers:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(data)


def token_of(page: dict[str, Any]) -> str:
    url = page.get("nextPageUrl") or page.get("nextSyncUrl")
    return parse_qs(urlsplit(url).query)["sync_token"][0]


class ReplayServer(LoopbackServer):
    """Serve ``pages`` (recorded sync bodies) and ``locales`` over 127.0.0.1."""

    def __init__(self, pages: list[dict[str, Any]], locales: dict[str, Any] | None = None,
                 token: str = "replay-token") -> None:
        super().__init__()
        self.pages = pages
        self.locales = locales or DEFAULT_LOCALES
        self.token = token
        self.requests: list[str] = []
        self._by_token = {token_of(p): pages[i + 1] for i, p in enumerate(pages[:-1])}

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.requests.append(request.path)
        status, body = self.route(request.path, request.headers.get("Authorization"))
        send(request, status, body, content_type="application/vnd.contentful.delivery.v1+json")

    def route(self, path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        if auth != f"Bearer {self.token}":
            return 401, {"sys": {"type": "Error", "id": "AccessTokenInvalid"}}
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        if parts.path.endswith("/locales"):
            return 200, self.locales
        if parts.path.endswith("/sync"):
            if query.get("initial") == ["true"]:
                return 200, self.pages[0]
            token = query.get("sync_token", [""])[0]
            if token in self._by_token:
                return 200, self._by_token[token]
            return 400, {"sys": {"type": "Error", "id": "BadRequest"}, "message": "bad token"}
        return 404, {"sys": {"type": "Error", "id": "NotFound"}}
