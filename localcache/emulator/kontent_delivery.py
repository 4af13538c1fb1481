"""Kontent.ai Delivery API over an in-memory :class:`Project`, and the wire pieces it shares
with the Sync API (``kontent.py``): error bodies, filter conditions, paging parameters.

Listings (``/items``, ``/items-feed``, ``/languages``, ``/types``, ``/taxonomies``) and single
resources (``/items/{codename}``, ``/types/{codename}``, ``/taxonomies/{codename}``) serve the
project's current state, following language fallbacks. The ``items-feed`` continuation is a
token of the Sync API's kind, so its format lives in ``kontent.py`` (the two hooks below).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .faults import Faults
from .project import ITEM, LANGUAGE, TAXONOMY, TYPE, Change, Project
from .wire import Request, Response

__all__ = [
    "BAD_REQUEST",
    "FILTER_PARAM",
    "MAX_PAGE_SIZE",
    "MEDIA_TYPE",
    "NOT_FOUND",
    "TOKEN_ERROR",
    "UNAUTHORIZED",
    "Condition",
    "DeliveryAPI",
    "HttpError",
    "bad_request",
    "dump",
    "holds",
    "parse_condition",
    "parse_int",
]

MEDIA_TYPE = "application/json; charset=utf-8"
MAX_PAGE_SIZE = 2000

BAD_REQUEST, TOKEN_ERROR, UNAUTHORIZED = 105, 107, 111
NOT_FOUND = {ITEM: 100, TYPE: 101, TAXONOMY: 102, "environment": 104, "route": 109}
FILTER_PARAM = re.compile(r"^(system\.(?:type|collection))(?:\[(eq|neq|in|nin)\])?$")
_DELIVERY_PARAMS = frozenset({"language", "system.language", "limit", "skip", "depth",
                              "includeTotalCount"})
# Listings also select by id or codename: ``system.codename[in]=a,b`` fetches a batch at once.
_SELECT_PARAM = re.compile(r"^system\.(id|codename)(?:\[(eq|in)\])?$")

Condition = tuple[str, str, tuple[str, ...]]  # (property, operator, values)


class HttpError(Exception):
    """Raised inside request handling to answer with a Kontent.ai error body."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def bad_request(message: str) -> HttpError:
    return HttpError(400, BAD_REQUEST, message)


def parse_condition(name: str, value: str) -> Condition:
    """A ``system.type``/``system.collection`` filter with its operator (``=`` is ``eq``)."""
    match = FILTER_PARAM.match(name)
    if match is None:
        raise bad_request(
            f"The query parameter '{name}' is not supported. Filter by language, "
            "system.language, system.type or system.collection (operators =, [eq], "
            "[neq], [in], [nin]; language filters allow = only)."
        )
    operator = match.group(2) or "eq"
    parts = (
        tuple(part.strip() for part in value.split(","))
        if operator in ("in", "nin")
        else (value,)
    )
    if not all(parts):
        raise bad_request(f"The query parameter '{name}' needs a non-empty value.")
    return match.group(1), operator, parts


def holds(condition: Condition, change: Change) -> bool:
    prop, operator, values = condition
    actual = change.type if prop == "system.type" else change.collection
    if operator in ("eq", "in"):
        return actual in values
    return actual not in values


def parse_int(request: Request, name: str, default: int, high: int) -> int:
    value = request.param(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) > high:
        raise bad_request(f"The '{name}' parameter must be an integer from 0 to {high}.")
    return int(value)


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class DeliveryAPI:
    """The Delivery half of :class:`~localcache.emulator.kontent.KontentAPI`."""

    project: Project
    faults: Faults
    page_size: int

    @staticmethod
    def _json(body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
        return Response(200, body, [("Content-Type", MEDIA_TYPE), *(headers or [])])

    def _feed_cursor(self, raw: str) -> str:
        """The item id an ``items-feed`` continuation resumes after (HttpError 400 when it is
        not honoured)."""
        raise NotImplementedError

    def _feed_token(self, last: str) -> str:
        """An ``items-feed`` continuation resuming after item ``last``."""
        raise NotImplementedError

    def _delivery_handler(self, rest: tuple[str, ...]) -> Callable[[Request], Response] | None:
        if rest == ("items",):
            return self._items
        if rest == ("items-feed",):
            return self._items_feed
        if len(rest) == 2 and rest[0] == "items":
            return lambda request: self._item(request, rest[1])
        if rest == ("languages",):
            return lambda request: self._listing(request, LANGUAGE, "languages")
        if rest == ("types",):
            return lambda request: self._listing(request, TYPE, "types")
        if rest == ("taxonomies",):
            return lambda request: self._listing(request, TAXONOMY, "taxonomies")
        if len(rest) == 2 and rest[0] in ("types", "taxonomies"):
            kind = TYPE if rest[0] == "types" else TAXONOMY
            return lambda request: self._one(kind, rest[1])
        return None


    def _served(self, request: Request) -> tuple[str, list[tuple[str, Change]]]:
        """(language, variants) a listing serves: fallbacks resolved, then filters applied."""
        unknown = sorted(
            name
            for name in request.query
            if name not in _DELIVERY_PARAMS and FILTER_PARAM.match(name) is None
            and _SELECT_PARAM.match(name) is None
        )
        if unknown:
            raise bad_request(f"The query parameters {unknown} are not supported by the emulator.")
        project = self.project
        language = request.param("language") or project.default_language
        known = {item.codename for item in project.languages()}
        system_language = request.param("system.language")
        for name in (language, system_language):
            if name is not None and name not in known:
                raise bad_request(f"The language '{name}' does not exist.")
        conditions = [
            parse_condition(name, values[-1])
            for name, values in sorted(request.query.items())
            if FILTER_PARAM.match(name)
        ]
        selected = self._selected(request)
        served = [
            (item_id, change)
            for item_id, change in project.delivered_items(language, fallbacks=True)
            if (system_language is None or change.language == system_language)
            and all(holds(condition, change) for condition in conditions)
            and (selected is None or item_id in selected)
        ]
        return language, served

    def _selected(self, request: Request) -> set[str] | None:
        """Item ids named by ``system.id``/``system.codename`` selectors; None: all."""
        selected: set[str] | None = None
        for name, values in request.query.items():
            match = _SELECT_PARAM.match(name)
            if match is None:
                continue
            wanted = {part.strip() for part in values[-1].split(",") if part.strip()}
            if match.group(1) == "codename":
                wanted = {i for i in map(self.project.item_id, wanted) if i is not None}
            selected = wanted if selected is None else selected & wanted
        return selected

    def _items(self, request: Request) -> Response:
        language, served = self._served(request)
        skip = parse_int(request, "skip", 0, 1_000_000_000)
        limit = parse_int(request, "limit", 0, MAX_PAGE_SIZE)
        depth = parse_int(request, "depth", 1, 100)
        window = served[skip : skip + limit] if limit else served[skip:]
        more = limit > 0 and skip + limit < len(served)
        next_page = ""
        if more:
            query = {name: values[-1] for name, values in request.query.items()}
            query["skip"] = str(skip + limit)
            next_page = f"{request.base_url}{request.path}?{urlencode(query)}"
        pagination: dict[str, Any] = {"skip": skip, "limit": limit, "count": len(window)}
        pagination["next_page"] = next_page
        if (request.param("includeTotalCount") or "").lower() == "true":
            pagination["total_count"] = len(served)
        bodies = [change.body for _, change in window]
        linked = self._linked(bodies, language, depth)
        body = b'{"items":[%s],"modular_content":%s,"pagination":%s}'
        return self._json(body % (b",".join(bodies), linked, dump(pagination)))

    def _items_feed(self, request: Request) -> Response:
        for name in ("skip", "limit", "depth"):
            if name in request.query:
                raise bad_request(f"The items-feed endpoint does not support '{name}'.")
        _, served = self._served(request)
        raw = request.headers.get("x-continuation")
        start = 0
        if raw:
            cursor = self._feed_cursor(raw)
            start = next(
                (i for i, (item_id, _) in enumerate(served) if item_id > cursor), len(served)
            )
        page = served[start : start + self.page_size]
        headers = []
        if start + self.page_size < len(served):
            headers.append(("X-Continuation", self._feed_token(page[-1][0])))
        body = b'{"items":[%s],"modular_content":{}}' % b",".join(c.body for _, c in page)
        return self._json(body, headers)

    def _item(self, request: Request, codename: str) -> Response:
        unknown = sorted(set(request.query) - {"language", "system.language", "depth"})
        if unknown:
            raise bad_request(f"The query parameters {unknown} are not supported here.")
        project = self.project
        language = request.param("language") or project.default_language
        system_language = request.param("system.language")
        if language not in {item.codename for item in project.languages()}:
            raise bad_request(f"The language '{language}' does not exist.")
        depth = parse_int(request, "depth", 1, 100)
        item_id = project.item_id(codename)
        change = None if item_id is None else project.resolve(item_id, language, fallbacks=True)
        if change is None or system_language not in (None, change.language):
            message = f"The requested content item '{codename}' was not found."
            raise HttpError(404, NOT_FOUND[ITEM], message)
        linked = self._linked([change.body], language, depth)
        return self._json(b'{"item":' + change.body + b',"modular_content":' + linked + b"}")

    def _linked(self, bodies: list[bytes], language: str, depth: int) -> bytes:
        """``modular_content``: items linked from these, ``depth`` levels deep, by codename."""
        found: dict[str, bytes] = {}
        frontier = bodies
        for _ in range(depth):
            wanted: list[str] = []
            for body in frontier:
                for element in json.loads(body).get("elements", {}).values():
                    if element["type"] == "modular_content":
                        wanted.extend(element["value"])
                    elif element["type"] == "rich_text":
                        wanted.extend(element.get("modular_content", []))
            frontier = []
            for codename in dict.fromkeys(wanted):
                item_id = self.project.item_id(codename)
                if item_id is None or codename in found:
                    continue
                change = self.project.resolve(item_id, language, fallbacks=True)
                if change is not None:
                    found[codename] = change.body
                    frontier.append(change.body)
        return b"{" + b",".join(dump(name) + b":" + body for name, body in found.items()) + b"}"

    def _listing(self, request: Request, kind: str, name: str) -> Response:
        everything = [change.body for change in self.project.current(kind)]
        skip = parse_int(request, "skip", 0, 1_000_000_000)
        limit = parse_int(request, "limit", 0, MAX_PAGE_SIZE)
        window = everything[skip : skip + limit] if limit else everything[skip:]
        next_page = ""
        if limit and skip + limit < len(everything):
            next_page = f"{request.base_url}{request.path}?skip={skip + limit}&limit={limit}"
        pagination = {"skip": skip, "limit": limit, "count": len(window), "next_page": next_page}
        body = b'{"%s":[%s],"pagination":%s}'
        return self._json(body % (name.encode(), b",".join(window), dump(pagination)))

    def _one(self, kind: str, codename: str) -> Response:
        for change in self.project.current(kind):
            if json.loads(change.system)["codename"] == codename:
                return self._json(change.body)
        what = "content type" if kind == TYPE else "taxonomy group"
        raise HttpError(404, NOT_FOUND[kind], f"The requested {what} '{codename}' was not found.")

