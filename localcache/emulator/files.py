"""Asset binaries for the three vendors: deterministic bytes, Range and ETag, file faults.

Mounted at ``/files/`` on every emulator, whatever vendor it speaks. The models keep the
vendors' own asset URLs (``//images.ctfassets.net/...``, ``https://images.contentstack.io/
v3/assets/...``, ``https://assets-us-01.kc-usercontent.com/...``); a provider built with
``asset_base_url=emulator.asset_base_url`` puts ``http://127.0.0.1:<port>/files`` in place of
their scheme and host, and this app finds the file by the rest of the path, among the files the
model publishes now (its Contentful assets, Contentstack ``sys_assets``, or Kontent.ai asset
elements). A file nobody publishes any more is a 404, as on a CDN after a purge.

The bytes of a file are a function of its URL path and the size its record gives
(SHAKE-256 of the path, as long as the size): the same for every request, different for
every file version (the vendors put a digest of each upload in the URL; the helpers below do
too). The ETag is the quoted MD5 of the whole file, as S3-backed CDNs send. ``Range:
bytes=N-`` and ``bytes=N-M`` get 206 with ``Content-Range`` (416 past the end), honouring
``If-Range``; ``HEAD`` works. A whole-file 200 is compressed like every response when the
client accepts it (a byte range never is), which is why a client resuming by offset must ask
for ``identity``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from .faults import FaultKind, FileFaults
from .project import Project
from .space import Space
from .stack import Stack
from .wire import Request, Response

__all__ = [
    "PREFIX",
    "FileResponse",
    "FilesAPI",
    "contentful_file",
    "file_bytes",
    "kontent_asset",
]

PREFIX = "/files"
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_DEFAULT_SIZE = 1024  # a record that gives no size is served this many bytes
_CACHE_BYTES = 64 << 20  # files kept ready to serve (a benchmark serves 50 MB many times)


@dataclass
class FileResponse(Response):
    """A file response: never compressed when it is a byte range, and paced when asked."""

    compressible: bool = True
    pace: float = 0.0  # bytes per second; 0, as fast as the socket goes


def file_bytes(path: str, size: int) -> bytes:
    """The bytes the emulator serves for the file at URL path ``path`` of ``size`` bytes."""
    return hashlib.shake_256(path.encode("utf-8", "surrogatepass")).digest(size)


def contentful_file(space_id: str, asset_id: str, file_name: str, size: int,
                    content_type: str = "image/png", version: int = 1) -> dict[str, Any]:
    """A Contentful ``fields.file`` value, as the CDA sends it once an upload is processed:
    a protocol-relative images.ctfassets.net URL with a digest of this upload (``version``)
    and the file name percent-encoded, ``details.size``, ``contentType``, ``fileName``."""
    digest = hashlib.sha256(f"{space_id}/{asset_id}/{version}".encode()).hexdigest()[:32]
    return {
        "url": f"//images.ctfassets.net/{quote(space_id, safe='')}/{quote(asset_id, safe='')}"
               f"/{digest}/{quote(file_name, safe='')}",
        "details": {"size": size},
        "fileName": file_name,
        "contentType": content_type,
    }


def kontent_asset(environment_id: str, asset_id: str, file_name: str, size: int,
                  content_type: str = "image/png", description: str | None = None
                  ) -> dict[str, Any]:
    """One value of a Kontent.ai asset element, as Delivery sends it."""
    return {
        "name": file_name, "description": description, "type": content_type, "size": size,
        "url": f"https://assets-us-01.kc-usercontent.com/{quote(environment_id, safe='')}/"
               f"{quote(asset_id, safe='')}/{quote(file_name, safe='')}",
        "width": None, "height": None, "renditions": {},
    }


class FilesAPI:
    """Serves the files ``model`` publishes, under ``/files/``."""

    def __init__(self, model: Space | Stack | Project, faults: FileFaults) -> None:
        self.model = model
        self.faults = faults
        self._lock = threading.Lock()
        self._head: int | None = None
        self._files: dict[str, tuple[int, str, str]] = {}
        self._cache: OrderedDict[tuple[str, int], tuple[bytes, str]] = OrderedDict()
        self._cached = 0

    def serves(self, path: str) -> bool:
        """Whether ``path``, as the vendor's URL has it (no ``/files`` in front), is a file
        the model publishes now: the emulator then serves it at that path too, so
        ``asset_base_url=emulator.base_url`` works as well as ``emulator.asset_base_url``."""
        return self._lookup(path) is not None

    def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX):] if request.path.startswith(PREFIX + "/") \
            else request.path
        hook = self.faults.on_request
        if hook is not None:
            query = urlencode(request.query, doseq=True)
            hook(path + (f"?{query}" if query else ""), request.headers)
        found = self._lookup(path)
        if found is None:
            return FileResponse(404, b"Not Found", [("Content-Type", "text/plain")])
        fault = self.faults.take()
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return FileResponse(fault.status, b"Service Unavailable",
                                [("Content-Type", "text/plain")])
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            return FileResponse(429, b"Too Many Requests", [
                ("Content-Type", "text/plain"), ("Retry-After", str(fault.reset)),
                ("X-Contentful-RateLimit-Reset", str(fault.reset))])
        size, content_type, canonical = found
        body, etag = self._bytes(canonical, size)
        if fault is not None and fault.kind is FaultKind.CORRUPT and body:
            body = bytes(b ^ 0x5A for b in body)
        response = self._ranged(request, body, etag, content_type)
        response.truncate = fault is not None and fault.kind is FaultKind.TRUNCATE
        response.pace = self.faults.bytes_per_second
        return response

    @staticmethod
    def _ranged(request: Request, body: bytes, etag: str, content_type: str) -> FileResponse:
        headers = [("Content-Type", content_type), ("ETag", etag), ("Accept-Ranges", "bytes"),
                   ("Cache-Control", "max-age=31536000")]
        asked = _RANGE.match(request.headers.get("range", "").strip())
        if_range = request.headers.get("if-range")
        if asked is None or (if_range is not None and if_range != etag):
            return FileResponse(200, body, headers)
        start = int(asked.group(1))
        end = min(int(asked.group(2)), len(body) - 1) if asked.group(2) else len(body) - 1
        if start >= len(body) or end < start:
            return FileResponse(416, b"", [*headers, ("Content-Range", f"bytes */{len(body)}")],
                                compressible=False)
        return FileResponse(206, body[start:end + 1],
                            [*headers, ("Content-Range", f"bytes {start}-{end}/{len(body)}")],
                            compressible=False)

    def _bytes(self, path: str, size: int) -> tuple[bytes, str]:
        key = (path, size)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        body = file_bytes(path, size)
        made = (body, f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"')
        with self._lock:
            if key not in self._cache:
                self._cache[key] = made
                self._cached += len(body)
            while self._cached > _CACHE_BYTES and len(self._cache) > 1:
                self._cached -= len(self._cache.popitem(last=False)[1][0])
        return made

    def _lookup(self, path: str) -> tuple[int, str, str] | None:
        head = self.model.head
        with self._lock:
            if head != self._head:
                self._files = dict(self._published())
                self._head = head
            files = self._files
        return files.get(path) or files.get(unquote(path))

    def _published(self) -> Iterator[tuple[str, tuple[int, str, str]]]:
        """(URL path, (size, MIME type, the path the bytes derive from)) of every file the
        model publishes now; a percent-encoded path is found decoded too."""
        model = self.model
        if isinstance(model, Space):
            for item in model.published_assets().values():
                for file in (item.get("fields", {}).get("file") or {}).values():
                    yield from _entry(file.get("url"), (file.get("details") or {}).get("size"),
                                      file.get("contentType"))
        elif isinstance(model, Stack):
            for (kind, _), by_locale in model.published().items():
                if kind == "asset":
                    for data in by_locale.values():
                        yield from _entry(data.get("url"), data.get("file_size"),
                                          data.get("content_type"))
        else:
            for item in model.published().values():
                for element in (item.get("elements") or {}).values():
                    if isinstance(element, dict) and element.get("type") == "asset":
                        for value in element.get("value") or []:
                            yield from _entry(value.get("url"), value.get("size"),
                                              value.get("type"))


def _entry(url: Any, size: Any,
           content_type: Any) -> Iterator[tuple[str, tuple[int, str, str]]]:
    if not isinstance(url, str) or not url:
        return
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        size = _DEFAULT_SIZE
    path = urlsplit("https:" + url if url.startswith("//") else url).path
    kind = content_type if isinstance(content_type, str) and content_type else \
        "application/octet-stream"
    yield path, (size, kind, path)
    if unquote(path) != path:
        yield unquote(path), (size, kind, path)
