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
_FORMATS = (SNAPSHOT_FORMAT, COMPRESSED_FORMAT)
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

    @property
    def scope(self) -> StoreScope:
        return StoreScope(self.provider, self.space, self.environment)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.compression is None:  # format 1 as before: readable by older versions
            for key in ("compression", "stored_size", "stored_sha256"):
                del data[key]
        return data


def create_snapshot(store_path: Path, output: Path, *, library_version: str,
                    compress: bool = False) -> SnapshotInfo:
    """Write a snapshot of the store at ``store_path`` to ``output`` (zlib-compressed, format
    2, with ``compress``).

    ``VACUUM INTO`` copies one committed state of the store (a page boundary, even while a sync
    writes), compacted. The output appears under its name only when complete.
    """
    output = Path(output)
    work = output.with_name(f".{output.name}.{os.getpid()}.db")
    packed = output.with_name(f".{output.name}.{os.getpid()}.z")
    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with contextlib.closing(sqlite3.connect(store_path)) as source:
            source.execute("VACUUM INTO ?", (str(work),))
        info = _describe_copy(work, library_version)
        payload = work
        if compress:
            with open(work, "rb") as db, open(packed, "wb") as out:
                stored_sha256, stored_size = _deflate(db, out)
            info = replace(info, format=COMPRESSED_FORMAT, compression="zlib",
                           stored_size=stored_size, stored_sha256=stored_sha256)
            payload = packed
        with open(partial, "wb") as out:
            _write_header(out, info)
            with open(payload, "rb") as db:
                _pump(db, out)
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
        for leftover in (work, packed, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


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


def _pump(source: BinaryIO, out: BinaryIO | None = None) -> tuple[str, int]:
    """Read ``source`` to its end (copying it to ``out``); its SHA-256 and size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
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
        if (info.format == COMPRESSED_FORMAT) != (info.compression == "zlib"):
            raise ValueError(f"format {info.format} with compression {info.compression!r}")
    except (ValueError, TypeError) as exc:
        raise SnapshotError(f"snapshot {str(path)!r} has damaged metadata: {exc}") from None
    return info, len(MAGIC) + _LENGTH.size + length


def install_snapshot(snapshot: str | Path, target: Path, scope: StoreScope) -> SnapshotInfo:
    """Verify ``snapshot`` and atomically make it the store at ``target``.

    The caller guarantees no connection to ``target`` is open; stale WAL files (of a replaced
    store, or left behind when a store file was deleted) are removed before the rename, so
    they can never be replayed onto the new file.
    """
    snapshot = Path(snapshot)
    partial = target.with_name(f".{target.name}.seed-{os.getpid()}")
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
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                target.with_name(target.name + suffix).unlink()
        os.replace(partial, target)
        return info
    except OSError as exc:
        raise SnapshotError(f"cannot install snapshot {str(snapshot)!r} at {str(target)!r}: "
                            f"{exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _copy_verified(handle: BinaryIO, partial: Path, info: SnapshotInfo, source: Path) -> None:
    corrupted = SnapshotError(f"snapshot {str(source)!r} is corrupted: its content does not "
                              "match its SHA-256; nothing was installed")
    with open(partial, "wb") as out:
        if info.compression is None:
            digest, size = _pump(handle, out)
            if size != info.size or digest != info.sha256:
                raise corrupted
        else:
            digest, size, expanded = _inflate(handle, out)
            if (size, digest) != (info.stored_size, info.stored_sha256):
                raise corrupted
            if expanded != info.size:
                raise SnapshotError(f"snapshot {str(source)!r} is corrupted: it expands to "
                                    f"{expanded} bytes, not {info.size}; nothing was installed")
        out.flush()
        os.fsync(out.fileno())


def _inflate(source: BinaryIO, out: BinaryIO) -> tuple[str, int, int]:
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
            while header := source.read(_BLOCK_LENGTH.size):
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
