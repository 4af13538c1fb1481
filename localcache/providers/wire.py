"""Decoding a response body into JSON, with the checks every vendor's pages need.

The one place where ``json`` errors become :class:`~localcache.errors.PageError`: a body that is
not JSON, not declared as JSON, nested absurdly deep, or not an object.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PageError
from ..sync.http import HttpResponse

__all__ = ["decode_json_object"]


def decode_json_object(
    response: HttpResponse, *, what: str, page: int | None = None
) -> dict[str, Any]:
    """The body as a JSON object, or a PageError naming ``what`` and the problem."""
    content_type = response.headers.get("Content-Type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and not (media.endswith("/json") or media.endswith("+json")):
        raise PageError(f"{what}: expected JSON but the server sent {media!r}",
                        page=page, status=response.status, request_id=response.request_id)
    try:
        data = json.loads(response.body)
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
    return data


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
