"""One asset file over HTTP: resumed with Range, verified, fsynced; never torn on disk.

A file is written under ``<name>.part`` in the asset directory, holding an exclusive lock on
it (so two workers, or two processes, never write one file). The request asks for
``Accept-Encoding: identity``: a compressed response cannot be resumed by byte offset. After a
cut connection, a timeout or a 5xx, the next attempt sends ``Range: bytes=<size on disk>-``
(with ``If-Range`` and the first response's ETag, so a file that changed meanwhile comes back
whole instead of spliced). The body is read with ``read1``: whatever arrived before a cut is
written, none of it is dropped with a half-filled buffer.

A finished part is checked: its size against the asset record's (an original) or the
server's ``Content-Length``/``Content-Range`` total (a transformed variant); its MD5 against a
strong ETag of 32 hex digits (S3-style, as CDNs send for whole files) and its digest against a
checksum the vendor gives. The caller fsyncs it and renames it into place inside the
bookkeeping transaction (files.py). Retries follow the provider's :class:`HttpPolicy`, the
rule sync requests follow (providers/http.py): exponential backoff with full jitter, the
server's wait on 429 (``X-Contentful-RateLimit-Reset`` or ``Retry-After``), a bounded number of
attempts without progress. This module maps requests' and the file system's errors to
localcache's: a full disk is an :class:`~localcache.AssetError` that stops the run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from ..errors import AssetError
from ..filelock import try_lock, unlock
from ..providers.http import USER_AGENT, HttpPolicy, parse_float_header
from .naming import part_name

__all__ = ["Cancelled", "Fetcher", "FileFailed", "Job", "Landed", "PartFile", "TooBig",
           "disk_error", "try_lock_part"]

_READ = 64 * 1024  # at most this much per read1(): a cut loses nothing already received
_WAIT = parse_float_header("X-Contentful-RateLimit-Reset")  # falls back to Retry-After
_MD5_ETAG = re.compile(r'^"([0-9a-fA-F]{32})"$')
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class Cancelled(Exception):
    """The run was cancelled (stop, close); the part stays on disk, resumable."""


class FileFailed(Exception):
    """This file cannot be fetched now (404, retries spent, damaged); the run goes on."""


class TooBig(FileFailed):
    """The server's file is larger than ``max_file_size`` (a variant, whose size only the
    server knows): skipped, as a large original is."""


@dataclass(frozen=True)
class Job:
    """One file to fetch: its name in the directory, its URL, what it must turn out to be."""

    name: str
    url: str
    asset_id: str
    expected_bytes: int | None = None
    checksum: str | None = None
    max_bytes: int | None = None
    on_disk: bool = False  # a file is under the final name already (see AssetFiles.adopt)


@dataclass(frozen=True)
class Landed:
    """A verified, fsynced part: its size, ETag and SHA-256."""

    bytes: int
    etag: str | None
    sha256: str


def disk_error(exc: OSError, directory: Path, what: str) -> AssetError:
    """An OSError of the asset directory as localcache's: disk full, or not writable."""
    if exc.errno in _DISK_FULL:
        return AssetError(f"downloading asset files stopped: the disk holding {str(directory)!r} "
                          f"is full ({what}: {exc.strerror or exc}); free some space and run "
                          "download() again (the store and the files already there are fine)")
    return AssetError(f"cannot write asset files in {str(directory)!r} ({what}: "
                      f"{exc.strerror or exc}); check that the directory is writable")


class PartFile:
    """``<name>.part``, open for appending and locked, or None from :meth:`claim` when
    another worker or process holds it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd
        # Digests of the bytes written through this object, while they are all the part
        # holds (a fresh part); a resumed or truncated one is read back instead.
        self._md5: Any = hashlib.md5(usedforsecurity=False)
        self._sha: Any = hashlib.sha256()
        self._hashed = 0
        self._whole = True

    @classmethod
    def claim(cls, directory: Path, name: str) -> PartFile | None:
        path = directory / part_name(name)
        for _ in range(3):  # the part may be renamed away between open and lock
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _BINARY, 0o600)
            except OSError as exc:
                raise disk_error(exc, directory, "opening a partial file") from None
            if not try_lock(fd):
                os.close(fd)
                return None
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    return cls(path, fd)
            unlock(fd)
            os.close(fd)
        return None

    @property
    def size(self) -> int:
        assert self.fd is not None
        return os.fstat(self.fd).st_size

    def truncate(self) -> None:
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        self._md5, self._sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        self._hashed, self._whole = 0, True

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        if self._whole and self._hashed == 0 and self.size:
            self._whole = False  # resuming bytes this object did not write
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        if self._whole:
            self._md5.update(data)
            self._sha.update(data)
            self._hashed += len(data)

    def digests(self) -> tuple[str, str]:
        """MD5 and SHA-256 of what the part holds."""
        if self._whole and self._hashed == self.size:
            return self._md5.hexdigest(), self._sha.hexdigest()
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        with open(self.path, "rb") as handle:  # no os.pread on Windows
            while chunk := handle.read(1 << 20):
                md5.update(chunk)
                sha.update(chunk)
        return md5.hexdigest(), sha.hexdigest()

    def fsync(self) -> None:
        """Make the bytes durable before the rename (``fdatasync`` where there is one: it
        also flushes the size, all a newly written file needs)."""
        assert self.fd is not None
        getattr(os, "fdatasync", os.fsync)(self.fd)

    def close(self) -> None:
        """Unlock and close (before a rename: Windows renames no open file)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                unlock(fd)
            os.close(fd)

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Fetcher:
    """Fetches files over one requests Session shared by the run's workers."""

    def __init__(self, directory: Path, policy: HttpPolicy, workers: int,
                 cancelled: threading.Event) -> None:
        self.directory = directory
        self.policy = policy
        self.cancelled = cancelled
        self.session = requests.Session()
        # One pooled connection per worker: more would idle, fewer would be thrown away.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(workers, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                         "Accept": "*/*", "Connection": "keep-alive"}
        self.session.headers.update(self._headers)
        # requests reads proxies, no_proxy and CA bundles from the environment on every
        # request (1.4 ms of CPU each, a third of a small file's cost); they are read once per
        # host here instead, with the same result (no .netrc: asset URLs need no credentials).
        self.session.trust_env = False
        self._environment: dict[tuple[str, str], dict[str, Any]] = {}

    def close(self) -> None:
        self.session.close()

    def _settings(self, url: str) -> dict[str, Any]:
        """The proxies and TLS verification the environment gives ``url``'s host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._environment.get(key)
        if found is None:
            with requests.Session() as probe:
                merged = probe.merge_environment_settings(url, {}, None, None, None)
            found = {key: merged[key] for key in ("proxies", "verify", "cert")}
            self._environment[key] = found
        return found

    def fetch(self, job: Job, part: PartFile) -> Landed:
        """Bring ``part`` to the whole, verified file, or raise FileFailed / Cancelled /
        AssetError (the disk). A part left by an earlier run is resumed; its ETag is not
        known then, so no ``If-Range`` is sent, and the MD5 check of the whole file (where
        the ETag is one) catches a file that changed meanwhile."""
        stalled = 0
        etag: str | None = None
        while True:
            if self.cancelled.is_set():
                raise Cancelled()
            before = part.size
            try:
                etag = self._attempt(job, part, etag)
                return self._verified(job, part, etag)
            except _Retry as retry:
                stalled = 0 if part.size > before else stalled + 1
                if stalled >= self.policy.max_attempts:
                    raise FileFailed(f"{retry.reason} ({stalled} attempts)") from None
                delay = self._delay(stalled, retry.wait)
                if delay is None:
                    raise FileFailed(f"{retry.reason}; the server asked to wait longer than "
                                     "HttpPolicy.max_rate_limit_wait") from None
                if self.cancelled.wait(delay):
                    raise Cancelled() from None
            except OSError as exc:
                raise disk_error(exc, self.directory, f"writing {job.name}") from None

    def _delay(self, attempt: int, server_wait: float | None) -> float | None:
        """The rule of providers/http.py: the server's wait (capped), else full jitter."""
        policy = self.policy
        if server_wait is not None:
            if server_wait > policy.max_rate_limit_wait:
                return None
            return server_wait + random.uniform(0, policy.backoff_base)
        return random.uniform(0, min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1)))

    def _attempt(self, job: Job, part: PartFile, etag: str | None) -> str | None:
        offset = part.size
        if job.expected_bytes is not None and offset > job.expected_bytes:
            part.truncate()
            offset = 0
        headers = dict(self._headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if etag and not etag.startswith("W/"):
                headers["If-Range"] = etag
        try:
            response = self.session.send(_request(job.url, headers), stream=True,
                                         timeout=(self.policy.connect_timeout,
                                                  self.policy.read_timeout),
                                         allow_redirects=True, **self._settings(job.url))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"network error: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise FileFailed(f"request could not be sent: {type(exc).__name__}") from None
        with response:
            total, whole = self._start(job, part, response, offset)
            if job.max_bytes is not None and total is not None and total > job.max_bytes:
                part.truncate()
                raise TooBig(f"the file has {total} bytes, more than max_file_size")
            etag = response.headers.get("ETag") or (etag if response.status_code == 206 else None)
            if not whole:
                self._body(response, part)
        size = part.size
        if total is not None and size < total:
            raise _Retry("the connection was cut before the end of the file")
        if total is not None and size > total:
            part.truncate()
            raise _Retry("the server sent more bytes than the file has")
        return etag

    def _start(self, job: Job, part: PartFile, response: requests.Response,
               offset: int) -> tuple[int | None, bool]:
        """Check the status and where the body starts: the file's total size when known, and
        whether the part is whole already (nothing to read)."""
        status = response.status_code
        if status == 416 and offset and offset == job.expected_bytes:
            return offset, True
        if status == 416:
            part.truncate()
            raise _Retry("the server refused the byte range; starting the file over")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _WAIT(response.headers) if status == 429 else None)
        if status not in (200, 206):
            raise FileFailed(f"HTTP {status}")
        coding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if status == 200:
            if offset:
                part.truncate()  # the server ignored Range, or If-Range found a new file
            length = response.headers.get("Content-Length")
            known = coding == "identity" and length is not None and length.isdigit()
            return (int(length) if known and length else None), False
        found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not found or int(found.group(1)) != offset or coding != "identity":
            part.truncate()
            raise _Retry("the server answered another byte range; starting the file over")
        return (None if found.group(3) == "*" else int(found.group(3))), False

    def _body(self, response: requests.Response, part: PartFile) -> None:
        raw = response.raw
        compressed = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        read = getattr(raw, "read1", None)
        try:
            while True:
                if self.cancelled.is_set():
                    raise Cancelled()
                chunk = read(_READ, decode_content=True) if callable(read) else raw.read(
                    16 * 1024, decode_content=True)
                if not chunk:
                    return
                part.write(chunk)
        except _NETWORK_ERRORS as exc:
            if compressed:  # a decoded prefix cannot be resumed by offset
                part.truncate()
            raise _Retry(f"network error while reading: {type(exc).__name__}") from None

    def _verified(self, job: Job, part: PartFile, etag: str | None) -> Landed:
        size = part.size
        md5, sha = part.digests()
        problem = None
        if job.expected_bytes is not None and size != job.expected_bytes:
            problem = f"it has {size} bytes, the asset record says {job.expected_bytes}"
        elif etag and (found := _MD5_ETAG.match(etag)) and found.group(1).lower() != md5:
            problem = "its MD5 does not match the server's ETag"
        elif job.checksum and not _checksum_ok(job.checksum, md5, sha):
            problem = "its digest does not match the asset record's checksum"
        if problem is not None:
            part.truncate()
            raise _Retry(f"the file arrived damaged: {problem}")
        return Landed(size, etag, sha)


def _request(url: str, headers: dict[str, str]) -> requests.PreparedRequest:
    """A GET sent through the Session (its pool, adapters and redirects) without merging the
    session's cookies and settings anew, nor parsing the URL again: a tenth of a millisecond a
    file, out of the couple that the GIL serializes."""
    request = requests.PreparedRequest()
    request.method = "GET"
    request.url = requote_uri(url)
    request.headers = CaseInsensitiveDict(headers)
    request.body = None
    request.hooks = default_hooks()
    return request


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _checksum_ok(checksum: str, md5: str, sha: str) -> bool:
    kind, _, value = checksum.partition(":")
    return {"md5": md5, "sha256": sha}.get(kind.lower()) == value.lower()


# Reading ``response.raw`` raises urllib3's errors (requests wraps only its own reads) and
# the socket's; requests is a dependency, urllib3 comes with it.
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError,
                   TimeoutError)


_BINARY = getattr(os, "O_BINARY", 0)


def try_lock_part(path: Path) -> PartFile | None:
    """A stale ``.part`` locked for removal, or None while a writer holds it."""
    try:
        fd = os.open(path, os.O_RDWR | _BINARY)
    except OSError:
        return None
    if not try_lock(fd):
        os.close(fd)
        return None
    return PartFile(path, fd)

