"""``AssetFiles``: the asset files of one Cache (``cache.assets``), kept as safe as its records.

Three rules hold everything together (docs/assets.md has the user's version):

- **The store decides.** Which files are wanted follows from the committed records and the
  policy (wanted.py). After each committed page (``changes_committed``, on the sync thread)
  the rows of the records it touched are planned; ``download()`` re-plans from the whole store
  when the bookkeeping may have missed a page, so a kill loses nothing.
- **A file lands inside a transaction.** A verified, fsynced ``<name>.part`` is renamed to
  its final name inside the write transaction that records it, after checking that a row
  still wants it: a file whose record was deleted meanwhile is discarded, not installed. A
  kill at any instant leaves the old file or the new one, never a torn one.
- **A file goes after the commit.** Rows are removed (record deleted, file replaced, budget)
  in a transaction; the files are unlinked after it commits. A kill in between leaves an
  orphan, which the next ``download()`` or ``check(fix=True)`` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import signals
from ..errors import AssetError, StoreError
from ..providers.http import HttpPolicy
from ..store.database import Store
from .budget import evict, usage
from .check import AssetReport, inspect
from .fetch import (
    Cancelled,
    Fetcher,
    FileFailed,
    Job,
    Landed,
    PartFile,
    disk_error,
    try_lock_part,
)
from .naming import part_name
from .policy import AssetPolicy
from .runner import AssetDownload, Progress
from .table import DDL, FileRow, read_rows, read_setting, write_settings
from .wanted import Plan, Vendor, in_step, plan_sources, reconcile_all

__all__ = ["AssetFiles", "AssetStats"]

log = logging.getLogger("localcache.assets")

_CLOSE_WAIT = 3.0  # seconds close() lets a running download stop
_FETCH_WAIT = 60.0  # seconds fetch() waits for another worker already fetching the file


@dataclass(frozen=True)
class AssetStats:
    """The asset files now: ``files`` and ``bytes`` on disk, rows ``pending`` / ``failed``
    / ``skipped`` / ``evicted``, ``pinned`` assets and the bytes of their files. ``over_budget``
    is True when the pinned files alone exceed ``budget_bytes`` (they stay). Also readable as
    ``stats["files"]``."""

    files: int
    bytes: int
    pending: int
    failed: int
    skipped: int
    evicted: int
    pinned: int
    pinned_bytes: int
    budget_bytes: int | None
    over_budget: bool
    directory: str
    last_error: str | None

    def __getitem__(self, key: str) -> Any:
        return asdict(self)[key]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AssetFiles:
    """The asset files of a Cache: ``cache.assets``. Every method may be called from any
    thread. See docs/assets.md."""

    def __init__(self, cache: Any, store: Store, vendor: Vendor, policy: AssetPolicy,
                 directory: Path, *, asset_base_url: str | None,
                 http_policy: HttpPolicy | None) -> None:
        self._cache = cache
        self._store = store
        self._vendor = vendor
        self.policy = policy
        self.directory = directory
        self._http = http_policy or HttpPolicy()
        self._write_lock = threading.Lock()  # our threads never wait in SQLite's busy loop
        self._run_lock = threading.Lock()
        self._run: AssetDownload | None = None
        self._touched: dict[tuple[str, str], float] = {}
        self._closed = threading.Event()
        self._demand: Fetcher | None = None
        self.last_error: AssetError | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, directory, "creating the asset directory") from None
        with self._writing() as conn:
            for statement in DDL:
                conn.execute(statement)
            write_settings(conn, policy=AssetPolicy(**{**_fields(policy),
                                                        "directory": directory}).to_json(),
                           asset_base_url=asset_base_url, provider=vendor.name)
            self._followed = self._last_page(conn) if in_step(conn, policy) else None
            if getattr(cache, "seeded", None) is not None:
                # A snapshot was just installed: files it did not bring (or that a Cache
                # without assets= left out) are queued, the old store's files are orphans.
                inspect(conn, directory, deep=False, fix=True)
        exists = "assets" if vendor.source == "Asset" else "asset_refs"
        column = "id" if vendor.source == "Asset" else "asset_id"
        self._path_sql = (f"SELECT locale, path FROM asset_files WHERE asset_id = ? AND EXISTS "
                          f"(SELECT 1 FROM {exists} WHERE {column} = ?)")
        signals.changes_committed.connect(self._on_changes, sender=cache)

    def __repr__(self) -> str:
        return f"AssetFiles(directory={str(self.directory)!r}, policy={self.policy!r})"

    # -- reading -------------------------------------------------------------------------------

    def path(self, asset_id: str, locale: str | None = None) -> Path | None:
        """The file of ``asset_id`` in ``locale`` (default: the default locale), following the
        fallback chain to the first locale the asset has a file in; None until that file is
        on disk, and from the commit that removed the asset's record."""
        self._store.ensure_open()
        try:
            rows = self._store.raw_connection().execute(
                self._path_sql, (asset_id, asset_id)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the asset files of store {str(self._store.path)!r}: "
                             f"{exc}") from None
        if not rows:
            return None
        found: dict[str, str | None] = dict(rows)
        for code in (*self._cache._locale_chain().chain(locale), ""):
            if code in found:
                path = found[code]
                if path is None:
                    return None
                self._touched[(asset_id, code)] = time.time()
                return self.directory / path
        return None

    def stats(self) -> AssetStats:
        with self._store.reading():
            conn = self._store.raw_connection()
            counts = dict(conn.execute("SELECT state, count(DISTINCT name) FROM asset_files "
                                       "GROUP BY state").fetchall())
            used = usage(conn)
            pins = conn.execute("SELECT count(*) FROM asset_pins").fetchone()[0]
        budget = self.policy.budget_bytes
        return AssetStats(
            files=used.files, bytes=used.bytes, pending=counts.get("pending", 0),
            failed=counts.get("failed", 0), skipped=counts.get("skipped", 0),
            evicted=counts.get("evicted", 0), pinned=pins, pinned_bytes=used.pinned_bytes,
            budget_bytes=budget, over_budget=budget is not None and used.pinned_bytes > budget,
            directory=str(self.directory),
            last_error=str(self.last_error) if self.last_error else None)

    # -- pins ----------------------------------------------------------------------------------

    def pin(self, asset_id: str) -> None:
        """Never evict the files of ``asset_id`` (also before they are downloaded). Evicted
        files of it are queued again for the next ``download()``."""
        with self._writing() as conn:
            conn.execute("INSERT OR IGNORE INTO asset_pins (asset_id) VALUES (?)", (asset_id,))
            conn.execute("UPDATE asset_files SET state = 'pending' "
                         "WHERE asset_id = ? AND state = 'evicted'", (asset_id,))

    def unpin(self, asset_id: str) -> None:
        """Let the files of ``asset_id`` be evicted again (now, if over the budget)."""
        with self._writing() as conn:
            conn.execute("DELETE FROM asset_pins WHERE asset_id = ?", (asset_id,))
        self.evict()

    # -- downloads -----------------------------------------------------------------------------

    def download(self, wait: bool = True, progress: Progress | None = None) -> AssetDownload:
        """Fetch whatever the store needs and the disk lacks (evicted files excepted).

        With ``wait``, returns the finished run, or raises AssetError when a full disk
        stopped it; otherwise returns at once, the run going on in a background thread (its
        ``wait()`` raises that error). While a run is under way, the same run is returned.
        ``progress(settled, total)`` is called as files settle."""
        return self._download(wait, progress, None)

    def _download(self, wait: bool, progress: Progress | None,
                  stopping: Callable[[], bool] | None) -> AssetDownload:
        with self._run_lock:
            if self._closed.is_set():
                raise StoreError("cannot download asset files: the cache is closed; open a "
                                 "new Cache")
            run = self._run
            if run is None or run.finished:
                jobs = self._prepare()
                self.evict()  # room first: a budget that fits the disk never fills it
                run = AssetDownload(self, jobs, self.policy.workers, progress, stopping)
                self._run = run
                if not wait:
                    threading.Thread(target=self._background, args=(run,),
                                     name="localcache-assets-run", daemon=True).start()
                    return run
                started_here = True
            else:
                started_here = False
        if started_here:
            run.run()
            self._finished(run)
        if wait:
            run.wait()
        return run

    def _background(self, run: AssetDownload) -> None:
        run.run()
        self._finished(run)

    def _finished(self, run: AssetDownload) -> None:
        if run.error is not None:
            self.last_error = run.error
        with contextlib.suppress(StoreError):
            self.flush()
            self.evict()

    def download_after_sync(self, stopping: Callable[[], bool]) -> None:
        """AutoSync's step after each sync: a download run on this thread that gives up as
        soon as ``stopping()`` says so. A full disk is logged (and kept in ``last_error``),
        not raised: the sync itself succeeded."""
        with self._run_lock:
            busy = self._run is not None and not self._run.finished
        if busy or stopping():
            return
        try:
            self._download(True, None, stopping)
        except AssetError as exc:
            log.warning("automatic asset download stopped: %s", exc)

    def fetch(self, asset_id: str, locale: str | None = None) -> Path | None:
        """Fetch the file :meth:`path` would give now (an evicted or skipped one too) and
        return its path; None when the asset has no such file (no record, or not kept by the
        policy). Raises AssetError when it cannot be fetched."""
        row = self._row_for(asset_id, locale)
        if row is None:
            return None
        final = self.directory / row.name
        job = Job(row.name, row.url, row.asset_id, row.expected_bytes, row.checksum)
        deadline = time.monotonic() + _FETCH_WAIT
        while not (row.path == row.name and final.is_file()) and not self.adopt(job):
            part = PartFile.claim(self.directory, row.name)
            if part is None:  # another worker has it: wait for it to land
                if time.monotonic() > deadline:
                    raise AssetError(f"fetching asset {asset_id!r}: another download of the "
                                     "file did not finish in time")
                time.sleep(0.05)
            else:
                with part:
                    self._fetch_into(job, part, asset_id)
            row = self._row_for(asset_id, locale)
            if row is None:
                return None
            final = self.directory / row.name
        self._touched[row.key] = time.time()
        self.evict(keep=frozenset({row.name}))
        return final

    def _fetch_into(self, job: Job, part: PartFile, asset_id: str) -> None:
        with self._run_lock:
            if self._demand is None:
                self._demand = Fetcher(self.directory, self._http, 4, threading.Event())
            fetcher = self._demand
        try:
            landed = fetcher.fetch(job, part)
        except (FileFailed, Cancelled) as exc:
            raise AssetError(f"fetching asset {asset_id!r} failed: "
                             f"{exc or 'the cache was closed'}") from None
        self.land(job, part, landed)

    def _row_for(self, asset_id: str, locale: str | None) -> FileRow | None:
        with self._store.reading():
            rows = {row.locale: row for row in read_rows(self._store.raw_connection(),
                                                         [asset_id])}
            if rows and self._vendor.source == "Asset" and self._store.raw_connection().execute(
                    "SELECT 1 FROM assets WHERE id = ?", (asset_id,)).fetchone() is None:
                return None
        for code in (*self._cache._locale_chain().chain(locale), ""):
            if code in rows:
                return rows[code]
        return None

    # -- the run's host (runner.RunHost) -------------------------------------------------------

    def fetcher(self, workers: int, cancelled: threading.Event) -> Fetcher:
        return Fetcher(self.directory, self._http, workers, cancelled)

    def adopt(self, job: Job) -> bool:
        """Take a whole file already under its final name (landed by a worker killed before
        its transaction committed): it was verified before it was renamed."""
        final = self.directory / job.name
        try:
            size = final.stat().st_size
        except OSError:
            return False
        if job.expected_bytes is not None and size != job.expected_bytes:
            return False
        digest = hashlib.sha256()
        with open(final, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        with self._writing() as conn:
            rows = conn.execute("SELECT asset_id, locale, path FROM asset_files WHERE name = ?",
                                (job.name,)).fetchall()
            conn.execute("UPDATE asset_files SET path = name, bytes = ?, sha256 = ?, "
                         "state = 'ready', error = NULL WHERE name = ?",
                         (size, digest.hexdigest(), job.name))
            old = self._old_files(conn, rows, job.name)
        self._after_landing(rows, job.name, old)
        return bool(rows)

    def land(self, job: Job, part: PartFile, landed: Landed) -> None:
        """Fsync a verified part, then rename it into place and record it in one write
        transaction; a file no row wants any more (its record deleted meanwhile) is discarded
        instead."""
        try:
            part.fsync()
            with self._writing() as conn:
                rows = conn.execute("SELECT asset_id, locale, path FROM asset_files "
                                    "WHERE name = ?", (job.name,)).fetchall()
                part.close()
                if rows:
                    _install(part.path, self.directory / job.name)
                    conn.execute(
                        "UPDATE asset_files SET path = name, bytes = ?, etag = ?, sha256 = ?, "
                        "state = 'ready', error = NULL, last_used = ? WHERE name = ?",
                        (landed.bytes, landed.etag, landed.sha256, time.time(), job.name))
                old = self._old_files(conn, rows, job.name)
        except OSError as exc:
            raise disk_error(exc, self.directory, f"installing {job.name}") from None
        if not rows:
            with contextlib.suppress(OSError):
                part.path.unlink()
        self._after_landing(rows, job.name, old)

    def _old_files(self, conn: sqlite3.Connection, rows: list[tuple[str, str, str | None]],
                   name: str) -> dict[str, list[tuple[str, str]]]:
        """The earlier versions ``rows`` had on disk that nothing claims any more."""
        old: dict[str, list[tuple[str, str]]] = {}
        for asset_id, locale, path in rows:
            if path and path != name and conn.execute(
                    "SELECT 1 FROM asset_files WHERE path = ? OR name = ? LIMIT 1",
                    (path, path)).fetchone() is None:
                old.setdefault(path, []).append((asset_id, locale))
        return old

    def _after_landing(self, rows: list[tuple[str, str, str | None]], name: str,
                       old: dict[str, list[tuple[str, str]]]) -> None:
        """After the commit: the replaced files go (quietly: the new file replaced them),
        then asset_file_ready for each row."""
        for path in old:
            with contextlib.suppress(OSError):
                (self.directory / path).unlink()
        for asset_id, locale, _ in rows:
            signals.emit(signals.asset_file_ready, self._cache, id=asset_id,
                         locale=locale or None, path=self.directory / name)

    def mark(self, job: Job, state: str, reason: str) -> None:
        with self._writing() as conn:
            conn.execute("UPDATE asset_files SET state = ?, error = ? "
                         "WHERE name = ? AND state IN ('pending', 'failed')",
                         (state, reason[:500], job.name))

    def evict(self, keep: frozenset[str] = frozenset()) -> None:
        """Evict least wanted files while over the budget (none without a budget)."""
        budget = self.policy.budget_bytes
        if budget is None:
            return
        self.flush()
        with self._writing() as conn:
            victims = evict(conn, budget, keep)  # a file just fetched on demand stays
        self._unlink(victims)

    # -- bookkeeping ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._store.write():
            yield self._store.raw_connection()

    @staticmethod
    def _last_page(conn: sqlite3.Connection) -> str | None:
        row = conn.execute("SELECT value FROM sync_state WHERE key = 'last_page_at'").fetchone()
        return None if row is None else row[0]

    def _on_changes(self, sender: Any, *, changes: signals.ChangeSet) -> None:
        """After a page's commit, on the sync thread: plan the rows of the records it
        touched; unlink what it removed, after this transaction commits too."""
        if self._vendor.source == "Asset":
            sources = changes.assets_changed + changes.assets_deleted
        else:
            sources = changes.entries_changed + changes.entries_deleted
        with self._writing() as conn:
            stepped = self._followed is not None and read_setting(
                conn, "followed") == self._followed
            plan = plan_sources(conn, self._vendor, self.policy, sources, time.time()) \
                if sources else Plan()
            last = self._last_page(conn)
            if stepped:
                write_settings(conn, followed=last)
            self._followed = last if stepped else None
        self._unlink(plan.unlink, plan.parts)

    def _prepare(self) -> list[Job]:
        """Before a run: the bookkeeping in step with the store, orphans gone, files that
        vanished queued again; then the jobs, pinned files first, then linked ones."""
        self.flush()
        with self._writing() as conn:
            plan = Plan()
            if not in_step(conn, self.policy):
                plan = reconcile_all(conn, self._vendor, self.policy, time.time(),
                                     self._last_page(conn))
            self._followed = self._last_page(conn)
            findings = inspect(conn, self.directory, deep=False, fix=True,
                               deferred=frozenset(plan.unlink))
            rows = conn.execute(
                "SELECT f.name, min(f.url), min(f.asset_id), min(f.expected_bytes), "
                "min(f.checksum), min(f.variant), "
                "max(EXISTS (SELECT 1 FROM asset_pins AS p WHERE p.asset_id = f.asset_id)) "
                "FROM asset_files AS f WHERE f.state IN ('pending', 'failed') "
                "GROUP BY f.name ORDER BY 7 DESC, f.name").fetchall()
        self._unlink(plan.unlink, plan.parts)
        for name in findings.unlink:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()
        limit = self.policy.max_file_size
        try:  # one listing instead of a stat per job: whole files a kill left unrecorded
            present = set(os.listdir(self.directory))
        except OSError:
            present = set()
        return [Job(name, url, asset_id, expected, checksum,
                    max_bytes=limit if variant else None, on_disk=name in present)
                for name, url, asset_id, expected, checksum, variant, _ in rows]

    def _unlink(self, files: dict[str, list[tuple[str, str]]],
                parts: Sequence[str] = ()) -> None:
        """Unlink files whose rows a committed transaction removed (then asset_file_removed),
        and the partial files of ``parts`` no worker holds."""
        for name in parts:
            part = try_lock_part(self.directory / part_name(name))
            if part is not None:
                with part, contextlib.suppress(OSError):
                    part.path.unlink()
        for name, rows in files.items():
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # locked (an antivirus on Windows): an orphan for later
                log.warning("could not remove asset file %s (%s); the next download() or "
                            "check(fix=True) will", name, exc.strerror or exc)
                continue
            for asset_id, locale in rows:
                signals.emit(signals.asset_file_removed, self._cache, id=asset_id,
                             locale=locale or None)

    def flush(self) -> None:
        """Write the reads :meth:`path` counted to ``last_used``, in one transaction."""
        touched, self._touched = self._touched, {}
        if not touched:
            return
        with self._writing() as conn:
            conn.executemany(
                "UPDATE asset_files SET last_used = max(last_used, ?) "
                "WHERE asset_id = ? AND locale = ?",
                [(when, asset_id, locale) for (asset_id, locale), when in touched.items()])

    # -- check and close -----------------------------------------------------------------------

    def check(self, fix: bool = False) -> AssetReport:
        """The files on disk against the bookkeeping, and the bookkeeping against the store
        (check.py). With ``fix``: orphans removed, missing and damaged files queued again."""
        self.flush()
        plan, report = Plan(), AssetReport()
        with contextlib.suppress(_DryRun), self._writing() as conn:
            plan = reconcile_all(conn, self._vendor, self.policy, time.time(),
                                 self._last_page(conn))
            findings = inspect(conn, self.directory, deep=True, fix=fix,
                               deferred=frozenset(plan.unlink))
            report = findings.report
            if not fix:
                raise _DryRun()
            self._followed = self._last_page(conn)
        if fix:
            self._unlink(plan.unlink, plan.parts)
            for name in findings.unlink:
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
        return report

    def close(self) -> None:
        """Stop a run under way (partial files stay, resumable) and record the reads."""
        self._closed.set()
        signals.changes_committed.disconnect(self._on_changes, sender=self._cache)
        with self._run_lock:
            run, demand = self._run, self._demand
        if run is not None and not run.finished:
            run.cancel()
            run._finished.wait(_CLOSE_WAIT)
        if demand is not None:
            demand.close()
        with contextlib.suppress(StoreError):
            self.flush()


class _DryRun(Exception):
    """Rolls a check's transaction back: check(fix=False) changes nothing."""


def _fields(policy: AssetPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in (
        "locales", "mime_types", "max_file_size", "budget_bytes", "variants", "workers")}


def _install(source: Path, target: Path) -> None:
    """``os.replace``, retried a few times on Windows, where an antivirus scanning the new
    file holds it open for a moment; a rename that still fails fails this file (FileFailed),
    not the run, unless the disk is full."""
    for attempt in range(5):
        try:
            os.replace(source, target)
            return
        except PermissionError as exc:
            if os.name != "nt" or attempt == 4:
                raise FileFailed(f"the file could not be renamed into place "
                                 f"({exc.strerror or exc})") from None
            time.sleep(0.1 * (attempt + 1))


