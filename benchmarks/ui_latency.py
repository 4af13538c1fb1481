"""GUI responsiveness during a background initial sync: how late a 10 ms Qt timer ticks.

A child process generates a space (``--entries``, 100k by default) and serves it from the
built-in emulator on 127.0.0.1, so the CMS's work is not in our process. This process is a Qt
app (offscreen unless ``QT_QPA_PLATFORM`` says otherwise) with a 10 ms ``PreciseTimer`` on the
GUI thread. Each tick's lateness is the time since the previous tick minus 10 ms.

1. ``idle``: the timer alone for ``--idle`` seconds, the floor of this machine and load;
2. ``sync``: a fresh store's initial sync on a worker thread (``cache.sync()``), while the GUI
   thread holds an ``EntryListModel`` of the articles shown in a ``QListView`` (uniform
   sizes, batched layout; opened on the empty store, so every page's rows are inserted into
   it, the heaviest case) and a ``QtSignals`` whose ``syncProgress`` updates a progress bar:
   what an app does.

Prints median, p99 and max lateness for both, the sync's pages and time, the GUI thread's time
applying ChangeSets (total, worst and median slice) and the garbage collections' pauses.
Target: p99 <= 50 ms during the sync. Figures and findings: docs/ui.md.

    python benchmarks/ui_latency.py                       # 100,000 entries
    python benchmarks/ui_latency.py --entries 5000        # a quick look
    python benchmarks/ui_latency.py --unpaced             # without the sync's pacing
    python benchmarks/ui_latency.py --profile sync.prof   # cProfile of the sync thread
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
TICK_MS = 10


def serve_space(entries: int) -> None:
    """Child: generate the space, serve it, print one JSON line, stop when stdin closes."""
    from localcache.emulator import Emulator, generate_space

    space = generate_space(entries=entries, assets=max(10, entries // 100), field_bytes=200,
                           seed=entries)
    with Emulator(space, access_token=TOKEN, page_size=100) as emulator:
        print(json.dumps({"url": emulator.base_url, "space": space.space_id,
                          "environment": space.environment}), flush=True)
        sys.stdin.read()


class TickRecorder:
    """A 10 ms timer on the GUI thread; the lateness of each tick, in ms."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.late: list[float] = []
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.late.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now

    def start(self) -> None:
        self.late, self._last = [], None
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return self.late


class GcPauses:
    """How long each cyclic garbage collection held the GIL, in ms, by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def report(self) -> str:
        return "; ".join(
            f"generation {generation}: {len(pauses)} collections, {sum(pauses):.0f} ms in all, "
            f"longest {max(pauses, default=0):.0f} ms"
            for generation, pauses in self.pauses.items())


def figures(late: list[float]) -> str:
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"median {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms  "
            f"max {ordered[-1]:7.2f} ms  ({len(ordered)} ticks)")


def run_until(app: Any, done: Any, timeout: float) -> None:
    """Run the event loop until ``done()`` (checked every 50 ms) or ``timeout``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    check = QTimer()
    check.setInterval(50)
    check.timeout.connect(lambda: loop.quit() if done() else None)
    check.start()
    QTimer.singleShot(int(timeout * 1000), loop.quit)
    loop.exec()
    check.stop()


def measure(info: dict[str, Any], idle_seconds: float, view: bool,
            profile: Path | None, follow: bool = True, limit: int | None = None) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication, QListView, QProgressBar

    from localcache import Cache, Contentful, signals
    from localcache.qt import EntryListModel, QtSignals

    app = QApplication.instance() or QApplication([])
    ticks = TickRecorder()
    ticks.start()
    run_until(app, lambda: False, idle_seconds)
    idle = ticks.stop()
    print(f"idle  {figures(idle)}", flush=True)

    spent: list[float] = []

    class TimedModel(EntryListModel):
        """The model, timing the GUI thread's work on each slice of a ChangeSet."""

        def _apply(self, changes: signals.ChangeSet) -> None:
            started = time.perf_counter()
            super()._apply(changes)
            spent.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory(prefix="lc-ui-bench-") as scratch, Cache(
            Contentful(info["space"], TOKEN, info["environment"], base_url=info["url"],
                       limit=limit),
            path=Path(scratch) / "ui.sqlite3") as cache:
        model = TimedModel(cache, "article")
        if not follow:
            model.close()
        widgets: list[Any] = []
        if view:
            list_view = QListView()
            list_view.setUniformItemSizes(True)  # what a long list needs (docs/ui.md)
            list_view.setLayoutMode(QListView.LayoutMode.Batched)
            list_view.setModel(model)
            list_view.resize(400, 600)
            list_view.show()
            widgets.append(list_view)
        progress = QProgressBar()
        relay = QtSignals(cache)

        def show(page: int, items: int, total: int | None) -> None:
            progress.setMaximum(total or 0)
            progress.setValue(items)

        relay.syncProgress.connect(show)
        result: list[Any] = []
        profiler = cProfile.Profile() if profile else None

        def sync() -> None:
            if profiler is not None:
                profiler.enable()
            result.append(cache.sync())
            if profiler is not None:
                profiler.disable()

        worker = threading.Thread(target=sync, name="sync")
        collections = GcPauses()
        ticks.start()
        started = time.perf_counter()
        worker.start()
        run_until(app, lambda: not worker.is_alive(), timeout=3600)
        synced = time.perf_counter() - started
        run_until(app, lambda: model.pending_changes == 0, timeout=600)  # the last pages
        caught_up = time.perf_counter() - started
        busy = ticks.stop()
        worker.join()
        print(f"sync  {figures(busy)}", flush=True)
        outcome = result[0] if result else None
        print(f"sync: {outcome.pages if outcome else '?'} pages, {synced:.1f}s; the model "
              f"caught up at {caught_up:.1f}s with {model.rowCount()} rows", flush=True)
        print(f"GUI thread applying ChangeSets: {sum(spent):.2f}s in {len(spent)} slices, "
              f"worst {max(spent, default=0) * 1000:.1f} ms, median "
              f"{statistics.median(spent or [0]) * 1000:.2f} ms", flush=True)
        print(f"GC: {collections.report()}", flush=True)
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile)
            print(f"profile of the sync thread: {profile} (python -m pstats {profile})")
        relay.close()
        model.close()
        worker.join()
        p99 = sorted(busy)[min(len(busy) - 1, int(len(busy) * 0.99))]
        print(f"target p99 <= 50 ms: {'met' if p99 <= 50 else 'NOT met'} ({p99:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--idle", type=float, default=5.0,
                        help="seconds of the timer alone (default 5)")
    parser.add_argument("--no-view", action="store_true", help="the model without a QListView")
    parser.add_argument("--no-model", action="store_true",
                        help="no list model: the sync alone (and the progress bar)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sync thread")
    parser.add_argument("--limit", type=int,
                        help="entries per sync page (default: the provider's, 1000)")
    parser.add_argument("--unpaced", action="store_true",
                        help="the interpreter's own collector thresholds and switch interval "
                             "during the sync, not the sync's (localcache/sync/pacing.py)")
    parser.add_argument("--slice", type=int, help="EntryListModel.SLICE_IDS to use")
    parser.add_argument("--switch-interval", type=float,
                        help="sys.setswitchinterval, in seconds (Python's default: 0.005)")
    parser.add_argument("--child", choices=["emulator"])
    args = parser.parse_args()
    if args.child == "emulator":
        serve_space(args.entries)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--child", "emulator", "--entries", str(args.entries)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    try:
        started = time.perf_counter()
        info = json.loads(server.stdout.readline())
        print(f"{args.entries} entries served by the emulator (generated in "
              f"{time.perf_counter() - started:.1f}s)", flush=True)
        if args.unpaced:
            from localcache.sync import pacing
            pacing.SYNC_THRESHOLDS, pacing.BACKGROUND_SWITCH_INTERVAL = (0, 0), None
        if args.slice:
            from localcache.qt import EntryListModel
            EntryListModel.SLICE_IDS = args.slice
        if args.switch_interval:
            sys.setswitchinterval(args.switch_interval)
        measure(info, args.idle, not args.no_view, args.profile, not args.no_model, args.limit)
    finally:
        server.stdin.close()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
