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
from types import TracebackType
from typing import Any

from ..errors import LocalCacheError, SyncError
from ..model import Page
from ..providers.ahead import set_pages_awaited

__all__ = ["Prefetch"]

_DONE = object()


class Prefetch:
    """Iterate over the pages of ``pages``, each fetched on a thread ahead of its use.

    Use as a context manager: leaving it stops the thread. A provider's error is raised by the
    iteration, where the page it stopped would have come (a non-localcache error wrapped in
    :class:`SyncError`)."""

    def __init__(self, pages: Iterator[Page]) -> None:
        from ..store.search import TextsAhead

        self._pages = pages
        self._ready: queue.Queue[Any] = queue.Queue()
        self._budget = threading.Semaphore(2)
        self._stop = threading.Event()
        self._ahead = TextsAhead.begin()
        self._worker = threading.Thread(target=self._produce, name="localcache-prefetch",
                                         daemon=True)
        self._worker.start()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._ahead.end()
        self._worker.join(timeout=5)

    def __iter__(self) -> Iterator[Page]:
        while True:
            item = self._ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                if isinstance(item, LocalCacheError):
                    raise item
                raise SyncError(f"sync stopped: {type(item).__name__}: {item}") from item
            page, self._ahead.page = item
            yield page
            self._ahead.page = None
            del item, page
            self._budget.release()

    def _acquire(self) -> bool:
        """Room for one more page; tells the provider whether it had to wait for it (then
        the writer is the slower side, and asking for pages ahead would only take its CPU:
        see providers/ahead.py)."""
        if self._budget.acquire(blocking=False):
            set_pages_awaited(True)
            return True
        set_pages_awaited(False)
        while not self._stop.is_set():
            if self._budget.acquire(timeout=0.1):
                return True
        return False

    def _produce(self) -> None:
        outcome: Any = _DONE
        try:
            while self._acquire():
                page = next(self._pages, None)
                if page is None:
                    break
                prepared = self._ahead.start()
                self._ready.put((page, prepared))
                if prepared is not None:
                    prepared.add_deltas(page.deltas)
                del page, prepared
        except BaseException as exc:  # handed to the consumer, who raises it
            outcome = exc
        self._ready.put(outcome)
