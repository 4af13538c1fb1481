"""Qt (PySide6) adapters: the library's signals on the GUI thread, and live list models.

``pip install localcache[qt]``; only ``import localcache.qt`` imports PySide6.
:class:`QtSignals` re-emits each blinker signal of a Cache as a Qt signal on the thread the
QObject lives in (the GUI thread). :class:`EntryListModel` and :class:`AssetListModel` are
``QAbstractListModel``\\ s over a :class:`~localcache.live.LiveQuery`: rows load in batches
(``fetchMore``), and each committed ChangeSet arrives as row inserts, removals, moves and
``dataChanged``, never as a reset.

The hop: blinker calls our receivers on the syncing thread; each emits a private Qt signal
connected to the object's own slot with a ``QueuedConnection``, so Qt posts it, in order, to
the GUI thread, where the slot emits the public signal. See docs/ui.md.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMetaMethod,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from . import signals
from .errors import LocalCacheError
from .live import BATCH, Appended, Changed, Edit, Inserted, LiveQuery, Moved, Removed, Reset
from .readahead import ReadAheadQuery, Reader, slices
from .signals import ChangeSet
from .store.query import Record

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

__all__ = [
    "DISPLAY_ROLE",
    "ID_ROLE",
    "RECORD_ROLE",
    "AssetListModel",
    "EntryListModel",
    "QtSignals",
]

log = logging.getLogger("localcache.qt")

DISPLAY_ROLE = int(Qt.ItemDataRole.DisplayRole)
#: The row's record id (``str``); QML name ``recordId``.
ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
#: The row's :class:`~localcache.Record`; QML name ``record``.
RECORD_ROLE = int(Qt.ItemDataRole.UserRole) + 2

Index = QModelIndex | QPersistentModelIndex
_POLL_MS = 2  # how often a model waiting for its reader thread looks again

# blinker signal → (Qt signal, how its keyword arguments become the Qt signal's arguments)
_RELAYS: dict[str, tuple[str, Callable[..., tuple[Any, ...]]]] = {
    "sync_started": ("syncStarted", lambda initial: (bool(initial),)),
    "sync_progress": ("syncProgress", lambda page, items, total: (page, items, total)),
    "sync_finished": ("syncFinished", lambda result: (result,)),
    "sync_failed": ("syncFailed", lambda error: (error,)),
    "sync_status_changed": ("syncStatusChanged", lambda status: (status,)),
    "changes_committed": ("changesCommitted", lambda changes: (changes,)),
    "entry_changed": ("entryChanged", lambda id, record=None: (id,)),
    "entry_deleted": ("entryDeleted", lambda id: (id,)),
    "asset_changed": ("assetChanged", lambda id, record=None: (id,)),
    "asset_deleted": ("assetDeleted", lambda id: (id,)),
}


def _signal_methods(owner: QObject) -> dict[str, QMetaMethod]:
    """The signals of ``owner`` by name, for ``isSignalConnected``. Read from its meta-object:
    ``QMetaMethod.fromSignal(owner.signal)`` would keep ``owner`` alive for good."""
    meta = owner.metaObject()
    methods = (meta.method(i) for i in range(meta.methodCount()))
    return {bytes(m.name().data()).decode(): m for m in methods
            if m.methodType() == QMetaMethod.MethodType.Signal}


class _Link:
    """The blinker side of one QtSignals: its receivers (held strongly by blinker), which
    reach the QObject through a weak reference, under a lock that :meth:`close` also takes, so
    once ``close`` returns no receiver touches the QObject again."""

    def __init__(self, owner: QtSignals, cache: Cache) -> None:
        self._owner = weakref.ref(owner)
        self._cache = cache
        self._lock = threading.Lock()
        self._closed = False
        self._methods = _signal_methods(owner)
        self._receivers: list[tuple[Any, Callable[..., None]]] = []
        for name, (qt_name, arguments) in _RELAYS.items():
            signal = getattr(signals, name)
            receiver = self._receiver(qt_name, arguments)
            signal.connect(receiver, sender=cache, weak=False)
            self._receivers.append((signal, receiver))

    def _receiver(self, qt_name: str, arguments: Callable[..., tuple[Any, ...]]
                  ) -> Callable[..., None]:
        method = self._methods[qt_name]

        def relay(sender: object, **kwargs: Any) -> None:
            with self._lock:
                owner = None if self._closed else self._owner()
                if owner is not None and owner.isSignalConnected(method):
                    owner._relay.emit(qt_name, arguments(**kwargs))
        return relay

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *args: object) -> None:
        with self._lock:
            self._closed = True
            receivers, self._receivers = self._receivers, []
        for signal, receiver in receivers:
            # From every sender: blinker keeps a receiver disconnected from one sender only
            # in ``signal.receivers``, strongly held. Ours is connected to one Cache alone.
            signal.disconnect(receiver)


class QtSignals(QObject):
    """The signals of ``cache`` as Qt signals, emitted on this object's thread (create it on
    the GUI thread), in the order the sync sent them, each after its page committed. Their
    arguments are the blinker keywords in order (``syncProgress``: page, items, total or
    None); ``entryChanged``/``assetChanged`` carry the id only, since a later page may have
    changed the record again by then: read ``cache.entry(id)``. Table: docs/ui.md.
    """

    syncStarted = Signal(bool)
    syncProgress = Signal(int, int, object)
    syncFinished = Signal(object)
    syncFailed = Signal(object)
    syncStatusChanged = Signal(object)
    changesCommitted = Signal(object)
    entryChanged = Signal(str)
    entryDeleted = Signal(str)
    assetChanged = Signal(str)
    assetDeleted = Signal(str)

    _relay = Signal(str, object)  # emitted on the syncing thread, delivered on ours

    def __init__(self, cache: Cache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache
        self._relay.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._link = _Link(self, cache)
        # A plain callable, not a method: it runs while this object is being destroyed.
        self.destroyed.connect(self._link.close)

    def _deliver(self, qt_name: str, arguments: tuple[Any, ...]) -> None:
        if not self._link.closed:
            getattr(self, qt_name).emit(*arguments)

    def close(self) -> None:
        """Disconnect from the Cache's signals now: no Qt signal is emitted after this (one
        already queued is dropped). Destroying the object does the same."""
        self._link.close()

    disconnect_cache = close

    @property
    def connected(self) -> bool:
        """Whether this object still listens to the Cache."""
        return not self._link.closed


# -- list models -----------------------------------------------------------------------------


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP


class _RowEdits:
    """Replays LiveQuery's edits as Qt's begin/end row notifications."""

    def __init__(self, model: _LiveListModel) -> None:
        self.model = model
        self._announced: Changed | None = None

    def before(self, edit: Edit) -> None:
        model, root = self.model, QModelIndex()
        if isinstance(edit, Appended):
            model.beginInsertRows(root, edit.row, edit.row + len(edit.records) - 1)
        elif isinstance(edit, Inserted):
            model.beginInsertRows(root, edit.row, edit.row)
        elif isinstance(edit, Removed):
            model.beginRemoveRows(root, edit.row, edit.row)
        elif isinstance(edit, Moved):
            # LiveQuery: rows.insert(destination, rows.pop(source)); Qt names the row the
            # moved one will sit above, counted before the move.
            target = edit.destination + 1 if edit.destination > edit.source else edit.destination
            moved = model.beginMoveRows(root, edit.source, edit.source, root, target)
            assert moved, f"Qt refused the move {edit.source} -> {target}"
        elif isinstance(edit, Changed) and edit.record is model.live.record(edit.row):
            # The row keeps its record (a record it links to changed): nothing will change
            # between before and after, so say it now. LiveQuery (as of this writing) sends
            # these edits without ``after``.
            self._announced = edit
            model._row_changed(edit.row)
        elif isinstance(edit, Reset):
            model.beginResetModel()

    def after(self, edit: Edit) -> None:
        model = self.model
        if isinstance(edit, (Appended, Inserted)):
            model.endInsertRows()
        elif isinstance(edit, Removed):
            model.endRemoveRows()
        elif isinstance(edit, Moved):
            model.endMoveRows()
            model._row_changed(edit.destination)  # a move is a change too
        elif isinstance(edit, Changed):
            if edit is not self._announced:
                model._row_changed(edit.row)
            self._announced = None
        elif isinstance(edit, Reset):
            model._after_reset()
            model.endResetModel()


class _LiveListModel(QAbstractListModel):
    """What the entry and asset models share: a LiveQuery shown as rows."""

    IdRole: ClassVar[int] = ID_ROLE
    RecordRole: ClassVar[int] = RECORD_ROLE
    ROLE_NAMES: ClassVar[dict[int, bytes]] = {
        DISPLAY_ROLE: b"display", ID_ROLE: b"recordId", RECORD_ROLE: b"record"}
    #: Record ids of a ChangeSet applied in one go; a ChangeSet is cut into slices this size.
    SLICE_IDS: ClassVar[int] = 32
    #: Once slices have taken this long, the rest waits for the next turn of the event loop.
    SLICE_SECONDS: ClassVar[float] = 0.008

    def __init__(self, cache: Cache, content_type: str | None,
                 where: Mapping[str, Any] | None, order_by: Sequence[str] | str | None,
                 locale: str | None, record_type: Literal["Entry", "Asset"], batch: int,
                 parent: QObject | None) -> None:
        super().__init__(parent)
        self.cache = cache
        self._live = ReadAheadQuery(cache, content_type, where=where, order_by=order_by,
                                locale=locale, record_type=record_type, batch=batch)
        self._edits = _RowEdits(self)
        self._busy = False  # the window is being edited
        # Slices of received ChangeSets not applied yet, each with the token of its read ahead.
        self._pending: deque[tuple[ChangeSet, int | None]] = deque()
        self._tokens = itertools.count()
        self._reader = Reader(self._live)
        self.destroyed.connect(self._reader.close)
        self._drain = QTimer(self)
        self._drain.setSingleShot(True)
        self._drain.timeout.connect(self.apply_pending)
        # Listen before the first read: a page committed in between is then applied too.
        self._signals = QtSignals(cache, parent=self)
        self._signals.changesCommitted.connect(self._follow)
        self._live.fetch_more()  # no view can be attached yet: nothing to announce

    # -- the query ----------------------------------------------------------------------------

    @property
    def locale(self) -> str | None:
        return self._live.locale

    @property
    def live(self) -> LiveQuery:
        """The LiveQuery behind the rows (read it; editing it bypasses Qt's notifications)."""
        return self._live

    def set_locale(self, locale: str | None) -> None:
        """Show the rows in another locale (ordered and filtered in it too): a model reset,
        then the first batch. Raises QueryError for a locale the store does not have, and
        then changes nothing."""
        with self._editing():
            self._live.reset(self._edits, locale=locale)

    def _after_reset(self) -> None:
        """Inside the reset: the first batch of the new query, with no row signals; what the
        reader read for the old query is of no use."""
        self._live.forget()
        self._live.fetch_more()
        self._pending = deque((part, self._ask(part)) for part, _ in self._pending)

    # -- QAbstractListModel ---------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._live)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._busy and self._live.can_fetch_more()

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        # A slot of our own row signals may ask (QAbstractItemModelTester does): the window
        # is mid-edit then, and a view asks again when it needs rows.
        if not parent.isValid() and not self._busy:
            with self._editing():
                self._live.fetch_more(self._edits)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        """While the window changes: no fetch from a slot of our own row signals."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    def roleNames(self) -> dict[int, QByteArray]:
        return {role: QByteArray(name) for role, name in self.ROLE_NAMES.items()}

    def data(self, index: Index, role: int = DISPLAY_ROLE) -> Any:
        row = index.row()
        if index.parent().isValid() or not 0 <= row < len(self._live):
            return None
        if role == DISPLAY_ROLE:
            return self.display_text(self._live.record(row))
        if role == ID_ROLE:
            return self._live.id(row)
        if role == RECORD_ROLE:
            return self._live.record(row)
        return None

    # -- rows -----------------------------------------------------------------------------------

    def record(self, row: int) -> Record:
        """The record shown at ``row`` (IndexError past the loaded rows)."""
        if not 0 <= row < len(self._live):
            raise IndexError(f"row {row} is not loaded ({len(self._live)} rows)")
        return self._live.record(row)

    def row_of(self, record_id: str) -> int | None:
        """The row of ``record_id`` among the loaded rows, or None."""
        return self._live.row_of(record_id)

    def fetch_all(self) -> None:
        """Load every row of the query (for small lists and tests)."""
        while self._live.can_fetch_more():
            with self._editing():
                self._live.fetch_more(self._edits)

    def display_text(self, record: Record) -> str:
        """The row's text (DisplayRole)."""
        raise NotImplementedError

    # -- following the store ----------------------------------------------------------------------

    @property
    def pending_changes(self) -> int:
        """Slices of received ChangeSets not applied yet (0 once the rows are current)."""
        return len(self._pending)

    def apply_pending(self, seconds: float | None = None) -> None:
        """Apply the received ChangeSets in order, slice by slice, for about ``seconds``
        (default :attr:`SLICE_SECONDS`) and as far as the reader thread has read their
        records; the rest on later turns of the event loop, so a big page never freezes the
        GUI. ``float("inf")`` applies all of them now, reading here what is not read yet."""
        now = seconds is not None and seconds == float("inf")
        deadline = time.perf_counter() + (self.SLICE_SECONDS if seconds is None else seconds)
        while self._pending:
            changes, token = self._pending[0]
            if (token is not None and not now and not self._live.has_read(token)
                    and self._reader.working):
                self._drain.start(_POLL_MS)  # the reader is at it
                return
            self._pending.popleft()
            self._live.serving = token
            try:
                self._apply(changes)
            finally:
                self._live.serving = None
            if self._pending and time.perf_counter() >= deadline:
                self._drain.start(0)
                return

    def _apply(self, changes: ChangeSet) -> None:
        try:
            with self._editing():
                self._live.apply(changes, self._edits)
        except LocalCacheError:  # e.g. the Cache was closed meanwhile; the rows stay
            log.exception("%s could not follow page %s", type(self).__name__, changes.page)

    def _follow(self, changes: ChangeSet) -> None:
        parts = list(slices(changes, self.SLICE_IDS))
        if not self._pending and len(parts) == 1:
            self._apply(changes)  # a small page, nothing waiting: at once
            return
        self._pending.extend((part, self._ask(part)) for part in parts)
        self.apply_pending()

    def _ask(self, part: ChangeSet) -> int | None:
        """Have the reader thread read what applying ``part`` reads; its token, if any."""
        ids = self._live.changed_ids(part)
        if not ids:
            return None
        token = next(self._tokens)
        self._live.want(token)
        self._reader.submit(token, ids)
        return token

    def _row_changed(self, row: int) -> None:
        index = self.index(row, 0)
        self.dataChanged.emit(index, index)

    def close(self) -> None:
        """Stop following the Cache (destroying the model does it too)."""
        self._signals.close()
        self._reader.close()
        self._drain.stop()
        self._pending.clear()


class EntryListModel(_LiveListModel):
    """The entries of a query (as :meth:`Cache.entries` takes it), as a live Qt list model.

    DisplayRole is the record's display field (``cache.content_type(ct).display_field``) in
    the model's locale, after fallback; the record id when the type names none or the value is
    empty. ``IdRole`` gives the id, ``RecordRole`` the :class:`~localcache.Record`;
    ``roleNames()`` calls them ``display``, ``recordId`` and ``record`` in QML. ``batch``
    rows load per ``fetchMore``. Use it on the thread it was created on (the GUI thread).
    """

    def __init__(self, cache: Cache, content_type: str | None = None, *,
                 where: Mapping[str, Any] | None = None,
                 order_by: Sequence[str] | str | None = None, locale: str | None = None,
                 batch: int = BATCH, parent: QObject | None = None) -> None:
        self._display_fields: dict[str | None, str | None] = {}
        super().__init__(cache, content_type, where, order_by, locale, "Entry", batch, parent)

    @property
    def content_type(self) -> str | None:
        return self._live.content_type

    def set_query(self, content_type: str | None = None, *,
                  where: Mapping[str, Any] | None = None,
                  order_by: Sequence[str] | str | None = None,
                  locale: str | _Keep | None = KEEP) -> None:
        """Show another query (replacing content type, filter and order; the locale stays
        unless given): a model reset, then the first batch. Raises QueryError for a bad query,
        and then changes nothing."""
        query: dict[str, Any] = {"content_type": content_type, "where": where,
                                 "order_by": order_by}
        if locale is not KEEP:
            query["locale"] = locale
        with self._editing():
            self._live.reset(self._edits, **query)

    def display_text(self, record: Record) -> str:
        content_type = record.content_type
        if content_type not in self._display_fields:
            info = None if content_type is None else self.cache.content_type(content_type)
            self._display_fields[content_type] = None if info is None else info.display_field
        name = self._display_fields[content_type]
        text = None if name is None else _text(record.field(name, self._live.locale))
        return text or record.id

    def _follow(self, changes: ChangeSet) -> None:
        self._display_fields.clear()  # a sync may have changed a content type's definition
        super()._follow(changes)


class AssetListModel(_LiveListModel):
    """Every asset, in id order, as a live Qt list model. DisplayRole is the title in the
    model's locale (after fallback), else the file name, else the id; the roles are those of
    :class:`EntryListModel`."""

    def __init__(self, cache: Cache, *, locale: str | None = None, batch: int = BATCH,
                 parent: QObject | None = None) -> None:
        super().__init__(cache, None, None, None, locale, "Asset", batch, parent)

    def display_text(self, record: Record) -> str:
        locale = self._live.locale
        file = record.field("file", locale)
        text = (_text(record.field("title", locale))
                or (_text(file.get("fileName")) if isinstance(file, dict) else None)
                or _text(record.field("filename", locale)))  # Contentstack
        return text or record.id


def _text(value: Any) -> str | None:
    """A field value as one line of text: a Kontent.ai element's ``value``, a list joined."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None or isinstance(value, (dict, bool)):
        return None
    if isinstance(value, list):
        parts = [_text(v) for v in value]
        return ", ".join(p for p in parts if p) or None
    text = " ".join(str(value).split())
    return text or None
