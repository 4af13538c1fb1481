"""Seeding a store from a bundled snapshot: first launch, and app upgrades.

Runs when a Cache is constructed with ``snapshot=``, before any connection to the store opens:

- no store yet: verify the snapshot and install it atomically;
- a store exists: replace it only under the app-upgrade rule (``snapshot.should_replace``),
  holding the sync lock so no sync of another process is clobbered; otherwise keep it.

Then the cache announces the seeded content with the signals a sync would send, so a UI that
listens for them (connected for any sender) renders at once.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from . import signals
from .errors import SnapshotError, StoreBusyError
from .model import StoreScope
from .snapshot import SnapshotInfo, install_snapshot, read_snapshot_info, should_replace
from .store.database import Store
from .store.stats import newest_update
from .sync.engine import SyncResult, TypeCounts
from .sync.lock import SyncLock

__all__ = ["announce_seed", "seed_store"]

log = logging.getLogger("localcache.snapshot")


def seed_store(path: Path, scope: StoreScope, snapshot: Path) -> SnapshotInfo | None:
    """Install ``snapshot`` at ``path`` when the rules allow; the info of what was installed."""
    info = read_snapshot_info(snapshot)
    if info.scope != scope:
        raise SnapshotError(
            f"snapshot {str(snapshot)!r} holds {info.provider} space {info.space!r} "
            f"environment {info.environment!r}, not {scope.provider} space {scope.space!r} "
            f"environment {scope.environment!r}")
    if not path.exists():
        return install_snapshot(snapshot, path, scope)
    if not _upgrade_wanted(path, scope, info):
        return None
    try:
        with SyncLock(path):
            installed = install_snapshot(snapshot, path, scope)
    except StoreBusyError:
        log.info("a sync holds %s; keeping it rather than installing the bundled snapshot", path)
        return None
    log.info("replaced %s with the newer bundled snapshot from %s", path, info.created_at)
    return installed


def _upgrade_wanted(path: Path, scope: StoreScope, info: SnapshotInfo) -> bool:
    store = Store(path, scope)
    try:
        token = store.token()
        in_progress = (token is not None and token.kind == "page") or bool(
            store.state("rebuild_token"))
        return should_replace(info, store.state("last_sync_at"), newest_update(store),
                              in_progress)
    finally:
        store.close()


def announce_seed(sender: object, store: Store, started: float) -> None:
    """changes_committed and sync_finished for everything the snapshot brought."""
    conn = store.raw_connection()
    entries = tuple(row[0] for row in conn.execute("SELECT id FROM entries ORDER BY id"))
    assets = tuple(row[0] for row in conn.execute("SELECT id FROM assets ORDER BY id"))
    types = frozenset(row[0] for row in conn.execute("SELECT DISTINCT content_type FROM entries"))
    signals.emit(signals.changes_committed, sender, changes=signals.ChangeSet(
        page=0, entries_added=entries, assets_added=assets, content_types=types))
    result = SyncResult(pages=0, entries=TypeCounts(added=len(entries)),
                        assets=TypeCounts(added=len(assets)),
                        seconds=time.monotonic() - started, initial=True,
                        items=len(entries) + len(assets))
    signals.emit(signals.sync_finished, sender, result=result)
