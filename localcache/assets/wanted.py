"""What the store needs on disk, and the bookkeeping changes that get the rows there.

The store is the truth: the files wanted are a pure function of the records (through the
vendor's ``asset_files``) and the policy. Two ways keep ``asset_files`` in step with it:

- after each committed page (``changes_committed``, on the sync thread): the records the page
  changed or deleted are read again and their rows planned, in one write transaction;
- a full pass over the store (:func:`reconcile_all`) when the bookkeeping may have missed a
  page: a kill between a page's commit and its bookkeeping, another process's sync, a policy
  changed. ``asset_settings.followed`` remembers the store's ``last_page_at`` the rows are in
  step with; ``download()`` compares, so a kill loses nothing.

Every change returns the files to unlink: the caller unlinks them only after its transaction
commits (a file is never gone while a committed row still names it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from .model import AssetFile, ImageParams
from .naming import file_name, version_key
from .policy import AssetPolicy
from .table import FileRow, chunks, read_rows, read_setting, write_settings

__all__ = ["Plan", "Vendor", "Wanted", "in_step", "plan_sources", "reconcile_all",
           "vendor_for", "wanted_files"]

FilesOf = Callable[[Mapping[str, Any]], list[AssetFile]]
ImageUrl = Callable[[str, ImageParams], str]


@dataclass(frozen=True)
class Vendor:
    """What the asset files need from a provider: where files are described (asset records,
    or entries for Kontent.ai), how a record's files read, and the image API's URLs."""

    name: str
    source: str  # "Asset" or "Entry"
    files: FilesOf
    image_url: ImageUrl

    @property
    def table(self) -> str:
        return "assets" if self.source == "Asset" else "entries"


def vendor_for(provider: Any, name: str, asset_base_url: str | None) -> Vendor:
    """The Vendor of ``provider`` (an object with ``asset_files``/``image_url``/
    ``asset_source``), or, without one (``Cache.open``), of the built-in vendor ``name``."""
    if provider is not None:
        files, image, source = (getattr(provider, attr, None) for attr in (
            "asset_files", "image_url", "asset_source"))
        if not callable(files) or not callable(image) or source not in ("Asset", "Entry"):
            raise ConfigurationError(
                f"provider {type(provider).__name__} does not describe asset files (it needs "
                "asset_files(), image_url() and asset_source); open the Cache without assets=")
        return Vendor(name, str(source), files, image)
    from ..providers import contentful, contentstack, kontent

    modules = {"contentful": contentful, "contentstack": contentstack, "kontent": kontent}
    module = modules.get(name)
    if module is None:
        raise ConfigurationError(f"asset files of a {name!r} store need its provider: open a "
                                 "Cache with the provider and assets=")

    def read(document: Mapping[str, Any]) -> list[AssetFile]:
        found: list[AssetFile] = module.asset_files(document, asset_base_url)
        return found

    return Vendor(name, "Entry" if name == "kontent" else "Asset", read, module.image_url)


@dataclass(frozen=True, slots=True)
class Wanted:
    """One file the store needs, as a row of ``asset_files`` will hold it."""

    asset_id: str
    locale: str
    variant: str
    url: str
    version: str
    name: str
    expected_bytes: int | None
    content_type: str | None
    checksum: str | None
    skipped: bool


def wanted_files(files: Iterable[AssetFile], policy: AssetPolicy,
                 vendor: Vendor) -> list[Wanted]:
    """The files of one record the policy keeps (locales, MIME types), in their form (the
    original, or a variant through the image API); a too-large original is kept as skipped."""
    found = []
    for item in files:
        if not policy.wants_locale(item.locale) or not policy.wants_type(item.content_type):
            continue
        variant = policy.variant_for(item.content_type)
        url = vendor.image_url(item.url, variant) if variant else item.url
        version = version_key(item.origin or item.url, item.size, item.checksum, variant)
        found.append(Wanted(
            asset_id=item.asset_id, locale=item.locale or "",
            variant="&".join(f"{k}={v}" for k, v in variant), url=url, version=version,
            name=file_name(item.asset_id, version, item.content_type, variant),
            expected_bytes=None if variant else item.size, content_type=item.content_type,
            checksum=None if variant else item.checksum,
            skipped=not variant and policy.too_big(item.size)))
    return found


@dataclass
class Plan:
    """What a bookkeeping change did: files to unlink after its commit (each with the rows,
    ``(asset_id, locale)``, that had it on disk), the names of the files no row wants any
    more (whose partial files go too, unless a worker holds one), and how many rows it added
    or changed."""

    unlink: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)  # names whose partial files may go too
    queued: int = 0
    removed: int = 0


def _documents(conn: sqlite3.Connection, table: str,
               ids: Sequence[str] | None) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if ids is None:
        rows: Iterable[tuple[str, str]] = conn.execute(f"SELECT id, raw FROM {table}")
        for record_id, raw in rows:
            yield record_id, json.loads(raw)
        return
    for chunk in chunks(list(ids)):
        marks = ",".join("?" * len(chunk))
        for record_id, raw in conn.execute(
                f"SELECT id, raw FROM {table} WHERE id IN ({marks})", chunk).fetchall():
            yield record_id, json.loads(raw)


def plan_sources(conn: sqlite3.Connection, vendor: Vendor, policy: AssetPolicy,
                 sources: Sequence[str], now: float) -> Plan:
    """In the caller's write transaction: bring the rows of the records ``sources`` (asset
    ids, or Kontent.ai entry ids) in step with what the store holds for them now; a source
    the store no longer holds has no files any more."""
    sources = list(dict.fromkeys(sources))
    wanted: dict[str, list[Wanted]] = {}
    if vendor.source == "Asset":
        for record_id, document in _documents(conn, "assets", sources):
            wanted[record_id] = wanted_files(vendor.files(document), policy, vendor)
        return _apply(conn, set(sources), wanted, now)
    before: set[str] = set()
    for chunk in chunks(sources):
        marks = ",".join("?" * len(chunk))
        before.update(r[0] for r in conn.execute(
            f"SELECT asset_id FROM asset_refs WHERE source_id IN ({marks})", chunk))
        conn.execute(f"DELETE FROM asset_refs WHERE source_id IN ({marks})", chunk)
    refs = []
    for record_id, document in _documents(conn, "entries", sources):
        for item in wanted_files(vendor.files(document), policy, vendor):
            refs.append((record_id, item.asset_id))
            wanted.setdefault(item.asset_id, []).append(item)
    conn.executemany("INSERT OR IGNORE INTO asset_refs (source_id, asset_id) VALUES (?, ?)",
                     refs)
    gone = {asset_id for asset_id in before - set(wanted) if conn.execute(
        "SELECT 1 FROM asset_refs WHERE asset_id = ? LIMIT 1", (asset_id,)).fetchone() is None}
    # An asset still named by another entry keeps its rows; only what changed is planned.
    return _apply(conn, set(wanted) | gone, {k: _first(v) for k, v in wanted.items()}, now)


def _first(items: list[Wanted]) -> list[Wanted]:
    """One row per (asset, locale): the first entry naming an asset decides its file."""
    return list({(w.asset_id, w.locale): w for w in reversed(items)}.values())


def reconcile_all(conn: sqlite3.Connection, vendor: Vendor, policy: AssetPolicy,
                  now: float, followed: str | None) -> Plan:
    """In the caller's write transaction: every row in step with the whole store, and
    ``followed`` recorded as the state the rows now follow."""
    wanted: dict[str, list[Wanted]] = {}
    if read_setting(conn, "selection") != policy.selection_key():
        # Another max_file_size may let a variant skipped by its size through: try again.
        conn.execute("UPDATE asset_files SET state = 'pending' "
                     "WHERE state = 'skipped' AND variant != ''")
    if vendor.source == "Entry":
        conn.execute("DELETE FROM asset_refs")
        refs = []
        for record_id, document in _documents(conn, "entries", None):
            for item in wanted_files(vendor.files(document), policy, vendor):
                refs.append((record_id, item.asset_id))
                wanted.setdefault(item.asset_id, []).append(item)
        conn.executemany("INSERT OR IGNORE INTO asset_refs (source_id, asset_id) "
                         "VALUES (?, ?)", refs)
        wanted = {k: _first(v) for k, v in wanted.items()}
    else:
        for record_id, document in _documents(conn, "assets", None):
            wanted[record_id] = wanted_files(vendor.files(document), policy, vendor)
    held = {row[0] for row in conn.execute("SELECT DISTINCT asset_id FROM asset_files")}
    plan = _apply(conn, set(wanted) | held, wanted, now)
    write_settings(conn, followed=followed, selection=policy.selection_key())
    return plan


def in_step(conn: sqlite3.Connection, policy: AssetPolicy) -> bool:
    """Whether the rows follow the store's last committed page, under this policy."""
    row = conn.execute("SELECT value FROM sync_state WHERE key = 'last_page_at'").fetchone()
    followed = read_setting(conn, "followed")
    return (followed is not None and row is not None and followed == row[0]
            and read_setting(conn, "selection") == policy.selection_key())


def _apply(conn: sqlite3.Connection, asset_ids: set[str], wanted: dict[str, list[Wanted]],
           now: float) -> Plan:
    plan = Plan()
    rows = {row.key: row for row in read_rows(conn, sorted(asset_ids))}
    keep = {(w.asset_id, w.locale) for items in wanted.values() for w in items}
    dropped = [row for key, row in rows.items() if key not in keep]
    conn.executemany("DELETE FROM asset_files WHERE asset_id = ? AND locale = ?",
                     [row.key for row in dropped])
    plan.removed = len(dropped)
    plan.parts = [row.name for row in dropped if conn.execute(
        "SELECT 1 FROM asset_files WHERE name = ? LIMIT 1", (row.name,)).fetchone() is None]
    doomed = [row for row in dropped if row.path is not None]
    for items in wanted.values():
        for item in items:
            row = rows.get((item.asset_id, item.locale))
            if row is None:
                _insert(conn, item, now)
                plan.queued += 1
            elif _changed(row, item):
                _update(conn, row, item)
                plan.queued += not item.skipped
                if item.skipped and row.path is not None:
                    doomed.append(row)
    _unclaimed(conn, doomed, plan)
    return plan


def _changed(row: FileRow, item: Wanted) -> bool:
    """Whether a row must follow ``item``. A variant skipped for the size the server gave
    (only a download can tell) stays skipped until its version or the policy changes."""
    if row.version != item.version or row.name != item.name:
        return True
    if row.state == "skipped" and row.variant and not item.skipped:
        return False
    if item.skipped and row.current:  # too big, but fetched on demand (fetch()): it stays
        return False
    return (row.state == "skipped") != item.skipped


def _insert(conn: sqlite3.Connection, item: Wanted, now: float) -> None:
    conn.execute(
        "INSERT INTO asset_files (asset_id, locale, variant, url, version, name, "
        "expected_bytes, content_type, checksum, state, last_used) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (item.asset_id, item.locale, item.variant, item.url, item.version, item.name,
         item.expected_bytes, item.content_type, item.checksum,
         "skipped" if item.skipped else "pending", now))


def _update(conn: sqlite3.Connection, row: FileRow, item: Wanted) -> None:
    """A changed file: the new version is wanted; the old one stays on disk (and readable)
    until the new one lands, unless it is now skipped. An evicted file stays evicted."""
    if item.skipped:
        state, path = "skipped", None
    elif row.path == item.name:
        state, path = "ready", row.path
    else:
        state, path = ("evicted" if row.state == "evicted" else "pending"), row.path
    conn.execute(
        "UPDATE asset_files SET variant = ?, url = ?, version = ?, name = ?, "
        "expected_bytes = ?, content_type = ?, checksum = ?, state = ?, path = ?, "
        "bytes = CASE WHEN ? IS NULL THEN NULL ELSE bytes END, error = NULL "
        "WHERE asset_id = ? AND locale = ?",
        (item.variant, item.url, item.version, item.name, item.expected_bytes,
         item.content_type, item.checksum, state, path, path, row.asset_id, row.locale))


def _unclaimed(conn: sqlite3.Connection, rows: list[FileRow], plan: Plan) -> None:
    """The files of ``rows`` that no row has on disk or wants any more go to ``plan.unlink``."""
    for row in rows:
        assert row.path is not None
        if conn.execute("SELECT 1 FROM asset_files WHERE path = ? OR name = ? LIMIT 1",
                        (row.path, row.path)).fetchone() is None:
            plan.unlink.setdefault(row.path, []).append((row.asset_id, row.locale))
