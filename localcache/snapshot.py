"""Prepackaged snapshots: one verified file an app bundles, so its first launch is instant.

A snapshot file is a small header followed by a compact copy of a store::

    LOCALCACHE-SNAPSHOT\\n            magic
    <8-byte big-endian length>        of the JSON metadata that follows
    {"format": 1, "sha256": ..., ...} metadata (see SnapshotInfo)
    <SQLite database bytes>           VACUUM INTO of the store, without shadow tables

``snapshot info`` reads only the header. Installing streams the database bytes into a temporary
file beside the target while hashing them, checks the hash, the format version and the scope
(provider, space, environment), and only then renames the file into place: a corrupted or
mismatched snapshot leaves nothing behind. The copied store carries its continuation token, so
the next sync fetches only what changed since the snapshot was made.

A compressed snapshot (``compress=True``, format 2) stores the database as zlib blocks, one per
8 MiB of database, each behind its 4-byte length: compressed and expanded a block at a time
(memory stays flat both ways), and expanded on two threads, since zlib lets go of the GIL. Its
header adds ``compression``, and ``stored_size``/``stored_sha256`` of the bytes as stored;
``size`` and ``sha256`` still describe the database. Installing checks the stored bytes'
SHA-256 as it reads them, and each block's Adler-32 and size as it expands them; it does not
hash the expanded database a second time. zlib, not lzma: at a similar size (about a quarter of
the store) it expands four times faster, and the first launch waits for that.

A snapshot with asset files (format 3, ``files=``: docs/assets.md) puts them after the database
part (plain or compressed, as ``compression`` says), each file's bytes in the order of
``assets["files"]``: ``[name, size, sha256]``; ``assets["size"]`` and ``assets["sha256"]``
cover all of them. Installing stages every file beside its final name and checks each digest
and the total before anything is renamed into place: the files first, then the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from .errors import SnapshotError
from .model import StoreScope

__all__ = [
    "SNAPSHOT_FORMAT",
    "SnapshotInfo",
    "create_snapshot",
    "install_snapshot",
    "read_snapshot_info",
    "should_replace",
]

SNAPSHOT_FORMAT = 1
COMPRESSED_FORMAT = 2  # the database as one zlib stream
FILES_FORMAT = 3  # the database (plain or zlib) followed by asset files
_FORMATS = (SNAPSHOT_FORMAT, COMPRESSED_FORMAT, FILES_FORMAT)

FileBundler = Callable[[sqlite3.Connection], Sequence[tuple[str, Path]]]
"""Given the snapshot's copy of the store, brings its asset bookkeeping in line with what
travels along, and returns the files to bundle: (name, path on disk)."""
MAGIC = b"LOCALCACHE-SNAPSHOT\n"
_LENGTH = struct.Struct(">Q")
_MAX_HEADER = 1 << 20
_CHUNK = 1 << 20
_BLOCK = 8 << 20  # database bytes a compressed block holds
_BLOCK_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot holds, readable without opening its database."""

    format: int
    library_version: str
    provider: str
    space: str
    environment: str
    locales: list[str]
    token: str | None
    token_kind: str | None
    created_at: str
    synced_at: str | None
    newest_update: str | None
    counts: dict[str, int]
    sha256: str
    size: int
    extra: dict[str, Any] = field(default_factory=dict)
    compression: str | None = None  # "zlib" in format 2 (zlib blocks)
    stored_size: int | None = None  # format 2: the compressed bytes in the file
    stored_sha256: str | None = None
    assets: dict[str, Any] | None = None  # format 3: {"files": [[name, size, sha256]], ...}

    @property
    def scope(self) -> StoreScope:
        return StoreScope(self.provider, self.space, self.environment)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.compression is None:  # format 1 as before: readable by older versions
            for key in ("compression", "stored_size", "stored_sha256"):
                del data[key]
        if self.assets is None:
            del data["assets"]
        return data


def create_snapshot(store_path: Path, output: Path, *, library_version: str,
                    compress: bool = False, files: FileBundler | None = None) -> SnapshotInfo:
    """Write a snapshot of the store at ``store_path`` to ``output`` (zlib-compressed, format
    2, with ``compress``; with the files ``files`` bundles, format 3).

    ``VACUUM INTO`` copies one committed state of the store (a page boundary, even while a sync
    writes), compacted. The output appears under its name only when complete.
    """
    output = Path(output)
    work = output.with_name(f".{output.name}.{os.getpid()}.db")
    packed = output.with_name(f".{output.name}.{os.getpid()}.z")
    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    bundle = output.with_name(f".{output.name}.{os.getpid()}.files")
    try:
        with contextlib.closing(sqlite3.connect(store_path)) as source:
            source.execute("VACUUM INTO ?", (str(work),))
        bundled: Sequence[tuple[str, Path]] = ()
        if files is not None:
            with contextlib.closing(sqlite3.connect(work)) as copy:
                bundled = files(copy)
                copy.commit()
        info = _describe_copy(work, library_version)
        if bundled:
            with open(bundle, "wb") as out:
                manifest = _pack_files(bundled, out)
            info = replace(info, format=FILES_FORMAT, assets=manifest)
        payload = work
        if compress:
            with open(work, "rb") as db, open(packed, "wb") as out:
                stored_sha256, stored_size = _deflate(db, out)
            info = replace(info, format=FILES_FORMAT if bundled else COMPRESSED_FORMAT,
                           compression="zlib", stored_size=stored_size,
                           stored_sha256=stored_sha256)
            payload = packed
        with open(partial, "wb") as out:
            _write_header(out, info)
            for part in (payload, bundle) if bundled else (payload,):
                with open(part, "rb") as source_part:
                    _pump(source_part, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, output)
        return info
    except sqlite3.Error as exc:
        raise SnapshotError(f"cannot snapshot store {str(store_path)!r}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"cannot write snapshot {str(output)!r}: "
                            f"{exc.strerror or exc}") from None
    finally:
        for leftover in (work, packed, partial, bundle):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _pack_files(files: Sequence[tuple[str, Path]], out: BinaryIO) -> dict[str, Any]:
    """Append each file to ``out``: the manifest, with each file's digest and the total's."""
    total = hashlib.sha256()
    listed: list[list[Any]] = []
    size = 0
    for name, path in files:
        digest = hashlib.sha256()
        length = 0
        with open(path, "rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                total.update(chunk)
                out.write(chunk)
                length += len(chunk)
        listed.append([name, length, digest.hexdigest()])
        size += length
    return {"files": listed, "size": size, "sha256": total.hexdigest()}


def _deflate(source: BinaryIO, out: BinaryIO) -> tuple[str, int]:
    """Compress ``source`` into ``out`` as zlib blocks, each of _BLOCK bytes of the database
    (the last one shorter) behind its 4-byte length; the SHA-256 and size written."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_BLOCK):
        block = zlib.compress(chunk, 6)
        for piece in (_BLOCK_LENGTH.pack(len(block)), block):
            digest.update(piece)
            out.write(piece)
        size += _BLOCK_LENGTH.size + len(block)
    return digest.hexdigest(), size


def _describe_copy(work: Path, library_version: str) -> SnapshotInfo:
    with contextlib.closing(sqlite3.connect(work, isolation_level=None)) as db:
        shadow = db.execute("SELECT (SELECT count(*) FROM rebuild_entries) + "
                            "(SELECT count(*) FROM rebuild_assets)").fetchone()[0]
        if shadow:  # a rebuild in progress belongs to the source device, not the snapshot
            db.execute("DELETE FROM rebuild_entries")
            db.execute("DELETE FROM rebuild_assets")
            db.execute("DELETE FROM sync_state WHERE key = 'rebuild_token'")
            db.execute("VACUUM")
        state = dict(db.execute("SELECT key, value FROM sync_state").fetchall())
        if not state.get("space"):
            raise SnapshotError("the store has never been synced; sync it before snapshotting")
        locales = [r[0] for r in db.execute(
            "SELECT code FROM locales ORDER BY is_default DESC, code")]
        counts = {
            "entries": db.execute("SELECT count(*) FROM entries").fetchone()[0],
            "assets": db.execute("SELECT count(*) FROM assets").fetchone()[0],
        }
        newest = db.execute("SELECT max(m) FROM (SELECT max(updated_at) AS m FROM entries "
                            "UNION ALL SELECT max(updated_at) FROM assets)").fetchone()[0]
    digest, size = _hash_file(work)
    return SnapshotInfo(
        format=SNAPSHOT_FORMAT,
        library_version=library_version,
        provider=state.get("provider") or "",
        space=state.get("space") or "",
        environment=state.get("environment") or "",
        locales=locales,
        token=state.get("token"),
        token_kind=state.get("token_kind"),
        created_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        synced_at=state.get("last_sync_at"),
        newest_update=newest,
        counts=counts,
        sha256=digest,
        size=size,
    )


def _hash_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as handle:
        return _pump(handle)


def _pump(source: BinaryIO, out: BinaryIO | None = None,
          limit: int | None = None) -> tuple[str, int]:
    """Read ``source`` to its end, or ``limit`` bytes (copying it to ``out``); its SHA-256
    and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK if limit is None else min(_CHUNK, limit - size)):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest(), size


def _write_header(out: BinaryIO, info: SnapshotInfo) -> None:
    meta = json.dumps(info.to_json(), sort_keys=True).encode("utf-8")
    out.write(MAGIC + _LENGTH.pack(len(meta)) + meta)


def read_snapshot_info(path: str | Path) -> SnapshotInfo:
    """The metadata of a snapshot file, or a SnapshotError naming what is wrong with it."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            info, _ = _read_header(handle, path)
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {str(path)!r}: {exc.strerror or exc}") from None
    return info


def _read_header(handle: BinaryIO, path: Path) -> tuple[SnapshotInfo, int]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise SnapshotError(f"{str(path)!r} is not a localcache snapshot")
    raw_length = handle.read(_LENGTH.size)
    length = _LENGTH.unpack(raw_length)[0] if len(raw_length) == _LENGTH.size else -1
    if not 0 < length <= _MAX_HEADER:
        raise SnapshotError(f"snapshot {str(path)!r} has a damaged header")
    try:
        meta = json.loads(handle.read(length))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        if meta.get("format") not in _FORMATS:
            raise SnapshotError(
                f"snapshot {str(path)!r} has format {meta.get('format')!r}; this localcache "
                f"reads formats {', '.join(map(str, _FORMATS))}. Rebuild the snapshot with "
                "this version")
        info = SnapshotInfo(**meta)
        if info.compression not in (None, "zlib") or (
                info.format != FILES_FORMAT
                and (info.format == COMPRESSED_FORMAT) != (info.compression == "zlib")):
            raise ValueError(f"format {info.format} with compression {info.compression!r}")
        if (info.format == FILES_FORMAT) != isinstance(info.assets, dict):
            raise ValueError(f"format {info.format} with assets {type(info.assets).__name__}")
    except (ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot {str(path)!r} has damaged metadata: {exc}") from None
    return info, len(MAGIC) + _LENGTH.size + length


def install_snapshot(snapshot: str | Path, target: Path, scope: StoreScope,
                     files_to: Path | None = None) -> SnapshotInfo:
    """Verify ``snapshot`` and atomically make it the store at ``target``; its asset files,
    if it bundles any, go to ``files_to`` (None: they are left out).

    The caller guarantees no connection to ``target`` is open; stale WAL files (of a replaced
    store, or left behind when a store file was deleted) are removed before the rename, so
    they can never be replayed onto the new file.
    """
    snapshot = Path(snapshot)
    partial = target.with_name(f".{target.name}.seed-{os.getpid()}")
    staged: list[tuple[Path, Path]] = []
    try:
        with open(snapshot, "rb") as handle:
            info, _ = _read_header(handle, snapshot)
            if info.scope != scope:
                raise SnapshotError(
                    f"snapshot {str(snapshot)!r} holds {info.provider} space {info.space!r} "
                    f"environment {info.environment!r}, not {scope.provider} space "
                    f"{scope.space!r} environment {scope.environment!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_verified(handle, partial, info, snapshot)
            if info.assets is not None and files_to is not None:
                _stage_files(handle, info.assets, files_to, snapshot, staged)
        for temporary, final in staged:  # files first: a store never names a missing file
            os.replace(temporary, final)
        staged.clear()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                target.with_name(target.name + suffix).unlink()
        os.replace(partial, target)
        return info
    except OSError as exc:
        raise SnapshotError(f"cannot install snapshot {str(snapshot)!r} at {str(target)!r}: "
                            f"{exc.strerror or exc}") from None
    finally:
        for leftover in [partial, *(temporary for temporary, _ in staged)]:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _stage_files(handle: BinaryIO, assets: dict[str, Any], directory: Path, source: Path,
                 staged: list[tuple[Path, Path]]) -> None:
    """Copy the bundled files beside their final names in ``directory``, checking each
    file's SHA-256 and the total's; SnapshotError (nothing renamed) when one differs."""
    corrupted = SnapshotError(f"snapshot {str(source)!r} is corrupted: its asset files do not "
                              "match their SHA-256; nothing was installed")
    directory.mkdir(parents=True, exist_ok=True)
    total = hashlib.sha256()
    try:
        for name, size, digest in assets["files"]:
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise corrupted
            temporary = directory / f"{name}.part"
            staged.append((temporary, directory / name))
            found, remaining = hashlib.sha256(), int(size)
            with open(temporary, "wb") as out:
                while remaining and (chunk := handle.read(min(_CHUNK, remaining))):
                    found.update(chunk)
                    total.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if remaining or found.hexdigest() != digest:
                raise corrupted
    except (KeyError, TypeError, ValueError):
        raise corrupted from None
    if total.hexdigest() != assets.get("sha256"):
        raise corrupted


def _copy_verified(handle: BinaryIO, partial: Path, info: SnapshotInfo, source: Path) -> None:
    corrupted = SnapshotError(f"snapshot {str(source)!r} is corrupted: its content does not "
                              "match its SHA-256; nothing was installed")
    with open(partial, "wb") as out:
        if info.compression is None:
            digest, size = _pump(handle, out, info.size if info.assets is not None else None)
            if size != info.size or digest != info.sha256:
                raise corrupted
        else:
            digest, size, expanded = _inflate(handle, out, info.stored_size
                                              if info.assets is not None else None)
            if (size, digest) != (info.stored_size, info.stored_sha256):
                raise corrupted
            if expanded != info.size:
                raise SnapshotError(f"snapshot {str(source)!r} is corrupted: it expands to "
                                    f"{expanded} bytes, not {info.size}; nothing was installed")
        out.flush()
        os.fsync(out.fileno())


def _inflate(source: BinaryIO, out: BinaryIO, limit: int | None = None) -> tuple[str, int, int]:
    """Expand the zlib blocks of ``source`` into ``out``: the stored bytes' SHA-256 and size,
    and the size written. Blocks expand on two threads (zlib lets go of the GIL), each
    written at its own offset, at most four in flight, so memory stays flat. A damaged block
    (zlib checks its Adler-32) or a block of the wrong size raises SnapshotError."""
    digest = hashlib.sha256()
    size = 0
    offset = 0
    pending: deque[Future[int]] = deque()
    descriptor = out.fileno()

    def expand(block: bytes, at: int) -> int:
        try:
            data = zlib.decompress(block)
        except zlib.error as exc:
            raise SnapshotError(f"the snapshot's compressed database is damaged ({exc}); "
                                "nothing was installed") from None
        os.pwrite(descriptor, data, at)
        return len(data)

    def settle(future: Future[int], last: bool) -> None:
        written = future.result()
        if written > _BLOCK or (written != _BLOCK and not last):
            raise SnapshotError("the snapshot's compressed database has a block of the wrong "
                                "size; nothing was installed")

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="localcache-inflate") as pool:
        try:
            while (limit is None or size < limit) and (
                    header := source.read(_BLOCK_LENGTH.size)):
                length = (_BLOCK_LENGTH.unpack(header)[0]
                          if len(header) == _BLOCK_LENGTH.size else -1)
                block = source.read(length) if 0 < length <= 2 * _BLOCK else b""
                if len(block) != length:
                    raise SnapshotError("the snapshot's compressed database is cut short; "
                                        "nothing was installed")
                digest.update(header)
                digest.update(block)
                size += len(header) + length
                if len(pending) >= 4:
                    settle(pending.popleft(), last=False)
                pending.append(pool.submit(expand, block, offset))
                offset += _BLOCK
            while pending:
                settle(pending.popleft(), last=not pending)
        finally:
            for future in pending:
                future.cancel()
    expanded = os.fstat(descriptor).st_size
    return digest.hexdigest(), size, expanded


def should_replace(info: SnapshotInfo, last_sync_at: str | None, newest_update: str | None,
                   in_progress: bool) -> bool:
    """The app-upgrade rule (docs/snapshot.md): replace a user's store with a bundled snapshot
    only when that loses nothing the store has and saves work.

    - loses nothing: the store holds no record version newer than the snapshot's newest, and
      no sync of its own is under way;
    - saves work: the snapshot's sync completed after the store's last completed sync.
    """
    if in_progress or info.token_kind != "sync" or info.synced_at is None:
        return False
    if last_sync_at is not None and info.synced_at <= last_sync_at:
        return False
    return newest_update is None or (info.newest_update or "") >= newest_update
