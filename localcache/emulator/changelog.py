"""Append-only change log with point-in-time reads, the core of consistent sync paging.

Every visible change to a resource (publish, unpublish, delete) appends one ``Version``
stamped with a global sequence number.  A sync request is answered "as of" a fixed sequence
number ``at`` recorded in its token, so mutations that land between two page requests can never
make a page skip or repeat a resource: they simply belong to the next delta.  Pages are cut by a
keyset cursor over a stable key order rather than by offset, for the same reason.

Versions and histories are plain tuples on purpose: tuples holding only str/bytes/int are
untracked by the cyclic garbage collector, whereas ~100k dataclass instances would be rescanned
by every full collection and made an in-process client's JSON parsing three times slower.

Not thread-safe on its own; :class:`~localcache.emulator.space.Space` serialises access.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["BODY", "CONTENT_TYPE", "PUBLISHED", "SEQ", "ChangeLog", "Key", "Page", "Version"]

Key = tuple[str, str]
"""(kind, id) with kind "Asset" or "Entry"; tuple order gives the stable paging order."""

_DELTA_CACHE_SIZE = 16
_INSORT_LIMIT = 64


Version = tuple[int, bool, str | None, bytes]
"""(seq, published, content_type, body): a resource's delivery state from ``seq`` on.

``body`` is the serialized item (Entry/Asset or DeletedEntry/DeletedAsset), computed once at
mutation time so pages are assembled by joining bytes instead of re-encoding dicts.
"""
SEQ: Final = 0
PUBLISHED: Final = 1
CONTENT_TYPE: Final = 2
BODY: Final = 3


@dataclass(frozen=True, slots=True)
class Page:
    """A slice of a sync: item bodies, the key of the last one, and whether more follow."""

    items: list[bytes]
    last: Key | None
    more: bool


def _seq_of(version: Version) -> int:
    return version[SEQ]


class ChangeLog:
    """History of every resource ever published, queryable at any past sequence number."""

    def __init__(self) -> None:
        self._log: list[Key] = []  # index i holds the key changed by sequence number i + 1
        self._history: dict[Key, tuple[Version, ...]] = {}
        self._sorted: list[Key] = []
        self._unsorted: list[Key] = []
        self._delta_cache: OrderedDict[tuple[int, int], list[Key]] = OrderedDict()

    @property
    def head(self) -> int:
        """Sequence number of the latest change (0 for an empty log)."""
        return len(self._log)

    def append(self, key: Key, *, published: bool, content_type: str | None, body: bytes) -> int:
        """Record a new visible state of ``key`` and return its sequence number."""
        seq = len(self._log) + 1
        version: Version = (seq, published, content_type, body)
        history = self._history.get(key)
        if history is None:
            self._history[key] = (version,)
            self._unsorted.append(key)
        else:
            self._history[key] = (*history, version)  # histories are short; copying is cheap
        self._log.append(key)
        return seq

    def current(self, key: Key) -> Version | None:
        """Latest state of ``key``, or None when it was never published."""
        history = self._history.get(key)
        return history[-1] if history else None

    def state_at(self, key: Key, at: int) -> Version | None:
        """State of ``key`` as of sequence number ``at``, or None if it had no state yet."""
        history = self._history.get(key)
        if not history:
            return None
        if history[-1][SEQ] <= at:  # the common case: nothing changed since
            return history[-1]
        index = bisect_right(history, at, key=_seq_of)
        return history[index - 1] if index else None

    def current_versions(self, kind: str) -> Iterator[tuple[str, Version]]:
        """(id, latest version) of every resource of ``kind`` that has a history."""
        for (key_kind, key_id), history in self._history.items():
            if key_kind == kind:
                yield key_id, history[-1]

    def scan(
        self,
        *,
        at: int,
        since: int | None,
        after: Key | None,
        limit: int,
        kinds: Collection[str],
        accept: Callable[[Version], bool],
    ) -> Page:
        """One page of a sync evaluated as of ``at``.

        ``since`` None means an initial sync (every key that has a state at ``at``); otherwise a
        delta over the keys changed in (since, at].  Keys are visited in sorted order strictly
        after ``after``; a key is included when its kind is in ``kinds`` and ``accept`` approves
        its state at ``at``.  ``more`` is only True when a further matching item really exists,
        so the last page is never an empty page.
        """
        keys = self._all_keys() if since is None else self._changed_keys(since, at)
        low_kind, high_kind = min(kinds), max(kinds)
        if after is not None:
            start = bisect_right(keys, after)
        else:
            start = bisect_left(keys, (low_kind, ""))
        items: list[bytes] = []
        last: Key | None = None
        state_at = self.state_at
        for index in range(start, len(keys)):
            key = keys[index]
            kind = key[0]
            if kind not in kinds:
                if kind > high_kind:
                    break
                continue
            version = state_at(key, at)
            if version is None or not accept(version):
                continue
            if len(items) >= limit:
                return Page(items, last, True)
            items.append(version[BODY])
            last = key
        return Page(items, last, False)

    def _all_keys(self) -> list[Key]:
        """Every key ever seen, sorted; new keys are merged in lazily.

        A handful of new keys are insorted (cheap); a bulk load (generate_space) triggers one
        full sort instead of thousands of O(n) insertions.
        """
        if self._unsorted:
            if len(self._unsorted) <= _INSORT_LIMIT:
                for key in self._unsorted:
                    index = bisect_left(self._sorted, key)
                    self._sorted.insert(index, key)
            else:
                self._sorted.extend(self._unsorted)
                self._sorted.sort()
            self._unsorted.clear()
        return self._sorted

    def _changed_keys(self, since: int, at: int) -> list[Key]:
        """Sorted distinct keys changed in (since, at], cached across the pages of one delta."""
        cache_key = (since, at)
        cached = self._delta_cache.get(cache_key)
        if cached is not None:
            self._delta_cache.move_to_end(cache_key)
            return cached
        keys = sorted(set(self._log[since:at]))
        self._delta_cache[cache_key] = keys
        if len(self._delta_cache) > _DELTA_CACHE_SIZE:
            self._delta_cache.popitem(last=False)
        return keys
