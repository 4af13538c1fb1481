"""Live lists: the rows of a query, loaded in batches and kept in step with each ChangeSet.

A :class:`LiveQuery` holds a *window*: the first rows of a query (entries of a content type,
filtered and ordered as :meth:`~localcache.Cache.entries` does, or every asset by id), as many
as have been fetched. It knows no toolkit: the Qt and Kivy adapters (``localcache.qt``,
``localcache.kivy``) call it on their UI thread and replay its :data:`Edit` values as
``beginInsertRows``/``beginMoveRows``/``dataChanged`` or as slice edits of a list.

How a ChangeSet is followed, without re-reading the window:

- the window's last fetched row sets a *boundary* (its order-key values, as SQLite sorted them);
  every row of the query up to the boundary is in the window, and none after it;
- a deleted record leaves the window; a changed one is read again by id, with its order-key
  values, in one query restricted to the changed ids: it leaves the window if it no longer
  matches (or now sorts past the boundary), moves if its position changed, is marked changed
  if not, and enters the window if it now matches up to the boundary;
- an entry in the window that links to a changed record (``ChangeSet.affected``) is marked
  changed, so a row showing a linked image refreshes.

Rows are found by binary search over their order-key values, so a ChangeSet costs
O(changed * log window) comparisons plus one read of the changed records, whatever the size of
the window. Every step leaves the window sorted, so each edit can be replayed as it comes.
A ChangeSet delivered late (the store has moved on since) is read against the store as it is
now; the ChangeSets that follow bring the window to the same state either way.

The window keeps each entry as its stored row (columns and JSON text: no object for Python's
garbage collector to walk) and decodes it again when asked, the last :data:`RECENT` kept
decoded. A list of 90,000 decoded records held millions of objects, and each full garbage
collection during a sync walked them all with the GIL held: up to 0.6 s with the UI frozen.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .errors import QueryError
from .signals import ChangeSet
from .store.query import Record
from .store.select import EntryQuery, entry_query

if TYPE_CHECKING:  # pragma: no cover
    from .cache import Cache

__all__ = [
    "Appended",
    "Changed",
    "Edit",
    "EditListener",
    "Inserted",
    "LiveQuery",
    "Moved",
    "Removed",
    "Reset",
]

BATCH = 200  # rows a fetch brings by default: one read of about 5 ms
_IDS_PER_READ = 500  # changed ids read back per query
RECENT = 512  # records kept decoded: a few screenfuls, and the last edits' records


# -- edits ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Appended:
    """``records`` were added at the end of the window, from row ``row`` (a fetch)."""

    row: int
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Inserted:
    """``record`` entered the window at ``row``; the rows from there move down one."""

    row: int
    record: Record


@dataclass(frozen=True, slots=True)
class Removed:
    """The row ``row`` (record ``id``) left the window; the rows after it move up one."""

    row: int
    id: str


@dataclass(frozen=True, slots=True)
class Moved:
    """The row ``source`` moved: ``rows.insert(destination, rows.pop(source))``. ``record`` is
    the record as it now reads (a move is a change too)."""

    source: int
    destination: int
    record: Record


@dataclass(frozen=True, slots=True)
class Changed:
    """The record at ``row`` changed, or a record it links to did; it keeps its place."""

    row: int
    record: Record


@dataclass(frozen=True, slots=True)
class Reset:
    """The window was emptied: a new query or locale."""


Edit = Appended | Inserted | Removed | Moved | Changed | Reset


class EditListener(Protocol):
    """What an adapter does around each edit: ``before`` runs while the window still shows
    the old state, ``after`` once it shows the new one (Qt's begin/end pairs)."""

    def before(self, edit: Edit) -> None: ...

    def after(self, edit: Edit) -> None: ...


class _Quiet:
    def before(self, edit: Edit) -> None:
        pass

    def after(self, edit: Edit) -> None:
        pass


# -- ordering -------------------------------------------------------------------------------------


def _ordered(value: Any, descending: bool) -> tuple[Any, ...]:
    """One order-key value as a tuple that Python compares as SQLite's ORDER BY compares the
    value: NULL first, then numbers, then text (BINARY: code point order), then blobs; all
    reversed for a descending key (so NULL comes last there, as in SQLite). Only ints, floats,
    str and bytes inside: the GC stops tracking such tuples, so 90,000 rows' keys cost its
    full collections nothing (objects with a class of their own cost 50 ms each time)."""
    if value is None:
        return (3,) if descending else (0,)
    if isinstance(value, (int, float)):
        return (2, -value) if descending else (1, value)
    if isinstance(value, str):
        # Reversed text: each code point negated, then 1 (above them all), so a prefix
        # sorts after the longer text, as "ab" does after "abc" in descending order.
        return (1, (*(-ord(c) for c in value), 1)) if descending else (2, value)
    data = bytes(value)
    return (0, (*(-b for b in data), 1)) if descending else (3, data)


Key = tuple[tuple[Any, ...], ...]


def _directions(order_by: Sequence[str] | str | None) -> tuple[bool, ...]:
    """Whether each key of the full order (the caller's, then ``sys.id`` unless named) is
    descending, as ``store/where.py``'s ``compile_order`` builds it (which checks the keys)."""
    keys = [order_by] if isinstance(order_by, str) else list(order_by or [])
    directions = [isinstance(k, str) and k.startswith("-") for k in keys]
    if not any(k in ("sys.id", "-sys.id") for k in keys):
        directions.append(False)
    return tuple(directions)


# -- the live query -------------------------------------------------------------------------------


class LiveQuery:
    """The window of a query's rows (see the module's docstring). ``record_type="Asset"``
    lists every asset in id order (``content_type``, ``where`` and ``order_by`` do not apply).
    Not thread-safe: use it from one thread, the UI's."""

    def __init__(self, cache: Cache, content_type: str | None = None, *,
                 where: Mapping[str, Any] | None = None,
                 order_by: Sequence[str] | str | None = None, locale: str | None = None,
                 record_type: Literal["Entry", "Asset"] = "Entry", batch: int = BATCH) -> None:
        if record_type not in ("Entry", "Asset"):
            raise QueryError(f"record_type must be 'Entry' or 'Asset', not {record_type!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise QueryError(f"batch must be a whole number >= 1, not {batch!r}")
        self.cache = cache
        self.record_type = record_type
        self.batch = batch
        self._query = self._checked(content_type, where, order_by, locale)
        self._clear()

    # -- the query ----------------------------------------------------------------------------

    @property
    def content_type(self) -> str | None:
        return self._query.content_type

    @property
    def locale(self) -> str | None:
        return self._query.locale

    def _checked(self, content_type: str | None, where: Mapping[str, Any] | None,
                 order_by: Sequence[str] | str | None, locale: str | None) -> EntryQuery:
        if self.record_type == "Asset":
            if content_type is not None or where or order_by:
                raise QueryError("an asset list is every asset in id order: content_type, "
                                 "where and order_by do not apply")
            return entry_query(locale=locale)
        query = entry_query(content_type, where=where, order_by=order_by, locale=locale)
        # QueryError now, not at the first fetch:
        self.cache.entries(content_type, where=where, order_by=order_by, locale=locale,
                           limit=0)
        self._descending = _directions(order_by)
        return query

    def reset(self, listener: EditListener | None = None, **query: Any) -> None:
        """Empty the window, with the query changed by ``query`` (``content_type``, ``where``,
        ``order_by``, ``locale``), checked first: QueryError leaves everything as it was."""
        unknown = set(query) - {"content_type", "where", "order_by", "locale"}
        if unknown:
            raise QueryError(f"reset takes content_type, where, order_by or locale, "
                             f"not {sorted(unknown)}")
        old = self._query
        checked = self._checked(query.get("content_type", old.content_type),
                                query.get("where", old.where),
                                query.get("order_by", old.order_by),
                                query.get("locale", old.locale))
        listener = listener or _Quiet()
        edit = Reset()
        listener.before(edit)
        self._query = checked
        self._clear()
        listener.after(edit)

    def _clear(self) -> None:
        self._ids: list[str] = []
        # Each row as kept: an entry's stored row (a tuple of str/int: untracked by the GC),
        # an asset's Record (few). _recent: stored row -> its decoded record, newest last.
        self._rows: list[Any] = []
        self._recent: OrderedDict[tuple[Any, ...], Record] = OrderedDict()
        self._keys: list[Key] = []
        self._key_of: dict[str, Key] = {}
        self._boundary: Key | None = None  # the last fetched row's key
        self._after: list[Any] | None = None  # ... as values, for the next fetch
        self._exhausted = False

    # -- reading the window ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ids)

    def record(self, row: int) -> Record:
        stored = self._rows[row]
        if isinstance(stored, Record):
            return stored
        found = self._recent.get(stored)
        if found is None:
            found = self.cache._record_of_row(stored)
            self._remember(stored, found)
        else:
            self._recent.move_to_end(stored)
        return found

    def _remember(self, stored: Any, record: Record) -> None:
        if isinstance(stored, tuple):
            self._recent[stored] = record
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def id(self, row: int) -> str:
        return self._ids[row]

    def row_of(self, record_id: str) -> int | None:
        """The row of ``record_id`` in the window, or None."""
        key = self._key_of.get(record_id)
        return None if key is None else bisect_left(self._keys, key)

    def can_fetch_more(self) -> bool:
        return not self._exhausted

    # -- fetching ---------------------------------------------------------------------------------

    def fetch_more(self, listener: EditListener | None = None,
                   limit: int | None = None) -> int:
        """Read the next ``limit`` (default ``batch``) rows after the window and append them;
        how many were appended."""
        if self._exhausted:
            return 0
        size = self.batch if limit is None else limit
        found = self._read(size)
        self._exhausted = len(found) < size
        if found:
            self._boundary = found[-1][1]
            self._after = found[-1][2]
        # A row already in the window was moved past the boundary by a commit whose ChangeSet
        # has not come yet: that ChangeSet places it.
        fresh = [(r, k, stored) for r, k, _, stored in found if r.id not in self._key_of]
        if not fresh:
            return 0
        edit = Appended(len(self._ids), tuple(r for r, _, _ in fresh))
        listener = listener or _Quiet()
        listener.before(edit)
        for record, key, stored in fresh:
            self._ids.append(record.id)
            self._rows.append(stored)
            self._remember(stored, record)
            self._keys.append(key)
            self._key_of[record.id] = key
        listener.after(edit)
        return len(fresh)

    def _read(self, limit: int, ids: Sequence[str] | None = None
              ) -> list[tuple[Record, Key, list[Any], Any]]:
        """Rows after the boundary (or those of ``ids``, anywhere): each record, its key, its
        order-key values, and what the window keeps of it (see the module's docstring)."""
        if self.record_type == "Asset":
            if ids is not None:
                assets = [self.cache.asset(i) for i in ids]
                found = [a for a in assets if a is not None]
            else:
                after = None if self._after is None else str(self._after[0])
                found = self.cache._asset_rows(after=after, limit=limit)
            return [(a, (_ordered(a.id, False),), [a.id], a) for a in found]
        query = self._query
        if ids is not None:
            query = EntryQuery(query.content_type, query.where, query.order_by, query.locale,
                               None, 0, tuple(ids))
        rows, keys, stored = self.cache._ordered_rows(
            query, after=None if ids is not None else self._after,
            limit=None if ids is not None else limit)
        return [(record, tuple(_ordered(v, d) for v, d in zip(values, self._descending,
                                                               strict=True)), values, kept)
                for record, values, kept in zip(rows, keys, stored, strict=True)]

    # -- following changes --------------------------------------------------------------------

    def apply(self, changes: ChangeSet, listener: EditListener | None = None) -> list[Edit]:
        """Bring the window in step with what ``changes`` changed, edit by edit (each one
        between ``listener.before`` and ``listener.after``); the edits, in order."""
        listener = listener or _Quiet()
        edits: list[Edit] = []
        deleted, affected = ((changes.assets_deleted, ()) if self.record_type == "Asset"
                             else (changes.entries_deleted, changes.affected))
        for record_id in deleted:
            self._remove(record_id, listener, edits)
        found: dict[str, tuple[Record, Key, Any]] = {}
        unique = list(self.changed_ids(changes))
        for start in range(0, len(unique), _IDS_PER_READ):
            chunk = unique[start:start + _IDS_PER_READ]
            found.update((r.id, (r, k, kept)) for r, k, _, kept
                         in self._read(len(chunk), chunk))
        placed: set[str] = set()
        for record_id in unique:
            hit = found.get(record_id)
            if hit is None or not self._fits(hit[1]):
                self._remove(record_id, listener, edits)
            elif record_id in self._key_of:
                self._move(record_id, *hit, listener, edits)
                placed.add(record_id)
        for record_id in unique:
            hit = found.get(record_id)
            if hit is not None and record_id not in self._key_of and self._fits(hit[1]):
                self._insert(*hit, listener, edits)
                placed.add(record_id)
        for record_id in affected:
            row = self.row_of(record_id)
            if row is not None and record_id not in placed:
                self._edit(Changed(row, self.record(row)), listener, edits)
                listener.after(edits[-1])
        return edits

    def changed_ids(self, changes: ChangeSet) -> tuple[str, ...]:
        """The changed records :meth:`apply` reads back for ``changes``, once each, in order
        (what an adapter may read ahead, off its UI thread)."""
        if self.record_type == "Asset":
            return tuple(dict.fromkeys(changes.assets_changed))
        changed = changes.entries_changed
        if self.content_type is not None and self.content_type not in changes.content_types:
            # None of the changed entries is of this type now; one of the window's was,
            # before it was deleted and created again as another type.
            changed = tuple(i for i in changed if i in self._key_of)
        return tuple(dict.fromkeys(changed))

    def _fits(self, key: Key) -> bool:
        """Whether a row of this key belongs in the window: every row is in once the query is
        exhausted; before, those up to the boundary."""
        return self._exhausted or (self._boundary is not None and key <= self._boundary)

    @staticmethod
    def _edit(edit: Edit, listener: EditListener, edits: list[Edit]) -> None:
        listener.before(edit)
        edits.append(edit)

    def _remove(self, record_id: str, listener: EditListener, edits: list[Edit]) -> None:
        row = self.row_of(record_id)
        if row is None:
            return
        self._edit(Removed(row, record_id), listener, edits)
        del self._ids[row], self._rows[row], self._keys[row], self._key_of[record_id]
        listener.after(edits[-1])

    def _insert(self, record: Record, key: Key, stored: Any, listener: EditListener,
                edits: list[Edit]) -> None:
        row = bisect_left(self._keys, key)
        self._edit(Inserted(row, record), listener, edits)
        self._ids.insert(row, record.id)
        self._rows.insert(row, stored)
        self._remember(stored, record)
        self._keys.insert(row, key)
        self._key_of[record.id] = key
        listener.after(edits[-1])

    def _move(self, record_id: str, record: Record, key: Key, stored: Any,
              listener: EditListener, edits: list[Edit]) -> None:
        source = self.row_of(record_id)
        assert source is not None
        # Every other row's key is as stored, and sorted: place this one among them.
        destination = _position_without(self._keys, source, key)
        edit: Edit = (Changed(source, record) if destination == source
                      else Moved(source, destination, record))
        self._edit(edit, listener, edits)
        if destination != source:
            self._ids.insert(destination, self._ids.pop(source))
            self._rows.pop(source)
            self._rows.insert(destination, stored)
            self._keys.pop(source)
            self._keys.insert(destination, key)
        else:
            self._rows[source] = stored
            self._keys[source] = key
        self._remember(stored, record)
        self._key_of[record_id] = key
        listener.after(edit)


def _position_without(keys: list[Key], source: int, key: Key) -> int:
    """Where ``key`` goes in ``keys`` without its element ``source`` (sorted), with no copy."""
    row = bisect_left(keys, key)
    return row - 1 if row > source else row
