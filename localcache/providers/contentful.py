"""Contentful's Sync API (Content Delivery or Preview API) as normalized pages.

Wire format (PROTOCOLS.md): ``GET {base}/spaces/{space}/environments/{env}/sync`` with
``initial=true`` (plus the initial-only ``type``, ``content_type`` and ``limit``), then with the
``sync_token`` taken from ``nextPageUrl`` until a page carries ``nextSyncUrl``. Only the token
is kept: every URL is rebuilt from the configured base URL, the way the vendor's own SDK does,
so a stored token never points the app at another host and never carries a credential.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ..assets.model import (
    AssetFile,
    ImageParams,
    absolute_url,
    with_image_params,
)
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    PageError,
    SyncError,
    TokenRejectedError,
)
from ..model import (
    ContentTypeInfo,
    ContinuationToken,
    Delta,
    FieldInfo,
    LocaleInfo,
    Page,
    PageSource,
    RecordType,
    StoreScope,
)
from .ahead import RequestAhead, ask_ahead, guess_string, parse_beside, settle, take
from .base import listing_unavailable, require_text
from .http import HttpPolicy, HttpResponse, HttpTransport, check_base_url, parse_float_header
from .wire import asset_file, decode_json_object, is_text

__all__ = ["Contentful", "asset_files", "image_url"]

log = logging.getLogger("localcache.contentful")

DELIVERY_URL = "https://cdn.contentful.com"
PREVIEW_URL = "https://preview.contentful.com"
CONTENT_TYPES_LIMIT = 1000  # the most a CDA collection request returns
SYNC_LIMIT = 1000  # the most items an initial sync page may ask for, and our default
SYNC_TYPES = ("all", "Entry", "Asset", "Deletion", "DeletedEntry", "DeletedAsset")
_RECORD_TYPES: dict[str, tuple[RecordType, bool]] = {
    "Entry": ("Entry", False), "Asset": ("Asset", False),
                 "DeletedEntry": ("Entry", True), "DeletedAsset": ("Asset", True)}


class Contentful:
    """A Contentful space and environment, read through the Sync API.

    ``sync_type``, ``content_type`` and ``limit`` apply to the initial sync only, as the API
    requires; later syncs continue with the filters the initial sync fixed. ``limit`` defaults
    to 1000, the documented maximum (ten times fewer round trips than the server's default of
    100). A page the server refuses as too big (400 "Response size too big", near 7 MB) is
    asked for again with half the limit: the first request at once; a later page of an initial
    sync by starting that sync over (the limit lives in the sync token and cannot be changed);
    a page of a sync resumed from a stored token by refusing the token (``TokenRejectedError``),
    which makes the engine rebuild with the smaller limit. ``limit_in_use`` tells the limit
    the next initial sync asks for.
    """

    concurrent_requests = True
    """Its HTTP session takes two requests at once (the engine's content types beside the
    first page): see ``ListsContentTypes``."""

    name = "contentful"

    def __init__(
        self,
        space_id: str,
        access_token: str,
        environment: str = "master",
        base_url: str | None = None,
        *,
        preview: bool = False,
        sync_type: str = "all",
        content_type: str | None = None,
        limit: int | None = None,
        http: HttpPolicy | None = None,
        allow_insecure_http: bool = False,
        asset_base_url: str | None = None,
    ) -> None:
        require_text(space_id, "Contentful needs a space_id")
        require_text(access_token, f"Contentful space {space_id!r} needs an access_token")
        require_text(environment, "Contentful environment must not be empty")
        if sync_type not in SYNC_TYPES:
            raise ConfigurationError(
                f"sync_type {sync_type!r} is not one of {', '.join(SYNC_TYPES)}"
            )
        if content_type is not None and sync_type != "Entry":
            raise ConfigurationError("content_type can only be used with sync_type='Entry'")
        if limit is not None and not (1 <= limit <= 1000):
            raise ConfigurationError(f"limit must be between 1 and 1000, not {limit}")
        self.space_id = space_id
        self.environment = environment
        self.sync_type = sync_type
        self.content_type = content_type
        self.limit = limit
        self.limit_in_use = SYNC_LIMIT if limit is None else limit
        self.base_url = check_base_url(
            base_url or (PREVIEW_URL if preview else DELIVERY_URL),
            allow_insecure_http=allow_insecure_http,
        )
        self._http = HttpTransport(
            headers={"Authorization": f"Bearer {access_token}"},
            policy=http,
            request_id_header="X-Contentful-Request-Id",
            wait_header=parse_float_header("X-Contentful-RateLimit-Reset"),
        )
        #: Retries and timeouts, for the asset downloads too.
        self.http_policy = self._http.policy
        #: Replaces the scheme and host of every asset file URL (docs/assets.md).
        self.asset_base_url = None if asset_base_url is None else check_base_url(
            asset_base_url, allow_insecure_http=allow_insecure_http)
        self._root = (
            f"{self.base_url}/spaces/{quote(space_id, safe='')}"
            f"/environments/{quote(environment, safe='')}"
        )

    def __repr__(self) -> str:
        return (
            f"Contentful(space_id={self.space_id!r}, environment={self.environment!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def scope(self) -> StoreScope:
        return StoreScope("contentful", self.space_id, self.environment)

    def close(self) -> None:
        self._http.close()

    # -- asset files (docs/assets.md) -------------------------------------------------------

    #: Asset files are described by asset records.
    asset_source = "Asset"

    def asset_files(self, document: Mapping[str, Any]) -> list[AssetFile]:
        """The files of a stored asset record, one per locale (see :func:`asset_files`)."""
        return asset_files(document, self.asset_base_url)

    @staticmethod
    def image_url(url: str, params: ImageParams) -> str:
        """``url`` transformed by the Images API (see :func:`image_url`)."""
        return image_url(url, params)

    # -- requests ---------------------------------------------------------------------------

    def fetch_locales(self) -> list[LocaleInfo] | None:
        try:
            response = self._get("/locales", {"limit": "1000"}, what="locales request")
        except SyncError as exc:
            if exc.status != 404:
                raise
            log.warning("%s; learning locale codes from the content instead (no fallbacks)",
                        exc)
            return None
        return self.parse_locales(response)

    @staticmethod
    def parse_locales(response: HttpResponse) -> list[LocaleInfo]:
        """The space's locales from a ``/locales`` response."""
        items = decode_json_object(response, what="locales response").data.get("items")
        if not isinstance(items, list):
            raise PageError("locales response has no 'items' array", status=response.status)
        locales: list[LocaleInfo] = []
        for item in items:
            if not isinstance(item, dict) or not is_text(item.get("code")):
                raise PageError("locales response holds a locale without a 'code'")
            fallback = item.get("fallbackCode")
            locales.append(
                LocaleInfo(
                    code=item["code"],
                    name=str(item.get("name") or ""),
                    default=bool(item.get("default")),
                    fallback=fallback if is_text(fallback) and fallback else None,
                    optional=bool(item.get("optional")),
                )
            )
        return locales

    def fetch_content_types(self) -> list[ContentTypeInfo] | None:
        """Every content type, through ``/content_types`` paged by ``skip``/``limit``/``total``."""
        types: dict[str, ContentTypeInfo] = {}
        while True:
            params = {"skip": str(len(types)), "limit": str(CONTENT_TYPES_LIMIT)}
            try:
                response = self._get("/content_types", params, what="content types request")
            except SyncError as exc:
                if not listing_unavailable(exc):
                    raise
                log.warning("%s; keeping the content types stored", exc)
                return None
            found, total = self.parse_content_types(response)
            before = len(types)
            types.update((info.id, info) for info in found)
            if len(types) >= total or len(types) == before:
                return list(types.values())

    @staticmethod
    def parse_content_types(response: HttpResponse) -> tuple[list[ContentTypeInfo], int]:
        """One ``/content_types`` page: its definitions, and the collection's ``total``."""
        body = decode_json_object(response, what="content types response").data
        items, total = body.get("items"), body.get("total")
        if not isinstance(items, list):
            raise PageError("content types response has no 'items' array",
                            status=response.status)
        found = [_content_type(item) for item in items]
        return found, total if isinstance(total, int) else len(found)

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        number = 0
        fresh = token is None  # an initial sync begun here can start over with a smaller page
        ahead: RequestAhead[HttpResponse] | None = None  # the next page, asked for early
        while True:
            number += 1
            params = self._initial_params() if token is None else {"sync_token": token.value}
            try:
                response = take(ahead, token.value if token else None, partial(
                    self._get, "/sync", params, what=f"sync page {number}", token=token))
                ahead = None
            except SyncError as error:
                ahead = None
                if not (_too_big(error) and self.limit_in_use > 1):
                    raise
                self.limit_in_use //= 2
                log.info("sync page %d was too big for the server; asking for %d items a page",
                         number, self.limit_in_use)
                if token is not None and not fresh:
                    raise TokenRejectedError(
                        f"{error}; the page size lives in the sync token, so the sync starts "
                        f"over with {self.limit_in_use} items a page", status=error.status,
                        request_id=error.request_id) from error
                token = None  # the first request again, or the initial sync over
                continue
            ahead = ask_ahead(partial(_next_page_token, response.body),
                              partial(self._sync_page, number + 1))
            page = parse_beside(ahead, partial(self.parse_page, response, number))
            del response  # its body, a page's size, is not kept while the page is applied
            if fresh:  # the page size this initial sync asked for (its token keeps it)
                page = replace(page, limit=self.limit_in_use)
            yield page
            if page.last:
                settle(ahead)  # a guess from a key inside the content
                return
            token = page.next_token

    def _sync_page(self, number: int, token: str) -> HttpResponse:
        """Page ``number``'s request, for the page token ``token``, sent ahead."""
        return self._get("/sync", {"sync_token": token}, what=f"sync page {number}",
                         token=ContinuationToken(token, "page"))

    def _initial_params(self) -> dict[str, str]:
        params = {"initial": "true"}
        if self.sync_type != "all":
            params["type"] = self.sync_type
        if self.content_type is not None:
            params["content_type"] = self.content_type
        params["limit"] = str(self.limit_in_use)
        return params

    def _get(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        what: str,
        token: ContinuationToken | None = None,
    ) -> HttpResponse:
        response = self._http.request("GET", self._root + path, params=params, what=what)
        if response.status < 300:
            return response
        raise self._error(response, what, token)

    def _error(
        self, response: HttpResponse, what: str, token: ContinuationToken | None
    ) -> SyncError:
        kind, message = _error_body(response.body)
        where = f"{what} for space {self.space_id!r}, environment {self.environment!r}"
        text = f"{where} failed: HTTP {response.status}"
        text += f" {kind}" if kind else ""
        text += f": {message}" if message else ""
        if response.request_id:
            text += f" (request id {response.request_id})"
        args: dict[str, Any] = {"status": response.status, "request_id": response.request_id}
        if response.status in (401, 403):
            return AuthenticationError(text + "; check the access token", **args)
        if token is not None and response.status in (400, 404, 410):
            return TokenRejectedError(text + "; the sync token was rejected", **args)
        return SyncError(text, **args)

    # -- wire format ------------------------------------------------------------------------

    @staticmethod
    def parse_page(response: HttpResponse, number: int) -> Page:
        """Validate a whole sync response before any of it is applied."""
        decoded = decode_json_object(response, what=f"sync page {number}", page=number)
        body = decoded.data
        items = body.get("items")
        if not isinstance(items, list):
            raise PageError(f"sync page {number} has no 'items' array", page=number)
        next_page, next_sync = body.get("nextPageUrl"), body.get("nextSyncUrl")
        if (next_page is None) == (next_sync is None):
            raise PageError(
                f"sync page {number} must carry exactly one of nextPageUrl and nextSyncUrl",
                page=number,
            )
        url = next_page if next_page is not None else next_sync
        token = ContinuationToken(
            _token_from_url(url, number), "page" if next_page is not None else "sync"
        )
        deltas: list[Delta] = []
        skipped = 0
        for position, item in enumerate(items):
            delta = _parse_item(item, number, position)
            if delta is None:
                skipped += 1
            else:
                deltas.append(delta)
        source = PageSource(
            text=decoded.text,
            items_path="$.items",
            id_path="$.sys.id",
            content_type_path="$.sys.contentType.sys.id",
            revision_path="$.sys.revision",
            created_path="$.sys.createdAt",
            updated_path="$.sys.updatedAt",
        )
        return Page(number=number, deltas=deltas, next_token=token, skipped=skipped,
                    source=source)


def _content_type(item: Any) -> ContentTypeInfo:
    """A CDA content type: ``sys.id``, ``name``, ``displayField``, ``fields[]`` (id, name,
    type, localized, required). Omitted fields are left out, as the CDA leaves them out of
    entries."""
    sys = item.get("sys") if isinstance(item, dict) else None
    type_id = sys.get("id") if isinstance(sys, dict) else None
    if not isinstance(sys, dict) or not is_text(type_id) or not type_id:
        raise PageError("content types response holds a content type without sys.id")
    fields = item.get("fields", [])
    if not isinstance(fields, list) or not all(
            isinstance(f, dict) and is_text(f.get("id")) and f.get("id") for f in fields):
        raise PageError(f"content type {type_id!r} has fields without an 'id'")
    display = item.get("displayField")
    updated = sys.get("updatedAt")
    return ContentTypeInfo(
        id=type_id, name=str(item.get("name") or ""),
        display_field=display if is_text(display) and display else None,
        fields=tuple(FieldInfo(id=f["id"], name=str(f.get("name") or ""),
                               type=str(f.get("type") or ""),
                               localized=bool(f.get("localized", False)),
                               required=bool(f.get("required", False)))
                     for f in fields if not f.get("omitted")),
        updated_at=updated if is_text(updated) else None, raw=item)


def _next_page_url(body: bytes) -> str | None:
    """A guess at the body's ``nextPageUrl`` (see providers/ahead.py)."""
    return guess_string(body, "nextPageUrl")


def _next_page_token(body: bytes) -> str | None:
    """The sync token of that guess, if it has one."""
    found = _next_page_url(body)
    return parse_qs(urlsplit(found).query).get("sync_token", [None])[0] if found else None


def _token_from_url(url: Any, number: int) -> str:
    if not isinstance(url, str):
        raise PageError(f"sync page {number}: next URL is not a string", page=number)
    values = parse_qs(urlsplit(url).query).get("sync_token")
    if not values or not values[0]:
        raise PageError(f"sync page {number}: next URL carries no sync_token", page=number)
    return values[0]


def _parse_item(item: Any, number: int, position: int | None) -> Delta | None:
    if not isinstance(item, dict) or not isinstance(item.get("sys"), dict):
        raise _bad(number, position, "item has no 'sys' object")
    sys = item["sys"]
    item_type = sys.get("type")
    record_id = sys.get("id")
    if not isinstance(item_type, str):
        raise _bad(number, position, "sys.type is missing")
    if item_type not in _RECORD_TYPES:
        log.warning("sync page %d, item %s: skipping item of unknown type %r", number, position,
                    item_type)
        return None
    if not is_text(record_id) or not record_id:
        raise _bad(number, position, f"{item_type} has no usable sys.id")
    revision = sys.get("revision", 0)
    if not isinstance(revision, int) or isinstance(revision, bool) or not (
            0 <= revision < 2**63):
        raise _bad(number, position, f"{item_type} {record_id!r} has a revision that is not "
                                     "a 64-bit natural number")
    for stamp in ("createdAt", "updatedAt"):
        if sys.get(stamp) is not None and not is_text(sys[stamp]):
            raise _bad(number, position, f"{item_type} {record_id!r} has a bad sys.{stamp}")
    record_type, deleted = _RECORD_TYPES[item_type]
    if deleted:
        return Delta(record_type, record_id, True, revision=revision,
                     created_at=sys.get("createdAt"), updated_at=sys.get("updatedAt"))
    fields = item.get("fields", {})
    if type(fields) is not dict or any(type(v) is not dict for v in fields.values()):
        raise _bad(number, position, f"{item_type} {record_id!r} has fields that are not "
                                     "maps of locale to value")
    content_type = None
    if record_type == "Entry":
        content_type = _link_id(sys.get("contentType"))
        if content_type is None:
            raise _bad(number, position, f"Entry {record_id!r} has no sys.contentType link")
    if "fields" not in item:
        item = {**item, "fields": {}}
        position = None  # the stored document differs from the item sent: encode it
    return Delta(record_type, record_id, False, document=item, content_type=content_type,
                 revision=revision, created_at=sys.get("createdAt"),
                 updated_at=sys.get("updatedAt"), position=position)


def _bad(number: int, position: int | None, problem: str) -> PageError:
    return PageError(f"sync page {number}, item {position}: {problem}", page=number)


def _link_id(link: Any) -> str | None:
    if isinstance(link, dict) and isinstance(link.get("sys"), dict):
        value = link["sys"].get("id")
        if is_text(value) and value:
            return str(value)
    return None


def _error_body(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    sys = data.get("sys")
    kind = sys.get("id") if isinstance(sys, dict) else None
    message = data.get("message")
    return (kind if isinstance(kind, str) else None,
            message[:300] if isinstance(message, str) else None)


def _too_big(error: SyncError) -> bool:
    """Whether the server refused a page for its size (400 BadRequest, "Response size too
    big"), which a smaller ``limit`` cures."""
    return error.status == 400 and "response size too big" in str(error).lower()


# -- asset files --------------------------------------------------------------------------------

_IMAGE_NAMES = {"width": "w", "height": "h", "format": "fm", "quality": "q"}


def asset_files(document: Mapping[str, Any], asset_base_url: str | None = None) -> list[AssetFile]:
    """The files of an asset record as stored (the CDA item): ``fields.file[locale]`` with its
    protocol-relative ``url``, ``details.size``, ``contentType`` and ``fileName``. A locale
    whose file has no URL yet (an upload still processing) has no file. Pure: no I/O."""
    sys = document.get("sys")
    asset_id = sys.get("id") if isinstance(sys, dict) else None
    fields = document.get("fields")
    per_locale = fields.get("file") if isinstance(fields, dict) else None
    if not is_text(asset_id) or not asset_id or not isinstance(per_locale, dict):
        return []
    found = []
    for locale, file in per_locale.items():
        url = file.get("url") if isinstance(file, dict) else None
        if not is_text(url) or not url:
            continue
        details = file.get("details")
        size = details.get("size") if isinstance(details, dict) else None
        kind, name = file.get("contentType"), file.get("fileName")
        found.append(asset_file(str(asset_id), str(locale), url, asset_base_url,
                                origin=absolute_url(url), size=size, content_type=kind,
                                name=name))
    return found


def image_url(url: str, params: ImageParams) -> str:
    """The Images API's transformation of an image file: ``?w=1200&fm=webp&q=80``
    (``width``/``height``/``format``/``quality`` are accepted as ``w``/``h``/``fm``/``q``)."""
    return with_image_params(url, params, _IMAGE_NAMES)
