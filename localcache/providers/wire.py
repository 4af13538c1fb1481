"""Decoding a response body into JSON, with the checks every vendor's pages need.

The one place where ``json`` errors become :class:`~localcache.errors.PageError`: a body that is
not JSON, not declared as JSON, nested absurdly deep, or not an object.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import PageError
from .http import HttpResponse

__all__ = ["JsonBody", "decode_json_object", "is_text"]


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
        data = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
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
