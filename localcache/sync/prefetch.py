"""Fetching the next page on a thread while the writer applies the current one.

At most two pages are alive at once in this module (the one being applied and the one being
fetched), so memory stays flat whatever the size of the space. With the search index on, the
thread also extracts each fetched page's entry texts once it has handed the page over (see
``TextsAhead`` in store/search.py): Python work that overlaps the writer's SQLite work.

The thread also tells the provider whether it had to wait for room before asking for the next
page (``set_pages_awaited``): a provider that asks for pages ahead of their turn does so only
while the writer is waiting for them (providers/ahead.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import LocalCacheError, SyncError
from ..model import Page
from ..providers.ahead import set_pages_awaited

__all__ = ["prefetched"]

_DONE = object()


def prefetched(pages: Iterator[Page]) -> Iterator[Page]:
    """The pages of ``pages``, each fetched on a thread while the caller applies the one
    before it. A provider's error is raised where the page it stopped would have come (a
    non-localcache error wrapped in :class:`SyncError`); leaving the iteration stops the
    thread."""
    from ..store.search import TextsAhead

    ready: queue.Queue[Any] = queue.Queue()
    budget = threading.Semaphore(2)
    stop = threading.Event()
    ahead = TextsAhead.begin()

    def acquire() -> bool:
        """Room for one more page; tells the provider whether it had to wait for it (then
        the writer is the slower side, and asking for pages ahead would only take its CPU:
        see providers/ahead.py)."""
        if budget.acquire(blocking=False):
            set_pages_awaited(True)
            return True
        set_pages_awaited(False)
        while not stop.is_set():
            if budget.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        outcome: Any = _DONE
        try:
            while acquire():
                page = next(pages, None)
                if page is None:
                    break
                prepared = ahead.start()
                ready.put((page, prepared))
                if prepared is not None:
                    prepared.add_deltas(page.deltas)
                del page, prepared
        except BaseException as exc:  # handed to the consumer, who raises it
            outcome = exc
        ready.put(outcome)

    worker = threading.Thread(target=produce, name="localcache-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                if isinstance(item, LocalCacheError):
                    raise item
                raise SyncError(f"sync stopped: {type(item).__name__}: {item}") from item
            page, ahead.page = item
            yield page
            ahead.page = None
            del item, page
            budget.release()
    finally:
        stop.set()
        ahead.end()
        worker.join(timeout=5)
