"""Rejected-token recovery and full re-syncs: built beside the live data, swapped in whole."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from support import article, assert_converged, asset_fields, make_cache

from localcache import HttpPolicy, SyncError, signals


def _seed(space: Any, n: int = 30) -> list[str]:
    ids = [f"r{i:03d}" for i in range(n)]
    for i in ids:
        space.publish_entry(i, "article", article(f"T {i}"))
    space.publish_asset("pic", asset_fields("pic"))
    return ids


class Signals:
    """Receivers for the per-record signals of one cache (held strongly)."""

    def __init__(self, cache: Any) -> None:
        self.changed: list[str] = []
        self.deleted: list[str] = []
        self.change_sets: list[Any] = []
        self._pairs = [
            (signals.entry_changed, lambda s, **kw: self.changed.append(kw["id"])),
            (signals.entry_deleted, lambda s, **kw: self.deleted.append(kw["id"])),
            (signals.changes_committed, lambda s, **kw: self.change_sets.append(kw["changes"])),
        ]
        for signal, receiver in self._pairs:
            signal.connect(receiver, sender=cache)


def test_rejected_token_rebuilds_and_reports_the_net_change(
    emulator: Any, store_path: Path
) -> None:
    space = emulator.space
    ids = _seed(space)
    with make_cache(emulator, store_path, limit=7) as cache:
        cache.sync()
        # Meanwhile on the server: deletions, an edit, a new entry; then the token is refused.
        for gone in ids[:3]:
            space.delete_entry(gone)
        space.publish_entry(ids[5], "article", article("edited"))
        space.publish_entry("fresh", "article", article("fresh"))
        emulator.faults.invalidate_tokens_before_now()
        seen = Signals(cache)
        result = cache.sync()
        assert result.initial
        assert (result.entries.added, result.entries.updated, result.entries.deleted) == (1, 1, 3)
        assert sorted(seen.deleted) == sorted(ids[:3])          # deleted meanwhile: gone
        assert sorted(seen.changed) == sorted([ids[5], "fresh"])  # unchanged ones: silent
        assert [c.empty for c in seen.change_sets[:-1]] == [True] * (len(seen.change_sets) - 1)
        assert len(seen.change_sets[-1]) == 5
        assert_converged(cache, space)
        assert [r.id for r in cache.resolve(cache.entry(ids[6]), "image")] == []
        space.publish_entry("later", "article", article("later"))
        assert cache.sync().entries.added == 1                  # deltas work again
        assert_converged(cache, space)


def test_readers_see_the_old_store_until_the_swap(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    ids = _seed(space, 40)
    with make_cache(emulator, store_path, limit=5) as cache:
        cache.sync()
        old = {r.id for r in cache.entries()}
        for gone in ids[:10]:
            space.delete_entry(gone)
        for n in range(10):
            space.publish_entry(f"new{n}", "article", article(f"new {n}"))
        new = set(space.published_entries())
        emulator.faults.invalidate_tokens_before_now()
        emulator.faults.latency = 0.01
        observed: list[frozenset[str]] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def read() -> None:
            while not done.is_set():
                try:
                    observed.append(frozenset(r.id for r in cache.entries()))
                except BaseException as exc:  # any error fails the test below
                    errors.append(exc)
                    return

        reader = threading.Thread(target=read)
        reader.start()
        cache.sync()
        done.set()
        reader.join(timeout=10)
        assert not errors
        assert set(observed) <= {frozenset(old), frozenset(new)}   # never empty, never a mix
        assert frozenset(old) in observed
        assert {r.id for r in cache.entries()} == new


def test_interrupted_rebuild_keeps_live_data_and_resumes(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    ids = _seed(space, 30)
    with make_cache(emulator, store_path, limit=5,
                    http=HttpPolicy(max_attempts=1)) as cache:
        cache.sync()
        space.delete_entry(ids[0])
        emulator.faults.invalidate_tokens_before_now()
        requests: list[dict[str, list[str]]] = []

        def break_third(path: str, query: dict[str, list[str]]) -> None:
            requests.append(query)
            if len(requests) == 3:  # the rejected delta, then rebuild pages 1, 2: break page 3
                emulator.faults.server_error(times=10)

        emulator.faults.on_request = break_third
        try:
            cache.sync()
        except SyncError:
            pass
        else:
            raise AssertionError("the broken rebuild should have failed")
        assert cache.entry(ids[0]) is not None          # live data untouched until the swap
        assert cache.stats()["entries"] == 30
        emulator.faults.clear()
        seen: list[dict[str, list[str]]] = []
        emulator.faults.on_request = lambda path, query: seen.append(query)
        result = cache.sync()
        assert "initial" not in seen[0]                  # resumed the rebuild, not restarted
        assert result.initial and result.entries.deleted == 1
        assert_converged(cache, space)


def test_full_resync_on_request(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    _seed(space, 12)
    with make_cache(emulator, store_path, limit=5) as cache:
        cache.sync()
        seen: list[dict[str, list[str]]] = []
        emulator.faults.on_request = lambda path, query: seen.append(query)
        result = cache.sync(full=True)
        assert seen[0].get("initial") == ["true"]
        assert result.initial and result.entries.changed == 0 and result.pages == 3
        assert_converged(cache, space)
