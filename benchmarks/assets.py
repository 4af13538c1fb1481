"""Asset downloads: throughput against the latency floor, and the cost of ``asset_path``.

The emulator runs in a child process (a CDN is another machine: its threads must not share
this process's GIL) with N files of SIZE bytes (default 1,000 of 50 KB) and LATENCY seconds
added to every request (default 20 ms). For 1, 4, 8 and 16 workers, a fresh store syncs the
asset records, then ``cache.assets.download()`` is timed: files/s, MB/s, and the ratio to the
floor ``latency x files / workers`` (what the latency alone costs with that many requests in
flight). Target (issue 12): within 1.3x of the floor with 8 workers.

Then ``cache.asset_path(id)`` over random ids of the downloaded store, per call, against the
floor of one indexed SELECT through a raw sqlite3 connection. Target: <= 50 us.

    python benchmarks/assets.py [--files 1000] [--size 50000] [--latency 0.02]
                                [--workers 1,4,8,16] [--reads 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
SPACE = "benchspace"

# The emulator's process: argv = files, size, latency, space id, token.
_SERVER = """
import sys
from localcache.emulator import Emulator, Locale, Space
from localcache.emulator.files import contentful_file
files, size, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
space_id, token = sys.argv[4], sys.argv[5]
space = Space(space_id, "master", locales=[Locale("en-US", default=True)])
for n in range(files):
    asset_id = f"asset{n:05d}"
    file = contentful_file(space_id, asset_id, f"photo-{n}.jpg", size, "image/jpeg")
    space.publish_asset(asset_id, {"title": {"en-US": asset_id}, "file": {"en-US": file}})
with Emulator(space, access_token=token) as emu:
    emu.faults.latency = latency
    print(emu.base_url, emu.asset_base_url, flush=True)
    sys.stdin.read()
"""


def run_downloads(base_url: str, asset_base_url: str, workers: int,
                  directory: Path) -> dict[str, Any]:
    from localcache import AssetPolicy, Cache, Contentful

    provider = Contentful(SPACE, TOKEN, base_url=base_url, asset_base_url=asset_base_url)
    policy = AssetPolicy(workers=workers, directory=directory / "assets")
    with Cache(provider, path=directory / "store.sqlite3", assets=policy) as cache:
        cache.sync()
        started = time.perf_counter()
        run = cache.assets.download()
        seconds = time.perf_counter() - started
        assert run.failed == 0 and cache.assets.check().clean
    return {"seconds": seconds, "files": run.downloaded, "bytes": run.bytes}


def time_asset_path(directory: Path, reads: int) -> dict[str, float]:
    from localcache import AssetPolicy, Cache, Contentful

    provider = Contentful(SPACE, TOKEN, base_url="http://127.0.0.1:9")  # offline
    policy = AssetPolicy(directory=directory / "assets")
    with Cache(provider, path=directory / "store.sqlite3", assets=policy) as cache:
        ids = [row.id for row in cache.iter_records("Asset")]
        picks = [random.choice(ids) for _ in range(reads)]
        assert cache.asset_path(picks[0]) is not None
        started = time.perf_counter()
        for asset_id in picks:
            cache.asset_path(asset_id)
        ours = (time.perf_counter() - started) / reads
    conn = sqlite3.connect(directory / "store.sqlite3")
    started = time.perf_counter()
    for asset_id in picks:
        conn.execute("SELECT locale, path FROM asset_files WHERE asset_id = ?",
                     (asset_id,)).fetchall()
    floor = (time.perf_counter() - started) / reads
    conn.close()
    return {"asset_path_us": ours * 1e6, "select_floor_us": floor * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workers", default="1,4,8,16")
    parser.add_argument("--reads", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(args.files), str(args.size),
                               str(args.latency), SPACE, TOKEN], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    base_url, asset_base_url = server.stdout.readline().split()
    results: dict[str, Any] = {"files": args.files, "size": args.size,
                               "latency": args.latency, "runs": []}
    try:
        with tempfile.TemporaryDirectory(prefix="localcache-assets-bench-") as scratch:
            for workers in (int(w) for w in args.workers.split(",")):
                directory = Path(scratch) / f"w{workers}"
                directory.mkdir()
                got = run_downloads(base_url, asset_base_url, workers, directory)
                floor = args.latency * args.files / workers
                results["runs"].append({
                    "workers": workers, **got, "files_per_s": got["files"] / got["seconds"],
                    "mb_per_s": got["bytes"] / got["seconds"] / 1e6, "floor": floor,
                    "ratio": got["seconds"] / floor})
            results["reads"] = time_asset_path(directory, args.reads)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.files} files of {args.size:,} bytes, {args.latency * 1000:.0f} ms a request")
    print(f"{'workers':>8} {'seconds':>8} {'files/s':>8} {'MB/s':>7} {'floor s':>8} "
          f"{'x floor':>8}")
    for run in results["runs"]:
        print(f"{run['workers']:>8} {run['seconds']:>8.2f} {run['files_per_s']:>8.0f} "
              f"{run['mb_per_s']:>7.2f} {run['floor']:>8.2f} {run['ratio']:>8.2f}")
    reads = results["reads"]
    print(f"asset_path: {reads['asset_path_us']:.1f} us a call "
          f"(one indexed SELECT alone: {reads['select_floor_us']:.1f} us)")


if __name__ == "__main__":
    main()
