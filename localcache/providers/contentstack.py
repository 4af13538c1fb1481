"""Contentstack's Synchronization API (Content Delivery API) as normalized pages.

Wire format (PROTOCOLS.md, seeds): ``GET {base}/v3/stacks/sync`` with headers ``api_key`` and
``access_token`` (a delivery token) and optional ``branch``; query ``environment``; exactly one
of ``init=true`` (with the init-only filters ``content_type_uid``, ``locale``, ``start_from``,
``type``), ``pagination_token`` (more pages of this sync) or ``sync_token`` (a later sync).

A published item carries ONE locale of a record, so deltas are per locale and the store merges
them into the record's all-locale fields (store/merge.py). That locale is where the item is
published (``publish_details.locale``): a locale published by fallback carries the content of
another language, named by ``data.locale``. Assets arrive as ``sys_assets``;
``content_type_deleted`` removes every entry of the type. An invalid token is HTTP 422 with
error code 141, which triggers the engine's rebuild.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

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
    RecordType,
    StoreScope,
)
from .ahead import RequestAhead, ask_ahead, guess_string, parse_beside, settle, take
from .base import check_fallbacks, listing_unavailable, require_text
from .http import HttpPolicy, HttpResponse, HttpTransport, check_base_url
from .wire import asset_file, decode_json_object, is_text

__all__ = ["REGIONS", "Contentstack", "asset_files", "image_url"]

log = logging.getLogger("localcache.contentstack")

REGIONS = {
    "na": "https://cdn.contentstack.io",
    "us": "https://cdn.contentstack.io",
    "eu": "https://eu-cdn.contentstack.com",
    "azure-na": "https://azure-na-cdn.contentstack.com",
    "azure-eu": "https://azure-eu-cdn.contentstack.com",
    "gcp-na": "https://gcp-na-cdn.contentstack.com",
    "gcp-eu": "https://gcp-eu-cdn.contentstack.com",
}
ITEM_TYPES = ("entry_published", "entry_unpublished", "entry_deleted", "asset_published",
              "asset_unpublished", "asset_deleted", "content_type_deleted")
ASSETS = "sys_assets"
# Keys of a published item's data that describe the record rather than hold its content.
SYSTEM_KEYS = frozenset({"uid", "locale", "_version", "publish_details", "created_at",
                         "updated_at", "created_by", "updated_by", "ACL", "_in_progress",
                         "_rules", "_metadata"})
TOKEN_REJECTED = 141
CONTENT_TYPES_LIMIT = 100  # the most a CDA content types request returns


class Contentstack:
    """A Contentstack stack's environment (and branch), read through the Sync API."""

    concurrent_requests = True
    """Its HTTP session takes two requests at once (the engine's content types beside the
    first page): see ``ListsContentTypes``."""

    name = "contentstack"

    def __init__(
        self,
        api_key: str,
        delivery_token: str,
        environment: str,
        region: str | None = None,
        base_url: str | None = None,
        branch: str | None = None,
        *,
        content_type_uid: str | None = None,
        locale: str | None = None,
        start_from: str | None = None,
        sync_type: str | None = None,
        default_locale: str = "en-us",
        fallbacks: Mapping[str, str] | None = None,
        http: HttpPolicy | None = None,
        allow_insecure_http: bool = False,
        asset_base_url: str | None = None,
    ) -> None:
        require_text(api_key, "Contentstack needs an api_key")
        require_text(delivery_token, f"Contentstack stack {api_key!r} needs a delivery_token")
        require_text(environment, "Contentstack needs an environment")
        if region is not None and base_url is not None:
            raise ConfigurationError("pass region or base_url, not both")
        if region is not None and region.lower() not in REGIONS:
            raise ConfigurationError(
                f"unknown Contentstack region {region!r}; one of {', '.join(REGIONS)}")
        if sync_type is not None:
            unknown = [t for t in sync_type.split(",") if t.strip() not in ITEM_TYPES]
            if unknown:
                raise ConfigurationError(f"unknown sync type(s) {', '.join(unknown)}")
        self.api_key = api_key
        self.environment = environment
        self.branch = branch
        self.default_locale = default_locale
        self.fallbacks = check_fallbacks(fallbacks, "Contentstack")
        self._filters = {key: value for key, value in (
            ("content_type_uid", content_type_uid), ("locale", locale),
            ("start_from", start_from), ("type", sync_type)) if value}
        self.base_url = check_base_url(base_url or REGIONS[(region or "na").lower()],
                                       allow_insecure_http=allow_insecure_http)
        headers = {"api_key": api_key, "access_token": delivery_token}
        if branch:
            headers["branch"] = branch
        self._http = HttpTransport(headers=headers, policy=http,
                                   request_id_header="X-Request-Id")
        #: Retries and timeouts, for the asset downloads too.
        self.http_policy = self._http.policy
        #: Replaces the scheme and host of every asset file URL (docs/assets.md).
        self.asset_base_url = None if asset_base_url is None else check_base_url(
            asset_base_url, allow_insecure_http=allow_insecure_http)

    def __repr__(self) -> str:
        return (f"Contentstack(api_key={self.api_key!r}, environment={self.environment!r}, "
                f"branch={self.branch!r}, base_url={self.base_url!r})")

    @property
    def scope(self) -> StoreScope:
        environment = self.environment if not self.branch else f"{self.environment}.{self.branch}"
        return StoreScope("contentstack", self.api_key, environment)

    def close(self) -> None:
        self._http.close()

    # -- asset files (docs/assets.md) -------------------------------------------------------

    #: Asset files are described by asset records (``sys_assets``).
    asset_source = "Asset"

    def asset_files(self, document: Mapping[str, Any]) -> list[AssetFile]:
        """The files of a stored asset record, one per published locale (see
        :func:`asset_files`)."""
        return asset_files(document, self.asset_base_url)

    @staticmethod
    def image_url(url: str, params: ImageParams) -> str:
        """``url`` transformed by the Image Delivery API (see :func:`image_url`)."""
        return image_url(url, params)

    def fetch_locales(self) -> list[LocaleInfo] | None:
        # The CDA lists no languages (only the Management API does, with fallback_locale):
        # the store learns the codes items carry, with the fallbacks the app passed.
        return None

    def locale_fallbacks(self) -> dict[str, str]:
        """Locale code -> the code it falls back to, as the app passed them (``fallbacks=``);
        the engine stores them with the codes it learns from the items."""
        return dict(self.fallbacks)

    def fetch_content_types(self) -> list[ContentTypeInfo] | None:
        """Every content type, through the CDA's ``GET /v3/content_types``, paged by
        ``skip``/``limit`` with ``include_count``."""
        types: dict[str, ContentTypeInfo] = {}
        while True:
            what = "content types request"
            response = self._http.request(
                "GET", f"{self.base_url}/v3/content_types", what=what,
                params={"environment": self.environment, "include_count": "true",
                        "skip": str(len(types)), "limit": str(CONTENT_TYPES_LIMIT)})
            if response.status >= 300:
                error = self._error(response, what, None)
                if not listing_unavailable(error):
                    raise error
                log.warning("%s; keeping the content types stored", error)
                return None
            found, count = parse_content_types(response)
            before = len(types)
            types.update((info.id, info) for info in found)
            if len(types) == before or len(found) < CONTENT_TYPES_LIMIT or (
                    count is not None and len(types) >= count):
                return list(types.values())

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        number = 0
        ahead: RequestAhead[HttpResponse] | None = None  # the next page, asked for early
        while True:
            number += 1
            params = {"environment": self.environment}
            if token is None:
                params.update({"init": "true", **self._filters})
            elif token.kind == "page":
                params["pagination_token"] = token.value
            else:
                params["sync_token"] = token.value
            what = f"sync page {number}"
            response = take(ahead, token.value if token and token.kind == "page" else None,
                            partial(self._get_sync, params, what))
            ahead = None
            if response.status >= 300:
                raise self._error(response, what, token)
            # Parsing this page overlaps the next one's round trip (providers/ahead.py).
            ahead = ask_ahead(partial(guess_string, response.body, "pagination_token"),
                              partial(self._sync_page, number + 1))
            page = parse_beside(ahead, partial(self.parse_page, response, number))
            yield page
            if page.last:
                settle(ahead)  # a guess from a key inside the content
                return
            token = page.next_token

    def _sync_page(self, number: int, pagination_token: str) -> HttpResponse:
        """Page ``number``'s request, for ``pagination_token``, sent ahead."""
        return self._get_sync({"environment": self.environment,
                               "pagination_token": pagination_token}, f"sync page {number}")

    def _get_sync(self, params: dict[str, str], what: str) -> HttpResponse:
        return self._http.request("GET", f"{self.base_url}/v3/stacks/sync", params=params,
                                  what=what)

    def _error(self, response: HttpResponse, what: str,
               token: ContinuationToken | None) -> SyncError:
        code, message = _error_body(response.body)
        text = (f"{what} for stack {self.api_key!r}, environment {self.environment!r} failed: "
                f"HTTP {response.status}")
        text += f" (error {code})" if code is not None else ""
        text += f": {message}" if message else ""
        args: dict[str, Any] = {"status": response.status, "request_id": response.request_id}
        if response.status in (401, 403, 412) or code in (104, 105, 109):
            return AuthenticationError(text + "; check the api_key and delivery token", **args)
        if token is not None and (code == TOKEN_REJECTED or response.status == 422):
            return TokenRejectedError(text + "; the sync token was rejected", **args)
        return SyncError(text, **args)

    def parse_page(self, response: HttpResponse, number: int) -> Page:
        return parse_sync_page(response, number, self.default_locale)


def parse_sync_page(response: HttpResponse, number: int, default_locale: str = "en-us") -> Page:
    """Validate a whole sync response before any of it is applied."""
    body = decode_json_object(response, what=f"sync page {number}", page=number).data
    items = body.get("items")
    if not isinstance(items, list):
        raise PageError(f"sync page {number} has no 'items' array", page=number)
    pagination, sync = body.get("pagination_token"), body.get("sync_token")
    if (pagination is None) == (sync is None):
        raise PageError(f"sync page {number} must carry exactly one of pagination_token "
                        "and sync_token", page=number)
    value = pagination if pagination is not None else sync
    if not is_text(value) or not value:
        raise PageError(f"sync page {number}: the next token is not a string", page=number)
    total = body.get("total_count")
    deltas: list[Delta] = []
    skipped = 0
    for position, item in enumerate(items):
        delta = _parse_item(item, number, position, default_locale)
        if delta is None:
            skipped += 1
        else:
            deltas.append(delta)
    return Page(number=number, deltas=deltas,
                next_token=ContinuationToken(value, "page" if pagination else "sync"),
                total=total if isinstance(total, int) and total >= 0 else None,
                skipped=skipped)


def _parse_item(item: Any, number: int, position: int, default_locale: str) -> Delta | None:
    where = f"sync page {number}, item {position}"
    if not isinstance(item, dict):
        raise PageError(f"{where}: item is not an object", page=number)
    kind, content_type, data = item.get("type"), item.get("content_type_uid"), item.get("data")
    if not isinstance(kind, str):
        raise PageError(f"{where}: item has no 'type'", page=number)
    if kind not in ITEM_TYPES:
        log.warning("%s: skipping item of unknown type %r", where, kind)
        return None
    if not isinstance(data, dict):
        raise PageError(f"{where}: {kind} has no 'data' object", page=number)
    if kind == "content_type_deleted":
        if not is_text(content_type) or not content_type:
            raise PageError(f"{where}: content_type_deleted names no content_type_uid",
                            page=number)
        event_at = item.get("event_at")
        return Delta("Entry", "", True, content_type=content_type, whole_type=True,
                     updated_at=event_at if is_text(event_at) else None)
    record_type: RecordType = "Asset" if kind.startswith("asset_") else "Entry"
    if record_type == "Entry" and (not is_text(content_type) or not content_type):
        raise PageError(f"{where}: {kind} has no content_type_uid", page=number)
    uid = data.get("uid")
    if not is_text(uid) or not uid:
        raise PageError(f"{where}: {kind} has no data.uid", page=number)
    details = data.get("publish_details")
    locale = _item_locale(kind, data.get("locale"), details)
    ct = content_type if record_type == "Entry" else None
    if locale is None and not kind.endswith("_published"):
        return Delta(record_type, uid, True, content_type=ct)  # no locale named: all of it
    if locale is None:
        locale = default_locale  # a published item that names no locale: the master locale
    if not is_text(locale) or not locale:
        raise PageError(f"{where}: {kind} {uid!r} has a bad locale", page=number)
    if not kind.endswith("_published"):
        return Delta(record_type, uid, True, content_type=ct, locale=locale)
    version = data.get("_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63:
        raise PageError(f"{where}: {kind} {uid!r} has a bad _version", page=number)
    updated = data.get("updated_at") or (details or {}).get("time") or item.get("event_at")
    created = data.get("created_at") or updated
    for stamp in (created, updated):
        if stamp is not None and not is_text(stamp):
            raise PageError(f"{where}: {kind} {uid!r} has a bad timestamp", page=number)
    fields = {key: value for key, value in data.items() if key not in SYSTEM_KEYS}
    return Delta(record_type, uid, False, document={"fields": fields, "vendor": data},
                 content_type=ct, revision=version, created_at=created, updated_at=updated,
                 locale=locale)


def parse_content_types(response: HttpResponse) -> tuple[list[ContentTypeInfo], int | None]:
    """One CDA content types page: its definitions, and ``count`` when included."""
    body = decode_json_object(response, what="content types response").data
    items, count = body.get("content_types"), body.get("count")
    if not isinstance(items, list):
        raise PageError("content types response has no 'content_types' array",
                        status=response.status)
    return ([_content_type(item) for item in items],
            count if isinstance(count, int) and not isinstance(count, bool) else None)


def _content_type(item: Any) -> ContentTypeInfo:
    """A CDA content type: ``uid``, ``title``, ``schema[]`` (uid, display_name, data_type,
    mandatory, non_localizable). The display field is the title field ``options.title``
    names, else the ``title`` field every Contentstack entry has."""
    uid = item.get("uid") if isinstance(item, dict) else None
    if not is_text(uid) or not uid:
        raise PageError("content types response holds a content type without a 'uid'")
    schema = item.get("schema", [])
    if not isinstance(schema, list) or not all(
            isinstance(f, dict) and is_text(f.get("uid")) and f.get("uid") for f in schema):
        raise PageError(f"content type {uid!r} has a schema field without a 'uid'")
    fields = tuple(FieldInfo(id=f["uid"], name=str(f.get("display_name") or ""),
                             type=str(f.get("data_type") or ""),
                             localized=not f.get("non_localizable", False),
                             required=bool(f.get("mandatory", False))) for f in schema)
    options = item.get("options")
    title = options.get("title") if isinstance(options, dict) else None
    ids = [f.id for f in fields]
    display = title if is_text(title) and title in ids else ("title" if "title" in ids else None)
    updated = item.get("updated_at")
    return ContentTypeInfo(id=uid, name=str(item.get("title") or ""), display_field=display,
                           fields=fields, updated_at=updated if is_text(updated) else None,
                           raw=item)


def _item_locale(kind: str, content_locale: Any, details: Any) -> Any:
    """The locale an item concerns. A published item is filed where it is published
    (``publish_details.locale``), not under the language of its content (``data.locale``):
    the two differ when a locale is published by fallback, and Contentstack's DataSync files
    it the same way. Unpublish and delete items name only ``data.locale``."""
    published = details.get("locale") if isinstance(details, dict) else None
    if kind.endswith("_published") and published is not None:
        return published
    return content_locale if content_locale is not None else published


def _error_body(body: bytes) -> tuple[int | None, str | None]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    code, message = data.get("error_code"), data.get("error_message")
    return (code if isinstance(code, int) else None,
            message[:300] if isinstance(message, str) else None)


# -- asset files --------------------------------------------------------------------------------

_IMAGE_NAMES = {"w": "width", "h": "height", "fm": "format", "q": "quality"}


def asset_files(document: Mapping[str, Any], asset_base_url: str | None = None) -> list[AssetFile]:
    """The files of an asset record as the store merged it: per published locale, the
    asset's ``url``, ``file_size`` (a string, as the CDA sends it), ``content_type`` and
    ``filename``. Pure: no I/O."""
    sys = document.get("sys")
    asset_id = sys.get("id") if isinstance(sys, dict) else None
    fields = document.get("fields")
    if not is_text(asset_id) or not asset_id or not isinstance(fields, dict):
        return []
    urls = fields.get("url")
    if not isinstance(urls, dict):
        return []

    def of(name: str, locale: str) -> Any:
        values = fields.get(name)
        return values.get(locale) if isinstance(values, dict) else None

    found = []
    for locale, url in urls.items():
        if not is_text(url) or not url:
            continue
        size = of("file_size", locale)
        if is_text(size) and size.isdigit():
            size = int(size)
        kind, name = of("content_type", locale), of("filename", locale)
        found.append(asset_file(str(asset_id), str(locale), url, asset_base_url,
                                origin=absolute_url(url), size=size, content_type=kind,
                                name=name))
    return found


def image_url(url: str, params: ImageParams) -> str:
    """The Image Delivery API's transformation: ``?width=1200&format=webp&quality=80``
    (``w``/``h``/``fm``/``q`` are accepted for ``width``/``height``/``format``/``quality``)."""
    return with_image_params(url, params, _IMAGE_NAMES)
