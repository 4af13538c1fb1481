"""``localcache demo``: the whole job, offline, in a few seconds.

Starts the built-in emulator with a generated space, syncs it into a fresh store, prints what
arrived, edits content on the emulator, delta-syncs, and prints the signals that fired.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from . import signals
from .cache import Cache
from .emulator import Emulator, generate_space
from .providers.contentful import Contentful
from .signals import ChangeSet

__all__ = ["run_demo"]

DEMO_TOKEN = "demo-delivery-token"


class _SignalLog:
    """Receivers that record what fired; held strongly while connected."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}
        self.change_sets: list[ChangeSet] = []

    def connect(self, cache: Cache) -> None:
        for name in ("entry_changed", "entry_deleted", "asset_changed", "asset_deleted"):
            getattr(signals, name).connect(self._recorder(name), sender=cache, weak=False)
        signals.changes_committed.connect(self._on_changes, sender=cache, weak=False)

    def _recorder(self, name: str) -> Any:
        def record(sender: object, **kwargs: Any) -> None:
            self.counts[name] += 1
            sample = self.samples.setdefault(name, [])
            if len(sample) < 5:
                sample.append(kwargs["id"])
        return record

    def _on_changes(self, sender: object, *, changes: ChangeSet) -> None:
        self.change_sets.append(changes)

    def reset(self) -> None:
        self.counts.clear()
        self.samples.clear()
        self.change_sets.clear()

    def report(self) -> None:
        for name in ("entry_changed", "entry_deleted", "asset_changed", "asset_deleted"):
            ids = ", ".join(self.samples.get(name, [])) or "-"
            more = " ..." if self.counts[name] > 5 else ""
            print(f"  {name:<14} x{self.counts[name]:<4} {ids}{more}")
        for change_set in self.change_sets:
            print(f"  changes_committed page {change_set.page}: "
                  f"+{len(change_set.entries_added)} ~{len(change_set.entries_updated)} "
                  f"-{len(change_set.entries_deleted)} entries, "
                  f"+{len(change_set.assets_added)} ~{len(change_set.assets_updated)} "
                  f"-{len(change_set.assets_deleted)} assets, content types "
                  f"{sorted(change_set.content_types) or '-'}")


def run_demo(directory: Path | None = None, entries: int = 500) -> int:
    space = generate_space(entries=entries, assets=max(10, entries // 10),
                           locales=("en-US", "de-DE", "fr-FR"), seed=7)
    with tempfile.TemporaryDirectory(prefix="localcache-demo-") as scratch:
        store_path = (directory or Path(scratch)) / "demo.sqlite3"
        if store_path.exists():
            store_path.unlink()
        with Emulator(space, access_token=DEMO_TOKEN) as emulator:
            provider = Contentful(space.space_id, DEMO_TOKEN, space.environment,
                                  base_url=emulator.base_url, limit=100)
            with Cache(provider, path=store_path) as cache:
                log = _SignalLog()
                log.connect(cache)
                _initial(cache)
                log.report()
                log.reset()
                _edit(space)
                result = cache.sync()
                print(f"\n2. Delta sync after edits on the emulator: {result.summary()}")
                print("   Signals that fired:")
                log.report()
                print(f"\nStore: {store_path}" + (" (temporary, removed now)"
                                                  if directory is None else ""))
    return 0


def _initial(cache: Cache) -> None:
    result = cache.sync()
    stats = cache.stats()
    print(f"1. Initial sync from the emulator: {result.summary()}")
    types = ", ".join(f"{k}={v}" for k, v in stats["entries_by_content_type"].items())
    print(f"   Stored {stats['entries']} entries ({types}) and {stats['assets']} assets, "
          f"{stats['links']} links, locales {', '.join(stats['locales'])}")
    sample = cache.entries(content_type="article", limit=1)
    if sample:
        record = sample[0]
        print(f"   Entry {record.id} (revision {record.revision}):")
        for locale in stats["locales"]:
            title = record.field("title", locale)
            print(f"     title[{locale}] = {str(title)[:60]!r}")
    print("   Signals that fired:")


def _edit(space: Any) -> None:
    rng = random.Random(11)
    entries = space.published_entries()
    articles = sorted(i for i, e in entries.items()
                      if e["sys"]["contentType"]["sys"]["id"] == "article")
    for entry_id in rng.sample(articles, 3):
        fields = dict(entries[entry_id]["fields"])
        fields["title"] = {**fields["title"], "en-US": f"Edited: {entry_id}"}
        space.publish_entry(entry_id, "article", fields)
    template = entries[articles[0]]["fields"]
    for n in range(2):
        space.publish_entry(f"demo-new-{n}", "article",
                            {**template, "title": {"en-US": f"Brand new article {n}"}})
    for entry_id in rng.sample(articles, 2):
        space.delete_entry(entry_id)
    assets = sorted(space.published_assets())
    space.unpublish_asset(assets[-1])
    print("\n   Edited 3 articles, added 2, deleted 2, unpublished 1 asset on the emulator.")
