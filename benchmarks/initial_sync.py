"""Initial sync speed and memory: localcache against a floor, same server, same run.

A child process generates a space (entries with ~1 KB of fields over 3 locales, plus assets)
and serves it from the built-in emulator on 127.0.0.1. Each client runs in a child process of
its own, started by a parent that stays small, so its peak RSS (from ``os.wait4``) is its own:

- ``floor``: requests + json + sqlite3.executemany, one transaction per page holding the
  items and the next token; the least any correct page-atomic client can do.
- ``localcache``: ``Cache(Contentful(...)).sync()``.
- ``nosearch``: the same with ``Cache(..., search=False)``: what the full-text index costs.

All use ``limit=1000``. Each runs ``--repeat`` times per size, alternating, and the best time
counts. Prints seconds, pages/s, CPU, peak RSS and the ratios. Targets: time ratio to the
floor <= 1.2 and localcache's peak RSS within 60 MB of the floor's at both sizes (issue 2);
the search index costs at most x1.25 the wall time of ``nosearch`` (issue 10).

    python benchmarks/initial_sync.py                 # 20k and 100k entries
    python benchmarks/initial_sync.py --sizes 5000    # a quick look
    python benchmarks/initial_sync.py --sizes 20000 --search-only --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
LIMIT = 1000


def floor_client(base_url: str, space: str, environment: str, db: Path) -> dict[str, Any]:
    import requests

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, type TEXT, revision INT, raw TEXT)")
    conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT)")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    url = f"{base_url}/spaces/{space}/environments/{environment}/sync"
    params: dict[str, str] | None = {"initial": "true", "limit": str(LIMIT)}
    pages = 0
    started = time.perf_counter()
    while True:
        response = session.get(url, params=params)
        response.raise_for_status()
        body = response.json()
        rows = [(i["sys"]["id"], i["sys"]["type"], i["sys"].get("revision"), json.dumps(i))
                for i in body["items"]]
        next_url = body.get("nextPageUrl") or body["nextSyncUrl"]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)
        conn.execute("INSERT OR REPLACE INTO state VALUES ('token', ?)", (next_url,))
        conn.execute("COMMIT")
        pages += 1
        if "nextPageUrl" not in body:
            break
        url, params = next_url, None
    return {"seconds": time.perf_counter() - started, "pages": pages}


def localcache_client(base_url: str, space: str, environment: str, db: Path,
                      search: bool = True) -> dict[str, Any]:
    from localcache import Cache, Contentful

    started = time.perf_counter()
    provider = Contentful(space, TOKEN, environment, base_url=base_url, limit=LIMIT)
    with Cache(provider, path=db, search=search) as cache:
        result = cache.sync()
    return {"seconds": time.perf_counter() - started, "pages": result.pages,
            "store_mb": db.stat().st_size / 1e6}


def localcache_without_search(base_url: str, space: str, environment: str,
                              db: Path) -> dict[str, Any]:
    """The same sync with Cache(..., search=False): what the full-text index costs."""
    return localcache_client(base_url, space, environment, db, search=False)


CLIENTS = {"floor": floor_client, "localcache": localcache_client,
           "nosearch": localcache_without_search}


def run_child(mode: str, base_url: str, space: str, environment: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lc-bench-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, "--url", base_url, "--space", space,
             "--environment", environment, "--db", str(Path(scratch) / "bench.sqlite3")],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{mode} client failed with exit code {proc.returncode}")
        figures: dict[str, Any] = json.loads(out)
        figures["peak_rss_mb"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        return figures


def serve_space(entries: int) -> None:
    """Child: generate the space, serve it, print one JSON line, stop when stdin closes."""
    from localcache.emulator import Emulator, generate_space

    started = time.perf_counter()
    space = generate_space(entries=entries, assets=max(10, entries // 100), field_bytes=200,
                           seed=entries)
    with Emulator(space, access_token=TOKEN, page_size=100) as emulator:
        print(json.dumps({"url": emulator.base_url, "space": space.space_id,
                          "environment": space.environment,
                          "generated_seconds": time.perf_counter() - started}), flush=True)
        sys.stdin.read()


def bench_size(entries: int, repeat: int,
               modes: tuple[str, ...] = ("floor", "localcache", "nosearch")
               ) -> dict[str, dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--child", "emulator", "--entries", str(entries)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    info = json.loads(server.stdout.readline())
    print(f"\n{entries} entries: space generated in {info['generated_seconds']:.1f}s",
          flush=True)
    best: dict[str, dict[str, Any]] = {}
    try:
        for round_ in range(repeat):
            for mode in modes:
                figures = run_child(mode, info["url"], info["space"], info["environment"])
                print(f"  run {round_ + 1} {mode:<10} {figures['seconds']:7.2f}s "
                      f"cpu {figures['cpu_seconds']:6.2f}s "
                      f"{figures['pages']:4d} pages  peak RSS {figures['peak_rss_mb']:6.1f} MB"
                      + (f"  store {figures['store_mb']:.0f} MB" if "store_mb" in figures
                         else ""), flush=True)
                kept = best.get(mode)
                if kept is None or figures["seconds"] < kept["seconds"]:
                    best[mode] = {**figures, "peak_rss_mb": max(
                        figures["peak_rss_mb"], kept["peak_rss_mb"] if kept else 0)}
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--search-only", action="store_true",
                        help="only the search index's cost: localcache with and without it")
    parser.add_argument("--child", choices=[*sorted(CLIENTS), "emulator"])
    parser.add_argument("--entries", type=int)
    parser.add_argument("--url")
    parser.add_argument("--space")
    parser.add_argument("--environment")
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    if args.child == "emulator":
        serve_space(args.entries)
        return
    if args.child:
        print(json.dumps(CLIENTS[args.child](args.url, args.space, args.environment, args.db)))
        return
    summary = []
    for entries in args.sizes:
        best = bench_size(entries, args.repeat, ("localcache", "nosearch") if args.search_only
                          else ("floor", "localcache", "nosearch"))
        ours = best["localcache"]
        if "floor" in best:
            floor = best["floor"]
            ratio = ours["seconds"] / floor["seconds"]
            rss_delta = ours["peak_rss_mb"] - floor["peak_rss_mb"]
            summary.append(
                f"{entries:>7} entries: localcache {ours['seconds']:.2f}s "
                f"({ours['pages'] / ours['seconds']:.1f} pages/s), floor "
                f"{floor['seconds']:.2f}s ({floor['pages'] / floor['seconds']:.1f} pages/s), "
                f"ratio {ratio:.2f} (target <= 1.2); peak RSS {ours['peak_rss_mb']:.0f} MB vs "
                f"floor {floor['peak_rss_mb']:.0f} MB, +{rss_delta:.0f} MB (target <= 60)"
            )
        bare = best["nosearch"]
        summary.append(
            f"{'':>7}  search index: wall {ours['seconds']:.2f}s vs {bare['seconds']:.2f}s "
            f"without (x{ours['seconds'] / bare['seconds']:.2f}, target <= 1.25), CPU "
            f"{ours['cpu_seconds']:.2f}s vs {bare['cpu_seconds']:.2f}s "
            f"(x{ours['cpu_seconds'] / bare['cpu_seconds']:.2f}), store "
            f"{ours['store_mb']:.0f} MB vs {bare['store_mb']:.0f} MB"
        )
    print("\nSummary")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
