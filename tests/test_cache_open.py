"""``Cache.open``: an existing store read with no provider, as ``export`` and ``stats`` do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import article, asset_fields, make_cache

from localcache import Cache, ConfigurationError, StoreError


def test_open_reads_what_a_sync_stored(emulator: Any, store_path: Path) -> None:
    space = emulator.space
    for n in range(7):
        space.publish_entry(f"e{n}", "article", article(f"title {n}"))
    space.publish_asset("a1", asset_fields("one"))
    with make_cache(emulator, store_path) as synced:
        synced.sync()
        expected = [(r.id, r.revision, r.fields) for r in synced.entries()]
    with Cache.open(store_path) as cache:
        got = [(r.id, r.revision, r.fields) for r in cache.iter_records("Entry", batch=3)]
        assert got == expected
        assert [r.id for r in cache.iter_records("Asset")] == ["a1"]
        assert cache.stats()["entries"] == 7
        assert cache.entry("e3") is not None and cache.entry("e3").field("title") == "title 3"
        with pytest.raises(ConfigurationError, match="opened for reading"):
            cache.sync()
        with pytest.raises(ConfigurationError, match="'Entry' or 'Asset'"):
            list(cache.iter_records("entry"))  # type: ignore[arg-type]


def test_open_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Cache.open(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()
