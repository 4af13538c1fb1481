"""Kivy adapters: the sync's signals on Kivy's main thread, and a RecycleView's ``data`` kept in
step with a query (``pip install localcache[kivy]``; docs/ui.md, "Kivy").

Blinker signals fire on the syncing thread (a worker, or the :class:`~localcache.AutoSync`
thread), and Kivy widgets may only be touched on the main thread, the one that runs the
``Clock``. Both adapters therefore receive signals on any thread, queue them, and replay them
in the order they came from one ``Clock.schedule_once`` callback (scheduling is thread-safe in
Kivy): nothing here ever runs app code or edits a list on the syncing thread.

- :class:`CacheEvents` re-dispatches the sync signals as Kivy events (``on_sync_started``,
  ``on_sync_progress``, ``on_sync_finished``, ``on_sync_failed``, ``on_sync_status``,
  ``on_changes``).
- :class:`RecycleData` keeps a list of dicts, one per record of a query, for a
  ``RecycleView``: it loads the whole query in batches spread over Clock frames, then
  replays each ChangeSet as the smallest list edits (``insert``, ``pop``, item assignment), on
  the list object the view itself holds (:meth:`RecycleData.attach`), so the view refreshes
  only the rows that changed.

Importing this module imports Kivy; ``import localcache`` never does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from blinker import Signal
from kivy.clock import Clock  # type: ignore[import-untyped]
from kivy.event import EventDispatcher  # type: ignore[import-untyped]
from kivy.properties import (  # type: ignore[import-untyped]
    BooleanProperty,
    ListProperty,
    ObjectProperty,
)

from . import signals
from .errors import LocalCacheError, QueryError
from .live import (
    BATCH,
    Appended,
    Changed,
    Edit,
    Inserted,
    LiveQuery,
    Moved,
    Removed,
    Reset,
)
from .store.query import Record

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

__all__ = ["CacheEvents", "RecycleData"]

log = logging.getLogger("localcache.kivy")

#: How long :class:`RecycleData` may spend loading rows in one Clock frame (seconds); at least
#: one batch is read per frame however long it takes.
FRAME_BUDGET = 0.008
#: The largest batch :class:`RecycleData` grows to for a query whose every read is slow.
MAX_BATCH = 10_000


class _MainThreadCalls:
    """Calls queued from any thread, run on Kivy's main thread in the order they were queued.

    One ``Clock.schedule_once`` per burst, not per call: a sync page that fires six signals
    costs one Clock event. A call that raises goes to Kivy as usual (its ExceptionManager);
    the calls queued after it still run, one frame later.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._scheduled = False
        self._closed = False

    def put(self, call: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            self._calls.append(call)
            if self._scheduled:
                return
            self._scheduled = True
        Clock.schedule_once(self._run, 0)

    def close(self) -> None:
        """Drop what is queued, and queue nothing more."""
        with self._lock:
            self._closed = True
            self._calls.clear()

    def _run(self, dt: float) -> None:
        with self._lock:
            self._scheduled = False
            count = len(self._calls)  # later calls: the next frame, which put() scheduled
        for _ in range(count):
            with self._lock:
                if not self._calls:
                    return
                call = self._calls.popleft()
            try:
                call()
            except BaseException:
                with self._lock:
                    again = bool(self._calls) and not self._scheduled
                    self._scheduled = self._scheduled or again
                if again:
                    Clock.schedule_once(self._run, 0)
                raise


class CacheEvents(EventDispatcher):  # type: ignore[misc]
    """The sync signals of ``cache`` as Kivy events, dispatched on the main thread.

    Events (positional arguments, after the dispatcher itself):

    - ``on_sync_started(initial)``; ``on_sync_progress(page, items, total)`` after each
      committed page (``total`` None when the vendor does not say);
    - ``on_sync_finished(result)`` (a SyncResult), ``on_sync_failed(error)`` (a
      LocalCacheError), ``on_sync_status(status)`` (a SyncStatus of the background sync,
      ``cache.start_auto_sync()``);
    - ``on_changes(changes)``: the ChangeSet of each committed page.

    They come in the order the signals were sent, each one frame or less after its signal.
    ``syncing`` (True from ``on_sync_started`` to ``on_sync_finished``/``on_sync_failed``)
    and ``status`` (the last SyncStatus, None before the first) are Kivy properties, set
    before the event they go with, for kv rules to bind to.

    Blinker holds the receivers strongly (so a dispatcher made inside a function keeps
    working): call :meth:`close` when done with it, or it lives as long as the cache.
    """

    __events__ = ("on_sync_started", "on_sync_progress", "on_sync_finished", "on_sync_failed",
                  "on_sync_status", "on_changes")

    syncing = BooleanProperty(False)
    status = ObjectProperty(None, allownone=True)

    def __init__(self, cache: Cache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self._calls = _MainThreadCalls()
        self._receivers: list[tuple[Signal, Callable[..., None]]] = []
        for signal, event, names in (
                (signals.sync_started, "on_sync_started", ("initial",)),
                (signals.sync_progress, "on_sync_progress", ("page", "items", "total")),
                (signals.sync_finished, "on_sync_finished", ("result",)),
                (signals.sync_failed, "on_sync_failed", ("error",)),
                (signals.sync_status_changed, "on_sync_status", ("status",)),
                (signals.changes_committed, "on_changes", ("changes",))):
            receiver = self._forwarder(event, names)
            signal.connect(receiver, sender=cache, weak=False)
            self._receivers.append((signal, receiver))

    def _forwarder(self, event: str, names: tuple[str, ...]) -> Callable[..., None]:
        def receive(sender: object, **kwargs: Any) -> None:
            args = tuple(kwargs.get(name) for name in names)
            self._calls.put(lambda: self._dispatch(event, args))
        return receive

    def _dispatch(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "on_sync_started":
            self.syncing = True
        elif event in ("on_sync_finished", "on_sync_failed"):
            self.syncing = False
        elif event == "on_sync_status":
            self.status = args[0]
        self.dispatch(event, *args)

    def close(self) -> None:
        """Disconnect from the cache's signals; events still queued are dropped. Calling it
        again does nothing."""
        for signal, receiver in self._receivers:
            signal.disconnect(receiver, sender=self.cache)
        self._receivers.clear()
        self._calls.close()

    # Default handlers: Kivy needs one per event; an app binds its own or overrides these.

    def on_sync_started(self, initial: bool) -> None:
        pass

    def on_sync_progress(self, page: int, items: int, total: int | None) -> None:
        pass

    def on_sync_finished(self, result: Any) -> None:
        pass

    def on_sync_failed(self, error: Any) -> None:
        pass

    def on_sync_status(self, status: Any) -> None:
        pass

    def on_changes(self, changes: signals.ChangeSet) -> None:
        pass


class _ListEditor:
    """Replays LiveQuery edits on RecycleData's list, once each edit is done (``after``)."""

    def __init__(self, owner: RecycleData) -> None:
        self.owner = owner

    def before(self, edit: Edit) -> None:
        pass

    def after(self, edit: Edit) -> None:
        rows = self.owner.data
        row = self.owner.row
        if isinstance(edit, Appended):
            rows.extend([row(record) for record in edit.records])
        elif isinstance(edit, Inserted):
            rows.insert(edit.row, row(edit.record))
        elif isinstance(edit, Removed):
            rows.pop(edit.row)
        elif isinstance(edit, Moved):
            rows.pop(edit.source)
            rows.insert(edit.destination, row(edit.record))
        elif isinstance(edit, Changed):
            rows[edit.row] = row(edit.record)
        elif isinstance(edit, Reset):
            del rows[0:len(rows)]  # bounds given: Kivy's RecycleView cannot read [:]


class RecycleData(EventDispatcher):  # type: ignore[misc]
    """The rows of a query as a RecycleView's ``data``: one dict per record, ``id`` and each
    of ``fields`` in ``locale`` after fallback (``record.field(name, locale)``, None where
    there is no value), in the query's order, kept in step with every committed page.

    The query is :meth:`Cache.entries <localcache.Cache.entries>`'s: ``content_type``,
    ``where``, ``order_by``, ``locale`` (None: the default locale). A RecycleView holds every
    row, so the whole query is loaded, but not at once: each Clock frame reads ``batch`` rows
    after the last ones (keyset paging, :class:`~localcache.live.LiveQuery`), and more while
    the frame has spent less than ``frame_budget`` seconds on it, until the query is
    exhausted. ``loading`` is True until then. Rows appear from the first frame on, and
    ChangeSets that arrive meanwhile are applied to the rows already there.

    A query no index serves (one in a fallback locale, or ordered by a field that is not hot)
    costs a scan of the content type per read, whatever its size: when a read alone outlasts
    the budget, the next one asks twice as many rows, and the batch keeps doubling (up to
    ``MAX_BATCH``) for as long as doubling it does not make a read half as long again, so
    such a list loads in a few reads instead of one scan per ``batch`` rows.
    ``frame_budget=0`` reads exactly one batch per frame.

    Each ChangeSet is replayed on the main thread as the list edits it calls for: ``insert``
    for a record that entered, ``pop`` for one that left, ``pop`` + ``insert`` for a move, item
    assignment for a record (or a record it links to) that changed in place. The list object
    is never replaced: after :meth:`attach` it is the view's own ``data`` list (``.data is
    view.data``), and each edit tells the view which rows to refresh. Do not assign
    ``view.data`` yourself while attached.

    Use it on the main thread only. :meth:`close` stops it (it holds its signal receiver
    strongly until then).
    """

    loading = BooleanProperty(False)
    _rows = ListProperty()  # the list edited until attach() hands over the view's

    def __init__(self, cache: Cache, content_type: str | None = None, *,
                 where: Mapping[str, Any] | None = None,
                 order_by: Sequence[str] | str | None = None, locale: str | None = None,
                 fields: Iterable[str] = ("title",), batch: int = BATCH,
                 frame_budget: float = FRAME_BUDGET, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.fields = _checked_fields(fields)
        self.frame_budget = frame_budget
        self.live = LiveQuery(cache, content_type, where=where, order_by=order_by,
                              locale=locale, batch=batch)
        self._batch = batch  # rows per read while loading; grows for slow queries
        self._probe: tuple[int, float] | None = None  # the read before a doubling: rows, time
        self._cooldown = 0  # reads to wait before doubling again, after a doubling that lost
        self._view: Any = None
        self._editor = _ListEditor(self)
        self._calls = _MainThreadCalls()
        self._closed = False
        self._load_trigger = Clock.create_trigger(self._load_step, 0)
        signals.changes_committed.connect(self._receive, sender=cache, weak=False)
        self._start_loading()

    # -- the list -------------------------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The list of row dicts (a Kivy ObservableList): the attached view's ``data``, or
        this object's own list before :meth:`attach`."""
        return self._rows if self._view is None else self._view.data

    def row(self, record: Record) -> dict[str, Any]:
        """The dict that shows ``record``: ``id`` and each field in the query's locale."""
        locale = self.live.locale
        values = {name: record.field(name, locale) for name in self.fields}
        values["id"] = record.id
        return values

    def attach(self, recycle_view: Any) -> None:
        """Edit ``recycle_view.data`` from now on: its list gets the rows loaded so far (one
        slice assignment), and every later edit is made on it, in place. Anything with a
        Kivy ``data`` ListProperty will do; attaching to another view hands the rows over."""
        rows = self.data
        target = recycle_view.data
        if target is not rows:
            # Bounds given: Kivy's data model fails on the None bounds of target[:].
            target[0:len(target)] = list(rows)
            if self._view is None:
                del self._rows[0:len(self._rows)]
        self._view = recycle_view

    # -- the query ------------------------------------------------------------------------------

    @property
    def locale(self) -> str | None:
        return self.live.locale

    def reset(self, **query: Any) -> None:
        """Show another query: any of ``content_type``, ``where``, ``order_by``, ``locale``
        and ``fields``, the others kept. Checked first (QueryError leaves everything as it
        was); then the list is emptied in place and loaded again, in batches."""
        fields = self.fields
        if "fields" in query:
            fields = _checked_fields(query.pop("fields"))
        if query:
            self.live.reset(self._editor, **query)
        else:
            self.live.reset(self._editor, locale=self.live.locale)
        self.fields = fields
        self._start_loading()

    def set_locale(self, locale: str | None) -> None:
        """Show the rows in ``locale`` (None: the default); they are read again, since the
        order may depend on it."""
        self.reset(locale=locale)

    def close(self) -> None:
        """Stop following the cache and loading; the list keeps its rows. Calling it again
        does nothing."""
        if self._closed:
            return
        self._closed = True
        signals.changes_committed.disconnect(self._receive, sender=self.cache)
        self._calls.close()
        self._load_trigger.cancel()
        self.loading = False

    # -- following the store ---------------------------------------------------------------------

    def _receive(self, sender: object, *, changes: signals.ChangeSet, **kwargs: Any) -> None:
        """On the syncing thread: queue the ChangeSet for the main thread."""
        self._calls.put(lambda: self._apply(changes))

    def _apply(self, changes: signals.ChangeSet) -> None:
        if self._closed:
            return
        try:
            self.live.apply(changes, self._editor)
        except LocalCacheError as exc:  # the cache was closed meanwhile, most likely
            log.warning("could not apply changes of page %d to the list: %s", changes.page, exc)

    def _start_loading(self) -> None:
        if self._closed:
            return
        self._batch, self._probe, self._cooldown = self.live.batch, None, 0
        self.loading = self.live.can_fetch_more()
        if self.loading:
            self._load_trigger()

    def _adapt(self, size: int, took: float) -> None:
        """The next read's size, from how long a read of ``size`` rows took.

        A read costs about ``fixed + rows * per_row``; twice the rows cost less than half as
        much again exactly while ``rows * per_row < fixed``, so doubling stops near the size
        where the scan is half of the read. Timings are noisy (a busy machine, a GC pause): a
        doubling that lost is tried again after a few reads."""
        if self._probe is not None:
            before, before_took = self._probe
            if took < 1.5 * before_took:
                self._probe = (size, took)
                self._batch = min(size * 2, max(MAX_BATCH, self.live.batch))
            else:
                self._batch, self._probe, self._cooldown = before, None, 4
        elif self._cooldown:
            self._cooldown -= 1
        elif 0 < self.frame_budget < took:
            self._probe = (size, took)
            self._batch = min(size * 2, max(MAX_BATCH, self.live.batch))

    def _load_step(self, dt: float) -> None:
        """One frame's share of the loading: at least a batch, more within the budget."""
        if self._closed:
            return
        started = time.perf_counter()
        try:
            while self.live.can_fetch_more():
                before, size = time.perf_counter(), self._batch
                self.live.fetch_more(self._editor, limit=size)
                now = time.perf_counter()
                self._adapt(size, now - before)
                if now - started >= self.frame_budget:
                    break
        except LocalCacheError as exc:
            log.warning("could not load the list's rows: %s", exc)
            self.loading = False
            return
        if self.live.can_fetch_more():
            self._load_trigger()
        else:
            self.loading = False


def _checked_fields(fields: Iterable[str]) -> tuple[str, ...]:
    if isinstance(fields, str):
        fields = (fields,)
    checked = tuple(fields)
    for name in checked:
        if not isinstance(name, str) or not name or name == "id":
            raise QueryError(f"RecycleData fields must be field ids other than 'id' (each row "
                             f"has the record's id under 'id'), not {name!r}")
    return checked
