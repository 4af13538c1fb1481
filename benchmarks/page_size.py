"""Which SQLite page_size suits the store's ~1-3 KB records: write and read throughput.

Applies the same pre-parsed sync pages (generated entries of ~1.5 KB with 3 locales) to a fresh
store for each page size, one transaction per page as the sync engine does, then reads every
record back by id. The floor is the same write with a plain 4 KiB single-table database.

    python benchmarks/page_size.py [--entries 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from localcache.emulator import generate_space
from localcache.model import StoreScope
from localcache.providers.contentful import Contentful
from localcache.providers.http import HttpResponse
from localcache.store import schema
from localcache.store.apply import apply_deltas
from localcache.store.database import Store


def pages_of(entries: int) -> list[bytes]:
    space = generate_space(entries=entries, assets=0, field_bytes=200, seed=5)
    items = list(space.published_entries().values())
    return [json.dumps({"sys": {"type": "Array"}, "items": items[i:i + 1000],
                        "nextPageUrl": "http://x/sync?sync_token=t"}).encode()
            for i in range(0, len(items), 1000)]


def measure(page_size: int, bodies: list[bytes], directory: Path) -> tuple[float, float, int]:
    schema.PAGE_SIZE = page_size
    path = directory / f"store-{page_size}.sqlite3"
    store = Store(path, StoreScope("contentful", "bench", "master"))
    parsed = [Contentful.parse_page(HttpResponse(200, {}, body, None), n)
              for n, body in enumerate(bodies, 1)]
    started = time.perf_counter()
    for page in parsed:
        with store.write():
            apply_deltas(store.raw_connection(), page.deltas, page.number, page.source)
    write = time.perf_counter() - started
    ids = [d.id for page in parsed for d in page.deltas]
    random.Random(1).shuffle(ids)
    conn = store.raw_connection()
    started = time.perf_counter()
    for record_id in ids:
        conn.execute("SELECT raw FROM entries WHERE id = ?", (record_id,)).fetchone()
    read = time.perf_counter() - started
    store.close()
    return write, read, path.stat().st_size


def floor(bodies: list[bytes], directory: Path) -> float:
    conn = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, raw TEXT)")
    parsed = [json.loads(body)["items"] for body in bodies]
    started = time.perf_counter()
    for items in parsed:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO items VALUES (?, ?)",
                         [(i["sys"]["id"], json.dumps(i)) for i in items])
        conn.execute("COMMIT")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    bodies = pages_of(args.entries)
    with tempfile.TemporaryDirectory() as scratch:
        base = floor(bodies, Path(scratch))
        print(f"floor (4 KiB, one table): write {base:.2f}s")
        for page_size in (4096, 8192, 16384):
            write, read, size = measure(page_size, bodies, Path(scratch))
            print(f"page_size {page_size:>5}: write {write:.2f}s (ratio {write / base:.2f}), "
                  f"random reads {len(bodies) * 1000 / read:,.0f}/s, file {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
