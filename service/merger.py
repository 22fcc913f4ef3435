"""Background merges: `newsqa serve` compacts its embedded index's segments while it serves (issue 15).

`BackgroundMerger` runs the tiered merge policy (`indexer.ingest.build.plan_merge`,
knobs `--merge-segments` and `--merge-deleted-share`) on a thread of its own:
every `--merge-interval` seconds, and soon after each write the service commits
(`notify()`). A merge is `merge_index` with that policy, so it is the one merge
`newsqa merge` runs: it writes the merged segment beside the live version
without the writer lock, then takes the lock only to publish, moved onto any
version committed meanwhile. A `POST /v1/articles` during a merge therefore
waits at most for that publish (milliseconds), never for the merge.

Searches never wait for a merge either: they keep the version they leased,
and the merged version is swapped in by the reloader like any new version.
The merge thread runs FAISS single-threaded at a lower CPU priority, so on a
busy machine the searches get the cores first. `stop()` (the app's lifespan)
makes a running merge give up before it publishes and joins the thread; a
merge cut short by the process ending is a draft the next writer removes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from indexer.errors import NewsqaError
from indexer.ingest.build import MergePolicy, merge_index

log = logging.getLogger("newsqa.merge")

# The thread lowers its own CPU priority by this much (Linux: per thread).
MERGE_NICENESS = 10
# Seconds `stop()` waits for a running merge to give up.
STOP_TIMEOUT = 30.0


class BackgroundMerger:
    """Runs `merge_index(index_dir, policy=policy)` every `interval` seconds and after `notify()`,
    calling `reload()` after each merge it publishes. Counts what it did (`merges`, `failures`,
    `last_error`, and of the last merge published `last_version`, `last_started` (Unix time) and
    `last_seconds`) for /metrics and /v1/admin/status.

    A failed merge (a damaged segment, a full disk) is logged and counted; the
    index is as it was and the next check tries again.
    """

    def __init__(self, index_dir: Path, policy: MergePolicy, *, interval: float,
                 reload: Callable[[], object]) -> None:
        if interval <= 0:
            raise ValueError(f"merge interval {interval} s: a BackgroundMerger needs a positive interval")
        self.index_dir = Path(index_dir)
        self.policy = policy
        self.interval = interval
        self._reload = reload
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="newsqa-merge", daemon=True)
        self.merges = 0
        self.failures = 0
        self.running = False
        self.last_error: str | None = None
        self.last_version: str | None = None
        self.last_seconds: float | None = None
        self.last_started: float | None = None  # Unix time the last published merge started

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A write was committed: check the policy now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Make a running merge give up before it publishes, and wait for the thread to end."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("a background merge of %s did not stop within %.0f s; its draft is removed by the "
                            "next writer", self.index_dir, timeout)

    def merge_now(self) -> str | None:
        """One policy check and, if a merge is due, the merge; the new version's name or None."""
        started, began = time.perf_counter(), time.time()
        self.running = True
        try:
            version = merge_index(self.index_dir, policy=self.policy, should_stop=self._stop.is_set)
        finally:
            self.running = False
        if version is not None:
            self.merges += 1
            self.last_version = version
            self.last_seconds = round(time.perf_counter() - started, 3)
            self.last_started = began
            log.info("background merge published %s in %.2f s", version, self.last_seconds)
        return version

    def _run(self) -> None:
        _quiet_thread()
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                version = self.merge_now()
            except Exception as exc:  # the thread must outlive any one merge's failure
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("background merge of %s failed (the index is as it was): %s", self.index_dir,
                          self.last_error)
                continue
            if version is None or self._stop.is_set():
                continue  # stopping: the reloader is about to close; the next start serves the merged version
            self.last_error = None
            try:
                self._reload()
            except NewsqaError as exc:  # the reloader keeps the old version and records why
                log.warning("merged version %s not served yet: %s", version, exc.message)
            self._wake.set()  # what the merge left may be due again (e.g. deletes during it)


def _quiet_thread() -> None:
    """Keep a merge off the searches' cores: FAISS on one thread, and a lower priority for this one."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)  # per calling thread
    except ImportError:
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MERGE_NICENESS)
    except (OSError, AttributeError):  # not Linux, or not allowed: the merge runs at the usual priority
        pass
