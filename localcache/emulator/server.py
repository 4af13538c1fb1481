"""The emulator's HTTP server: real sockets on loopback, keep-alive, pluggable vendor protocols.

Tests and benchmarks talk to the emulator exactly as the library talks to the vendor, over
HTTP/1.1 with persistent connections, so connection reuse, timeouts and half-delivered bodies
behave as they would in production.  Vendor protocols are mounted by path prefix
(:meth:`Emulator.mount`); Contentful's is mounted at ``/spaces/``.

Like the vendors' CDNs, the server compresses every response body (errors too, tiny ones too)
when the request's ``Accept-Encoding`` allows it: ``br`` where the ``brotli`` package is
installed, ``gzip`` always. ``Content-Length`` then counts the compressed bytes, which is what a
client has to check a body against. Faults apply to the bytes on the wire: a truncated
response is half of the compressed body.

Every emulator also serves its model's asset binaries under ``/files/`` (files.py): point a
provider's ``asset_base_url`` at :attr:`Emulator.asset_base_url`. File requests have faults of
their own (:attr:`Emulator.file_faults`), among them a connection cut halfway through a file
and a paced body; a byte range is never compressed.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .contentful import MEDIA_TYPE, ContentfulAPI
from .contentstack import ContentstackAPI
from .faults import Faults, FileFaults
from .files import PREFIX as FILES_PREFIX
from .files import FilesAPI
from .kontent import KontentAPI
from .project import Project
from .space import Space
from .stack import Stack
from .wire import App, Request, Response

__all__ = ["CONTENT_CODINGS", "Emulator", "choose_coding", "mount"]


def _load_brotli() -> ModuleType | None:
    """The optional ``brotli`` package (imported by name: it ships no type information)."""
    try:
        return importlib.import_module("brotli")
    except ImportError:
        return None


_BROTLI = _load_brotli()


def _gzip(body: bytes) -> bytes:
    # Level 6 and a zero mtime: what a CDN's on-the-fly gzip does, and the same bytes each time.
    return gzip.compress(body, compresslevel=6, mtime=0)


def _brotli(body: bytes) -> bytes:
    assert _BROTLI is not None
    return bytes(_BROTLI.compress(body, quality=4))  # CDNs use a low quality for dynamic content


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {"gzip": _gzip}
if _BROTLI is not None:
    _ENCODERS["br"] = _brotli

CONTENT_CODINGS: tuple[str, ...] = tuple(c for c in ("br", "gzip") if c in _ENCODERS)
"""The content codings this installation can send, preferred first (``br`` needs ``brotli``)."""


def choose_coding(accept_encoding: str | None, offered: Iterable[str]) -> str | None:
    """The coding to send for a request's ``Accept-Encoding``: the one of ``offered`` the
    client weighs highest (ties go to the earlier), or None to send the body as it is.

    No header means no compression, as CDNs do, although HTTP would allow any coding.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    best, best_weight = None, 0.0
    for coding in offered:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can close idle keep-alive sockets promptly."""

    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs when a test opens connections in a burst, and a
    # dropped SYN costs the client a one-second retransmit.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: the only errors reaching here are clients hanging up mid-response
        (retry tests do that on purpose); protocol failures are already answered with 500."""

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, a small response written after its headers waits for the client's
    # delayed ACK: ~40 ms per request on loopback.
    disable_nagle_algorithm = True
    server_version = "localcache-emulator"
    sys_version = ""
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: per-request logging would dominate benchmark output and timings."""

    def _serve(self, method: str) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # keep the connection in sync; bodies are not used
        latency = emulator.faults.latency
        if latency > 0:
            time.sleep(latency)
        url = urlsplit(self.path)
        host = self.headers.get("Host") or emulator.authority
        request = Request(
            method=method,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in self.headers.items()},
            base_url=f"http://{host}",
        )
        try:
            response = emulator.dispatch(request)
        except Exception:  # a failing test hook must not kill the connection silently
            response = _internal_error()
        emulator.count_request()
        coding = choose_coding(self.headers.get("Accept-Encoding"), emulator.content_codings)
        self._write(method, response, coding)

    def _write(self, method: str, response: Response, coding: str | None) -> None:
        """Send status line, headers and body in one write (one syscall, one segment if small).

        A non-empty body is sent in ``coding`` (None: as it is), and says that it varies with
        ``Accept-Encoding`` either way, as a CDN's does.
        """
        body = response.body
        compressible = getattr(response, "compressible", True)
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"{self.protocol_version} {response.status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        if body and compressible:
            lines.append("Vary: Accept-Encoding")
            if coding is not None:
                body = _ENCODERS[coding](body)
                lines.append(f"Content-Encoding: {coding}")
        lines.append(f"Content-Length: {len(body)}")
        if response.truncate:
            lines.append("Connection: close")
            body = body[: len(body) // 2]
            self.close_connection = True
        if method == "HEAD":
            body = b""
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        pace = getattr(response, "pace", 0.0)
        if pace > 0 and body:
            self._paced(head, body, pace)
        else:
            self.wfile.write(head + body)
        if response.truncate:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


    def _paced(self, head: bytes, body: bytes, pace: float) -> None:
        """Write ``body`` at about ``pace`` bytes a second (a slow link, for kill tests)."""
        self.wfile.write(head)
        step = max(1024, min(16 * 1024, int(pace / 20)))
        for start in range(0, len(body), step):
            self.wfile.write(body[start:start + step])
            self.wfile.flush()
            time.sleep(len(body[start:start + step]) / pace)


def _internal_error() -> Response:
    request_id = uuid.uuid4().hex
    body = {
        "sys": {"type": "Error", "id": "InternalServerError"},
        "message": "Internal server error.",
        "requestId": request_id,
    }
    return Response(
        500,
        json.dumps(body).encode("utf-8"),
        [("Content-Type", MEDIA_TYPE), ("X-Contentful-Request-Id", request_id)],
    )


def _not_found() -> Response:
    request_id = uuid.uuid4().hex
    body = {
        "sys": {"type": "Error", "id": "NotFound"},
        "message": "The resource could not be found.",
        "requestId": request_id,
    }
    return Response(
        404,
        json.dumps(body).encode("utf-8"),
        [("Content-Type", MEDIA_TYPE), ("X-Contentful-Request-Id", request_id)],
    )


def mount(
    model: Space | Stack | Project, access_token: str | None, faults: Faults, page_size: int
) -> tuple[str, App]:
    """(path prefix, protocol app) serving ``model``: the server knows every vendor's API, and
    no model knows its API, so each model stays free of HTTP."""
    if isinstance(model, Project):  # Kontent.ai's Delivery API may run without a key
        return "/", KontentAPI(model, access_token, faults, page_size)
    if access_token is None:
        raise ValueError(f"{type(model).__name__}'s delivery API always needs an access token")
    if isinstance(model, Stack):
        return "/v3/", ContentstackAPI(model, access_token, faults, page_size)
    return "/spaces/", ContentfulAPI(model, access_token, faults, page_size)


class Emulator:
    """A local CMS serving ``space`` until stopped: a Contentful :class:`Space`, a Contentstack
    :class:`Stack` or a Kontent.ai :class:`Project`.

    ``port=0`` picks a free ephemeral port; read :attr:`base_url` after :meth:`start`.
    ``content_codings`` are the compressions offered to clients that accept them, preferred
    first (default: :data:`CONTENT_CODINGS`; ``()`` never compresses).
    """

    def __init__(
        self,
        space: Space | Stack | Project,
        access_token: str | None = "secret-token",
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 100,
        content_codings: Iterable[str] | None = None,
    ) -> None:
        self.space = space
        self.content_codings = CONTENT_CODINGS if content_codings is None else tuple(
            content_codings)
        unknown = set(self.content_codings) - set(_ENCODERS)
        if unknown:
            raise ValueError(f"content codings {sorted(unknown)} are not available here "
                             f"(available: {', '.join(CONTENT_CODINGS)})")
        self.access_token = access_token
        self.host = host
        self.port = port
        self.faults = Faults()
        #: Faults of asset file requests (``/files/``), a queue of their own.
        self.file_faults = FileFaults()
        self._files = FilesAPI(space, self.file_faults)
        self._apps: list[tuple[str, App]] = [
            (FILES_PREFIX + "/", self._files),
            mount(space, access_token, self.faults, page_size),
        ]
        self._apps.sort(key=lambda pair: len(pair[0]), reverse=True)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self._lifecycle_lock = threading.Lock()
        self._requests_served = 0

    # -- protocol plumbing -------------------------------------------------------------------

    def mount(self, prefix: str, app: App) -> None:
        """Serve paths starting with ``prefix`` by ``app`` (longest prefix wins)."""
        self._apps.append((prefix, app))
        self._apps.sort(key=lambda pair: len(pair[0]), reverse=True)

    def dispatch(self, request: Request) -> Response:
        """Hand a request to the protocol mounted for its path; a published asset file's
        own path (its URL's, with the host replaced) is served as a file."""
        # Only a path whose last segment has an extension may be a file: the vendors' API
        # paths never do, so they pay nothing for this.
        if request.method in ("GET", "HEAD") and "." in request.path.rsplit("/", 1)[-1] \
                and self._files.serves(request.path):
            return self._files.handle(request)
        for prefix, app in self._apps:
            if request.path.startswith(prefix):
                return app.handle(request)
        return _not_found()

    def count_request(self) -> None:
        """Called once per answered request, before the response is written."""
        with self._count_lock:
            self._requests_served += 1

    @property
    def requests_served(self) -> int:
        """Requests answered so far (any path, any status)."""
        with self._count_lock:
            return self._requests_served

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def authority(self) -> str:
        """host:port the server is bound to."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.authority}"

    @property
    def asset_base_url(self) -> str:
        """Where this emulator serves asset binaries: pass it as a provider's
        ``asset_base_url`` (``http://host:port/files``)."""
        return f"{self.base_url}{FILES_PREFIX}"

    def _bind(self) -> _Server:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        return server

    def start(self) -> Emulator:
        """Serve from a background daemon thread; returns self for chaining."""
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"localcache-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt (for a CLI command)."""
        server = self._bind()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving and close every connection, including idle keep-alive ones."""
        server = self._server
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        with self._lifecycle_lock:  # stop() and serve_forever()'s exit may race here
            server, self._server = self._server, None
        if server is None:
            return
        server.server_close()
        server.close_all()

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
