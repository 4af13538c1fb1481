"""A loopback HTTP server that replays recorded Contentful sync responses in order.

Each recorded page's ``nextPageUrl``/``nextSyncUrl`` token maps to the next recorded page, so a
real provider walks the recording exactly as it walked the vendor's API.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_LOCALES = {"sys": {"type": "Array"}, "items": [{"code": "en-US", "default": True}]}


def token_of(page: dict[str, Any]) -> str:
    url = page.get("nextPageUrl") or page.get("nextSyncUrl")
    return parse_qs(urlsplit(url).query)["sync_token"][0]


class ReplayServer:
    """Serve ``pages`` (recorded sync bodies) and ``locales`` over 127.0.0.1."""

    def __init__(self, pages: list[dict[str, Any]], locales: dict[str, Any] | None = None,
                 token: str = "replay-token") -> None:
        self.pages = pages
        self.locales = locales or DEFAULT_LOCALES
        self.token = token
        self.requests: list[str] = []
        self._by_token = {token_of(p): pages[i + 1] for i, p in enumerate(pages[:-1])}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, body = server.route(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.contentful.delivery.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

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

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
