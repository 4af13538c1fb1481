"""The disk budget: least recently used files go first, unlinked ones before them, pinned ones
never; eviction stops as soon as the total fits, and download() never fetches them back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from asset_support import make_asset_cache, publish
from support import article

from localcache import signals

KB = 1000


def downloaded_ids(cache: Any, ids: list[str]) -> set[str]:
    return {asset_id for asset_id in ids if cache.asset_path(asset_id) is not None}


def test_a_full_budget_evicts_unlinked_then_least_recently_used_and_keeps_pins(
        emulator: Any, tmp_path: Path) -> None:
    space = emulator.space
    ids = [f"f{n}" for n in range(6)]
    for asset_id in ids:
        publish(space, asset_id, 10 * KB)
    for asset_id in ids[:4]:  # f4 and f5 are linked by no entry
        space.publish_entry(f"e-{asset_id}", "article", article(asset_id, image=asset_id))
    removed: list[str] = []
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        cache.assets.pin("f0")
        assert cache.assets.download().downloaded == 6
        for asset_id in ("f0", "f1", "f3", "f4", "f5", "f2"):
            time.sleep(0.002)
            cache.asset_path(asset_id)  # marks the file used
    # Reopened with a budget of 35 KB for 60 KB of files: eviction takes unlinked f4 and f5
    # first (however recent), then the least recently used linked one (f1), and stops: 30 KB
    # fit. Pinned f0 stays although it was read first.
    with make_asset_cache(emulator, tmp_path, budget_bytes=35 * KB) as cache, \
            signals.asset_file_removed.connected_to(
                lambda sender, **kw: removed.append(kw["id"]), sender=cache):
        cache.assets.download()
        assert removed == ["f4", "f5", "f1"]
        assert downloaded_ids(cache, ids) == {"f0", "f2", "f3"}
        stats = cache.assets.stats()
        assert (stats.files, stats.bytes, stats.evicted) == (3, 30 * KB, 3)
        assert not stats.over_budget
        requests: list[str] = []
        emulator.file_faults.on_request = lambda path, headers: requests.append(path)
        assert cache.assets.download().total == 0  # evicted files are not fetched back
        assert requests == []
        assert cache.assets.check().clean
        path = cache.assets.fetch("f4")  # ... except on demand
        assert path is not None and path.exists() and cache.asset_path("f4") == path
        assert len(requests) == 1
        # Fetching f4 made room by evicting the least recently used unpinned file: f2, which
        # downloaded_ids() above read just before f3.
        assert downloaded_ids(cache, ids) == {"f0", "f3", "f4"}


def test_pinned_files_stay_even_when_they_alone_exceed_the_budget(emulator: Any,
                                                                  tmp_path: Path) -> None:
    for asset_id in ("p1", "p2", "free"):
        publish(emulator.space, asset_id, 20 * KB)
    with make_asset_cache(emulator, tmp_path, budget_bytes=30 * KB) as cache:
        cache.sync()
        cache.assets.pin("p1")
        cache.assets.pin("p2")
        cache.assets.download()
        assert downloaded_ids(cache, ["p1", "p2", "free"]) == {"p1", "p2"}
        stats = cache.assets.stats()
        assert stats.over_budget and stats.pinned == 2 and stats.pinned_bytes == 40 * KB
        cache.assets.unpin("p2")
        assert downloaded_ids(cache, ["p1", "p2", "free"]) == {"p1"}
        assert not cache.assets.stats().over_budget


def test_pinning_an_evicted_file_queues_it_again(emulator: Any, tmp_path: Path) -> None:
    for asset_id in ("a", "b"):
        publish(emulator.space, asset_id, 20 * KB)
    with make_asset_cache(emulator, tmp_path, budget_bytes=25 * KB, workers=1) as cache:
        cache.sync()
        cache.assets.download()
        kept = downloaded_ids(cache, ["a", "b"])
        assert len(kept) == 1
        evicted = ({"a", "b"} - kept).pop()
        cache.assets.pin(evicted)
        assert cache.assets.download().downloaded == 1
        assert downloaded_ids(cache, ["a", "b"]) == {evicted}  # the unpinned one made room


def test_the_last_used_times_survive_a_restart(emulator: Any, tmp_path: Path) -> None:
    for asset_id in ("old", "new"):
        publish(emulator.space, asset_id, 10 * KB)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        cache.assets.download()
        cache.asset_path("new")
        time.sleep(0.01)
        cache.asset_path("old")  # read last
    with make_asset_cache(emulator, tmp_path, budget_bytes=15 * KB) as cache:
        cache.assets.evict()
        assert downloaded_ids(cache, ["old", "new"]) == {"old"}


def test_fetch_brings_a_skipped_file_on_demand_and_it_stays(emulator: Any,
                                                             tmp_path: Path) -> None:
    publish(emulator.space, "poster", 50 * KB)
    with make_asset_cache(emulator, tmp_path, max_file_size=10 * KB) as cache:
        cache.sync()
        assert cache.assets.download().total == 0 and cache.asset_path("poster") is None
        path = cache.assets.fetch("poster")
        assert path is not None and path.stat().st_size == 50 * KB
        assert cache.asset_path("poster") == path
        report = cache.assets.check(fix=True)
        assert report.clean and path.exists()
        assert cache.assets.fetch("nothing") is None
