"""Scale: an initial sync of a million entries, a delta of 10,000 changes, then the reads.

For each size (default 100k, then 1M), the emulator in this process serves a generated space
(~1 KB of fields over 3 locales an entry), and a child process, so that its peak RSS is the
client's alone:

1. runs the initial sync (``localcache sync``'s path: ``Cache(...).sync()``, page size 1000);
2. after this process has edited 10,000 entries (retitled, re-rated, a tenth deleted), runs the
   delta sync;
3. runs the read figures of ``benchmarks/read.py`` on the store.

Printed per size: initial sync time, peak RSS, store size, delta sync time; then the read
medians side by side, with the ratio of the largest size to the smallest. Targets (issue 13):
RSS flat (the 1M run within 10% of the 100k run), reads within 1.5x of their 100k figures, the
delta sync <= 2 s. Not in CI: the 1M run takes several minutes and about 2 GB of disk.

    python benchmarks/scale.py                          # 100k and 1M
    python benchmarks/scale.py --sizes 20000 100000     # a quicker look
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "scale-token"
HERE = Path(__file__).resolve().parent


def child_sync(base_url: str, space: str, db: Path) -> dict[str, Any]:
    """In the child: one sync of the store at ``db``; time and peak RSS."""
    from localcache import Cache, Contentful

    started = time.perf_counter()
    provider = Contentful(space, TOKEN, base_url=base_url, limit=1000)
    with Cache(provider, path=db, indexes={"article": ["rating", "publishedAt", "slug"]}) as cache:
        result = cache.sync()
        cache._refresh_field_indexes()
    return {"seconds": time.perf_counter() - started, "pages": result.pages,
            "changed": result.entries.changed + result.assets.changed,
            "rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS since it started its program. Not ``ru_maxrss``: Linux keeps
    that across ``exec``, so a child of this script's parent (which holds the emulator's whole
    space: 1 GB at 100k entries after the edits) reported the parent's size, not its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_reads(db: Path, repeat: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import read  # benchmarks/read.py

    return {"lines": read.run(db, repeat)}


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def edit(space: Any, changes: int, seed: int) -> None:
    """Retitle and re-rate ``changes`` entries; delete a tenth of them instead."""
    rng = random.Random(seed)
    entries = space.published_entries()
    chosen = rng.sample(sorted(entries), changes)
    for number, entry_id in enumerate(chosen):
        if number % 10 == 0:
            space.delete_entry(entry_id)
            continue
        item = entries[entry_id]
        fields = {name: dict(values) for name, values in item["fields"].items()}
        fields["title"] = {code: f"edited {number} {text}"
                           for code, text in fields.get("title", {}).items()}
        if "rating" in fields:
            fields["rating"] = {code: rng.randint(1, 5) for code in fields["rating"]}
        space.publish_entry(entry_id, item["sys"]["contentType"]["sys"]["id"], fields)


def measure(entries: int, changes: int, repeat: int, directory: Path) -> dict[str, Any]:
    from localcache.emulator import Emulator, generate_space

    started = time.perf_counter()
    space = generate_space(entries=entries, assets=max(10, entries // 100), field_bytes=200,
                           seed=entries)
    print(f"{entries:>9,} entries: space generated in {time.perf_counter() - started:.0f}s",
          flush=True)
    db = directory / f"{entries}" / "store.sqlite3"
    db.parent.mkdir(parents=True)
    with Emulator(space, access_token=TOKEN) as emulator:
        initial = run_child("sync", emulator.base_url, space.space_id, str(db))
        size_mb = sum(p.stat().st_size for p in db.parent.glob("store.sqlite3*")) / 1e6
        print(f"{'':>9}  initial sync {initial['seconds']:.1f}s, {initial['pages']} pages, "
              f"peak RSS {initial['rss_mb']:.0f} MB, store {size_mb:,.0f} MB", flush=True)
        edit(space, min(changes, entries // 2), seed=entries)
        delta = run_child("sync", emulator.base_url, space.space_id, str(db))
        print(f"{'':>9}  delta of {delta['changed']:,} changes {delta['seconds']:.2f}s "
              f"(target <= 2 s), peak RSS {delta['rss_mb']:.0f} MB", flush=True)
    (db.parent / "complete").write_text(json.dumps({"space": space.space_id}))
    del space
    reads = run_child("reads", str(db), str(repeat))
    shutil.rmtree(db.parent)
    return {"entries": entries, "initial": initial, "delta": delta, "store_mb": size_mb,
            "reads": reads["lines"]}


def _figure(line: str) -> float | None:
    """The time a read line reports, in seconds."""
    found = re.search(r"\s([\d.]+) (us|ms)\b", line)
    if found is None:
        return None
    return float(found.group(1)) * (1e-6 if found.group(2) == "us" else 1e-3)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "sync":
            out = child_sync(rest[0], rest[1], Path(rest[2]))
        else:
            out = child_reads(Path(rest[0]), int(rest[1]))
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where the stores go (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lc-scale-", dir=args.dir) as scratch:
        runs = [measure(n, args.changes, args.repeat, Path(scratch)) for n in args.sizes]
    small, large = runs[0], runs[-1]
    print(f"\nSummary: {small['entries']:,} -> {large['entries']:,} entries")
    rss = large["initial"]["rss_mb"] / small["initial"]["rss_mb"]
    print(f"  initial sync: {small['initial']['seconds']:.1f}s -> "
          f"{large['initial']['seconds']:.1f}s; peak RSS {small['initial']['rss_mb']:.0f} -> "
          f"{large['initial']['rss_mb']:.0f} MB (x{rss:.2f}, target <= x1.10); store "
          f"{small['store_mb']:,.0f} -> {large['store_mb']:,.0f} MB")
    print(f"  delta sync of {args.changes:,} changes: {small['delta']['seconds']:.2f}s -> "
          f"{large['delta']['seconds']:.2f}s (target <= 2 s)")
    print("  reads (target: each within x1.5 of the smallest size's):")
    for before, after in zip(small["reads"], large["reads"], strict=False):
        was, now = _figure(before), _figure(after)
        ratio = f"x{now / was:.2f}" if was and now else "    "
        print(f"    {ratio:>6}  {after.strip()}")


if __name__ == "__main__":
    main()
