"""HTTP for providers: one requests Session, bounded retries, and the vendors' wait headers.

Why a retry loop here instead of urllib3's ``Retry`` alone: ``Retry`` sees neither a body cut
short after the headers (requests reads the body after urllib3 returns) nor Contentful's
``X-Contentful-RateLimit-Reset`` header. One loop handles every transient failure the same way:
connection errors, timeouts, truncated or undecodable bodies, 5xx and 429, with exponential
backoff and full jitter, a cap on any single wait, and a bounded number of attempts. On giving
up it raises a :class:`~localcache.errors.SyncError` carrying the status and the vendor's
request id.

Bodies are checked against ``Content-Length`` by the bytes that came over the wire. CDNs
compress every response the client accepts (requests asks for gzip, and for br where the
``brotli`` package is installed), tiny ones too, and ``Content-Length`` then counts compressed
bytes: a 93-byte body may arrive as 100 gzipped ones, so the decoded length says nothing about
truncation.

This module is also the one place that maps ``requests`` errors to localcache's own. Messages
name the request's path, never its headers, so credentials stay out of them.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..errors import ConfigurationError, SyncError

__all__ = ["HttpPolicy", "HttpResponse", "HttpTransport", "check_base_url"]

log = logging.getLogger("localcache.http")

USER_AGENT = "localcache/0.1"


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Timeouts, retries and limits for one provider's requests."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_rate_limit_wait: float = 60.0
    max_response_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A completed response: status, headers and the whole body (within the size cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str | None


class _Retryable(Exception):
    def __init__(
        self, reason: str, wait: float | None = None, response: HttpResponse | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.response = response


RequestIdReader = Callable[[Mapping[str, str]], "str | None"]
WaitReader = Callable[[Mapping[str, str]], "float | None"]


def _default_wait(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def check_base_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """Refuse plain http:// except on loopback, so a token never crosses a network in clear."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise ConfigurationError("base URL is not a valid URL") from None
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigurationError("base URL must not carry credentials; pass the token instead")
    if parts.scheme not in ("http", "https") or not hostname:
        raise ConfigurationError(f"base URL {url!r} is not an http(s) URL with a host")
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(hostname):
        raise ConfigurationError(
            f"refusing plain http:// base URL for host {hostname!r}: use https, or pass "
            "allow_insecure_http=True if you really mean it"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpTransport:
    """GET/POST with retries over one Session. Providers own one each."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        policy: HttpPolicy | None = None,
        request_id_header: str = "X-Request-Id",
        wait_header: WaitReader = _default_wait,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or HttpPolicy()
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, **headers})
        self._request_id_header = request_id_header
        self._wait_header = wait_header
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpTransport(policy={self.policy!r})"

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "sync request",
        ok: Callable[[HttpResponse], bool] = lambda r: 200 <= r.status < 300,
    ) -> HttpResponse:
        """Send until a response ``ok`` accepts, a non-retryable status, or attempts run out.

        A non-retryable response (4xx other than 429) is returned as is: the provider maps
        vendor error bodies to typed errors.
        """
        policy = self.policy
        last: _Retryable | None = None
        attempt = 0
        reason = ""
        while attempt < policy.max_attempts:
            attempt += 1
            try:
                response = self._once(method, url, params, headers, what)
                if ok(response) or not self._is_transient(response):
                    return response
                wait = self._wait_header(response.headers) if response.status == 429 else None
                raise _Retryable(f"HTTP {response.status}", wait, response)
            except _Retryable as exc:
                last = exc
            if attempt == policy.max_attempts:
                break
            delay = self._delay(attempt, last.wait)
            if delay is None:
                reason = (f"; the server asked to wait {last.wait:.0f}s, more than the "
                          f"{policy.max_rate_limit_wait:.0f}s allowed (HttpPolicy."
                          "max_rate_limit_wait)")
                break
            log.warning(
                "%s failed (%s), attempt %d of %d; retrying in %.2fs",
                what, last.reason, attempt, policy.max_attempts, delay,
            )
            self._sleep(delay)
        assert last is not None
        failed = last.response
        raise SyncError(
            f"{what} failed after {attempt} attempt{'s' if attempt > 1 else ''}: "
            f"{last.reason}{reason}"
            + (f" (request id {failed.request_id})" if failed and failed.request_id else ""),
            status=failed.status if failed else None,
            request_id=failed.request_id if failed else None,
        )

    def _delay(self, attempt: int, server_wait: float | None) -> float | None:
        policy = self.policy
        if server_wait is not None:
            if server_wait > policy.max_rate_limit_wait:
                return None  # the server asks for longer than we may wait: give up now
            return server_wait + random.uniform(0, policy.backoff_base)
        ceiling = min(policy.backoff_max, policy.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)

    @staticmethod
    def _is_transient(response: HttpResponse) -> bool:
        return response.status == 429 or response.status >= 500

    def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        what: str,
    ) -> HttpResponse:
        policy = self.policy
        try:
            with self._session.request(
                method,
                url,
                params=params,
                headers=dict(headers or {}),
                timeout=(policy.connect_timeout, policy.read_timeout),
                stream=True,
                allow_redirects=False,
            ) as raw:
                response_headers = dict(raw.headers)
                body = self._read_capped(raw, what)
                status = raw.status_code
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"network error: {type(exc).__name__}") from None
        except requests.exceptions.ChunkedEncodingError:
            raise _Retryable("response body cut short") from None
        except requests.RequestException as exc:
            raise SyncError(f"{what} could not be sent: {type(exc).__name__}") from None
        headers_ci = requests.structures.CaseInsensitiveDict(response_headers)
        request_id = headers_ci.get(self._request_id_header)
        return HttpResponse(status, headers_ci, body, request_id)

    def _read_capped(self, raw: requests.Response, what: str) -> bytes:
        cap = self.policy.max_response_bytes
        declared = raw.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise SyncError(
                f"{what}: response of {int(declared)} bytes exceeds the cap of {cap} bytes",
                status=raw.status_code,
            )
        expected = int(declared) if declared is not None and declared.isdigit() else None
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in raw.iter_content(chunk_size=256 * 1024):
                size += len(chunk)
                if size > cap:
                    raise SyncError(
                        f"{what}: response exceeds the cap of {cap} bytes", status=raw.status_code
                    )
                chunks.append(chunk)
        except requests.exceptions.ContentDecodingError:
            if _cut_short(raw, size, expected):
                raise _Retryable("response body cut short") from None
            coding = raw.headers.get("Content-Encoding", "?")
            raise _Retryable(f"response body could not be decoded ({coding})") from None
        if _cut_short(raw, size, expected):
            raise _Retryable("response body cut short")
        return b"".join(chunks)


def _cut_short(response: requests.Response, decoded: int, expected: int | None) -> bool:
    """Whether fewer bytes came over the wire than ``Content-Length`` announced.

    ``Content-Length`` counts the bytes on the wire: compressed ones when the body came
    compressed, and a tiny body compresses to more bytes than it has. urllib3 counts the raw
    bytes it read (``tell()``); a raw stream that cannot tell (a custom adapter) is judged by
    the decoded length, but only when the body came as it is.
    """
    if expected is None:
        return False
    tell = getattr(response.raw, "tell", None)
    received = tell() if callable(tell) else None
    if not isinstance(received, int):
        coding = response.headers.get("Content-Encoding", "").strip().lower()
        if coding not in ("", "identity"):
            return False
        received = decoded
    return received < expected


def parse_float_header(name: str) -> WaitReader:
    """A reader for a wait header holding seconds (``X-Contentful-RateLimit-Reset``)."""

    def read(headers: Mapping[str, str]) -> float | None:
        value: Any = headers.get(name)
        if value is None:
            return _default_wait(headers)
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            return _default_wait(headers)

    return read
