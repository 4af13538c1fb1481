"""Decoding a response body into JSON, with the checks every vendor's pages need.

The one place where ``json`` errors become :class:`~localcache.errors.PageError`: a body that is
not JSON, not declared as JSON, nested absurdly deep, or not an object.

A page is decoded member by member, and its arrays element by element (:func:`loads_yielding`):
``json.loads`` of a whole 1.5 MB page is one C call that holds the GIL for 18 ms or more, and the
page is decoded on the prefetch thread while a UI thread waits for the GIL. Between two items the
interpreter hands the GIL over, so a UI keeps its frame rate while a sync runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from json.decoder import scanstring as _scanstring  # type: ignore[attr-defined]
from typing import Any

from ..assets.model import AssetFile, rebase_url
from ..errors import PageError
from .http import HttpResponse

__all__ = ["JsonBody", "asset_file", "decode_json_object", "is_text", "loads_yielding"]


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A decoded body: the object, and the text it came from (handed on to SQLite)."""

    data: dict[str, Any]
    text: str


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)
_SPACE = re.compile(r"[ \t\n\r]*")
scanstring: Callable[[str, int], tuple[str, int]] = _scanstring  # json's C string reader


def _skip(text: str, at: int) -> int:
    """The index of the first non-blank character from ``at`` (JSON's four blanks)."""
    found = _SPACE.match(text, at)
    return found.end() if found is not None else at


def loads_yielding(text: str) -> Any:
    """``json.loads(text)`` with the same strictness (no NaN, no numbers beyond a double), but a
    top-level object is read one member at a time, and a member that is an array one element at
    a time, so the GIL can change hands between them. Raises ValueError as ``json`` does."""
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return _DECODER.decode(text)
    try:
        result: dict[str, Any] = {}
        at = _skip(text, at + 1)
        if text[at] == "}":
            at += 1
        else:
            while True:
                if text[at] != '"':
                    raise ValueError(f"expecting a property name at char {at}")
                key, at = scanstring(text, at + 1)
                at = _skip(text, at)
                if text[at] != ":":
                    raise ValueError(f"expecting ':' at char {at}")
                at = _skip(text, at + 1)
                value: Any
                if text[at] == "[":
                    value, at = _array(text, at + 1)
                else:
                    value, at = _DECODER.raw_decode(text, at)
                result[key] = value  # a repeated key: the last wins, as with json.loads
                at = _skip(text, at)
                at += 1
                if text[at - 1] == "}":
                    break
                if text[at - 1] != ",":
                    raise ValueError(f"expecting ',' or '}}' at char {at - 1}")
                at = _skip(text, at)
    except IndexError:
        raise ValueError("unexpected end of the JSON text") from None
    if _skip(text, at) != len(text):
        raise ValueError(f"extra data at char {at}")
    return result


def _array(text: str, at: int) -> tuple[list[Any], int]:
    """The array whose ``[`` ends just before ``at``, element by element; and where it ends."""
    items: list[Any] = []
    at = _skip(text, at)
    if text[at] == "]":
        return items, at + 1
    while True:
        item, at = _DECODER.raw_decode(text, at)
        items.append(item)
        at = _skip(text, at) + 1
        if text[at - 1] == "]":
            return items, at
        if text[at - 1] != ",":
            raise ValueError(f"expecting ',' or ']' at char {at - 1}")
        at = _skip(text, at)


def decode_json_object(
    response: HttpResponse, *, what: str, page: int | None = None
) -> JsonBody:
    """The body as a JSON object, or a PageError naming ``what`` and the problem.

    Strict: UTF-8 only (what the vendors send), and no NaN/Infinity or numbers beyond a double
    (``1e400``), which Python's parser would accept but JSON, and an export of them, cannot hold.
    """
    content_type = response.headers.get("Content-Type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and not (media.endswith("/json") or media.endswith("+json")):
        raise PageError(f"{what}: expected JSON but the server sent {media!r}",
                        page=page, status=response.status, request_id=response.request_id)
    try:
        text = response.body.decode("utf-8")
        data = loads_yielding(text)
    except RecursionError:
        # json's C decoder guards its own recursion: a hostile body cannot exhaust the stack.
        raise PageError(f"{what}: JSON nested absurdly deep", page=page,
                        status=response.status, request_id=response.request_id) from None
    except ValueError as exc:
        raise PageError(f"{what}: body is not valid JSON ({_short(exc)})",
                        page=page, status=response.status,
                        request_id=response.request_id) from None
    if not isinstance(data, dict):
        raise PageError(f"{what}: body is a JSON {type(data).__name__}, not an object",
                        page=page, status=response.status, request_id=response.request_id)
    return JsonBody(data, text)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def is_text(value: Any) -> bool:
    """A string SQLite stores and returns intact: UTF-8 (JSON allows lone surrogate escapes,
    UTF-8 does not) and no NUL (SQLite's text functions stop at one)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    if value.isascii():  # the common case, and ASCII holds no surrogates
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def asset_file(asset_id: str, locale: str | None, url: str, asset_base_url: str | None, *,
               origin: str, size: Any, content_type: Any, name: Any) -> AssetFile:
    """One file of an asset as a provider read it: the record's size, media type and file
    name kept only where they are what they claim (a whole number, text), else left out."""
    return AssetFile(
        asset_id=asset_id, locale=locale, url=rebase_url(url, asset_base_url), origin=origin,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0
        else None,
        content_type=content_type if is_text(content_type) and content_type else None,
        name=name if is_text(name) else "")
