"""``check(fix=)``: the asset directory against the bookkeeping, and the bookkeeping against
the store (diskcache's ``check``, for files).

Found, each as (asset id, locale) or a file name:

- ``missing``: the bookkeeping has a file on disk that is not there (deleted by hand, lost
  with a power cut);
- ``orphaned``: a file of ours no row claims (a kill between a commit and its unlink), a
  partial file nothing will resume, or the file of a record the store no longer holds;
- ``damaged``: a file whose size or SHA-256 is not what was verified when it landed;
- ``pending``: wanted and not on disk yet (or failed, to be retried); ``skipped``: larger than
  ``max_file_size``.

With ``fix``: orphans are removed, missing and damaged files are queued again, and the
bookkeeping follows the store. Orphans are unlinked inside a write transaction: a worker of
another process renames a file into place inside one, so no rename can slip between the
listing and the unlink.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .fetch import try_lock_part
from .naming import PART, is_our_file
from .table import FileRow, read_rows

__all__ = ["AssetReport", "Findings", "file_sha256", "inspect"]

FileKey = tuple[str, "str | None"]


@dataclass(frozen=True)
class AssetReport:
    """What :meth:`AssetFiles.check` found (before fixing, when ``fixed``). Keys are
    ``(asset_id, locale)`` with locale None for an unlocalized file; ``orphaned`` holds file
    names in the asset directory."""

    missing: tuple[FileKey, ...] = ()
    orphaned: tuple[str, ...] = ()
    damaged: tuple[FileKey, ...] = ()
    pending: tuple[FileKey, ...] = ()
    skipped: tuple[FileKey, ...] = ()
    fixed: bool = False

    @property
    def clean(self) -> bool:
        """Nothing missing, orphaned, damaged or pending: every wanted file is on disk, whole,
        and nothing else is (skipped files are the policy's choice)."""
        return not (self.missing or self.orphaned or self.damaged or self.pending)


@dataclass
class Findings:
    """What :func:`inspect` saw, and what fixing it takes."""

    report: AssetReport
    unlink: list[str] = field(default_factory=list)  # damaged files, after the commit
    requeue: list[tuple[str, str]] = field(default_factory=list)  # rows to fetch again


def _key(row: FileRow) -> FileKey:
    return row.asset_id, row.locale or None


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of the file at ``path``, read in 1 MiB steps; None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def inspect(conn: sqlite3.Connection, directory: Path, *, deep: bool, fix: bool,
            deferred: frozenset[str] = frozenset()) -> Findings:
    """In the caller's write transaction (the bookkeeping already reconciled with the
    store): compare rows and files. ``deep`` hashes every file; otherwise sizes only. With
    ``fix``, orphans are unlinked now and the rows of missing or damaged files reset to
    pending (their files are the caller's to unlink after the commit). ``deferred`` names
    files whose rows this transaction removes: orphans too, unlinked by the caller after the
    commit."""
    rows = read_rows(conn)
    claimed = {row.path for row in rows if row.path} | {row.name for row in rows}
    resumable = {row.name for row in rows if row.state in ("pending", "failed", "evicted")}
    try:
        names = sorted(entry.name for entry in os.scandir(directory)
                       if entry.is_file(follow_symlinks=False) and is_our_file(entry.name))
    except FileNotFoundError:
        names = []
    orphaned = []
    for name in names:
        if name.endswith(PART):
            if name[: -len(PART)] in resumable:
                continue
            part = try_lock_part(directory / name)
            if part is None:
                continue  # a writer holds it: not an orphan
            with part:
                orphaned.append(name)
                if fix:
                    with contextlib.suppress(OSError):
                        os.unlink(directory / name)
        elif name not in claimed:
            orphaned.append(name)
            if fix and name not in deferred:
                with contextlib.suppress(OSError):
                    os.unlink(directory / name)
    missing, damaged = [], []
    findings = Findings(AssetReport())
    for row in rows:
        if row.path is None:
            continue
        path = directory / row.path
        try:
            size = path.stat().st_size
        except OSError:
            missing.append(row)
            continue
        if size != row.bytes or (deep and row.sha256 and file_sha256(path) != row.sha256):
            damaged.append(row)
            findings.unlink.append(row.path)
    if fix:
        findings.requeue = [row.key for row in missing + damaged]
        conn.executemany("UPDATE asset_files SET path = NULL, bytes = NULL, etag = NULL, "
                         "sha256 = NULL, state = 'pending' WHERE asset_id = ? AND locale = ?",
                         findings.requeue)
    findings.report = AssetReport(
        missing=tuple(_key(r) for r in missing), orphaned=tuple(orphaned),
        damaged=tuple(_key(r) for r in damaged),
        pending=tuple(_key(r) for r in rows if r.state in ("pending", "failed")),
        skipped=tuple(_key(r) for r in rows if r.state == "skipped"), fixed=fix)
    return findings
