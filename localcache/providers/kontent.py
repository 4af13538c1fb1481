"""Kontent.ai's Sync API (v2 by default, or v1) and Delivery API as normalized pages.

Neither sync version's init returns the content that already exists: a first load takes the
sync token (``POST .../sync/init`` → ``X-Continuation``) BEFORE loading every item of every
language from the Delivery API (``/languages``, then ``/items-feed`` per language, paged by the
``X-Continuation`` response header), so nothing that changes meanwhile goes unseen. The load
holds what the sync will report: a v1 sync filtered by ``language`` follows language fallbacks,
so its load does too. A refused feed continuation (400) is a refused token, like a refused sync
token: the engine rebuilds. Later syncs send the token in the ``X-Continuation`` request header:

- v2: ``GET /v2/{env}/sync`` → ``items``/``types``/``languages``/``taxonomies`` with metadata
  only; the content of changed items comes from the Delivery API, in the same page. More pages
  follow while any array holds 100 entries.
- v1 (the seeds' format): ``GET /{env}/sync`` → ``changed_item``/``deleted_item`` with their
  elements; repeat until a page is empty. Init takes the filters ``system.type``,
  ``system.collection``, ``language`` and ``system.language``.

Language variants are deltas per language, merged by the store into one record per item id
with ``fields = {element_codename: {language: element}}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..assets.model import AssetFile, ImageParams, with_image_params
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
    StoreScope,
)
from .ahead import RequestAhead, ask_ahead, parse_beside, take
from .base import check_fallbacks, listing_unavailable, require_text
from .http import HttpPolicy, HttpResponse, HttpTransport, check_base_url
from .wire import asset_file, decode_json_object, is_text

__all__ = ["Kontent", "asset_files", "image_url"]

log = logging.getLogger("localcache.kontent")

DELIVERY_URL = "https://deliver.kontent.ai"
PREVIEW_URL = "https://preview-deliver.kontent.ai"
CONTINUATION = "X-Continuation"
V2_PAGE_FULL = 100
TYPES_LIMIT = 1000  # content types per /types request
DEFAULT_LANGUAGE_ID = "00000000-0000-0000-0000-000000000000"
LANGUAGES_FRESH = 60.0
"""Seconds for which the first load reuses the languages a sync has just read."""
_LANGUAGE_FILTERS = ("language", "system.language")
_V1_FILTERS = ("system.type", "system.collection", *_LANGUAGE_FILTERS)
_OPERATORS = ("", "[eq]", "[neq]", "[in]", "[nin]")
_LOAD = "load:"  # prefix of a page token inside the first load (our own state, not the vendor's)


class Kontent:
    """A Kontent.ai environment, read through the Sync API and the Delivery API."""

    concurrent_requests = True
    """Its HTTP session takes two requests at once (the engine's content types beside the
    first page): see ``ListsContentTypes``."""

    name = "kontent"

    def __init__(
        self,
        environment_id: str,
        api_key: str | None = None,
        preview: bool = False,
        api_version: int = 2,
        base_url: str | None = None,
        *,
        filters: Mapping[str, str] | None = None,
        fallbacks: Mapping[str, str] | None = None,
        http: HttpPolicy | None = None,
        allow_insecure_http: bool = False,
        asset_base_url: str | None = None,
    ) -> None:
        require_text(environment_id, "Kontent needs an environment_id")
        self._listed: tuple[float, list[LocaleInfo] | None] | None = None
        if api_version not in (1, 2):
            raise ConfigurationError(f"api_version must be 1 or 2, not {api_version!r}")
        if preview and not api_key:
            raise ConfigurationError("Kontent preview needs an api_key (the preview key)")
        self.filters = dict(filters or {})
        for key in self.filters:
            name = key.split("[", 1)[0]
            operator = key[len(name):]
            if (api_version == 2 or name not in _V1_FILTERS or operator not in _OPERATORS
                    or (operator and name in _LANGUAGE_FILTERS)):
                raise ConfigurationError(
                    f"unsupported sync filter {key!r}: Sync API v1 takes system.type and "
                    "system.collection with =, [eq], [neq], [in] or [nin], language and "
                    "system.language with =; v2 none")
        self.fallbacks = check_fallbacks(fallbacks, "Kontent")
        self.environment_id = environment_id
        self.preview = preview
        self.api_version = api_version
        self.base_url = check_base_url(base_url or (PREVIEW_URL if preview else DELIVERY_URL),
                                       allow_insecure_http=allow_insecure_http)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = HttpTransport(headers=headers, policy=http, request_id_header="X-Request-Id")
        #: Retries and timeouts, for the asset downloads too.
        self.http_policy = self._http.policy
        #: Replaces the scheme and host of every asset file URL (docs/assets.md).
        self.asset_base_url = None if asset_base_url is None else check_base_url(
            asset_base_url, allow_insecure_http=allow_insecure_http)
        self._env = quote(environment_id, safe="")

    def __repr__(self) -> str:
        return (f"Kontent(environment_id={self.environment_id!r}, preview={self.preview!r}, "
                f"api_version={self.api_version!r}, base_url={self.base_url!r})")

    @property
    def scope(self) -> StoreScope:
        return StoreScope("kontent", self.environment_id, "preview" if self.preview else
                          "delivery")

    def close(self) -> None:
        self._http.close()

    # -- asset files (docs/assets.md) -------------------------------------------------------

    #: Kontent.ai has no asset records: asset files are named by the asset elements of items.
    asset_source = "Entry"

    def asset_files(self, document: Mapping[str, Any]) -> list[AssetFile]:
        """The files the asset elements of a stored item name (see :func:`asset_files`)."""
        return asset_files(document, self.asset_base_url)

    @staticmethod
    def image_url(url: str, params: ImageParams) -> str:
        """``url`` transformed by the image transformation API (see :func:`image_url`)."""
        return image_url(url, params)

    # -- requests ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, params: Mapping[str, str] | None = None,
              continuation: str | None = None,
              token: ContinuationToken | None = None) -> HttpResponse:
        headers = {CONTINUATION: continuation} if continuation else None
        response = self._http.request(method, f"{self.base_url}{path}", params=params,
                                      headers=headers, what=what)
        if response.status >= 300:
            raise self._error(response, what, token)
        return response

    def _error(self, response: HttpResponse, what: str,
               token: ContinuationToken | None) -> SyncError:
        message = _error_message(response.body)
        text = (f"{what} for Kontent.ai environment {self.environment_id!r} failed: "
                f"HTTP {response.status}" + (f": {message}" if message else ""))
        args: dict[str, Any] = {"status": response.status, "request_id": response.request_id}
        if response.status in (401, 403):
            return AuthenticationError(text + "; check the api_key", **args)
        if token is not None and response.status == 400:
            return TokenRejectedError(text + "; the continuation token was rejected", **args)
        return SyncError(text, **args)

    def fetch_locales(self) -> list[LocaleInfo] | None:
        """The languages from ``/languages``: the default one is Kontent.ai's default
        language id (else the first listed). Delivery lists no fallbacks: a language falls
        back to what ``fallbacks=`` names, else to the default language, as Delivery does
        for a language whose fallback nobody changed."""
        try:
            response = self._call("GET", f"/{self._env}/languages", "languages request")
        except SyncError as exc:
            if exc.status != 404:
                raise
            log.warning("%s; learning languages from the content instead", exc)
            self._listed = (time.monotonic(), None)
            return None
        languages = decode_json_object(response, what="languages response").data.get("languages")
        if not isinstance(languages, list):
            raise PageError("languages response has no 'languages' array")
        locales: list[LocaleInfo] = []
        for position, language in enumerate(languages):
            system = language.get("system") if isinstance(language, dict) else None
            code = system.get("codename") if isinstance(system, dict) else None
            if not isinstance(system, dict) or not is_text(code) or not code:
                raise PageError("languages response holds a language without a codename")
            default = system.get("id") == DEFAULT_LANGUAGE_ID or position == 0
            locales.append(LocaleInfo(code=code, name=str(system.get("name") or ""),
                                      default=default and not any(x.default for x in locales)))
        listed = self._with_fallbacks(locales)
        self._listed = (time.monotonic(), listed)
        return listed

    def _languages(self) -> list[LocaleInfo] | None:
        """The languages as :meth:`fetch_locales` read them moments ago (the engine asks at
        the start of every sync, and the first load needs them again: a round trip saved),
        else read now."""
        if self._listed is not None and time.monotonic() - self._listed[0] < LANGUAGES_FRESH:
            return self._listed[1]
        return self.fetch_locales()

    def _with_fallbacks(self, locales: list[LocaleInfo]) -> list[LocaleInfo]:
        """Each language's fallback: what ``fallbacks=`` names, else the default language."""
        default = next((loc.code for loc in locales if loc.default), None)
        listed = {loc.code for loc in locales}
        unknown = sorted({code for pair in self.fallbacks.items() for code in pair} - listed)
        if unknown:
            log.warning("fallbacks name languages %s that /languages does not list; a chain "
                        "ends at them", ", ".join(unknown))
        return [LocaleInfo(code=loc.code, name=loc.name, default=loc.default,
                           fallback=self.fallbacks.get(
                               loc.code, None if loc.default else default),
                           optional=loc.optional) for loc in locales]

    def fetch_content_types(self) -> list[ContentTypeInfo] | None:
        """Every content type from Delivery ``/types``, paged by ``skip``/``limit`` while
        ``pagination.next_page`` says more follow."""
        types: dict[str, ContentTypeInfo] = {}
        while True:
            try:
                response = self._call("GET", f"/{self._env}/types", "content types request",
                                      params={"skip": str(len(types)),
                                              "limit": str(TYPES_LIMIT)})
            except SyncError as exc:
                if not listing_unavailable(exc):
                    raise
                log.warning("%s; keeping the content types stored", exc)
                return None
            body = decode_json_object(response, what="content types response").data
            listed = body.get("types")
            if not isinstance(listed, list):
                raise PageError("content types response has no 'types' array")
            before = len(types)
            types.update((info.id, info) for info in map(_content_type, listed))
            pagination = body.get("pagination")
            following = pagination.get("next_page") if isinstance(pagination, dict) else None
            if not following or len(types) == before:
                return list(types.values())

    def pages(self, token: ContinuationToken | None) -> Iterator[Page]:
        if token is None:
            init = self._call("POST", self._sync_path("/sync/init"), "sync init",
                              params=self.filters or None)
            sync_token = init.headers.get(CONTINUATION)
            if not sync_token:
                raise PageError("sync init answered without an X-Continuation header")
            yield from self._load(sync_token, 0, None, 0)
        elif token.value.startswith(_LOAD):
            state = json.loads(token.value[len(_LOAD):])
            yield from self._load(state["sync"], state["lang"], state["feed"], 0)
        else:
            yield from self._deltas(token)

    def _sync_path(self, suffix: str) -> str:
        prefix = "/v2" if self.api_version == 2 else ""
        return f"{prefix}/{self._env}{suffix}"

    # -- the first load: every item of every language, from the Delivery API ----------------

    def _load(self, sync_token: str, language: int, feed: str | None,
              number: int) -> Iterator[Page]:
        passes = self._feed_passes()
        ahead: RequestAhead[HttpResponse] | None = None  # the pass's next page, asked early
        while True:
            number += 1
            if language >= len(passes):
                yield Page(number=number, deltas=[],
                           next_token=ContinuationToken(sync_token, "sync"))
                return
            what = f"items feed page {number}"
            params = {**self._content_filters(), **passes[language]}
            response = take(ahead, feed, partial(self._feed_page, params, feed, what))
            following = response.headers.get(CONTINUATION) or None
            # While the pass goes on, its next page is asked for as this one is parsed
            # (providers/ahead.py).
            ahead = ask_ahead(partial(response.headers.get, CONTINUATION), partial(
                self._feed_page, params, what=f"items feed page {number + 1}"))
            deltas = parse_beside(ahead, partial(_feed_deltas, response, what, number))
            feed = following
            if feed is None:
                language += 1
            if language >= len(passes):
                yield Page(number=number, deltas=deltas,
                           next_token=ContinuationToken(sync_token, "sync"))
                return
            state = {"sync": sync_token, "lang": language, "feed": feed}
            yield Page(number=number, deltas=deltas,
                       next_token=ContinuationToken(_LOAD + json.dumps(state), "page"))

    def _feed_page(self, params: dict[str, str], feed: str | None, what: str) -> HttpResponse:
        # A refused continuation of the feed is a refused token: the engine starts over.
        return self._call("GET", f"/{self._env}/items-feed", what, params=params,
                          continuation=feed,
                          token=ContinuationToken(feed, "page") if feed else None)

    def _feed_passes(self) -> list[dict[str, str]]:
        """The language parameters of each ``items-feed`` pass: the load holds what the sync
        will report. A sync filtered by ``language`` follows fallbacks, so its feed does too
        (``language`` alone); ``system.language`` ignores them. Unfiltered: every language on
        its own, or one pass in whatever languages the feed serves when none are listed."""
        chosen = {name: value for name, value in self.filters.items() if name in _LANGUAGE_FILTERS}
        if chosen:
            # Without ``language``, Delivery would serve the default language's variants.
            chosen["language"] = chosen.get("language") or chosen["system.language"]
            return [chosen]
        listed = self._languages()
        if listed is None:
            return [{}]
        return [{"language": loc.code, "system.language": loc.code} for loc in listed]

    def _content_filters(self) -> dict[str, str]:
        return {key: value for key, value in self.filters.items()
                if key.split("[", 1)[0] in ("system.type", "system.collection")}

    # -- deltas ------------------------------------------------------------------------------

    def _deltas(self, token: ContinuationToken) -> Iterator[Page]:
        number = 0
        current: ContinuationToken = token
        while True:
            number += 1
            what = f"sync page {number}"
            response = self._call("GET", self._sync_path("/sync"), what,
                                  continuation=current.value, token=current)
            body = decode_json_object(response, what=what, page=number).data
            following = response.headers.get(CONTINUATION) or current.value
            changed: list[ContentTypeInfo] = []
            deleted: list[str] = []
            if self.api_version == 1:
                deltas, more = self._v1_page(body, number)
            else:
                deltas, more = self._v2_page(body, number, current)
                changed, deleted = self._type_changes(body["types"], number)
            current = ContinuationToken(following, "page" if more else "sync")
            yield Page(number=number, deltas=deltas, next_token=current,
                       content_types=changed, deleted_content_types=deleted)
            if not more:
                return

    def _v1_page(self, body: dict[str, Any], number: int) -> tuple[list[Delta], bool]:
        items = body.get("items")
        if not isinstance(items, list):
            raise PageError(f"sync page {number} has no 'items' array", page=number)
        deltas = []
        for position, entry in enumerate(items):
            change = entry.get("change_type") if isinstance(entry, dict) else None
            data = entry.get("data") if isinstance(entry, dict) else None
            if change not in ("changed_item", "deleted_item") or not isinstance(data, dict):
                raise PageError(f"sync page {number}, item {position}: not a changed_item or "
                                "deleted_item with data", page=number)
            deltas.append(_variant(data, number, position, deleted=change == "deleted_item"))
        return deltas, bool(items)

    def _v2_page(self, body: dict[str, Any], number: int,
                 token: ContinuationToken) -> tuple[list[Delta], bool]:
        arrays = {}
        for name in ("items", "types", "languages", "taxonomies"):
            value = body.get(name, [])
            if not isinstance(value, list):
                raise PageError(f"sync page {number}: '{name}' is not an array", page=number)
            arrays[name] = value
        systems: list[tuple[str, dict[str, Any]]] = []
        for position, entry in enumerate(arrays["items"]):
            change = entry.get("change_type") if isinstance(entry, dict) else None
            data = entry.get("data") if isinstance(entry, dict) else None
            system = data.get("system") if isinstance(data, dict) else None
            if change not in ("changed", "deleted") or not isinstance(system, dict):
                raise PageError(f"sync page {number}, item {position}: not a changed or "
                                "deleted item with a system block", page=number)
            systems.append((change, system))
        content = self._fetch_changed([s for c, s in systems if c == "changed"], number)
        deltas = []
        for position, (change, system) in enumerate(systems):
            fetched = content.get((system.get("codename"), system.get("language")))
            if change == "changed" and fetched is not None:
                deltas.append(_variant(fetched, number, position))
            else:  # deleted, or changed and already gone again from the Delivery API
                deltas.append(_variant({"system": system}, number, position, deleted=True))
        return deltas, any(len(a) >= V2_PAGE_FULL for a in arrays.values())

    def _type_changes(self, entries: list[Any],
                      number: int) -> tuple[list[ContentTypeInfo], list[str]]:
        """v2's ``types`` array: the definitions of changed types (from Delivery
        ``/types/{codename}``, in the page, so they commit with its token) and the codenames
        of deleted ones. A changed type already gone from Delivery counts as deleted."""
        changed: list[ContentTypeInfo] = []
        deleted: list[str] = []
        for position, entry in enumerate(entries):
            change = entry.get("change_type") if isinstance(entry, dict) else None
            data = entry.get("data") if isinstance(entry, dict) else None
            system = data.get("system") if isinstance(data, dict) else None
            codename = system.get("codename") if isinstance(system, dict) else None
            if change not in ("changed", "deleted") or not is_text(codename) or not codename:
                raise PageError(f"sync page {number}, type {position}: not a changed or "
                                "deleted type with a system.codename", page=number)
            found = self._fetch_type(codename, number) if change == "changed" else None
            if found is None:
                deleted.append(codename)
            else:
                changed.append(found)
        return changed, deleted

    def _fetch_type(self, codename: str, number: int) -> ContentTypeInfo | None:
        what = f"content type {codename!r} of sync page {number}"
        try:
            response = self._call("GET", f"/{self._env}/types/{quote(codename, safe='')}", what)
        except SyncError as exc:
            if exc.status != 404:
                raise
            return None
        return _content_type(decode_json_object(response, what=what, page=number).data)

    def _fetch_changed(self, systems: list[dict[str, Any]],
                       number: int) -> dict[tuple[Any, Any], dict[str, Any]]:
        """The changed variants' content from the Delivery API: one request per language
        (``system.codename[in]``), keyed by (codename, language)."""
        by_language: dict[str, list[str]] = {}
        for system in systems:
            codename, language = system.get("codename"), system.get("language")
            if not is_text(codename) or not is_text(language) or not codename or not language:
                raise PageError(f"sync page {number}: a changed item lacks codename or "
                                "language", page=number)
            by_language.setdefault(language, []).append(codename)
        found: dict[tuple[Any, Any], dict[str, Any]] = {}
        for language, codenames in by_language.items():
            what = f"changed items of sync page {number} ({language})"
            response = self._call("GET", f"/{self._env}/items", what, params={
                "system.codename[in]": ",".join(dict.fromkeys(codenames)), "language": language,
                "system.language": language, "depth": "0"})
            items = decode_json_object(response, what=what, page=number).data.get("items")
            if not isinstance(items, list):
                raise PageError(f"{what}: no 'items' array", page=number)
            for item in items:
                meta = item.get("system") if isinstance(item, dict) else None
                if isinstance(meta, dict):
                    found[(meta.get("codename"), meta.get("language"))] = item
        return found


def _content_type(item: Any) -> ContentTypeInfo:
    """A Delivery content type: ``system.codename``/``name`` and ``elements`` {codename:
    {type, name}}. Kontent.ai has no per-element localization flag: every element is
    localized. The display field is the text element ``title`` when there is one, else the
    first text element (an item's own name is ``system.name``, outside the elements)."""
    system = item.get("system") if isinstance(item, dict) else None
    codename = system.get("codename") if isinstance(system, dict) else None
    if not isinstance(system, dict) or not is_text(codename) or not codename:
        raise PageError("content types response holds a type without system.codename")
    elements = item.get("elements", {})
    if not isinstance(elements, dict) or not all(isinstance(e, dict) for e in elements.values()):
        raise PageError(f"content type {codename!r} has elements that are not objects")
    fields = tuple(FieldInfo(id=name, name=str(element.get("name") or ""),
                             type=str(element.get("type") or ""))
                   for name, element in elements.items())
    texts = [f.id for f in fields if f.type == "text"]
    modified = system.get("last_modified")
    return ContentTypeInfo(
        id=codename, name=str(system.get("name") or ""),
        display_field="title" if "title" in texts else (texts[0] if texts else None),
        fields=fields, updated_at=modified if is_text(modified) else None, raw=item)


def _feed_deltas(response: HttpResponse, what: str, number: int) -> list[Delta]:
    """One items-feed page's variants. Filed under each variant's own language, as the sync
    reports it: with the ``language`` filter, a variant served by fallback is the fallback
    language's."""
    body = decode_json_object(response, what=what, page=number).data
    items = body.get("items")
    if not isinstance(items, list):
        raise PageError(f"items feed page {number} has no 'items' array", page=number)
    return [_variant(item, number, position) for position, item in enumerate(items)]


def _variant(item: Any, number: int, position: int, *, deleted: bool = False) -> Delta:
    """One language variant as a per-locale delta, filed under ``system.language``."""
    where = f"sync page {number}, item {position}"
    system = item.get("system") if isinstance(item, dict) else None
    if not isinstance(system, dict):
        raise PageError(f"{where}: item has no 'system' block", page=number)
    item_id, code = system.get("id"), system.get("language")
    item_type, modified = system.get("type"), system.get("last_modified")
    for name, value in (("id", item_id), ("language", code), ("type", item_type)):
        if not is_text(value) or not value:
            raise PageError(f"{where}: system.{name} is missing", page=number)
    item_id, code, item_type = str(item_id), str(code), str(item_type)
    if modified is not None and not is_text(modified):
        raise PageError(f"{where}: system.last_modified is not a string", page=number)
    if deleted:
        return Delta("Entry", item_id, True, content_type=item_type, locale=code)
    elements = item.get("elements", {})
    if not isinstance(elements, dict):
        raise PageError(f"{where}: elements is not an object", page=number)
    return Delta("Entry", item_id, False, document={"fields": elements, "vendor": item},
                 content_type=item_type, revision=0, created_at=modified, updated_at=modified,
                 locale=code)


def _error_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    message = data.get("message") if isinstance(data, dict) else None
    return message[:300] if isinstance(message, str) else None


# -- asset files --------------------------------------------------------------------------------

_IMAGE_NAMES = {"width": "w", "height": "h", "format": "fm", "quality": "q"}


def asset_id_of(url: str) -> str:
    """The asset id in a Kontent.ai asset URL (``/{environment}/{asset id}/{file name}``);
    for a URL of another shape, a stable id made from it."""
    segments = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    if len(segments) >= 3 and segments[-2]:
        return segments[-2]
    return "url-" + hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def asset_files(document: Mapping[str, Any], asset_base_url: str | None = None) -> list[AssetFile]:
    """The files named by the asset elements of a stored item, in any language: each value's
    ``url``, ``size``, ``type`` and ``name``. The binary of an asset is the same in every
    language, so each asset is one file (``locale`` None), named once. Pure: no I/O."""
    fields = document.get("fields")
    if not isinstance(fields, dict):
        return []
    found: dict[str, AssetFile] = {}
    for by_language in fields.values():
        if not isinstance(by_language, dict):
            continue
        for element in by_language.values():
            if not isinstance(element, dict) or element.get("type") != "asset" \
                    or not isinstance(element.get("value"), list):
                continue
            for value in element["value"]:
                url = value.get("url") if isinstance(value, dict) else None
                if not is_text(url) or not url:
                    continue
                asset_id = asset_id_of(url)
                size, kind, name = value.get("size"), value.get("type"), value.get("name")
                found.setdefault(asset_id, asset_file(
                    asset_id, None, url, asset_base_url, origin=url, size=size,
                    content_type=kind, name=name))
    return list(found.values())


def image_url(url: str, params: ImageParams) -> str:
    """The image transformation API's version of an image asset: ``?w=1200&fm=webp&q=80``
    (``width``/``height``/``format``/``quality`` are accepted as ``w``/``h``/``fm``/``q``)."""
    return with_image_params(url, params, _IMAGE_NAMES)
