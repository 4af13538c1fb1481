"""Initial sync speed and memory: localcache against naive clients, same server, same run.

A child process generates a space (entries with ~1 KB of fields over 3 locales, plus assets)
and serves it from the built-in emulator on 127.0.0.1 (``--latency`` delays every response, a
round trip's worth). Each client runs in a child process of its own, started by a parent that
stays small, so its peak RSS (from ``os.wait4``) and CPU time are its own:

- ``naive100``: the simplest correct client, as a new user writes it: requests + json +
  sqlite3 ``executemany``, one transaction per page holding the items and the next token, no
  links, no index; at the server's default page size (100: it sends no ``limit``).
- ``naive``: the same asking ``limit=1000``.
- ``fetch``: the same pages (``limit=1000``) fetched and read with no client work at all (the
  next page's URL found in the body's text): the least time the network allows.
- ``localcache``: ``Cache(Contentful(...)).sync()`` with its defaults (``limit`` 1000, search
  on), what ``localcache sync`` runs.
- ``nosearch``: the same with ``Cache(..., search=False)``: links and the type index, not the
  full-text index, whose cost issue 10 measures apart.
- ``unpaced`` (only when asked for with ``--modes``): ``nosearch`` with the garbage collector's
  own thresholds, not the sync's (sync/pacing.py).

Each runs ``--repeat`` times per size, alternating, and the best time counts. Targets (issue
13): localcache's wall time <= 0.8x ``naive100`` and ``naive``; ``nosearch``'s CPU <= 1.3x the
naive client's; at ``--latency 0.05``, localcache within 1.1x of ``fetch``; peak RSS flat with
size and within 30 MB of the naive client's. Issue 10: the search index costs at most x1.25 the
wall time of ``nosearch``.

    python benchmarks/initial_sync.py                       # 20k and 100k entries
    python benchmarks/initial_sync.py --sizes 20000 --latency 0.05
    python benchmarks/initial_sync.py --sizes 20000 --search-only --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
LIMIT = 1000


def naive_client(base_url: str, space: str, environment: str, db: Path,
                 limit: int | None = LIMIT) -> dict[str, Any]:
    import requests

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, type TEXT, revision INT, raw TEXT)")
    conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT)")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    url = f"{base_url}/spaces/{space}/environments/{environment}/sync"
    first = {"initial": "true", **({"limit": str(limit)} if limit is not None else {})}
    params: dict[str, str] | None = first
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


def naive_client_default_page(base_url: str, space: str, environment: str,
                              db: Path) -> dict[str, Any]:
    """The naive client at the server's default page size (it sends no ``limit``)."""
    return naive_client(base_url, space, environment, db, limit=None)


_NEXT_PAGE = re.compile(rb'"nextPageUrl"\s*:\s*"([^"]+)"')


def fetch_client(base_url: str, space: str, environment: str, db: Path) -> dict[str, Any]:
    """The same pages fetched and read, nothing else: no JSON decoded, nothing stored."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    url = f"{base_url}/spaces/{space}/environments/{environment}/sync"
    params: dict[str, str] | None = {"initial": "true", "limit": str(LIMIT)}
    pages = 0
    started = time.perf_counter()
    while True:
        response = session.get(url, params=params)
        response.raise_for_status()
        pages += 1
        found = _NEXT_PAGE.search(response.content)
        if found is None:
            break
        url, params = found.group(1).decode(), None
    return {"seconds": time.perf_counter() - started, "pages": pages}


def localcache_client(base_url: str, space: str, environment: str, db: Path,
                      search: bool = True) -> dict[str, Any]:
    from localcache import Cache, Contentful

    started = time.perf_counter()
    provider = Contentful(space, TOKEN, environment, base_url=base_url)  # limit: 1000
    with Cache(provider, path=db, search=search) as cache:
        result = cache.sync()
    return {"seconds": time.perf_counter() - started, "pages": result.pages,
            "store_mb": db.stat().st_size / 1e6}


def localcache_without_search(base_url: str, space: str, environment: str,
                              db: Path) -> dict[str, Any]:
    """The same sync with Cache(..., search=False): what the full-text index costs."""
    return localcache_client(base_url, space, environment, db, search=False)


def localcache_unpaced(base_url: str, space: str, environment: str,
                       db: Path) -> dict[str, Any]:
    """``nosearch`` with the garbage collector's own thresholds during the sync, not the
    sync's (sync/pacing.py): what pacing the collector saves."""
    from localcache.sync import pacing

    pacing.SYNC_THRESHOLDS = (0, 0)
    return localcache_client(base_url, space, environment, db, search=False)


CLIENTS = {"naive100": naive_client_default_page, "naive": naive_client,
           "fetch": fetch_client, "localcache": localcache_client,
           "nosearch": localcache_without_search, "unpaced": localcache_unpaced}
MODES = ("naive100", "naive", "fetch", "localcache", "nosearch")


def run_child(mode: str, base_url: str, space: str, environment: str) -> dict[str, Any]:
    return child_figures(__file__, ["--child", mode, "--url", base_url, "--space", space,
                                    "--environment", environment], f"{mode} client")


def child_figures(script: str, args: list[str], what: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` and ``--db`` (a scratch file) in a child process; the
    JSON it prints, with its own peak RSS and CPU time (``os.wait4``)."""
    with tempfile.TemporaryDirectory(prefix="lc-bench-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, script, *args, "--db", str(Path(scratch) / "bench.sqlite3")],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{what} failed with exit code {proc.returncode}")
        figures: dict[str, Any] = json.loads(out)
        figures["peak_rss_mb"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        return figures


def serve_space(entries: int, latency: float) -> None:
    """Child: generate the space, serve it, print one JSON line, stop when stdin closes."""
    from localcache.emulator import Emulator, generate_space

    started = time.perf_counter()
    space = generate_space(entries=entries, assets=max(10, entries // 100), field_bytes=200,
                           seed=entries)
    with Emulator(space, access_token=TOKEN, page_size=100) as emulator:
        emulator.faults.latency = latency
        print(json.dumps({"url": emulator.base_url, "space": space.space_id,
                          "environment": space.environment,
                          "generated_seconds": time.perf_counter() - started}), flush=True)
        sys.stdin.read()


def bench_size(entries: int, repeat: int, modes: tuple[str, ...] = MODES,
               latency: float = 0.0) -> dict[str, dict[str, Any]]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--child", "emulator", "--entries", str(entries),
         "--latency", str(latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    info = json.loads(server.stdout.readline())
    print(f"\n{entries} entries: space generated in {info['generated_seconds']:.1f}s"
          + (f", {latency * 1e3:.0f} ms latency" if latency else ""), flush=True)
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


def summarize(entries: int, best: dict[str, dict[str, Any]]) -> list[str]:
    """The target lines of one size (for the modes that ran)."""
    lines = [f"{entries} entries (best of the rounds):"]

    def wall(mode: str) -> float:
        return float(best[mode]["seconds"])

    ours = best.get("localcache")
    for naive in ("naive100", "naive"):
        if ours is not None and naive in best:
            lines.append(
                f"  wall: localcache {wall('localcache'):.2f}s vs {naive} {wall(naive):.2f}s "
                f"({best[naive]['pages']} pages): x{wall('localcache') / wall(naive):.2f} "
                "(target <= 0.8)")
        if "nosearch" in best and naive in best:
            bare, other = best["nosearch"], best[naive]
            lines.append(
                f"  CPU: nosearch {bare['cpu_seconds']:.2f}s vs {naive} "
                f"{other['cpu_seconds']:.2f}s: x{bare['cpu_seconds'] / other['cpu_seconds']:.2f}"
                " (target <= 1.3)")
    if ours is not None and "fetch" in best:
        lines.append(f"  against fetching alone: localcache {wall('localcache'):.2f}s vs fetch "
                     f"{wall('fetch'):.2f}s: x{wall('localcache') / wall('fetch'):.2f} "
                     "(target <= 1.1 at 50 ms latency)")
    rss = "  peak RSS: " + ", ".join(f"{mode} {figures['peak_rss_mb']:.0f} MB"
                                     for mode, figures in best.items())
    lines.append(rss + " (target: localcache within 30 MB of naive, flat with size)")
    if ours is not None and "nosearch" in best:
        bare = best["nosearch"]
        lines.append(
            f"  search index: wall {ours['seconds']:.2f}s vs {bare['seconds']:.2f}s "
            f"without (x{ours['seconds'] / bare['seconds']:.2f}, target <= 1.25), CPU "
            f"{ours['cpu_seconds']:.2f}s vs {bare['cpu_seconds']:.2f}s "
            f"(x{ours['cpu_seconds'] / bare['cpu_seconds']:.2f}), store "
            f"{ours['store_mb']:.0f} MB vs {bare['store_mb']:.0f} MB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds the emulator waits before each response (0.05: 50 ms)")
    parser.add_argument("--modes", nargs="+", choices=sorted(CLIENTS), default=list(MODES))
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
        serve_space(args.entries, args.latency)
        return
    if args.child:
        print(json.dumps(CLIENTS[args.child](args.url, args.space, args.environment, args.db)))
        return
    modes = ("localcache", "nosearch") if args.search_only else tuple(args.modes)
    summary = []
    for entries in args.sizes:
        summary.extend(summarize(entries, bench_size(entries, args.repeat, modes,
                                                     args.latency)))
    print("\nSummary")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
