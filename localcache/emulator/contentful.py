"""Contentful Content Delivery API (sync, locales, content types) over an in-memory space.

Behaviour follows the CDA documentation and the recorded responses in the shared fixtures, and
where those are silent, what the official SDKs expect.  Choices worth knowing:

* A sync token is opaque url-safe base64 of JSON anchoring the sync at a change-log sequence
  number (see :class:`SyncToken`).  Every page of one sync is evaluated as of that number, so a
  space mutated between page requests never makes a page skip or repeat a resource; the
  mutation arrives in the next delta instead.
* ``type`` selects item types ("Entry" = published entries only, "Deletion" = DeletedEntry and
  DeletedAsset, ...); filters and ``limit`` live in the token and cannot be sent with it.
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
from typing import Any

from .changelog import CONTENT_TYPE, PUBLISHED, Key, Version
from .faults import FaultKind, Faults, spoil
from .space import ASSET, ENTRY, Space
from .wire import Request, Response

__all__ = ["MEDIA_TYPE", "ContentfulAPI", "SyncFilter", "SyncToken", "TokenError"]

MEDIA_TYPE = "application/vnd.contentful.delivery.v1+json"
MAX_LIMIT = 1000
TOKEN_VERSION = 1

_SYNC_TYPES = ("all", "Entry", "Asset", "Deletion", "DeletedEntry", "DeletedAsset")
_INIT_PARAMS = ("type", "content_type", "limit")
_ERROR_IDS = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable"}
_MALFORMED_BODY = b'{"sys":{"type":"Array"},"items":[{"sys":{"type":"Entry","id":<html>oops'


class TokenError(ValueError):
    """A sync token this server did not issue, or no longer honours."""


class _HttpError(Exception):
    """Raised inside request handling to answer with a Contentful error body."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message


@dataclass(frozen=True)
class SyncFilter:
    """The initial request's ``type``/``content_type``, fixed for the life of a sync."""

    type: str = "all"
    content_type: str | None = None

    @property
    def kinds(self) -> frozenset[str]:
        """Resource kinds the filter can ever deliver (bounds the key range scanned)."""
        if self.type in ("Entry", "DeletedEntry"):
            return frozenset((ENTRY,))
        if self.type in ("Asset", "DeletedAsset"):
            return frozenset((ASSET,))
        return frozenset((ASSET, ENTRY))

    def acceptor(self, initial: bool) -> Callable[[Version], bool]:
        """Predicate over a resource's state; initial syncs never carry deletions."""
        wants_published = self.type in ("all", "Entry", "Asset")
        wants_deleted = not initial and self.type in (
            "all",
            "Deletion",
            "DeletedEntry",
            "DeletedAsset",
        )
        content_type = self.content_type

        def accept(version: Version) -> bool:
            if version[PUBLISHED]:
                return wants_published and (
                    content_type is None or version[CONTENT_TYPE] == content_type
                )
            return wants_deleted

        return accept


@dataclass(frozen=True)
class SyncToken:
    """Everything needed to serve the next page or delta, carried by the client.

    ``at``: the change-log sequence number the current sync is evaluated at; None in a
    nextSyncUrl token, whose delta is evaluated as of the moment its first page is requested.
    ``since``: None for an initial sync, else the sequence number the delta starts after.
    ``after``: keyset cursor (last key already delivered) or None at the start.
    """

    generation: int
    space_id: str
    environment: str
    at: int | None
    since: int | None
    after: Key | None
    filter: SyncFilter
    limit: int

    def encode(self) -> str:
        """Opaque, url-safe (no padding, no escaping needed in a query string)."""
        payload = {
            "v": TOKEN_VERSION,
            "g": self.generation,
            "s": self.space_id,
            "e": self.environment,
            "at": self.at,
            "from": self.since,
            "after": list(self.after) if self.after is not None else None,
            "f": {"type": self.filter.type, "ct": self.filter.content_type},
            "l": self.limit,
        }
        raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> SyncToken:
        """Parse a token, raising :class:`TokenError` for anything not produced by encode."""
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            data = json.loads(raw.decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise TokenError("not a sync token") from exc
        if not isinstance(data, dict) or data.get("v") != TOKEN_VERSION:
            raise TokenError("unsupported sync token version")
        try:
            after = data["after"]
            filt = data["f"]
            token = cls(
                generation=_int(data["g"]),
                space_id=_str(data["s"]),
                environment=_str(data["e"]),
                at=None if data["at"] is None else _int(data["at"]),
                since=None if data["from"] is None else _int(data["from"]),
                after=None if after is None else (_str(after[0]), _str(after[1])),
                filter=SyncFilter(
                    _str(filt["type"]), None if filt["ct"] is None else _str(filt["ct"])
                ),
                limit=_int(data["l"]),
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise TokenError("malformed sync token") from exc
        at, since = token.at, token.since
        if (
            token.filter.type not in _SYNC_TYPES
            or not 1 <= token.limit <= MAX_LIMIT
            or (at is None and (since is None or since < 0 or token.after is not None))
            or (at is not None and at < 0)
            or (at is not None and since is not None and not 0 <= since <= at)
        ):
            raise TokenError("inconsistent sync token")
        return token


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _parse_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise _HttpError(
            400, "BadRequest", f"The '{name}' parameter must be an integer from {low} to {high}."
        )
    return int(value)


class ContentfulAPI:
    """Answers CDA requests for one space; safe to call from many server threads."""

    def __init__(
        self, space: Space, access_token: str, faults: Faults, page_size: int = 100
    ) -> None:
        if not 1 <= page_size <= MAX_LIMIT:
            raise ValueError(f"page_size must be between 1 and {MAX_LIMIT}")
        self.space = space
        self.faults = faults
        self.page_size = page_size
        self._token = access_token.encode("utf-8")

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request and render any failure as a Contentful error body."""
        request_id = uuid.uuid4().hex
        try:
            return self._dispatch(request, request_id)
        except _HttpError as error:
            return self._error(error.status, error.error_id, error.message, request_id)

    def _json(self, status: int, body: bytes, request_id: str) -> Response:
        return Response(
            status,
            body,
            [("Content-Type", MEDIA_TYPE), ("X-Contentful-Request-Id", request_id)],
        )

    def _error(self, status: int, error_id: str, message: str, request_id: str) -> Response:
        payload = {
            "sys": {"type": "Error", "id": error_id},
            "message": message,
            "requestId": request_id,
        }
        return self._json(status, json.dumps(payload).encode("utf-8"), request_id)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            credential = request.param("access_token") or ""
        return hmac.compare_digest(credential.strip().encode("utf-8"), self._token)

    def _dispatch(self, request: Request, request_id: str) -> Response:
        parts = [part for part in request.path.split("/") if part]
        if len(parts) < 2 or parts[0] != "spaces":
            raise _HttpError(404, "NotFound", "The resource could not be found.")
        if request.method not in ("GET", "HEAD"):
            raise _HttpError(405, "MethodNotAllowed", "Only GET is supported by this API.")
        if not self._authorized(request):
            raise _HttpError(
                401,
                "AccessTokenInvalid",
                "The access token you sent could not be found or is invalid.",
            )
        space_id, rest = parts[1], parts[2:]
        environment = "master"
        if rest[:1] == ["environments"]:
            if len(rest) < 2:
                raise _HttpError(404, "NotFound", "The resource could not be found.")
            environment, rest = rest[1], rest[2:]
        if space_id != self.space.space_id or environment != self.space.environment:
            raise _HttpError(404, "NotFound", "The resource could not be found.")
        if not rest and len(parts) == 2:
            return self._json(200, self._space_body(), request_id)
        if rest == ["sync"]:
            return self._sync_with_faults(request, request_id)
        if rest == ["locales"]:
            return self._json(200, self._locales_body(request), request_id)
        if rest == ["content_types"]:
            return self._json(200, self._content_types_body(request), request_id)
        if len(rest) == 2 and rest[0] == "content_types":
            for item in self.space.content_types():
                if item["sys"]["id"] == rest[1]:
                    return self._json(200, json.dumps(item).encode("utf-8"), request_id)
        raise _HttpError(404, "NotFound", "The resource could not be found.")

    # -- space, locales, content types ---------------------------------------------------------

    def _space_body(self) -> bytes:
        locales = [
            {
                "code": locale.code,
                "default": locale.default,
                "name": locale.display_name,
                "fallbackCode": locale.fallback,
            }
            for locale in self.space.locales
        ]
        payload = {
            "sys": {"type": "Space", "id": self.space.space_id},
            "name": self.space.name,
            "locales": locales,
        }
        return json.dumps(payload).encode("utf-8")

    def _locales_body(self, request: Request) -> bytes:
        items = [
            {
                "code": locale.code,
                "name": locale.display_name,
                "default": locale.default,
                "fallbackCode": locale.fallback,
                "optional": locale.optional,
                "sys": {
                    "id": hashlib.sha1(locale.code.encode("utf-8")).hexdigest()[:22],
                    "type": "Locale",
                    "version": 1,
                },
            }
            for locale in self.space.locales
        ]
        return self._collection(request, items, default_limit=1000)

    def _content_types_body(self, request: Request) -> bytes:
        return self._collection(request, self.space.content_types(), default_limit=100)

    def _collection(self, request: Request, items: list[Any], default_limit: int) -> bytes:
        skip = _parse_int(request.param("skip"), "skip", 0, 0, 1_000_000_000)
        limit = _parse_int(request.param("limit"), "limit", default_limit, 0, 1000)
        payload = {
            "sys": {"type": "Array"},
            "total": len(items),
            "skip": skip,
            "limit": limit,
            "items": items[skip : skip + limit],
        }
        return json.dumps(payload).encode("utf-8")

    # -- sync --------------------------------------------------------------------------------

    def _sync_with_faults(self, request: Request, request_id: str) -> Response:
        hook = self.faults.on_request
        if hook is not None:
            hook(request.path, request.query)
        fault = self.faults.take()
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            error_id = _ERROR_IDS.get(fault.status, "ServerError")
            return self._error(fault.status, error_id, "Internal server error.", request_id)
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            response = self._error(
                429,
                "RateLimitExceeded",
                "You have exceeded the rate limit of the Organization this Space belongs to by "
                "making too many API requests within a short timespan. Please wait a moment "
                "before trying the request again.",
                request_id,
            )
            response.headers.append(("X-Contentful-RateLimit-Reset", str(fault.reset)))
            return response
        try:
            response = self._json(200, self._sync_body(request), request_id)
        except _HttpError as error:
            response = self._error(error.status, error.error_id, error.message, request_id)
        return spoil(response, fault, _MALFORMED_BODY)

    def _sync_body(self, request: Request) -> bytes:
        token = self._sync_token(request)
        space = self.space
        at = token.at if token.at is not None else space.head
        initial = token.since is None
        page = space.sync_page(
            at=at,
            since=token.since,
            after=token.after,
            limit=token.limit,
            kinds=token.filter.kinds,
            accept=token.filter.acceptor(initial),
        )
        if page.more:
            follow = SyncToken(
                token.generation,
                token.space_id,
                token.environment,
                at,
                token.since,
                page.last,
                token.filter,
                token.limit,
            )
            link = b'"nextPageUrl":'
        else:
            follow = SyncToken(
                token.generation,
                token.space_id,
                token.environment,
                None,
                at,
                None,
                token.filter,
                token.limit,
            )
            link = b'"nextSyncUrl":'
        url = (
            f"{request.base_url}/spaces/{space.space_id}/environments/{space.environment}"
            f"/sync?sync_token={follow.encode()}"
        )
        size = sum(len(item) + 1 for item in page.items) + len(url) + 64
        if size > self.faults.max_response_bytes:
            raise _HttpError(
                400,
                "BadRequest",
                "Response size too big. Maximum allowed response size: "
                f"{self.faults.max_response_bytes}B.",
            )
        return b"".join(
            (
                b'{"sys":{"type":"Array"},"items":[',
                b",".join(page.items),
                b"],",
                link,
                json.dumps(url).encode("utf-8"),
                b"}",
            )
        )

    def _sync_token(self, request: Request) -> SyncToken:
        """The token this request continues, or a fresh one anchored at the log head."""
        raw_token = request.param("sync_token")
        initial = request.param("initial")
        if raw_token is not None:
            if initial is not None or any(name in request.query for name in _INIT_PARAMS):
                raise _HttpError(
                    400,
                    "BadRequest",
                    "The parameters initial, type, content_type and limit are only allowed on "
                    "the initial sync request, not together with sync_token.",
                )
            return self._continue(raw_token)
        if initial is None:
            raise _HttpError(
                400, "BadRequest", "Either initial=true or a sync_token parameter is required."
            )
        if initial.lower() != "true":
            raise _HttpError(400, "BadRequest", "The 'initial' parameter must be 'true'.")
        sync_type = request.param("type") or "all"
        if sync_type not in _SYNC_TYPES:
            raise _HttpError(
                400,
                "BadRequest",
                f"The 'type' parameter must be one of {', '.join(_SYNC_TYPES)}.",
            )
        content_type = request.param("content_type")
        if content_type is not None and (sync_type != "Entry" or not content_type):
            raise _HttpError(
                400,
                "BadRequest",
                "The 'content_type' parameter needs a non-empty value and type=Entry.",
            )
        limit = _parse_int(request.param("limit"), "limit", self.page_size, 1, MAX_LIMIT)
        return SyncToken(
            self.faults.token_generation,
            self.space.space_id,
            self.space.environment,
            None,
            None,
            None,
            SyncFilter(sync_type, content_type),
            limit,
        )

    def _continue(self, raw_token: str) -> SyncToken:
        invalid = _HttpError(400, "BadRequest", "The sync token is invalid.")
        if self.faults.reject_tokens:
            raise invalid
        try:
            token = SyncToken.decode(raw_token)
        except TokenError as exc:
            raise invalid from exc
        anchor = token.at if token.at is not None else token.since
        if (
            token.generation != self.faults.token_generation
            or token.space_id != self.space.space_id
            or token.environment != self.space.environment
            or anchor is None
            or anchor > self.space.head  # not issued by this space's history
        ):
            raise invalid
        return token
