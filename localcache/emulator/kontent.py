"""Kontent.ai Sync API (v1 and v2), with the Delivery API (``kontent_delivery.py``), over an
in-memory :class:`Project`.

Mounted at ``/``: Delivery and Sync v1 under ``/{environment_id}/``, Sync v2 under
``/v2/{environment_id}/``; behaviour follows the seeds, the fixtures and, where those are
silent, the vendor SDKs. Choices:

* Tokens are sealed base64 JSON anchoring a sync round at a change-log number; every page of a
  round is evaluated as of that number and cut by a keyset cursor, so edits between page
  requests never make a page skip or repeat a change (they arrive next round).
* Sync v2 fills each array (items, types, languages, taxonomies) up to ``page_size``, so "more
  pages follow while any array is full" is exact. ``items-feed`` pages over *current* content,
  which is why clients take the sync token before loading content.
* ``secure_api_key`` and the ``access_token`` are both accepted when set; with neither the API
  is public. Faults and ``on_request`` apply to every request. Error bodies are ``{message,
  request_id, error_code, specific_code}``; 107 (bad continuation token) is documented, the
  other codes are the emulator's own; ``X-Request-Id`` repeats the request id.
* ``items-feed`` continuations are tokens too: ``reject_tokens`` and
  ``invalidate_tokens_before_now`` refuse them with 400, as the real API refuses a stale one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .faults import FaultKind, Faults, spoil
from .kontent_delivery import (
    BAD_REQUEST,
    MAX_PAGE_SIZE,
    MEDIA_TYPE,
    NOT_FOUND,
    TOKEN_ERROR,
    UNAUTHORIZED,
    Condition,
    DeliveryAPI,
    HttpError,
    bad_request,
    dump,
    holds,
    parse_condition,
)
from .project import ITEM, KINDS, Accept, Change, Key, Project
from .wire import Request, Response

__all__ = ["MEDIA_TYPE", "Continuation", "KontentAPI", "SyncFilter", "TokenError"]

TOKEN_VERSION = 1
SYNC_V1, SYNC_V2, FEED = "sync", "sync2", "feed"

_TOKEN_SEAL = b"localcache-emulator-kontent"  # integrity only: tokens are not secrets
_UNAUTHORIZED_MESSAGE = (
    "Missing or invalid access token. Please include the valid access token value in the "
    "Authorization header field as an HTTP bearer authorization scheme."
)
_TOKEN_MESSAGE = "The continuation token specified in the 'X-Continuation' request header %s."
_ARRAYS = (b"items", b"types", b"languages", b"taxonomies")  # Sync v2 arrays, KINDS order
_DELTA = b'{"change_type":"%s","timestamp":"%s","data":%s}'
_MALFORMED_BODY = b'{"items":[{"change_type":"changed_item","data":{"system":<html>oops'


class TokenError(ValueError):
    """A continuation token this server did not issue, or no longer honours."""


@dataclass(frozen=True)
class SyncFilter:
    """Sync v1 init filters, fixed for the life of the sync (they travel in the token)."""

    conditions: tuple[Condition, ...] = ()
    language: str | None = None
    system_language: str | None = None

    @classmethod
    def from_query(cls, query: dict[str, list[str]], languages: set[str]) -> SyncFilter:
        """Parse ``system.type``/``system.collection`` operators and the two language filters."""
        conditions: list[Condition] = []
        language = system_language = None
        for name, values in sorted(query.items()):
            value = values[-1]
            if name in ("language", "system.language"):
                if value not in languages:
                    raise bad_request(f"The language '{value}' does not exist.")
                if name == "language":
                    language = value
                else:
                    system_language = value
                continue
            conditions.append(parse_condition(name, value))
        return cls(tuple(conditions), language, system_language)

    def to_json(self) -> list[Any]:
        return [
            [[p, o, list(v)] for p, o, v in self.conditions],
            self.language,
            self.system_language,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> SyncFilter:
        conditions = tuple((prop, op, tuple(values)) for prop, op, values in data[0])
        return cls(conditions, data[1], data[2])

    def acceptor(self, fallback_chain: list[str]) -> Accept:
        """Predicate over a variant's state as of the sync's anchor.

        ``language`` follows fallbacks: a change to a fallback-language variant counts while
        the item has no variant in the filtered language itself (as of the same anchor).
        """
        language, system_language, conditions = self.language, self.system_language, self.conditions

        def accept(key: Key, change: Change, lookup: Callable[[Key], Change | None]) -> bool:
            if system_language is not None and change.language != system_language:
                return False
            if language is not None and change.language != language:
                if change.language not in fallback_chain:
                    return False
                for preferred in fallback_chain[: fallback_chain.index(change.language)]:
                    state = lookup((ITEM, key[1], preferred))
                    if state is not None and not state.deleted:
                        return False
            return all(holds(condition, change) for condition in conditions)

        return accept


@dataclass(frozen=True)
class Continuation:
    """Everything needed to serve the next sync page or feed page, carried by the client.

    ``since``: the sequence number the round's changes start after.  ``at``: the number the
    round is evaluated at, None until its first page fixes it.  ``after``: per-kind keyset
    cursor; a kind absent starts from the beginning, a kind mapped to None is exhausted.
    """

    api: str
    generation: int
    environment: str
    since: int = 0
    at: int | None = None
    after: dict[str, Key | None] = field(default_factory=dict)
    filter: SyncFilter = field(default_factory=SyncFilter)

    def encode(self) -> str:
        """Opaque base64 of JSON, sealed so that only tokens this emulator issued decode."""
        after = {kind: None if key is None else list(key) for kind, key in self.after.items()}
        fields = [
            TOKEN_VERSION,
            self.api,
            self.generation,
            self.environment,
            self.since,
            self.at,
            after,
            self.filter.to_json(),
        ]
        payload = json.dumps(fields, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(payload + b"." + _seal(payload)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Continuation:
        """Parse a token, raising :class:`TokenError` for anything not produced by encode."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TokenError("not a continuation token") from exc
        payload, _, seal = raw.rpartition(b".")
        if not hmac.compare_digest(seal, _seal(payload)):
            raise TokenError("not a continuation token issued by this emulator")
        version, api, generation, environment, since, at, after, sync_filter = json.loads(payload)
        if version != TOKEN_VERSION:
            raise TokenError("unsupported continuation token version")
        cursors = {kind: None if key is None else tuple(key) for kind, key in after.items()}
        return cls(
            api, generation, environment, since, at, cursors, SyncFilter.from_json(sync_filter)
        )


def _seal(payload: bytes) -> bytes:
    return hmac.new(_TOKEN_SEAL, payload, "sha256").hexdigest()[:20].encode("ascii")


class KontentAPI(DeliveryAPI):
    """Answers Delivery and Sync requests for one project; safe from many server threads."""

    def __init__(
        self, project: Project, access_token: str | None, faults: Faults, page_size: int = 100
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        self.project = project
        self.faults = faults
        self.page_size = page_size
        keys = (project.secure_api_key, access_token)
        self._keys = [key.encode("utf-8") for key in keys if key]

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request and render any failure as a Kontent.ai error body."""
        request_id = uuid.uuid4().hex[:16]
        try:
            response = self._serve_with_faults(self._route(request), request, request_id)
        except HttpError as error:
            response = self._error(error, request_id)
        response.headers.append(("X-Request-Id", request_id))  # the body's request_id, too
        return response

    @staticmethod
    def _error(error: HttpError, request_id: str) -> Response:
        body: dict[str, Any] = {"message": error.message, "request_id": request_id}
        body.update(error_code=error.error_code, specific_code=0)
        return Response(error.status, dump(body), [("Content-Type", MEDIA_TYPE)])

    def _authorized(self, request: Request) -> bool:
        if not self._keys:
            return True
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        offered = credential.strip().encode("utf-8")
        return any(hmac.compare_digest(offered, key) for key in self._keys)

    def _route(self, request: Request) -> Callable[[Request], Response]:
        """The handler for this path and method, after the auth check."""
        parts = [part for part in request.path.split("/") if part]
        v2 = parts[:1] == ["v2"]
        if v2:
            parts = parts[1:]
        if not parts:
            raise HttpError(404, NOT_FOUND["route"], "The requested resource was not found.")
        if parts[0] != self.project.environment_id:
            message = f"The environment with the ID '{parts[0]}' does not exist."
            raise HttpError(404, NOT_FOUND["environment"], message)
        rest = tuple(parts[1:])
        handler: Callable[[Request], Response] | None
        if rest == ("sync", "init"):
            handler, method = (self._init_v2 if v2 else self._init_v1), "POST"
        elif rest == ("sync",):
            handler, method = (self._sync_v2 if v2 else self._sync_v1), "GET"
        else:
            handler, method = None if v2 else self._delivery_handler(rest), "GET"
        if handler is None:
            raise HttpError(404, NOT_FOUND["route"], "The requested resource was not found.")
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            raise HttpError(405, BAD_REQUEST, f"Use {method} for this resource.")
        if not self._authorized(request):
            raise HttpError(401, UNAUTHORIZED, _UNAUTHORIZED_MESSAGE)
        return handler

    def _serve_with_faults(
        self, handler: Callable[[Request], Response], request: Request, request_id: str
    ) -> Response:
        hook = self.faults.on_request
        if hook is not None:
            hook(request.path, request.query)
        fault = self.faults.take()
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            message = "The service is temporarily unavailable. Please retry the request."
            return self._error(HttpError(fault.status, 0, message), request_id)
        if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
            message = f"API rate limit exceeded. Please retry the request in {fault.reset} seconds."
            response = self._error(HttpError(429, 0, message), request_id)
            response.headers.append(("Retry-After", str(fault.reset)))
            return response
        try:
            response = handler(request)
        except HttpError as error:
            response = self._error(error, request_id)
        return spoil(response, fault, _MALFORMED_BODY)

    # -- items-feed continuations: tokens of the Sync API's kind ------------------------------

    def _feed_cursor(self, raw: str) -> str:
        cursor = self._honoured(self._decode(raw, FEED)).after.get(ITEM)
        if cursor is None:
            raise HttpError(400, TOKEN_ERROR, _TOKEN_MESSAGE % "is malformed")
        return cursor[1]

    def _feed_token(self, last: str) -> str:
        generation, environment = self.faults.token_generation, self.project.environment_id
        return Continuation(FEED, generation, environment, after={ITEM: (ITEM, last, "")}).encode()

    # -- Sync --------------------------------------------------------------------------------

    def _fresh(self, api: str, sync_filter: SyncFilter) -> Continuation:
        """A token whose first round reports what changes after this moment."""
        generation, environment = self.faults.token_generation, self.project.environment_id
        return Continuation(api, generation, environment, self.project.head, filter=sync_filter)

    def _init_v1(self, request: Request) -> Response:
        known = {language.codename for language in self.project.languages()}
        sync_filter = SyncFilter.from_query(request.query, known)
        token = self._fresh(SYNC_V1, sync_filter)
        return self._json(b'{"items":[]}', [("X-Continuation", token.encode())])

    def _init_v2(self, request: Request) -> Response:
        if request.query:
            raise bad_request("Sync API v2 initialization takes no parameters.")
        token = self._fresh(SYNC_V2, SyncFilter())
        body = b'{"items":[],"types":[],"languages":[],"taxonomies":[]}'
        return self._json(body, [("X-Continuation", token.encode())])

    def _continuation(self, request: Request, api: str) -> Continuation:
        if request.query:
            raise bad_request("Sync requests take no query parameters; filters belong to init.")
        raw = request.headers.get("x-continuation")
        if not raw:
            message = "The 'X-Continuation' request header is missing; initialize a sync first."
            raise HttpError(400, TOKEN_ERROR, message)
        token = self._honoured(self._decode(raw, api))
        anchor = token.at if token.at is not None else token.since
        if anchor > self.project.head:  # not issued by this project's history
            raise HttpError(400, TOKEN_ERROR, _TOKEN_MESSAGE % "is invalid or expired")
        return token

    def _honoured(self, token: Continuation) -> Continuation:
        """``token`` unless the faults refuse it: sync and items-feed continuations alike."""
        if self.faults.reject_tokens or token.generation != self.faults.token_generation:
            raise HttpError(400, TOKEN_ERROR, _TOKEN_MESSAGE % "is invalid or expired")
        return token

    def _decode(self, raw: str, api: str) -> Continuation:
        try:
            token = Continuation.decode(raw)
        except TokenError as exc:
            raise HttpError(400, TOKEN_ERROR, _TOKEN_MESSAGE % "is malformed") from exc
        if token.api != api or token.environment != self.project.environment_id:
            message = _TOKEN_MESSAGE % "belongs to another API or environment"
            raise HttpError(400, TOKEN_ERROR, message)
        return token

    def _round(
        self, token: Continuation, kinds: tuple[str, ...], accept: Accept | None
    ) -> tuple[dict[str, list[Change]], Continuation]:
        """One page of every kind as of the round's anchor, and the token that follows it."""
        at = token.at if token.at is not None else self.project.head
        pages: dict[str, list[Change]] = {}
        after: dict[str, Key | None] = {}
        more = False
        for kind in kinds:
            if kind in token.after and token.after[kind] is None:
                pages[kind], after[kind] = [], None  # exhausted earlier in this round
                continue
            cursor, limit = token.after.get(kind), self.page_size
            page = self.project.delta_page(
                kind=kind, since=token.since, at=at, after=cursor, limit=limit, accept=accept
            )
            pages[kind] = page.changes
            after[kind] = page.last if page.more else None
            more = more or page.more
        if more:  # the round goes on as of the same anchor
            return pages, replace(token, at=at, after=after)
        return pages, replace(token, since=at, at=None, after={})  # next round starts after it

    def _sync_v1(self, request: Request) -> Response:
        token = self._continuation(request, SYNC_V1)
        accept = None
        if token.filter != SyncFilter():
            language = token.filter.language
            chain = self.project.fallback_chain(language) if language is not None else []
            accept = token.filter.acceptor(chain)
        pages, follow = self._round(token, (ITEM,), accept)
        entries = [
            _DELTA
            % (
                b"deleted_item" if change.deleted else b"changed_item",
                change.timestamp.encode(),
                change.body,
            )
            for change in pages[ITEM]
        ]
        body = b'{"items":[' + b",".join(entries) + b"]}"
        return self._json(body, [("X-Continuation", follow.encode())])

    def _sync_v2(self, request: Request) -> Response:
        token = self._continuation(request, SYNC_V2)
        pages, follow = self._round(token, KINDS, None)
        arrays = []
        for kind, name in zip(KINDS, _ARRAYS, strict=True):
            entries = [
                _DELTA
                % (
                    b"deleted" if change.deleted else b"changed",
                    change.timestamp.encode(),
                    b'{"system":%s}' % change.system,
                )
                for change in pages[kind]
            ]
            arrays.append(b'"%s":[%s]' % (name, b",".join(entries)))
        return self._json(b"{" + b",".join(arrays) + b"}", [("X-Continuation", follow.encode())])
