"""Seeding a store from a bundled snapshot: first launch, and app upgrades.

Runs when a Cache is constructed with ``snapshot=``, before any connection to the store opens:

- no store yet: verify the snapshot and install it atomically;
- a store exists: under the sync lock (so no sync of another process is clobbered, and none
  can slip in between the decision and the install), replace it only under the app-upgrade
  rule (``snapshot.should_replace``); otherwise keep it.

A bundled snapshot that cannot be used (damaged, truncated, of a newer format) never stops the
app from opening: the existing store is kept, or on a first launch an empty one is opened for
the next sync to fill, and the reason is returned (``Cache.snapshot_error``) and logged. Only a
caller's mistake raises: a snapshot path that names no file or a directory, or a snapshot of
another provider, space or environment than the Cache is configured for.

Then the cache announces the seeded content with the signals a sync would send, so a UI that
listens for them (connected for any sender) renders at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from . import signals
from .errors import SnapshotError, StoreBusyError
from .model import StoreScope
from .snapshot import SnapshotInfo, install_snapshot, read_snapshot_info, should_replace
from .store.database import Store
from .store.stats import newest_update
from .sync.engine import SyncResult, TypeCounts
from .sync.lock import SyncLock

__all__ = ["Seeding", "announce_seed", "seed_store"]

log = logging.getLogger("localcache.snapshot")


@dataclass(frozen=True)
class Seeding:
    """What opening with a snapshot did: what it installed, or why the snapshot was unusable."""

    installed: SnapshotInfo | None = None
    error: SnapshotError | None = None


def seed_store(path: Path, scope: StoreScope, snapshot: Path,
               files_to: Path | None = None) -> Seeding:
    """Install ``snapshot`` at ``path`` when the rules allow, and the asset files it bundles
    in ``files_to`` (None: a Cache without ``assets=`` leaves them out). A damaged snapshot is
    reported in the result, not raised; the caller's mistakes raise SnapshotError."""
    _check_given(snapshot)
    first_launch = not path.exists()
    try:
        info = read_snapshot_info(snapshot)
    except SnapshotError as exc:
        return _unusable(path, first_launch, exc)
    if info.scope != scope:
        raise SnapshotError(
            f"snapshot {str(snapshot)!r} holds {info.provider} space {info.space!r} "
            f"environment {info.environment!r}, not {scope.provider} space {scope.space!r} "
            f"environment {scope.environment!r}; bundle the snapshot of this space")
    try:
        if first_launch:
            return Seeding(installed=install_snapshot(snapshot, path, scope, files_to))
        return Seeding(installed=_upgrade(path, scope, snapshot, info, files_to))
    except SnapshotError as exc:
        return _unusable(path, first_launch, exc)


def _check_given(snapshot: Path) -> None:
    if snapshot.is_dir():
        raise SnapshotError(f"snapshot path {str(snapshot)!r} is a directory; "
                            "pass the snapshot file itself")
    if not snapshot.exists():
        raise SnapshotError(f"no snapshot file at {str(snapshot)!r}; check the path "
                            "the app bundles it under")


def _unusable(path: Path, first_launch: bool, error: SnapshotError) -> Seeding:
    if first_launch:
        log.warning("%s; opening an empty store at %s for the next sync to fill", error, path)
    else:
        log.warning("%s; keeping the existing store at %s", error, path)
    return Seeding(error=error)


def _upgrade(path: Path, scope: StoreScope, snapshot: Path, info: SnapshotInfo,
             files_to: Path | None) -> SnapshotInfo | None:
    """Replace the store under the app-upgrade rule, deciding and installing under the sync
    lock: a sync that started after the decision could otherwise be clobbered."""
    try:
        with SyncLock(path):
            if not _upgrade_wanted(path, scope, info):
                return None
            installed = install_snapshot(snapshot, path, scope, files_to)
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
