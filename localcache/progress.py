"""What ``localcache sync`` shows while it runs: a progress bar on a terminal, a line every few
seconds elsewhere.

On a terminal one line is redrawn in place (at most ten times a second): items, rate and elapsed
time, plus a bar, percent and ETA when the vendor gives a total (Contentstack's
``total_count``). Off a terminal (a log file, CI), a line is written every ``every`` seconds, not
one per page, so a 1,000-page sync does not write 1,000 lines. No dependency: the renderer is a
few lines, and the CLI is the only user (docs/cli.md says why tqdm and rich were not taken).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["SyncProgress"]

_BAR = 24
_REDRAW = 0.1  # seconds between two redraws on a terminal


def _clock_text(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
            else f"{rest // 60}:{rest % 60:02d}")


class SyncProgress:
    """A ``sync_progress`` receiver that reports to ``stream``; call :meth:`done` at the end."""

    def __init__(self, stream: TextIO, *, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.every = every
        self.clock = clock
        self.terminal = stream.isatty()
        self.started = clock()
        self.shown_at: float | None = None
        self.line = ""
        self.items = 0
        self.total: int | None = None

    def __call__(self, sender: object, *, page: int, items: int, total: int | None) -> None:
        self.items, self.total = items, total
        now = self.clock()
        gap = _REDRAW if self.terminal else self.every
        since = self.started if self.shown_at is None else self.shown_at
        if now - since < gap:
            return
        self._show(now)

    def _show(self, now: float) -> None:
        self.line = self.render(now)
        self.shown_at = now
        if self.terminal:
            self.stream.write("\r" + self.line + "\x1b[K")
        else:
            self.stream.write(self.line + "\n")
        self.stream.flush()

    def render(self, now: float) -> str:
        """The progress as one line of text, at ``now`` (the clock's time)."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.items / elapsed
        counted = f"{self.items:,} items"
        parts = [f"{rate:,.0f} items/s", f"{_clock_text(elapsed)} elapsed"]
        total = self.total
        if total:
            share = min(self.items / total, 1.0)
            counted = f"{self.items:,}/{total:,} items"
            if rate > 0 and self.items < total:
                parts.append(f"ETA {_clock_text((total - self.items) / rate)}")
            head = f"{share:4.0%}"
            if self.terminal:
                filled = round(share * _BAR)
                head = f"[{'=' * filled}{' ' * (_BAR - filled)}] {head}"
            return f"sync {head} {counted}, " + ", ".join(parts)
        return f"sync: {counted}, " + ", ".join(parts)

    def done(self) -> None:
        """End the bar's line on a terminal (after a last redraw); elsewhere, a last line if
        any was written, so the log shows the end."""
        if self.shown_at is None:
            return
        self._show(self.clock())
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()
