"""One request sent ahead, on a thread, while the provider parses the page before it.

A sync's pages form a chain: each request needs the token the previous response carries. Read
in turn, each page costs its round trip plus its parsing (a 1,000-item Contentful page: 15-20
ms of ``json.loads`` and checks), and at 50 ms of latency that parsing was a fifth of an
initial sync. The token sits at a known key of the body, so a provider can find it in the raw
bytes first, send the next request, and parse while it travels (:class:`RequestAhead`). The
guess is only a guess: the page parsed in full decides, and a request sent for any other token
is waited for and dropped (the page chain never has two requests in flight), and the right
one sent. (The engine's content types request may run beside the first page's: requests'
Session shares its connection pool between threads, and the transport keeps no other state.)

Only while the pages are what the sync waits for (:func:`pages_awaited`): when the writer is
the slower side, as on a loopback network where the server, the parsing and the writer share
two cores, a request ahead only takes CPU from the writer (a 20k initial sync took 10% longer
with it at no latency, and 10% less time with it at 50 ms; asked for only while the pages are
awaited: as fast as without it at no latency, 10% faster at 50 ms).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

__all__ = ["RequestAhead", "ask_ahead", "guess_string", "pages_awaited", "parse_beside",
           "set_pages_awaited", "settle", "take"]

_STRING_VALUE = re.compile(rb'\s*:\s*"([^"\\]+)"')


def guess_string(body: bytes, key: str) -> str | None:
    """A guess at the string value of ``key`` in a JSON body, from its bytes: that of the
    last such key (vendors write their next-page token after the items; a key inside a JSON
    string is escaped, so only a real key, of the page or a nested object, matches). None
    when there is none, or its value holds an escape. The parsed page decides."""
    quoted = b'"' + key.encode() + b'"'
    at = body.rfind(quoted)
    if at < 0:
        return None
    found = _STRING_VALUE.match(body, at + len(quoted))
    return found.group(1).decode("utf-8", "replace") if found else None

T = TypeVar("T")
P = TypeVar("P")


class RequestAhead(Generic[T]):
    """``send()`` run on a daemon thread from construction; :meth:`result` waits for it and
    returns what it returned, or raises what it raised."""

    def __init__(self, key: str, send: Callable[[], T]) -> None:
        self.key = key
        self._send = send
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="localcache-request-ahead",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._send()
        except BaseException as exc:  # raised by result(), in the provider's thread
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def settle(self) -> None:
        """Wait for the request to end, and drop its outcome (a guess that was wrong)."""
        self._thread.join()


_demand = threading.local()


def set_pages_awaited(awaited: bool) -> None:
    """Told by a prefetching consumer, on the thread that pulls the pages, before it asks for
    the next: whether it has room for more pages (it waits for them), or waited for room (its
    writer is the slower side)."""
    _demand.awaited = awaited


def pages_awaited() -> bool:
    """Whether asking ahead can help, as this thread's consumer last said (yes by default)."""
    return bool(getattr(_demand, "awaited", True))


def settle(ahead: RequestAhead[Any] | None) -> None:
    """Wait for a request sent ahead that will not be used (the last page came; a guess was
    wrong), so that it never runs beside the provider's next request, in this sync or the
    next. (A generator abandoned by its consumer leaves it to its daemon thread: a stopped
    sync does not wait for the network.)"""
    if ahead is not None:
        ahead.settle()


def parse_beside(ahead: RequestAhead[Any] | None, parse: Callable[[], P]) -> P:
    """``parse()`` while ``ahead`` travels; if it raises, the request is settled first."""
    try:
        return parse()
    except BaseException:
        settle(ahead)
        raise


def ask_ahead(find: Callable[[], str | None],
              send: Callable[[str], T]) -> RequestAhead[T] | None:
    """The next page's request, ``send(key)``, sent now: when the consumer waits for pages
    and ``find()`` (looked for only then) names its key (token); else None."""
    if not pages_awaited():
        return None
    key = find()
    return RequestAhead(key, partial(send, key)) if key else None


def take(ahead: RequestAhead[T] | None, key: str | None, fetch: Callable[[], T]) -> T:
    """The response for ``key``: the one asked for ahead when it was for that key, else
    ``fetch()``, once a request ahead for another key has ended (never two at once)."""
    if ahead is not None and key is not None and ahead.key == key:
        return ahead.result()
    settle(ahead)
    return fetch()
