"""Where an initial sync's time goes: fetch, decode, parse and validate, SQL, triggers,
indexes, commit and checkpoint, measured one stage at a time on the same pages.

The emulator (in this process) serves a generated space; the pages are fetched once and kept.
Then, each stage alone, on one core (no overlap, so the figures add up):

- ``fetch``: the HTTP requests and the bodies read (the server's work included);
- ``decode``: the bodies' JSON decoded (``loads_yielding``, what the providers use);
- ``parse + validate``: ``Contentful.parse_page`` minus the decode: deltas, checks;
- ``SQL``: the pages written through ``apply_deltas`` into a store with no triggers and no
  secondary indexes (the rows, their JSON read by SQLite from the page text);
- ``triggers``: the same into a store with the triggers (links, id -> content type) minus SQL;
- ``indexes``: the same with the secondary indexes too, minus the two above;
- ``commit + checkpoint``: the commits of the last run and the WAL checkpoint at close.

Compare with ``benchmarks/initial_sync.py``, which runs the whole sync with fetch and apply
overlapped (a page is fetched and parsed while the one before is written).

    python benchmarks/sync_stages.py --entries 20000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "stages-token"


def fetch_pages(base_url: str, space_id: str, limit: int) -> tuple[list[Any], float]:
    from localcache.providers.contentful import Contentful

    provider = Contentful(space_id, TOKEN, base_url=base_url, limit=limit)
    responses = []
    started = time.perf_counter()
    params: dict[str, str] = provider._initial_params()
    while True:
        response = provider._get("/sync", params, what="page")
        responses.append(response)
        if b'"nextSyncUrl"' in response.body:
            break
        page = provider.parse_page(response, len(responses))
        params = {"sync_token": page.next_token.value}
    return responses, time.perf_counter() - started


def write(responses: list[Any], path: Path, *, triggers: bool, indexes: bool
          ) -> tuple[float, float]:
    """Seconds to write every page (each in its own transaction), and to commit + close."""
    from localcache.model import StoreScope
    from localcache.providers.contentful import Contentful
    from localcache.store.apply import apply_deltas
    from localcache.store.database import Store

    pages = [Contentful.parse_page(r, n) for n, r in enumerate(responses, 1)]
    store = Store(path, StoreScope("contentful", "demo", "master"))
    conn = store.raw_connection()
    kept = {"table"} | ({"trigger"} if triggers else set()) | ({"index"} if indexes else set())
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE sql IS NOT NULL "
                                   "AND tbl_name IN ('entries', 'assets', 'links')").fetchall():
        if kind not in kept:
            conn.execute(f'DROP {kind.upper()} "{name}"')
    writing = committing = 0.0
    for page in pages:
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        apply_deltas(conn, page.deltas, page.number, page.source)
        middle = time.perf_counter()
        conn.execute("COMMIT")
        writing += middle - started
        committing += time.perf_counter() - middle
    started = time.perf_counter()
    store.close()
    return writing, committing + time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=1000)
    args = parser.parse_args()
    from localcache.emulator import Emulator, generate_space
    from localcache.providers.contentful import Contentful
    from localcache.providers.wire import loads_yielding

    space = generate_space(entries=args.entries, assets=max(10, args.entries // 100),
                           field_bytes=300, seed=1)
    with Emulator(space, access_token=TOKEN) as emulator:
        responses, fetch = fetch_pages(emulator.base_url, space.space_id, args.limit)
    started = time.perf_counter()
    for response in responses:
        loads_yielding(response.body.decode("utf-8"))
    decode = time.perf_counter() - started
    started = time.perf_counter()
    for number, response in enumerate(responses, 1):
        Contentful.parse_page(response, number)
    parse = time.perf_counter() - started - decode
    with tempfile.TemporaryDirectory(prefix="lc-stages-") as scratch:
        bare, _ = write(responses, Path(scratch) / "bare.sqlite3", triggers=False,
                        indexes=False)
        triggered, _ = write(responses, Path(scratch) / "trig.sqlite3", triggers=True,
                             indexes=False)
        full, commit = write(responses, Path(scratch) / "full.sqlite3", triggers=True,
                             indexes=True)
        links = sqlite3.connect(Path(scratch) / "full.sqlite3").execute(
            "SELECT count(*) FROM links").fetchone()[0]
    stages = [("fetch (HTTP, server included)", fetch), ("decode (JSON)", decode),
              ("parse + validate", parse), ("SQL (rows)", bare),
              (f"triggers ({links:,} links, id -> type)", triggered - bare),
              ("indexes", full - triggered), ("commit + checkpoint", commit)]
    total = sum(seconds for _, seconds in stages)
    items = args.entries + max(10, args.entries // 100)
    print(f"{items:,} items in {len(responses)} pages of {args.limit}, one stage at a time:")
    print(f"{'stage':<36} {'seconds':>8} {'share':>6} {'us/item':>8}")
    for name, seconds in stages:
        print(f"{name:<36} {seconds:8.2f} {seconds / total:6.0%} {seconds / items * 1e6:8.1f}")
    print(f"{'total':<36} {total:8.2f}")


if __name__ == "__main__":
    main()
