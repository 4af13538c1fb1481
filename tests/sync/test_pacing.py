"""While a sync runs, the collector's young threshold is raised and, off the main thread, the
GIL's switch interval shortened (sync/pacing.py); both come back after, and the application's
own settings win."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import article, make_cache

from localcache import signals
from localcache.sync import pacing


@pytest.fixture(autouse=True)
def interpreter_defaults() -> Iterator[None]:
    """Each test starts from CPython's defaults and leaves them as it found them."""
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700, 10, 10)
    sys.setswitchinterval(0.005)
    yield
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


def settings_during_sync(emulator: Any, store_path: Path, *, on_thread: bool,
                         meanwhile: Any = None) -> list[tuple[tuple[int, ...], float]]:
    """The collector's thresholds and the switch interval, as seen at each page of a sync."""
    for n in range(5):
        emulator.space.publish_entry(f"e{n}", "article", article(f"t{n}"))
    seen: list[tuple[tuple[int, ...], float]] = []

    def look(sender: object, **_: Any) -> None:
        seen.append((gc.get_threshold(), sys.getswitchinterval()))
        if meanwhile is not None:
            meanwhile()

    signals.sync_progress.connect(look)
    try:
        with make_cache(emulator, store_path, limit=2) as cache:
            if on_thread:
                failed: list[BaseException] = []

                def run() -> None:
                    try:
                        cache.sync()
                    except BaseException as error:  # re-raised below
                        failed.append(error)

                worker = threading.Thread(target=run)
                worker.start()
                worker.join(timeout=60)
                assert not failed, failed
            else:
                cache.sync()
    finally:
        signals.sync_progress.disconnect(look)
    assert len(seen) >= 3
    return seen


def test_a_background_sync_paces_both_and_restores_them(emulator: Any, store_path: Path) -> None:
    seen = settings_during_sync(emulator, store_path, on_thread=True)
    for thresholds, interval in seen:
        assert thresholds == (pacing.SYNC_THRESHOLDS[0], 10, 10)
        assert interval == pytest.approx(pacing.BACKGROUND_SWITCH_INTERVAL)
    assert gc.get_threshold() == (700, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_sync_on_the_main_thread_keeps_the_switch_interval(emulator: Any,
                                                             store_path: Path) -> None:
    seen = settings_during_sync(emulator, store_path, on_thread=False)
    assert [interval for _, interval in seen] == [pytest.approx(0.005)] * len(seen)
    assert {thresholds[0] for thresholds, _ in seen} == {pacing.SYNC_THRESHOLDS[0]}
    assert gc.get_threshold() == (700, 10, 10)


def test_the_applications_own_settings_win(emulator: Any, store_path: Path) -> None:
    gc.set_threshold(250_000, 20, 5)
    sys.setswitchinterval(0.002)
    seen = settings_during_sync(emulator, store_path, on_thread=True)
    assert seen == [((250_000, 20, 5), pytest.approx(0.002))] * len(seen)
    assert gc.get_threshold() == (250_000, 20, 5)
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_collection_turned_off_stays_off(emulator: Any, store_path: Path) -> None:
    gc.set_threshold(0)
    seen = settings_during_sync(emulator, store_path, on_thread=True)
    assert {thresholds[0] for thresholds, _ in seen} == {0}
    assert gc.get_threshold()[0] == 0


def test_a_change_made_during_the_sync_is_kept(emulator: Any, store_path: Path) -> None:
    def change() -> None:
        gc.set_threshold(5_000, 10, 10)
        sys.setswitchinterval(0.01)

    settings_during_sync(emulator, store_path, on_thread=True, meanwhile=change)
    assert gc.get_threshold() == (5_000, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.01)


def test_overlapping_syncs_restore_once_the_last_one_ends() -> None:
    first_in, second_done, release = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with pacing.paced_sync():
            first_in.set()
            second_done.wait(10)
            seen["after the second"] = (gc.get_threshold(), sys.getswitchinterval())
            release.wait(10)

    def second() -> None:
        first_in.wait(10)
        with pacing.paced_sync():
            seen["in the second"] = (gc.get_threshold(), sys.getswitchinterval())
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    second_done.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    paced = ((pacing.SYNC_THRESHOLDS[0], 10, 10),
             pytest.approx(pacing.BACKGROUND_SWITCH_INTERVAL))
    assert seen["in the second"] == paced
    assert seen["after the second"] == paced
    assert gc.get_threshold() == (700, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.005)
