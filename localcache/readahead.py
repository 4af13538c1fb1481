"""Reading a ChangeSet's records ahead of a UI thread, and cutting big ChangeSets into slices.

Toolkit-neutral, for list adapters (``localcache.qt``): a read costs the UI thread one GIL
hand-off per row while a sync runs Python code, so a list model that follows a big page reads
the changed records on a :class:`Reader` thread and applies the page a slice at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from .errors import LocalCacheError
from .live import LiveQuery
from .signals import ChangeSet

__all__ = ["SLICED", "ReadAheadQuery", "Reader", "slices"]

log = logging.getLogger("localcache.readahead")


class ReadAheadQuery(LiveQuery):
    """A LiveQuery whose reads of changed records can be done ahead, on a reader thread.

    A read costs the GUI thread one GIL hand-off per row (sqlite3 releases the GIL each step),
    each up to Python's 5 ms switch interval while a sync runs Python code: 32 rows could
    freeze the GUI for 150 ms. So each slice's ids are read by :meth:`read_ahead` under a
    token; while the model applies that slice (``serving``), :meth:`_read` returns that read
    if it was made for those ids under the current query, else reads here. A read ahead is
    never older than its ChangeSet (it starts after the ChangeSet arrived): all LiveQuery
    needs, since later ChangeSets bring later states.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[int, object] = {}  # token → the query it is wanted under
        self._ahead: dict[int, tuple[object, tuple[str, ...], list[Any]]] = {}
        self.serving: int | None = None
        super().__init__(*args, **kwargs)

    def want(self, token: int) -> None:
        with self._lock:
            self._wanted[token] = self._query

    def forget(self) -> None:
        with self._lock:
            self._wanted.clear()
            self._ahead.clear()

    def has_read(self, token: int) -> bool:
        with self._lock:
            found = self._ahead.get(token)
        return found is not None and found[0] is self._query

    def read_ahead(self, token: int, ids: tuple[str, ...]) -> None:
        """On the reader thread: read ``ids`` now, for the slice ``token``."""
        query = self._query
        with self._lock:
            if self._wanted.get(token) is not query:
                return
        rows = LiveQuery._read(self, len(ids), list(ids))
        with self._lock:  # kept only if still wanted under the same query
            if self._query is query and self._wanted.get(token) is query:
                self._ahead[token] = (query, ids, rows)

    def _read(self, limit: int, ids: Sequence[str] | None = None) -> list[Any]:
        if ids is not None and self.serving is not None:
            with self._lock:
                self._wanted.pop(self.serving, None)
                found = self._ahead.pop(self.serving, None)
            if found is not None and found[0] is self._query and found[1] == tuple(ids):
                return found[2]
        return super()._read(limit, ids)


class Reader:
    """One daemon thread running :meth:`ReadAheadQuery.read_ahead` jobs in order."""

    def __init__(self, live: ReadAheadQuery) -> None:
        self._jobs: queue.SimpleQueue[tuple[int, tuple[str, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(live, self._jobs),
                                        name="localcache-list-reader", daemon=True)
        self._closed = False

    @property
    def working(self) -> bool:
        return self._thread.is_alive()

    def submit(self, token: int, ids: tuple[str, ...]) -> None:
        if not self._closed:
            if not self._thread.is_alive():
                self._thread.start()
            self._jobs.put((token, ids))

    def close(self, *args: object) -> None:
        self._closed = True
        self._jobs.put(None)

    @staticmethod
    def _run(live: ReadAheadQuery, jobs: queue.SimpleQueue[tuple[int, tuple[str, ...]] | None]
             ) -> None:
        while (job := jobs.get()) is not None:
            try:
                live.read_ahead(*job)
            except LocalCacheError:  # the GUI thread reads them again, and reports it
                pass
            except Exception:  # a bug: say so; the GUI thread reads what this did not
                log.exception("the reader thread of a list model failed")


SLICED = ("entries_deleted", "assets_deleted", "entries_added", "entries_updated",
           "assets_added", "assets_updated", "affected")


def slices(changes: ChangeSet, size: int) -> Iterator[ChangeSet]:
    """``changes`` as ChangeSets of at most ``size`` ids, in the order LiveQuery applies them
    (deletions, changes, affected rows). Each id is placed by reading the store as it is now,
    whatever the others do, so the slices bring the rows where the whole would."""
    if len(changes) + len(changes.affected) <= size:
        yield changes
        return
    nothing: dict[str, Any] = {name: () for name in SLICED}
    empty = replace(changes, **nothing)
    for name in SLICED:
        ids: tuple[str, ...] = getattr(changes, name)
        for start in range(0, len(ids), size):
            part: dict[str, Any] = {name: ids[start:start + size]}
            yield replace(empty, **part)
