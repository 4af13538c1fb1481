"""The interpreter's pace while a sync runs: the garbage collector, and the GIL's hand-overs.

Two process-wide settings of CPython decide how long a sync on one thread can keep a UI
thread waiting (``benchmarks/ui_latency.py``, docs/ui.md), and a sync changes both for its
duration only:

- **The collector's first threshold.** A decoded 1,000-item page is some 40,000 dicts and
  lists that live until the page is applied, long enough for the young collections (every 700
  allocations by default) to promote them to the oldest generation. Each page then counts as
  "new long-lived objects", and CPython ran a full collection over the whole heap nearly every
  page: 48 in a 100k sync with a Qt list open, 2.8-3.3 s of them, each holding the GIL for up
  to 90 ms, and 5.4-7.1 s of collecting in every generation together (two runs). With young
  collections every 100,000 allocations (``SYNC_THRESHOLDS``), a page is freed by reference
  counting before the collector looks at it: one full collection, 0.3-0.4 s of collecting in
  all. Cyclic garbage is still collected, a little later.
- **The switch interval**, for a sync off the main thread (``cache.sync()`` on a worker,
  ``AutoSync``): the main thread, usually a UI's, waits for the GIL after each call into the
  toolkit, and by default a busy thread keeps it for 5 ms before it must hand it over. At
  0.5 ms (``BACKGROUND_SWITCH_INTERVAL``) the GUI's timer ticks late by 32 ms at p99 instead of
  52 ms, for no measurable loss of sync speed. A sync on the main thread (the CLI) keeps 5 ms,
  unless a sync off the main thread runs at the same time.

The settings are counted, so several caches syncing at once share them, and restored by the
last sync to end. The application's own settings win: a threshold above ours, collection
turned off, a switch interval other than CPython's default, or a change made while the sync
ran, are left as they are.
"""

from __future__ import annotations

import gc
import math
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BACKGROUND_SWITCH_INTERVAL", "SYNC_THRESHOLDS", "paced_sync"]

#: The collector's first two thresholds while a sync runs (each only ever raised): young
#: collections every 100,000 allocations (about two pages' worth) instead of every 700.
SYNC_THRESHOLDS: tuple[int, int] = (100_000, 10)
#: The GIL's switch interval, in seconds, while a sync runs off the main thread (None: leave it).
BACKGROUND_SWITCH_INTERVAL: float | None = 0.0005
_DEFAULT_SWITCH_INTERVAL = 0.005  # CPython's own

_lock = threading.Lock()
_syncs = 0
_saved_thresholds: tuple[int, ...] | None = None
_saved_interval: float | None = None


def _raised(current: tuple[int, ...]) -> tuple[int, ...]:
    """``current`` with its first two thresholds raised to SYNC_THRESHOLDS."""
    young, middle, *rest = current
    return (max(young, SYNC_THRESHOLDS[0]), max(middle, SYNC_THRESHOLDS[1]), *rest)


def _pace_collector() -> None:
    global _saved_thresholds
    current = gc.get_threshold()
    if current[0] > 0 and _raised(current) != current:
        _saved_thresholds = current
        gc.set_threshold(*_raised(current))


def _pace_switching() -> None:
    global _saved_interval
    interval = BACKGROUND_SWITCH_INTERVAL
    if (interval is None or _saved_interval is not None
            or threading.current_thread() is threading.main_thread()):
        return
    current = sys.getswitchinterval()
    if math.isclose(current, _DEFAULT_SWITCH_INTERVAL) and interval < current:
        _saved_interval = current
        sys.setswitchinterval(interval)


def _restore() -> None:
    global _saved_thresholds, _saved_interval
    if _saved_thresholds is not None:
        if gc.get_threshold() == _raised(_saved_thresholds):
            gc.set_threshold(*_saved_thresholds)
        _saved_thresholds = None
    if _saved_interval is not None:
        if (BACKGROUND_SWITCH_INTERVAL is not None
                and math.isclose(sys.getswitchinterval(), BACKGROUND_SWITCH_INTERVAL)):
            sys.setswitchinterval(_saved_interval)
        _saved_interval = None


@contextmanager
def paced_sync() -> Iterator[None]:
    """The collector's thresholds and the switch interval paced for one sync (see above)."""
    global _syncs
    with _lock:
        _syncs += 1
        if _syncs == 1:
            _pace_collector()
        _pace_switching()
    try:
        yield
    finally:
        with _lock:
            _syncs -= 1
            if _syncs == 0:
                _restore()
