"""Opening a store file: version check, connection settings, scope, sync state.

Connections are per thread (peewee's default), so UI threads read while the sync engine writes;
in WAL mode readers never wait for the writer and always see whole committed pages.
"""

from __future__ import annotations

import contextlib
import sqlite3
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
        self.db = SqliteDatabase(
            str(self.path),
            pragmas=connection_pragmas(),
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        self.models: BoundModels = bind_models(self.db)
        try:
            self.db.connect(reuse_if_open=True)
            migrate(self.db, self.models)
            if verify:
                self._quick_check()
            self.scope = self._check_scope(scope)
        except (PeeweeException, sqlite3.Error) as exc:
            self.db.close()
            raise store_error(self.path, exc) from None
        except BaseException:
            self.db.close()
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
        conn = self.raw_connection()
        began = not conn.in_transaction
        try:
            if began:
                conn.execute("BEGIN")
            yield
        except (PeeweeException, sqlite3.Error) as exc:
            raise store_error(self.path, exc) from None
        finally:
            if began and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

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
        conn = self.raw_connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as exc:
            # SQLite may already have rolled back (SQLITE_FULL does): roll back only what is
            # still open, so the original error is the one reported.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, (PeeweeException, sqlite3.Error)):
                raise store_error(self.path, exc) from None
            raise

    def raw_connection(self) -> sqlite3.Connection:
        """The calling thread's sqlite3 connection, for the hot path's executemany."""
        conn: sqlite3.Connection = self.db.connection()  # type: ignore[no-untyped-call]
        return conn

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
