"""Cache: the one object an app holds. Open a store, sync it, read from it, close it."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ._version import __version__
from .assets.bundle import bundler
from .assets.files import AssetFiles
from .assets.opening import assets_directory, open_asset_files
from .assets.policy import AssetPolicy
from .autosync import AutoSync, CommitGate
from .errors import (
    ConfigurationError,
    LocalCacheError,
    SnapshotError,
    StoreCorruptError,
    StoreError,
)
from .model import ContentTypeInfo, LocaleInfo
from .paths import default_store_path
from .providers.base import Provider
from .reading import CacheReads
from .searching import SearchHit, SearchIndex
from .seeding import Seeding, announce_seed, seed_store
from .snapshot import SnapshotInfo, create_snapshot
from .store.content_types import read_content_type, read_content_types
from .store.database import Store
from .store.indexes import normalize_declaration, normalize_locales
from .store.query import LocaleChain, Record, chain_for
from .store.recovery import move_aside
from .store.stats import store_stats
from .sync.engine import SyncEngine, SyncResult

__all__ = ["Cache"]

log = logging.getLogger("localcache.cache")

#: How long :meth:`Cache.close` lets a running AutoSync finish a ``COMMIT`` under way.
_AUTO_SYNC_STOP_SECONDS = 1.0


def _open_store(path: Path, provider: Provider, snapshot: Path | None,
                rebuild_if_corrupt: bool, files_to: Path | None = None) -> tuple[Store, Seeding]:
    """Seed (when a snapshot is given) and open the store.

    A snapshot that cannot be used leaves the store as it was (or, on a first launch, an empty
    one): the Seeding says why. With ``rebuild_if_corrupt`` the store is verified, and a
    damaged one is moved aside (never deleted) to start afresh: from the snapshot when there
    is one, else by the next sync.
    """

    def attempt() -> tuple[Store, Seeding]:
        seeding = (seed_store(path, provider.scope, snapshot, files_to)
                   if snapshot is not None else Seeding())
        return Store(path, provider.scope, verify=rebuild_if_corrupt), seeding

    try:
        return attempt()
    except StoreCorruptError as exc:
        if not rebuild_if_corrupt:
            raise
        moved = move_aside(path)
        log.warning("%s; moved it aside to %s and starting afresh", exc, moved)
        return attempt()


class Cache(CacheReads):
    """An on-device store of one space, kept current through the vendor's Sync API.

    Constructing a Cache opens (or creates) the store file and does no network I/O; call
    :meth:`sync` for that. With ``snapshot=``, a bundled snapshot seeds a store that does not
    exist yet (or replaces an older one, see docs/snapshot.md) before it opens; a snapshot that
    cannot be used is logged and reported in :attr:`snapshot_error`, and the Cache opens anyway.
    Reads work offline, from any thread, until :meth:`close`, and always see whole committed
    pages. With ``assets=AssetPolicy(...)``, the asset binaries are kept on disk too
    (:attr:`assets`, :meth:`asset_path`; docs/assets.md); without it, none are.
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
        indexes: Mapping[str, Sequence[str]] | None = None,
        index_locales: Sequence[str] | None = None,
        search: bool = True,
        assets: AssetPolicy | None = None,
    ) -> None:
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                f"Cache needs a provider such as Contentful(...), not {type(provider).__name__}"
            )
        normalize_declaration(indexes)  # bad arguments are refused before the store opens
        locales = normalize_locales(index_locales)  # once: an iterator is read here
        started = time.monotonic()
        where = Path(path) if path is not None else default_store_path(
            provider.scope, app_name, app_author)
        store, seeding = _open_store(
            where, provider, Path(snapshot) if snapshot is not None else None,
            rebuild_if_corrupt, None if assets is None else  # a snapshot's asset files go there
            assets_directory(provider.scope, assets, app_name, app_author))
        self._attach(provider, where, store, seeding, lock_wait=lock_wait, search=search)
        if assets is not None:  # asset files (docs/assets.md); without assets=, none at all
            self._open_assets(provider, assets, app_name=app_name, app_author=app_author)
        self._search.prepare(self._locale_chain)
        self._use_field_indexes(indexes, locales)
        if self.seeded is not None:
            announce_seed(self, self._store, started)

    @classmethod
    def open(cls, path: str | Path, *, assets: AssetPolicy | bool = False,
             asset_base_url: str | None = None) -> Cache:
        """An existing store, read with no provider: what ``localcache export`` and ``stats``
        use. Every read works; :meth:`sync` raises ConfigurationError, since nothing says
        where the content comes from. A missing file raises StoreError.

        ``assets=True`` uses the asset policy, directory and asset base URL the app's Cache
        stored in the store (``localcache assets download``); an AssetPolicy, that one."""
        cache = cls.__new__(cls)
        cache._attach(None, Path(path), Store(Path(path), create=False), Seeding(),
                      lock_wait=0.0, search=None)
        if assets is not False:
            cache._open_assets(None, assets, asset_base_url=asset_base_url)
        return cache

    _asset_files: AssetFiles | None

    def _open_assets(self, provider: Provider | None, assets: AssetPolicy | bool,
                     **options: Any) -> None:
        try:
            self._asset_files = open_asset_files(self, self._store, provider, assets,
                                                 **options)
        except BaseException:
            self._store.close()
            raise

    def _attach(self, provider: Provider | None, path: Path, store: Store, seeding: Seeding,
                *, lock_wait: float, search: bool | None) -> None:
        """The state every Cache holds, however it was opened."""
        self.provider = provider
        self.path = path
        self.lock_wait = lock_wait
        self._store = store
        #: The snapshot installed while opening (first launch or app upgrade), else None.
        self.seeded: SnapshotInfo | None = seeding.installed
        #: Why the bundled snapshot could not be used (damaged, newer format), else None.
        self.snapshot_error: SnapshotError | None = seeding.error
        self._chain_lock = threading.Lock()
        self._chain: LocaleChain | None = None
        self._search = SearchIndex(store, wanted=search)
        self._auto_lock = threading.Lock()
        self._auto: AutoSync | None = None
        self._auto_refused = False  # closing: no AutoSync may start any more
        self._asset_files = None

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
        """Close every connection to the store, whichever thread opened it, and the provider's
        HTTP session. The store file, its ``-wal`` and ``-shm`` are released.

        A running :class:`~localcache.AutoSync` is stopped first (within a second; a page in
        flight commits whole or not at all). A read or page write under way on another thread
        is given a few seconds to finish.
        Afterwards every read, :meth:`sync` and :meth:`create_snapshot` raises StoreError
        ("the cache is closed"). Calling it again does nothing.
        """
        with self._auto_lock:
            auto, self._auto_refused = self._auto, True
        if auto is not None:
            auto.stop(timeout=_AUTO_SYNC_STOP_SECONDS)
        if self._asset_files is not None:
            self._asset_files.close()
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
        return self._sync(full=full)

    def _sync(self, *, full: bool = False, gate: CommitGate | None = None) -> SyncResult:
        """:meth:`sync`; with ``gate``, every write transaction passes it (AutoSync.stop)."""
        if self.provider is None:
            raise ConfigurationError(
                f"the cache at {str(self.path)!r} was opened for reading (Cache.open); "
                "give Cache a provider to sync it")
        self._store.ensure_open()
        try:
            store = self._store if gate is None else gate.guard(self._store)
            engine = SyncEngine(store, self.provider, self, lock_wait=self.lock_wait,
                                search=self._search.enabled)
            return engine.run(full=full)
        finally:
            with self._chain_lock:
                self._chain = None
            if self._indexes_pending or self._declared_indexes:
                self._follow_chains()

    def _follow_chains(self) -> None:
        """After a sync: declared hot fields that waited for the first locales are built, and
        their columns follow chains the sync changed (locales, fallbacks, localized fields).
        One read when nothing differs; a store busy with another writer is left for the next
        read to try (``_indexes_pending``)."""
        if self._store.closed:  # closed during the sync: the next open builds them
            return
        try:
            self._refresh_field_indexes(wait=False)
        except (LocalCacheError, sqlite3.Error) as error:  # the sync's outcome is what counts
            log.warning("hot-field indexes not brought up to date after the sync: %s", error)
            self._indexes_pending = True

    def start_auto_sync(self, interval: float = 300.0) -> AutoSync:
        """Keep the store current in the background: a sync now, then every ``interval``
        seconds, with backoff while offline (docs/autosync.md).

        One daemon thread per Cache: while one runs, this returns it (with its own
        interval); a stopped one is replaced. Its syncs and :meth:`sync` never run at once
        (a manual sync meanwhile may raise StoreBusyError; see ``lock_wait``).
        :meth:`close` stops it.
        """
        if self.provider is None:
            raise ConfigurationError(
                f"the cache at {str(self.path)!r} was opened for reading (Cache.open); "
                "give Cache a provider to sync it")
        with self._auto_lock:
            if self._auto_refused:
                raise StoreError(f"cannot start an automatic sync of store {str(self.path)!r}: "
                                 "the cache is closed; open a new Cache to sync it")
            if self._auto is not None and self._auto.status.state != "stopped":
                return self._auto
            auto = AutoSync(self, interval)
            auto.start()
            self._auto = auto
            return auto

    # -- asset files (docs/assets.md) ----------------------------------------------------------

    @property
    def assets(self) -> AssetFiles:
        """The asset files: ``download()``, ``fetch()``, ``pin()``, ``check()``, ``stats()``.
        ConfigurationError when the Cache was opened without ``assets=``."""
        if self._asset_files is None:
            raise ConfigurationError(
                f"the cache at {str(self.path)!r} keeps no asset files; open it with "
                "Cache(..., assets=AssetPolicy(...))")
        return self._asset_files

    def asset_path(self, asset_id: str, locale: str | None = None) -> Path | None:
        """The file of an asset on disk, in ``locale`` (default: the default locale, then its
        fallback chain); None until it is downloaded, and from the commit that removed the
        asset's record. One indexed read: cheap enough for every row a list view draws."""
        return self.assets.path(asset_id, locale)

    # -- search and content types -------------------------------------------------------------

    def search(self, text: str, locale: str | None = None, content_type: str | None = None,
               limit: int = 20) -> list[SearchHit]:
        """Entries whose text in ``locale`` (default: the default locale; after fallback, as
        :meth:`Record.field` shows it) contains every word of ``text``, case-insensitively,
        best first (bm25). See docs/querying.md. Raises ConfigurationError where search is
        off (``Cache(..., search=False)``) or the SQLite build has no FTS5."""
        return self._search.search(text, self._locale_chain, locale, content_type, limit,
                                   self._link_resolver())

    def content_types(self) -> list[ContentTypeInfo]:
        """The content type definitions of the space, as the last sync stored them."""
        with self._store.reading():
            return read_content_types(self._store.raw_connection())

    def content_type(self, content_type_id: str) -> ContentTypeInfo | None:
        """One content type definition, or None."""
        with self._store.reading():
            return read_content_type(self._store.raw_connection(), str(content_type_id))

    # -- reads --------------------------------------------------------------------------------

    def resolve(self, record: Record, field: str, locale: str | None = None) -> list[Record]:
        """The records a link (or link array) field points to, skipping missing targets, for
        every vendor (see :meth:`Record.resolve`), in one read transaction. Works for any
        record, also one this Cache did not read (a signal's)."""
        found = self._resolve_links(record.links(field, locale))
        return [target for target in found if target is not None]

    def create_snapshot(self, path: str | Path, *, compress: bool = False,
                        with_assets: bool | AssetPolicy = False) -> SnapshotInfo:
        """Write a snapshot of this store to ``path`` for an app to bundle (docs/snapshot.md);
        with ``compress``, a zlib stream about a quarter of the store's size.

        ``with_assets`` bundles the asset files on disk (an AssetPolicy: those it keeps), so
        a seeded first launch shows them with no network; the snapshot's checksums cover them.

        Consistent even while a sync runs: it captures one committed page boundary.
        """
        self._store.ensure_open()
        directory = None
        if with_assets is not False:
            directory = self.assets.directory
            self.assets.flush()
        files = bundler(directory, with_assets if isinstance(with_assets, AssetPolicy)
                        else None)
        return create_snapshot(self.path, Path(path), library_version=__version__,
                               compress=compress, files=files)

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
                    self._chain = chain_for(self._store.raw_connection())
            return self._chain
