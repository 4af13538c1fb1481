"""Contentstack Content Delivery API over a Stack: Synchronization (``GET /v3/stacks/sync``)
and content types (``GET /v3/content_types``, ``GET /v3/content_types/{uid}``).

Behaviour follows the CDA Synchronization reference, the recorded responses in the shared
fixtures and what the official Python SDK sends.  Choices worth knowing:

* Tokens are opaque, url-safe, self-contained and signed with the stack's secret (see
  :class:`SyncToken`): a pagination token pins the sequence number its sync is evaluated at, so a
  stack mutated between page requests never makes a page skip or repeat an item; the change
  arrives in the next delta.  A sync token holds where the next delta starts.  Both carry the
  initial request's filters, which therefore stay fixed for the life of the sync, as documented.
* Items come in event order (``event_at`` ascending, ties in mutation order).  The real API's
  order is undocumented; event order is the only one in which a ``content_type_deleted`` followed
  by entries of a re-created content type can be applied item by item.
* ``total_count`` counts every item of the current sync (all pages) and ``skip`` the items on
  earlier pages, so a client can draw a real progress bar.
* An initial sync only ever carries ``*_published`` items; the ``type`` filter narrows them.
* The ``locale`` filter selects where items are published (``publish_details.locale``), so a
  locale published by fallback is delivered with ``data.locale`` naming its content's language.
* Errors use Contentstack's body ``{"error_message", "error_code", "errors"}``: 412/109 for an
  unknown api_key or delivery token (the CDA does not tell them apart), 422/141 for bad
  parameters and for tokens it does not honour.
* Content types: ``include_count=true`` adds ``count``; ``skip`` and ``limit`` (at most 100,
  the default) page the list, by uid. The CDA lists no languages (only the Management API
  does), so neither does the emulator.
* Faults from :class:`~localcache.emulator.faults.Faults` apply to sync requests only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .faults import FaultKind, Faults, spoil
from .stack import CT_UID, EVENT_MS, EVENT_TYPES, LOCALE, TYPE, Event, Stack, to_ms
from .wire import Request, Response

__all__ = ["JSON_TYPE", "ContentstackAPI", "SyncFilter", "SyncToken", "TokenError"]

JSON_TYPE = "application/json; charset=utf-8"
MAX_PAGE_SIZE = 1000
CONTENT_TYPES_LIMIT = 100
TOKEN_VERSION = 1

INVALID_PARAMETERS = "Failed to fetch items. Please try again with valid parameters."
INIT_FILTERS = ("content_type_uid", "locale", "start_from", "type")
_MODES = ("init", "pagination_token", "sync_token")
_PUBLISHED = frozenset(("entry_published", "asset_published"))
_MALFORMED_BODY = b'{"items":[{"type":"entry_published","data":{"uid":<html>oops'


class TokenError(ValueError):
    """A sync or pagination token this stack did not issue, or no longer honours."""


class _HttpError(Exception):
    """Raised inside request handling to answer with a Contentstack error body."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or {}


def _invalid(name: str, problem: str = "is not valid.") -> _HttpError:
    return _HttpError(422, 141, INVALID_PARAMETERS, {name: [problem]})


@dataclass(frozen=True)
class SyncFilter:
    """The initial request's filters, fixed for the life of a sync and its later deltas."""

    types: tuple[str, ...] | None = None
    content_type_uid: str | None = None
    locale: str | None = None
    start_ms: int | None = None

    def acceptor(self, initial: bool) -> Callable[[Event], bool]:
        """Predicate over an event; initial syncs only carry published items."""
        wanted = frozenset(self.types) if self.types is not None else frozenset(EVENT_TYPES)
        allowed = wanted & _PUBLISHED if initial else wanted
        content_type, locale, start = self.content_type_uid, self.locale, self.start_ms

        def accept(event: Event) -> bool:
            kind = event[TYPE]
            return (
                kind in allowed
                and (content_type is None or event[CT_UID] == content_type)
                and (locale is None or event[LOCALE] == locale or kind == "content_type_deleted")
                and (start is None or event[EVENT_MS] >= start)
            )

        return accept


@dataclass(frozen=True)
class SyncToken:
    """Everything needed to serve the next page or delta, carried by the client.

    ``kind`` "pagination_token" or "sync_token" (the query parameter it must come back in).
    ``at``: sequence number every page of the current sync is evaluated at (pagination only).
    ``since``: None for an initial sync, else the sequence number the delta starts after.
    ``after``: sequence number of the last item already delivered (pagination only).
    ``skip``/``total``: items on earlier pages / in the whole sync (pagination only).
    """

    kind: str
    generation: int
    environment: str
    branch: str
    at: int | None
    since: int | None
    after: int | None
    skip: int
    total: int
    filter: SyncFilter

    def encode(self, secret: bytes) -> str:
        """Opaque and url-safe; the signature makes edits and foreign tokens detectable."""
        payload = {
            "v": TOKEN_VERSION,
            "k": self.kind,
            "g": self.generation,
            "e": self.environment,
            "b": self.branch,
            "at": self.at,
            "from": self.since,
            "after": self.after,
            "skip": self.skip,
            "total": self.total,
            "f": [
                None if self.filter.types is None else list(self.filter.types),
                self.filter.content_type_uid,
                self.filter.locale,
                self.filter.start_ms,
            ],
        }
        raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        body = base64.urlsafe_b64encode(raw).rstrip(b"=")
        return (body + b"." + _signature(secret, body)).decode("ascii")

    @classmethod
    def decode(cls, text: str, secret: bytes) -> SyncToken:
        """Parse a token, raising :class:`TokenError` for anything not produced by encode."""
        body, _, signature = text.encode("utf-8", "replace").rpartition(b".")
        if not body or not hmac.compare_digest(signature, _signature(secret, body)):
            raise TokenError("not a token of this stack")
        try:
            raw = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
            data = json.loads(raw.decode("utf-8"))
            filt = data["f"]
            types = filt[0]
            token = cls(
                kind=_str(data["k"]),
                generation=_int(data["g"]),
                environment=_str(data["e"]),
                branch=_str(data["b"]),
                at=_opt_int(data["at"]),
                since=_opt_int(data["from"]),
                after=_opt_int(data["after"]),
                skip=_int(data["skip"]),
                total=_int(data["total"]),
                filter=SyncFilter(
                    None if types is None else tuple(_str(name) for name in types),
                    None if filt[1] is None else _str(filt[1]),
                    None if filt[2] is None else _str(filt[2]),
                    _opt_int(filt[3]),
                ),
            )
        except (
            binascii.Error,
            UnicodeDecodeError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
        ) as exc:
            raise TokenError("malformed token") from exc
        if data.get("v") != TOKEN_VERSION or not token._consistent():
            raise TokenError("inconsistent token")
        return token

    def _consistent(self) -> bool:
        if self.kind == "sync_token":
            return (
                self.since is not None
                and self.since >= 0
                and self.at is None
                and self.after is None
                and self.skip == self.total == 0
            )
        at, after, low = self.at, self.after, self.since or 0
        return (
            self.kind == "pagination_token"
            and at is not None
            and after is not None
            and 0 <= low < after <= at
            and 0 < self.skip <= self.total
        )


def _signature(secret: bytes, body: bytes) -> bytes:
    digest = hmac.new(secret, body, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _count_param(request: Request, name: str, default: int, high: int) -> int:
    value = request.param(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) > high:
        raise _invalid(name, f"must be an integer from 0 to {high}.")
    return int(value)


def parse_start_from(value: str) -> int:
    """``start_from`` (an ISO 8601 date or date-time, UTC unless it says otherwise) in ms."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _invalid("start_from") from exc
    return to_ms(moment)


class ContentstackAPI:
    """Answers CDA sync requests for one stack; safe to call from many server threads."""

    def __init__(self, stack: Stack, access_token: str, faults: Faults, page_size: int = 100):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self.stack = stack
        self.faults = faults
        self.page_size = page_size
        self._token = access_token.encode("utf-8")
        self._api_key = stack.api_key.encode("utf-8")

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request and render any failure as a Contentstack error body."""
        try:
            return self._dispatch(request)
        except _HttpError as error:
            return self._error(error)

    def _json(self, status: int, body: bytes) -> Response:
        return Response(
            status, body, [("Content-Type", JSON_TYPE), ("X-Request-Id", uuid.uuid4().hex)]
        )

    def _error(self, error: _HttpError) -> Response:
        payload: dict[str, Any] = {"error_message": error.message, "error_code": error.code}
        if error.errors:
            payload["errors"] = error.errors
        return self._json(error.status, json.dumps(payload).encode("utf-8"))

    def _credential(self, request: Request, name: str) -> bytes:
        """A header, or the query parameter of that name older SDKs send instead."""
        value = request.headers.get(name) or request.param(name) or ""
        return value.strip().encode("utf-8")

    def _dispatch(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise _HttpError(405, 405, "This API only supports GET requests.")
        api_key = self._credential(request, "api_key")
        token = self._credential(request, "access_token")
        if not (
            hmac.compare_digest(api_key, self._api_key) and hmac.compare_digest(token, self._token)
        ):
            raise _HttpError(
                412,
                109,
                "We can't find that Stack. Please try again.",
                {"api_key": ["is not valid."]},
            )
        parts = [part for part in request.path.split("/") if part]
        if parts == ["v3", "stacks", "sync"]:
            return self._sync_with_faults(request)
        if parts[:2] == ["v3", "content_types"] and len(parts) <= 3:
            return self._content_types(request, parts[2] if len(parts) == 3 else None)
        raise _HttpError(404, 404, "The requested URL was not found on this server.")

    # -- content types -----------------------------------------------------------------------

    def _content_types(self, request: Request, uid: str | None) -> Response:
        environment = request.param("environment")
        if environment is not None and environment != self.stack.environment:
            raise _invalid("environment")
        if (request.headers.get("branch") or self.stack.branch) != self.stack.branch:
            raise _invalid("branch")
        definitions = self.stack.content_type_definitions()
        if uid is not None:
            found = next((d for d in definitions if d["uid"] == uid), None)
            if found is None:
                raise _HttpError(422, 118, f"The Content Type '{uid}' was not found. "
                                 "Please try again.")
            return self._json(200, json.dumps({"content_type": found}).encode("utf-8"))
        skip = _count_param(request, "skip", 0, 10**9)
        limit = _count_param(request, "limit", CONTENT_TYPES_LIMIT, CONTENT_TYPES_LIMIT)
        payload: dict[str, Any] = {"content_types": definitions[skip : skip + limit]}
        if (request.param("include_count") or "").lower() == "true":
            payload["count"] = len(definitions)
        return self._json(200, json.dumps(payload).encode("utf-8"))

    # -- sync --------------------------------------------------------------------------------

    def _sync_with_faults(self, request: Request) -> Response:
        hook = self.faults.on_request
        if hook is not None:
            hook(request.path, request.query)
        fault = self.faults.take()
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            return self._error(
                _HttpError(fault.status, fault.status, "Something went wrong. Please try again.")
            )
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            response = self._error(
                _HttpError(429, 429, "You have exceeded the rate limit. Please try again later.")
            )
            response.headers += [
                ("Retry-After", str(fault.reset)),
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Remaining", "0"),
            ]
            return response
        try:
            response = self._json(200, self._sync_body(request))
        except _HttpError as error:
            response = self._error(error)
        return spoil(response, fault, _MALFORMED_BODY)

    def _sync_body(self, request: Request) -> bytes:
        token = self._request_token(request)
        stack = self.stack
        at = token.at if token.at is not None else stack.head
        first = token.kind != "pagination_token"
        page = stack.sync_page(
            at=at,
            since=token.since,
            after=token.after,
            limit=self.page_size,
            accept=token.filter.acceptor(initial=token.since is None),
            count=first,
        )
        total = page.total if page.total is not None else token.total
        skip = token.skip
        if page.more and page.last is not None:
            follow = SyncToken(
                "pagination_token",
                token.generation,
                token.environment,
                token.branch,
                at,
                token.since,
                page.last,
                skip + len(page.items),
                total,
                token.filter,
            )
        else:
            follow = SyncToken(
                "sync_token",
                token.generation,
                token.environment,
                token.branch,
                None,
                at,
                None,
                0,
                0,
                token.filter,
            )
        tail = (
            f'],"skip":{skip},"limit":{self.page_size},"total_count":{total},'
            f'"{follow.kind}":"{follow.encode(stack.token_secret)}"}}'
        )
        return b'{"items":[' + b",".join(page.items) + tail.encode("ascii")

    def _request_token(self, request: Request) -> SyncToken:
        """The token this request continues, or a fresh one for ``init=true``."""
        stack = self.stack
        environment = request.param("environment") or request.headers.get("environment")
        if not environment:
            raise _invalid("environment", "is required.")
        if environment != stack.environment:
            raise _invalid("environment")
        branch = request.headers.get("branch") or stack.branch
        if branch != stack.branch:
            raise _invalid("branch")
        modes = [name for name in _MODES if name in request.query]
        if not modes:
            raise _invalid("init", "is required.")
        if len(modes) > 1:
            raise _invalid(modes[1], f"is not allowed with {modes[0]}.")
        mode = modes[0]
        if mode != "init":
            extra = [name for name in INIT_FILTERS if name in request.query]
            if extra:
                raise _invalid(extra[0], f"is not allowed with {mode}.")
            return self._continue(mode, request.param(mode) or "", environment, branch)
        if (request.param("init") or "").lower() != "true":
            raise _invalid("init")
        return SyncToken(
            "sync_token",
            self.faults.token_generation,
            environment,
            branch,
            None,
            None,
            None,
            0,
            0,
            self._filter(request),
        )

    def _filter(self, request: Request) -> SyncFilter:
        types: tuple[str, ...] | None = None
        raw_type = request.param("type")
        if raw_type is not None:
            names = tuple(sorted({name.strip() for name in raw_type.split(",") if name.strip()}))
            if not names or any(name not in EVENT_TYPES for name in names):
                raise _invalid("type")
            types = names
        values: dict[str, str | None] = {}
        for name in ("content_type_uid", "locale"):
            value = request.param(name)
            if value is not None and not value.strip():
                raise _invalid(name)
            values[name] = value.strip() if value is not None else None
        start = request.param("start_from")
        return SyncFilter(
            types,
            values["content_type_uid"],
            values["locale"],
            None if start is None else parse_start_from(start),
        )

    def _continue(self, mode: str, raw: str, environment: str, branch: str) -> SyncToken:
        invalid = _invalid(mode)
        if self.faults.reject_tokens:
            raise invalid
        try:
            token = SyncToken.decode(raw, self.stack.token_secret)
        except TokenError as exc:
            raise invalid from exc
        anchor = token.at if token.at is not None else token.since
        if (
            token.kind != mode
            or token.generation != self.faults.token_generation
            or token.environment != environment
            or token.branch != branch
            or anchor is None
            or anchor > self.stack.head
        ):
            raise invalid
        return token
