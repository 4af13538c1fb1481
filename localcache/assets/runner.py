"""A download run: the files the store needs, fetched on a bounded pool of workers.

``AssetDownload`` is both the run and its handle: ``cache.assets.download(wait=False)``
returns it at once (the run goes on in a background thread), ``download(wait=True)`` returns
it finished. Jobs are fed to a ``ThreadPoolExecutor`` of ``workers`` threads, at most twice
that many queued, so a run of 100,000 files holds a few dozen futures, not 100,000. All
workers share one requests Session (one pooled connection each). A downloaded file is handed,
still locked, to a few landing threads (fsync, rename, record): the fsync and the bookkeeping
transaction then overlap the next downloads instead of delaying them.

A file that fails (404, retries spent, damaged every time) is marked ``failed`` and the run
goes on; the next run tries it again. A full disk (or a directory that cannot be written) is
an :class:`~localcache.AssetError`: the run stops, the workers give up at their next chunk,
and :meth:`AssetDownload.wait` (or ``download(wait=True)``) raises it, once. Cancelling
(``Cache.close``, ``AutoSync.stop``) stops the same way, without an error; partial files stay
and the next run resumes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from pathlib import Path
from typing import Protocol

from ..errors import AssetError, LocalCacheError
from .fetch import Cancelled, Fetcher, FileFailed, Job, Landed, PartFile, TooBig

__all__ = ["AssetDownload", "Progress", "RunHost"]

log = logging.getLogger("localcache.assets")

Outcome = tuple[str, int, "Future[Outcome] | None"]
"""What a step of a run came to: ``downloaded``, ``failed``, ``skipped``, ``busy``,
``cancelled``, or ``landing`` with the future of the landing step; and the bytes it added."""

Progress = Callable[[int, int], None]
"""Called as ``progress(files_settled, files_total)`` on the thread running the download."""


class RunHost(Protocol):
    """What a run needs from :class:`~localcache.assets.files.AssetFiles`."""

    directory: Path

    def adopt(self, job: Job) -> bool: ...

    def land(self, job: Job, part: PartFile, landed: Landed) -> None: ...

    def mark(self, job: Job, state: str, reason: str) -> None: ...

    def evict(self) -> None: ...

    def fetcher(self, workers: int, cancelled: threading.Event) -> Fetcher: ...


class AssetDownload:
    """One download run, and its outcome so far.

    ``total`` files were planned; ``downloaded``, ``failed``, ``skipped`` (larger than
    ``max_file_size``) and ``busy`` (being fetched by another worker or process) settle them;
    ``bytes`` counts what was downloaded. ``error`` is the AssetError that stopped the run.
    """

    def __init__(self, host: RunHost, jobs: Sequence[Job], workers: int,
                 progress: Progress | None = None,
                 stopping: Callable[[], bool] | None = None) -> None:
        self._host = host
        self._jobs = list(jobs)
        self._workers = workers
        self._progress = progress
        self._stopping = stopping
        self.total = len(self._jobs)
        self.downloaded = self.failed = self.skipped = self.busy = 0
        self.bytes = 0
        self.seconds = 0.0
        self.error: AssetError | None = None
        self._cancel = threading.Event()
        self._finished = threading.Event()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "running"
        return (f"AssetDownload({state}, {self.downloaded}/{self.total} downloaded, "
                f"{self.failed} failed, {self.skipped} skipped)")

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop soon: workers give up at their next chunk; partial files stay, resumable."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end: True when it has, False after ``timeout`` seconds.
        Raises the AssetError that stopped it (a full disk), if one did."""
        if not self._finished.wait(timeout):
            return False
        if self.error is not None:
            raise self.error
        return True

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        """Fetch every job; on the calling thread. Never raises: see :attr:`error`."""
        started = time.monotonic()
        fetcher = self._host.fetcher(self._workers, self._cancel)
        try:
            with ThreadPoolExecutor(max_workers=min(2, self._workers),
                                    thread_name_prefix="localcache-assets-land") as landing, \
                    ThreadPoolExecutor(max_workers=self._workers,
                                       thread_name_prefix="localcache-assets") as pool:
                self._feed(pool, landing, fetcher, iter(self._jobs))
        finally:
            fetcher.close()
            self.seconds = time.monotonic() - started
            self._finished.set()

    def _feed(self, pool: ThreadPoolExecutor, landing: ThreadPoolExecutor, fetcher: Fetcher,
              jobs: Iterator[Job]) -> None:
        """Keep ``workers`` downloads going, as many queued; each downloaded file goes to the
        landing threads (fsync, rename, record), so its worker starts the next one at once."""
        fetching: set[Future[Outcome]] = set()
        landed: set[Future[Outcome]] = set()
        while True:
            while (len(fetching) < 2 * self._workers and len(landed) < 2 * self._workers
                   and not self._cancel.is_set()):
                job = next(jobs, None)
                if job is None:
                    break
                fetching.add(pool.submit(self._one, fetcher, landing, job))
            if not fetching and not landed:
                return
            done, _ = wait(fetching | landed, timeout=0.1, return_when=FIRST_COMPLETED)
            if self._stopping is not None and self._stopping():
                self._cancel.set()
            for future in done:
                fetching.discard(future)
                landed.discard(future)
                handed = self._settle(future)
                if handed is not None:
                    landed.add(handed)
            if done and self._progress is not None:
                self._progress(self.settled, self.total)

    @property
    def settled(self) -> int:
        return self.downloaded + self.failed + self.skipped + self.busy

    def _settle(self, future: Future[Outcome]) -> Future[Outcome] | None:
        """Count a finished step; the landing step of a downloaded file, to wait for."""
        try:
            outcome, size, landing = future.result()
        except AssetError as exc:
            self._stop(exc)
            return None
        except LocalCacheError as exc:  # the store: closed, or full while recording a file
            self._stop(AssetError(f"downloading asset files stopped: {exc}"))
            return None
        except Exception:  # a bug of ours: say where, and let the other files go on
            log.exception("downloading an asset file failed unexpectedly")
            self.failed += 1
            return None
        if outcome == "downloaded":
            self.downloaded += 1
            self.bytes += size
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "skipped":
            self.skipped += 1
        elif outcome == "busy":
            self.busy += 1
        return landing

    def _stop(self, error: AssetError) -> None:
        if self.error is None:
            self.error = error
            log.warning("%s", error)
        self._cancel.set()

    def _one(self, fetcher: Fetcher, landing: ThreadPoolExecutor, job: Job) -> Outcome:
        """Download one file; hand it, still locked, to the landing threads."""
        host = self._host
        if self._cancel.is_set():
            return "cancelled", 0, None
        if job.on_disk and host.adopt(job):
            return "downloaded", 0, None
        part = PartFile.claim(host.directory, job.name)
        if part is None:
            return "busy", 0, None
        try:
            landed = fetcher.fetch(job, part)
        except FileFailed as exc:
            with part:
                skipped = isinstance(exc, TooBig)
                if not skipped:
                    log.warning("asset %r: %s failed: %s", job.asset_id, _where(job), exc)
                host.mark(job, "skipped" if skipped else "failed", str(exc))
                if not part.size:  # nothing worth resuming
                    with suppress(OSError):
                        part.path.unlink()
            return ("skipped" if skipped else "failed"), 0, None
        except Cancelled:
            part.close()
            return "cancelled", 0, None
        except BaseException:
            with part, suppress(OSError):  # a full disk: give the partial file's space back
                part.path.unlink()
            raise
        return "landing", 0, landing.submit(self._land, job, part, landed)

    def _land(self, job: Job, part: PartFile, landed: Landed) -> Outcome:
        try:
            with part:
                self._host.land(job, part, landed)
        except FileFailed as exc:
            log.warning("asset %r: %s failed: %s", job.asset_id, _where(job), exc)
            self._host.mark(job, "failed", str(exc))
            return "failed", 0, None
        self._host.evict()
        return "downloaded", landed.bytes, None


def _where(job: Job) -> str:
    """The URL's path for a log line: never its query (a signed URL may carry a token)."""
    return "the download of " + job.url.split("?", 1)[0]
