"""Cache: the one object an app holds. Open a store, sync it, read from it, close it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from ._version import __version__
from .errors import ConfigurationError, StoreCorruptError
from .model import LocaleInfo, RecordType
from .paths import default_store_path
from .providers.base import Provider
from .seeding import announce_seed, seed_store
from .snapshot import SnapshotInfo, create_snapshot
from .store.database import Store
from .store.query import LocaleChain, Record, read_asset, read_batch, read_entries, read_entry
from .store.recovery import move_aside
from .store.stats import store_stats
from .sync.engine import SyncEngine, SyncResult

__all__ = ["Cache"]

log = logging.getLogger("localcache.cache")


def _open_store(path: Path, provider: Provider, snapshot: Path | None,
                rebuild_if_corrupt: bool) -> tuple[Store, SnapshotInfo | None]:
    """Seed (when a snapshot is given) and open the store.

    With ``rebuild_if_corrupt`` the store is verified, and a damaged one is moved aside (never
    deleted) to start afresh: from the snapshot when there is one, else by the next sync.
    """

    def attempt() -> tuple[Store, SnapshotInfo | None]:
        seeded = seed_store(path, provider.scope, snapshot) if snapshot is not None else None
        return Store(path, provider.scope, verify=rebuild_if_corrupt), seeded

    try:
        return attempt()
    except StoreCorruptError as exc:
        if not rebuild_if_corrupt:
            raise
        moved = move_aside(path)
        log.warning("%s; moved it aside to %s and starting afresh", exc, moved)
        return attempt()


class Cache:
    """An on-device store of one space, kept current through the vendor's Sync API.

    Constructing a Cache opens (or creates) the store file and does no network I/O; call
    :meth:`sync` for that. With ``snapshot=``, a bundled snapshot seeds a store that does not
    exist yet (or replaces an older one, see docs/snapshot.md) before it opens.
    Reads work offline, from any thread, at any time, and always see whole committed pages.
    """

    def __init__(
        self,
        provider: Provider,
        path: str | Path | None = None,
        app_name: str | None = None,
        snapshot: str | Path | None = None,
        *,
        app_author: str | None = None,
        lock_wait: float = 0.0,
        rebuild_if_corrupt: bool = False,
    ) -> None:
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                f"Cache needs a provider such as Contentful(...), not {type(provider).__name__}"
            )
        started = time.monotonic()
        self.provider: Provider | None = provider
        self.path = Path(path) if path is not None else default_store_path(
            provider.scope, app_name, app_author)
        self.lock_wait = lock_wait
        self._store, seeded = _open_store(
            self.path, provider, Path(snapshot) if snapshot is not None else None,
            rebuild_if_corrupt)
        #: The snapshot installed while opening (first launch or app upgrade), else None.
        self.seeded: SnapshotInfo | None = seeded
        self._chain_lock = threading.Lock()
        self._chain: LocaleChain | None = None
        if self.seeded is not None:
            announce_seed(self, self._store, started)

    @classmethod
    def open(cls, path: str | Path) -> Cache:
        """An existing store, read with no provider: what ``localcache export`` and ``stats``
        use. Every read works; :meth:`sync` raises ConfigurationError, since nothing says
        where the content comes from. A missing file raises StoreError."""
        cache = cls.__new__(cls)
        cache.provider = None
        cache.path = Path(path)
        cache.lock_wait = 0.0
        cache._store = Store(cache.path, create=False)
        cache.seeded = None
        cache._chain_lock = threading.Lock()
        cache._chain = None
        return cache

    def __repr__(self) -> str:
        return f"Cache({self.provider!r}, path={str(self.path)!r})"

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close this thread's connection and the provider's HTTP session."""
        self._store.close()
        if self.provider is not None:
            self.provider.close()

    # -- sync ---------------------------------------------------------------------------------

    def sync(self, *, full: bool = False) -> SyncResult:
        """Bring the store up to date: an initial sync the first time, then deltas.

        ``full=True`` forces a fresh initial sync, built beside the live data and swapped in
        when complete (the same recovery that runs when the CMS rejects the stored token).
        Raises a :class:`~localcache.LocalCacheError` subclass on failure; every page
        committed before the failure stays, and the next call resumes after it.
        """
        if self.provider is None:
            raise ConfigurationError(
                f"the cache at {str(self.path)!r} was opened for reading (Cache.open); "
                "give Cache a provider to sync it")
        try:
            engine = SyncEngine(self._store, self.provider, self, lock_wait=self.lock_wait)
            return engine.run(full=full)
        finally:
            with self._chain_lock:
                self._chain = None

    # -- reads --------------------------------------------------------------------------------

    def entry(self, entry_id: str) -> Record | None:
        with self._store.reading():
            return read_entry(self._store.models, str(entry_id), self._locale_chain())

    def asset(self, asset_id: str) -> Record | None:
        with self._store.reading():
            return read_asset(self._store.models, str(asset_id), self._locale_chain())

    def entries(
        self,
        content_type: str | None = None,
        *,
        ids: list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Record]:
        """Entries in id order, optionally of one content type or with the given ids."""
        with self._store.reading():
            return read_entries(self._store.models, self._locale_chain(),
                                content_type=content_type, ids=ids, limit=limit, offset=offset)

    def resolve(self, record: Record, field: str, locale: str | None = None) -> list[Record]:
        """The records a link (or link array) field points to, skipping missing targets."""
        out: list[Record] = []
        for link_type, target in record.links(field, locale):
            found = self.entry(target) if link_type == "Entry" else self.asset(target)
            if found is not None:
                out.append(found)
        return out

    def iter_records(self, record_type: RecordType = "Entry", *,
                     batch: int = 500) -> Iterator[Record]:
        """Every entry (or ``"Asset"``) in id order, read in batches so memory stays flat."""
        if record_type not in ("Entry", "Asset"):
            raise ConfigurationError(
                f"iter_records takes 'Entry' or 'Asset', not {record_type!r}")
        chain = self._locale_chain()
        last: str | None = None
        while True:
            with self._store.reading():
                rows = read_batch(self._store.models, record_type, chain, after=last,
                                  limit=batch)
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def create_snapshot(self, path: str | Path) -> SnapshotInfo:
        """Write a snapshot of this store to ``path`` for an app to bundle (docs/snapshot.md).

        Consistent even while a sync runs: it captures one committed page boundary.
        """
        return create_snapshot(self.path, Path(path), library_version=__version__)

    def locales(self) -> list[LocaleInfo]:
        with self._store.reading():
            return self._store.locales()

    def stats(self) -> dict[str, Any]:
        with self._store.reading():
            return store_stats(self._store)

    def _locale_chain(self) -> LocaleChain:
        with self._chain_lock:
            if self._chain is None or self._chain.default is None:
                # Locales arrive with the first page of the first sync: until then, look again.
                with self._store.reading():
                    self._chain = LocaleChain.from_locales(self._store.locales())
            return self._chain
