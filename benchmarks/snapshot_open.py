"""First launch from a bundled snapshot: time until the first query is answered.

Builds a store of N entries (default 100k, ~1 KB of fields over 3 locales) by syncing from the
emulator, writes a snapshot, then, in a fresh process each time (a real first launch):

- ``localcache``: ``Cache(provider, path=<new>, snapshot=FILE)`` (verify the SHA-256, install
  atomically, open, announce the seeded content) then ``cache.entries("article", limit=20)``;
- ``floor``: copy the database part of the file to the target, open it with sqlite3 and run the
  same query: the least a first launch can do.

Target (issue 4): the first query answered in <= 1 s. Prints both times and the ratio.

``localcache-compressed`` does the same from ``create_snapshot(..., compress=True)`` (issue 13:
at most 40% of the store's size, the first query within 1.5 s); its size and time are printed
against the uncompressed file's.

    python benchmarks/snapshot_open.py [--entries 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"


def build(entries: int, directory: Path) -> Path:
    from localcache import Cache, Contentful
    from localcache.emulator import Emulator, generate_space

    space = generate_space(entries=entries, assets=max(10, entries // 100), field_bytes=200,
                           seed=entries)
    with Emulator(space, access_token=TOKEN) as emulator:
        provider = Contentful(space.space_id, TOKEN, base_url=emulator.base_url, limit=1000)
        with Cache(provider, path=directory / "release.sqlite3") as cache:
            cache.sync()
            cache.create_snapshot(directory / "content.snap")
            cache.create_snapshot(directory / "content.snapz", compress=True)
    return directory / "content.snap"


def first_launch_localcache(snapshot: Path, target: Path) -> dict[str, Any]:
    started = time.perf_counter()
    from localcache import Cache, Contentful
    from localcache.snapshot import read_snapshot_info

    imported = time.perf_counter()
    info = read_snapshot_info(snapshot)
    provider = Contentful(info.space, TOKEN, info.environment,
                          base_url="http://127.0.0.1:9")  # offline: never contacted
    cache = Cache(provider, path=target, snapshot=snapshot)
    rows = cache.entries("article", limit=20)
    answered = time.perf_counter()
    assert len(rows) == 20
    return {"seconds": answered - imported, "import_seconds": imported - started}


def first_launch_floor(snapshot: Path, target: Path) -> dict[str, Any]:
    import sqlite3

    started = time.perf_counter()
    with open(snapshot, "rb") as source, open(target, "wb") as out:
        source.read(20)
        length = int.from_bytes(source.read(8), "big")
        source.seek(length, os.SEEK_CUR)
        while chunk := source.read(1 << 20):
            out.write(chunk)
    conn = sqlite3.connect(target)
    rows = conn.execute("SELECT raw FROM entries WHERE content_type = ? ORDER BY id LIMIT 20",
                        ("article",)).fetchall()
    answered = time.perf_counter()
    assert len(rows) == 20
    return {"seconds": answered - started, "import_seconds": 0.0}


CLIENTS = {"localcache": first_launch_localcache, "floor": first_launch_floor,
           "localcache-compressed": first_launch_localcache}
MODES = ("floor", "localcache", "localcache-compressed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=sorted(CLIENTS))
    parser.add_argument("--snapshot", type=Path)
    parser.add_argument("--target", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CLIENTS[args.child](args.snapshot, args.target)))
        return
    with tempfile.TemporaryDirectory(prefix="lc-snap-") as scratch:
        started = time.perf_counter()
        snapshot = build(args.entries, Path(scratch))
        size = snapshot.stat().st_size / 1e6
        packed = snapshot.with_suffix(".snapz")
        packed_size = packed.stat().st_size / 1e6
        print(f"{args.entries} entries: snapshot of {size:.0f} MB, compressed {packed_size:.0f} "
              f"MB ({packed_size / size:.0%}), built in {time.perf_counter() - started:.1f}s")
        best: dict[str, dict[str, Any]] = {}
        for run in range(args.repeat):
            for mode in MODES:
                target = Path(scratch) / f"{mode}-{run}.sqlite3"
                source = packed if mode.endswith("compressed") else snapshot
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--snapshot", str(source),
                     "--target", str(target)], capture_output=True, text=True, check=True)
                figures = json.loads(out.stdout)
                print(f"  run {run + 1} {mode:<21} first query after {figures['seconds']:.3f}s"
                      f" (+{figures['import_seconds']:.3f}s imports)")
                if mode not in best or figures["seconds"] < best[mode]["seconds"]:
                    best[mode] = figures
                for leftover in Path(scratch).glob(f"{mode}-{run}.sqlite3*"):
                    leftover.unlink()
        ours, floor = best["localcache"], best["floor"]
        print(f"\nSummary: first query {ours['seconds']:.3f}s after Cache(snapshot=...) "
              f"(target <= 1 s; imports {ours['import_seconds']:.3f}s more), floor "
              f"{floor['seconds']:.3f}s, ratio {ours['seconds'] / floor['seconds']:.2f}")
        squeezed = best["localcache-compressed"]
        print(f"Compressed: {packed_size:.0f} MB = {packed_size / size:.0%} of the "
              f"uncompressed {size:.0f} MB (target <= 40%); first query "
              f"{squeezed['seconds']:.3f}s (target <= 1.5 s), "
              f"x{squeezed['seconds'] / ours['seconds']:.2f} the uncompressed file's")


if __name__ == "__main__":
    main()
