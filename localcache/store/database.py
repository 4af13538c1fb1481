"""Opening a store file: version check, connection settings, scope, sync state.

Connections are per thread (peewee's default), so UI threads read while the sync engine writes;
in WAL mode readers never wait for the writer and always see whole committed pages. Every
connection opened on any thread is remembered, so :meth:`Store.close` closes them all (the file,
its ``-wal`` and ``-shm`` are released) and the store refuses to reconnect afterwards.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peewee import PeeweeException, SqliteDatabase

from ..errors import StoreCorruptError, StoreError, StoreMismatchError
from ..model import ContinuationToken, LocaleInfo, StoreScope
from .models import BoundModels, bind_models
from .schema import BUSY_TIMEOUT_MS, connection_pragmas, migrate, read_header, store_error

__all__ = ["Store"]

_SCOPE_KEYS = ("provider", "space", "environment")
# How long close() lets a read or page write in progress on another thread finish before it
# interrupts it: long enough for any one page, short enough for an app quitting.
_CLOSE_GRACE_SECONDS = 5.0


def _closed_error(path: Path) -> StoreError:
    return StoreError(f"cannot use store {str(path)!r}: the cache is closed; "
                      "open a new Cache to read or sync it")


class _TrackedDatabase(SqliteDatabase):
    """peewee's SqliteDatabase, remembering the connection it opens on every thread.

    peewee keeps connections in thread-locals, where only their own thread can reach them; this
    registry lets :meth:`shut` close them all, and refuses new ones once shut (a read after
    close must fail, not quietly reopen the file).
    """

    def __init__(self, path: Path) -> None:
        self._store_path = path
        self._registry = threading.Lock()
        self._connections: set[sqlite3.Connection] = set()
        self._shut = False
        super().__init__(str(path), pragmas=connection_pragmas(),
                         timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)

    def _connect(self) -> sqlite3.Connection:
        if self._shut:
            raise _closed_error(self._store_path)
        conn: sqlite3.Connection = super()._connect()  # type: ignore[misc]
        with self._registry:
            if not self._shut:
                self._connections.add(conn)
                return conn
        conn.close()  # shut while this one was opening
        raise _closed_error(self._store_path)

    def connection(self) -> sqlite3.Connection:
        if self._shut:  # another thread's peewee state may still hold its closed connection
            raise _closed_error(self._store_path)
        conn: sqlite3.Connection = super().connection()  # type: ignore[no-untyped-call]
        return conn

    def cursor(self, named_cursor: object = None) -> sqlite3.Cursor:
        if self._shut:
            raise _closed_error(self._store_path)
        cursor: sqlite3.Cursor = super().cursor(named_cursor)  # type: ignore[no-untyped-call]
        return cursor

    def _close(self, conn: sqlite3.Connection) -> None:
        with self._registry:
            self._connections.discard(conn)
        conn.close()

    def interrupt_all(self) -> None:
        """Abort whatever statement any connection runs (safe from any thread)."""
        with self._registry:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.interrupt()

    def shut(self) -> None:
        """Close every connection, whichever thread opened it, and open no more."""
        with self._registry:
            self._shut = True
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        # This thread's peewee state would otherwise still hold its closed connection.
        self.dispose()


class Store:
    """One store file. Only the sync engine calls the writing methods."""

    def __init__(self, path: str | Path, scope: StoreScope | None = None, *,
                 create: bool = True, verify: bool = False) -> None:
        self.path = Path(path)
        header = read_header(self.path)
        if not header.exists and not create:
            raise StoreError(f"no store at {str(self.path)!r}; run a sync first")
        if not header.exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the directory for store {str(self.path)!r}: "
                    f"{exc.strerror or exc}"
                ) from None
        self.db = _TrackedDatabase(self.path)
        self.models: BoundModels = bind_models(self.db)
        self._closed = False
        self._activity = threading.Condition()
        self._busy: Counter[int] = Counter()  # thread id -> reads/writes it has under way
        try:
            self.db.connect(reuse_if_open=True)
            migrate(self.db, self.models)
            if verify:
                self._quick_check()
            self.scope = self._check_scope(scope)
        except (PeeweeException, sqlite3.Error) as exc:
            self.db.shut()
            raise store_error(self.path, exc) from None
        except BaseException:
            self.db.shut()
            raise

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, scope={self.scope!r})"

    def _quick_check(self) -> None:
        problems = [row[0] for row in self.raw_connection().execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreCorruptError(
                f"store {str(self.path)!r} is damaged: {'; '.join(problems)}")

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state (records
        and the locales they are read with), and SQLite errors become localcache's own."""
        with self._in_use():
            conn = self.raw_connection()
            began = not conn.in_transaction
            try:
                with self._errors_mapped():
                    if began:
                        conn.execute("BEGIN")
                    yield
            finally:
                if began and not self._closed:
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("COMMIT")

    @contextmanager
    def reading_one(self) -> Iterator[None]:
        """A read of one statement, the hot path of ``cache.entry(id)``: SQLite makes a lone
        SELECT see one committed state by itself, so no BEGIN and COMMIT are sent (they cost
        a quarter of such a read). Otherwise as :meth:`reading`."""
        with self._in_use(), self._errors_mapped():
            yield

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        """SQLite's and peewee's errors raised inside, as localcache's (:meth:`_error`)."""
        try:
            yield
        except (PeeweeException, sqlite3.Error) as exc:
            raise self._error(exc) from None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def ensure_open(self) -> None:
        """Raise StoreError when the store was closed."""
        if self._closed:
            raise _closed_error(self.path)

    def close(self) -> None:
        """Close every connection to the file, on every thread; later use raises StoreError.

        A read or page write under way on another thread gets a few seconds to finish (a page
        commits whole); then it is interrupted, and its thread gets "the cache is closed".
        Idempotent.
        """
        me = threading.get_ident()
        with self._activity:
            if self._closed:
                return
            self._closed = True
            finished = self._activity.wait_for(
                lambda: all(n == 0 or t == me for t, n in self._busy.items()),
                timeout=_CLOSE_GRACE_SECONDS)
        if not finished:
            self.db.interrupt_all()
        self.db.shut()

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        """Count a read or write of this thread, so close() can let it finish first."""
        me = threading.get_ident()
        with self._activity:
            self.ensure_open()
            self._busy[me] += 1
        try:
            yield
        finally:
            with self._activity:
                self._busy[me] -= 1
                if not self._busy[me]:
                    del self._busy[me]
                if self._closed:  # only close() waits on it
                    self._activity.notify_all()

    def _error(self, exc: Exception) -> StoreError:
        """SQLite's error as localcache's; a closed store says so rather than what broke."""
        return _closed_error(self.path) if self._closed else store_error(self.path, exc)

    # -- sync state ---------------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        row = self.models.sync_state.get_or_none(self.models.sync_state.key == key)
        return None if row is None or row.value is None else str(row.value)

    def set_state(self, **values: str | None) -> None:
        """Write state keys; call inside the page transaction that makes them true."""
        rows = [{"key": k, "value": v} for k, v in values.items()]
        self.models.sync_state.insert_many(rows).on_conflict_replace().execute()

    def token(self) -> ContinuationToken | None:
        value, kind = self.state("token"), self.state("token_kind")
        if not value or kind not in ("page", "sync"):
            return None
        return ContinuationToken(value, kind)  # type: ignore[arg-type]

    def _check_scope(self, scope: StoreScope | None) -> StoreScope | None:
        stored = [self.state(k) for k in _SCOPE_KEYS]
        if all(v is None for v in stored):
            if scope is not None:
                with self.write():
                    self.set_state(provider=scope.provider, space=scope.space,
                                   environment=scope.environment)
            return scope
        have = StoreScope(*(v or "" for v in stored))
        if scope is not None and scope != have:
            raise StoreMismatchError(
                f"store {str(self.path)!r} holds {have.provider} space {have.space!r} "
                f"environment {have.environment!r}, not {scope.provider} space "
                f"{scope.space!r} environment {scope.environment!r}; use another path"
            )
        return have

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[None]:
        """One BEGIN IMMEDIATE transaction: the write lock is taken up front, so a page never
        fails half-way on a lock, and readers keep seeing the last committed page meanwhile."""
        with self._in_use():
            conn = self.raw_connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            try:
                yield
                conn.execute("COMMIT")
            except BaseException as exc:
                # SQLite may already have rolled back (SQLITE_FULL does): roll back only what
                # is still open, so the original error is the one reported.
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                if isinstance(exc, (PeeweeException, sqlite3.Error)):
                    raise self._error(exc) from None
                raise

    def raw_connection(self) -> sqlite3.Connection:
        """The calling thread's sqlite3 connection, for the hot path's executemany."""
        return self.db.connection()

    # -- locales ------------------------------------------------------------------------------

    def replace_locales(self, locales: list[LocaleInfo]) -> None:
        model = self.models.locale
        model.delete().execute()
        if locales:
            model.insert_many([
                {"code": loc.code, "name": loc.name, "is_default": loc.default,
                 "fallback": loc.fallback, "optional": loc.optional}
                for loc in locales
            ]).execute()

    def learn_locales(self, codes: list[str], preferred: str | None = None) -> bool:
        """Add locale codes not known yet; in the caller's transaction. The default is
        ``preferred`` once it is seen, else en-US, else the first code ever learned.
        True when any was new."""
        conn = self.raw_connection()
        known = {row[0] for row in conn.execute("SELECT code FROM locales")}
        new = [code for code in codes if code not in known]
        if not new:
            return False
        has_default = conn.execute(
            "SELECT count(*) FROM locales WHERE is_default AND code = ?",
            (preferred,)).fetchone()[0] if preferred else 0
        default = None
        if preferred in new:
            default = preferred
            conn.execute("UPDATE locales SET is_default = 0")
        elif not known and not has_default:
            default = "en-US" if "en-US" in new else new[0]
        conn.executemany(
            "INSERT INTO locales (code, name, is_default, fallback, optional) "
            "VALUES (?, '', ?, NULL, 0)", [(code, code == default) for code in new])
        return True

    def locales(self) -> list[LocaleInfo]:
        model = self.models.locale
        return [
            LocaleInfo(code=r.code, name=r.name, default=r.is_default, fallback=r.fallback,
                       optional=r.optional)
            for r in model.select().order_by(model.is_default.desc(), model.code)
        ]
