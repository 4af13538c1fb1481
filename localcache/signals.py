"""Signals that tell an app what a sync changed.

All live in a private blinker ``Namespace``, so their names never clash with the app's. The
sender is always the :class:`~localcache.Cache`; payloads are keyword arguments:

=======================  ==========================================================
``sync_started``         a sync began (``initial=``: True for an initial sync)
``sync_progress``        a page committed (``page=``, ``items=``, ``total=`` or None)
``sync_finished``        ``result=``: the :class:`SyncResult`
``sync_failed``          ``error=``: the :class:`~localcache.LocalCacheError`
``entry_changed``        ``id=``, ``record=``: an entry was added or updated
``entry_deleted``        ``id=``: an entry the store held is gone
``asset_changed``        ``id=``, ``record=``
``asset_deleted``        ``id=``
``changes_committed``    ``changes=``: one :class:`ChangeSet` per committed page
``sync_status_changed``  ``status=``: the new :class:`~localcache.SyncStatus` of the
                         background sync (``cache.start_auto_sync()``), on every change
``asset_file_ready``     ``id=``, ``locale=``, ``path=``: an asset file landed on disk
                         (``Cache(..., assets=)``; docs/assets.md)
``asset_file_removed``   ``id=``, ``locale=``: an asset file was removed from disk
=======================  ==========================================================

Signals are sent only after the page's transaction commits, on the syncing thread; UI adapters
move them to the UI thread. After each commit, every record that page changed fires once,
carrying the record as that commit stored it (merged, all locales), so the last signal a record
gets in a sync agrees with the store; a page that changes nothing fires no per-record signal.
``sync_status_changed`` is sent by the thread that changed the state: the background sync's,
or the one calling ``pause()``, ``resume()`` or ``stop()``.
``asset_file_ready`` is sent by the thread that downloaded the file, after it is in place and
recorded; ``asset_file_removed`` after the file is unlinked, which for a deleted or unpublished
asset is after the commit that removed its record. ``locale`` is None for a file the vendor does
not localize (Kontent.ai).
A receiver that raises is logged and the sync goes on. Blinker holds receivers weakly by
default: keep a reference to a receiver defined inside a function, or connect it with
``weak=False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from blinker import Namespace, Signal

__all__ = [
    "ChangeSet",
    "asset_changed",
    "asset_deleted",
    "asset_file_ready",
    "asset_file_removed",
    "changes_committed",
    "entry_changed",
    "entry_deleted",
    "sync_failed",
    "sync_finished",
    "sync_progress",
    "sync_started",
    "sync_status_changed",
]

log = logging.getLogger("localcache.signals")

_signals = Namespace()

sync_started = _signals.signal("sync-started", doc="A sync began. kwargs: initial")
sync_progress = _signals.signal(
    "sync-progress", doc="A page committed. kwargs: page, items, total (None if unknown)")
sync_finished = _signals.signal("sync-finished", doc="A sync completed. kwargs: result")
sync_failed = _signals.signal("sync-failed", doc="A sync stopped on an error. kwargs: error")
entry_changed = _signals.signal(
    "entry-changed", doc="An entry was added or updated. kwargs: id, record")
entry_deleted = _signals.signal("entry-deleted", doc="A stored entry was deleted. kwargs: id")
asset_changed = _signals.signal(
    "asset-changed", doc="An asset was added or updated. kwargs: id, record")
asset_deleted = _signals.signal("asset-deleted", doc="A stored asset was deleted. kwargs: id")
changes_committed = _signals.signal(
    "changes-committed", doc="A page committed. kwargs: changes (a ChangeSet)")
sync_status_changed = _signals.signal(
    "sync-status-changed",
    doc="The background sync changed state. kwargs: status (a SyncStatus)")
asset_file_ready = _signals.signal(
    "asset-file-ready", doc="An asset file landed on disk. kwargs: id, locale, path")
asset_file_removed = _signals.signal(
    "asset-file-removed", doc="An asset file was removed from disk. kwargs: id, locale")


@dataclass(frozen=True)
class ChangeSet:
    """What one committed page changed, so a UI refreshes once per batch.

    ``content_types`` names every content type touched (added, updated or deleted entries),
    so a list view can tell whether it must reload. ``affected`` lists the stored entries
    (ids, in id order) whose fields link to a record the page added, updated or deleted, as
    that commit left them: a row showing a linked image refreshes when the image changes.
    """

    page: int
    entries_added: tuple[str, ...] = ()
    entries_updated: tuple[str, ...] = ()
    entries_deleted: tuple[str, ...] = ()
    assets_added: tuple[str, ...] = ()
    assets_updated: tuple[str, ...] = ()
    assets_deleted: tuple[str, ...] = ()
    content_types: frozenset[str] = field(default_factory=frozenset)
    affected: tuple[str, ...] = ()

    @property
    def entries_changed(self) -> tuple[str, ...]:
        return self.entries_added + self.entries_updated

    @property
    def assets_changed(self) -> tuple[str, ...]:
        return self.assets_added + self.assets_updated

    @property
    def empty(self) -> bool:
        return not (self.entries_added or self.entries_updated or self.entries_deleted
                    or self.assets_added or self.assets_updated or self.assets_deleted)

    def __len__(self) -> int:
        return (len(self.entries_added) + len(self.entries_updated) + len(self.entries_deleted)
                + len(self.assets_added) + len(self.assets_updated) + len(self.assets_deleted))


def emit(signal: Signal, sender: object, **kwargs: Any) -> None:
    """Send to each receiver in turn; one that raises is logged and the rest still run."""
    if not signal.receivers:
        return
    for receiver in list(signal.receivers_for(sender)):
        try:
            receiver(sender, **kwargs)
        except Exception:
            log.exception("receiver %r of signal %r raised; the sync goes on",
                          receiver, getattr(signal, "name", signal))
