"""Faults while downloading: cut connections resume with Range, damaged bytes are caught,
5xx and 429 are retried as sync requests are, and what cannot be fetched is reported."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from asset_support import expected_bytes, files_in, make_asset_cache, publish
from support import TOKEN

from localcache import AssetPolicy, Cache, Contentful, HttpPolicy


def record(emu: Any) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    emu.file_faults.on_request = lambda path, headers: seen.append({"path": path, **headers})
    return seen


def test_a_cut_connection_resumes_with_a_range_request(emulator: Any, tmp_path: Path) -> None:
    file = publish(emulator.space, "big", 200_000)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        requests = record(emulator)
        emulator.file_faults.cut_halfway(times=2)
        run = cache.assets.download()
        assert (run.downloaded, run.failed) == (1, 0)
        assert cache.asset_path("big").read_bytes() == expected_bytes(file)
    assert len(requests) == 3
    assert "range" not in requests[0]
    offsets = [int(r["range"].removeprefix("bytes=").rstrip("-")) for r in requests[1:]]
    # Every byte that arrived before a cut was kept: the first cut came at half the file
    # (100,000 bytes), the second at half of the rest.
    assert offsets == [100_000, 150_000]
    assert all(r["accept-encoding"] == "identity" for r in requests)


def test_a_partial_file_left_by_an_earlier_run_is_resumed(emulator: Any,
                                                          tmp_path: Path) -> None:
    file = publish(emulator.space, "slow", 400_000)
    directory = tmp_path / "assets"
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        emulator.file_faults.bytes_per_second = 400_000.0
        run = cache.assets.download(wait=False)
        deadline = time.monotonic() + 10
        while not any(n.endswith(".part") and (directory / n).stat().st_size > 80_000
                      for n in files_in(directory)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    # close() cancelled the run: the partial file stays.
    assert run.finished and run.cancelled and run.downloaded == 0
    parts = [n for n in files_in(directory) if n.endswith(".part")]
    assert len(parts) == 1
    had = (directory / parts[0]).stat().st_size
    emulator.file_faults.bytes_per_second = 0.0
    requests = record(emulator)
    with make_asset_cache(emulator, tmp_path) as cache:
        assert cache.assets.download().downloaded == 1
        assert cache.asset_path("slow").read_bytes() == expected_bytes(file)
        assert cache.assets.check().clean
    assert requests[0]["range"] == f"bytes={had}-"


def test_damaged_bytes_fail_the_etag_check_and_are_fetched_again(emulator: Any,
                                                                 tmp_path: Path) -> None:
    file = publish(emulator.space, "pic", 30_000)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        requests = record(emulator)
        emulator.file_faults.corrupt(times=1)
        assert cache.assets.download().downloaded == 1
        assert cache.asset_path("pic").read_bytes() == expected_bytes(file)
    assert len(requests) == 2 and "range" not in requests[1]  # started over


def test_5xx_and_429_are_retried_with_the_servers_wait(emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "a", 1_000)
    with make_asset_cache(emulator, tmp_path) as cache:
        cache.sync()
        requests = record(emulator)
        emulator.file_faults.server_error(times=2, status=503)
        emulator.file_faults.rate_limit(times=1, reset=1)
        started = time.monotonic()
        assert cache.assets.download().downloaded == 1
        assert time.monotonic() - started >= 1.0  # the reset header was obeyed
    assert len(requests) == 4


def test_what_cannot_be_fetched_is_reported_and_retried_by_the_next_run(
        emulator: Any, tmp_path: Path) -> None:
    publish(emulator.space, "flaky", 2_000)
    publish(emulator.space, "purged", 2_000)
    provider = Contentful(emulator.space.space_id, TOKEN, base_url=emulator.base_url,
                          asset_base_url=emulator.asset_base_url,
                          http=HttpPolicy(max_attempts=2, backoff_base=0.01))
    with Cache(provider, path=tmp_path / "s.sqlite3",
               assets=AssetPolicy(directory=tmp_path / "assets", workers=1)) as cache:
        cache.sync()
        emulator.space.delete_asset("purged")  # the CDN no longer has it; the store does
        emulator.file_faults.server_error(times=2)
        run = cache.assets.download()
        assert (run.downloaded, run.failed) == (0, 2)
        assert cache.assets.stats().failed == 2
        assert set(cache.assets.check().pending) == {("flaky", "en-US"), ("purged", "en-US")}
        run = cache.assets.download()
        assert (run.downloaded, run.failed) == (1, 1)  # "purged" answers 404 every time
        cache.sync()  # the deletion arrives: nothing is pending any more
        assert cache.assets.check().clean
