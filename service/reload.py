"""Hot reload: serve a new index version without a restart and without failing a request.

A build writes a new version beside the live one and switches `CURRENT`
(indexer/store/embedded.py). `Reloader.reload()` loads that version next to the one in
use, swaps the current searcher as one reference, and retires the old version:
it is closed only once every request that leased it has finished, plus a short
grace period for work that outlives its lease (a timed-out request's thread
finishing its current step, see service/limits.py).

The `Reloader` is the one owner of every `Searcher`: it builds one per version it
serves (`make_searcher`) and closes them all in `close()`. Requests take a lease
with `Reloader.lease()` (the `searcher` dependency does this), so a search that
started on the old version finishes on it; probes and metrics read through
`Reloader.read()`, which leases on a worker thread. `Reloader.polling(interval)`
watches `CURRENT` in the background.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import anyio
import msgspec

from indexer.errors import IndexMismatch, IndexMissing, NewsqaError
from indexer.query.search import Searcher
from indexer.store.embedded import Index, current_version
from indexer.store.protocols import Store

log = logging.getLogger("newsqa.reload")

# Work that outlives its lease (a timed-out request's thread) gets this long to finish.
RELOAD_GRACE_SECONDS = 2.0
# Probe and metrics reads (`Reloader.read`) running at once, each on its own worker thread.
READ_THREADS = 4

T = TypeVar("T")


class ReloadResult(msgspec.Struct, frozen=True):
    """What one reload did: `changed` is False when the live version was already served.
    Also the body of `POST /v1/admin/reload`."""

    changed: bool
    version: str
    previous: str
    articles: int
    chunks: int
    seconds: float


class _Generation:
    """One loaded index version and how many requests are using it."""

    __slots__ = ("searcher", "index", "users", "retired", "closed")

    def __init__(self, searcher: Searcher, index: Store) -> None:
        self.searcher = searcher
        # The store as loaded: the searcher's may be wrapped (the service's time-budget checks), and
        # the next reload shares this one's loaded segments, which only an `Index` itself offers.
        self.index = index
        self.users = 0
        self.retired = False
        self.closed = False


class Reloader:
    """Owns the served index versions and their searchers, from the first (`index`) to `close()`.

    `make_searcher(index)` builds the searcher for each version served, the
    first one included (the app passes one that times model calls for
    /metrics). New versions are loaded from `index_dir` and must be built with
    `model`. Thread-safe: leases come from worker threads, reloads from the
    poller or the admin route.
    """

    def __init__(
        self,
        index: Store,
        *,
        index_dir: Path,
        model: str,
        make_searcher: Callable[[Store], Searcher],
        grace: float = RELOAD_GRACE_SECONDS,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.model = model
        self.make_searcher = make_searcher
        self.grace = grace
        self._lock = threading.Lock()  # guards the current generation and the lease counts
        self._reload_lock = threading.Lock()  # one version load at a time
        self._timers: list[threading.Timer] = []
        self._retired: list[_Generation] = []
        self._current = _Generation(make_searcher(index), index)
        # Probe reads get threads of their own: a search backlog never delays /health.
        self._readers = anyio.CapacityLimiter(READ_THREADS)
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def current(self) -> Searcher:
        """The served searcher, without a lease: for logs and tests. Code that reads the index
        takes `lease()` (or `read()`), so a reload cannot close the version under it."""
        return self._current.searcher

    @contextmanager
    def lease(self) -> Iterator[Searcher]:
        """The current searcher, kept open until the block ends even if a reload happens meanwhile."""
        with self._lock:
            generation = self._current
            generation.users += 1
        try:
            yield generation.searcher
        finally:
            with self._lock:
                generation.users -= 1
                idle = generation.retired and generation.users == 0
            if idle:
                self._close_later(generation)

    async def read(self, read: Callable[[Searcher], T]) -> T:
        """`read(searcher)` on a worker thread with the served version leased, never on the event loop.

        For probes, metrics and status: on PostgreSQL each is a few queries, and a slow
        one must not stall every other request. At most `READ_THREADS` run at once, on
        threads apart from the ones searches use.
        """
        def leased() -> T:
            with self.lease() as searcher:
                return read(searcher)

        return await anyio.to_thread.run_sync(leased, limiter=self._readers)

    def reload(self, *, force: bool = False) -> ReloadResult:
        """Serve the version `CURRENT` names; a no-op when it is already served (unless `force`)
        or when the index is a live store rather than a versioned directory.

        Raises IndexMissing / IndexMismatch (and keeps serving the old version)
        when the new version cannot be served.
        """
        with self._reload_lock:
            started = time.perf_counter()
            previous = self._current.index
            if previous.live:
                # A live store (PostgreSQL): every query already sees committed writes; nothing to swap.
                return self._result(False, previous, previous.version, started)
            live = current_version(self.index_dir)
            if live is None:
                self._failed(f"no live index version under {self.index_dir} (CURRENT missing or names no version): "
                             f"the service keeps serving {previous.version}; rebuild with "
                             f"`newsqa index SOURCE --index {self.index_dir}`")
            if live.name == previous.version and not force:
                return self._result(False, previous, previous.version, started)
            try:
                # Segments the served version also lists are shared, not read again.
                index = Index(live, model=self.model, reuse=previous if isinstance(previous, Index) else None)
                # The database must open before the swap: a damaged file fails here, not in a request.
                index.check()
            except NewsqaError as exc:
                self._failed(f"{exc.message} (still serving {previous.version})", type(exc))
            except FileNotFoundError as exc:  # the version was pruned by a newer build while loading
                self._failed(f"version {live.name} vanished while loading ({exc.filename}): retry the reload")
            except (OSError, RuntimeError, ValueError, sqlite3.Error) as exc:  # damaged files
                self._failed(f"cannot load index version {live.name}: {exc}; still serving {previous.version} — "
                             f"rebuild with `newsqa index SOURCE --index {self.index_dir} --rebuild`", IndexMismatch)
            searcher = self.make_searcher(index)
            with self._lock:
                old = self._current
                self._current = _Generation(searcher, index)
                old.retired = True
                self._retired.append(old)
                idle = old.users == 0
                self.reloads += 1
                self.last_error = None
            if idle:
                self._close_later(old)
            result = self._result(True, index, previous.version, started)
            log.info("now serving index %s (%d chunks), was %s; loaded in %.2f s",
                     result.version, result.chunks, result.previous, result.seconds)
            return result

    def _failed(self, message: str, kind: type[NewsqaError] = IndexMissing) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = message
        raise kind(message)

    @staticmethod
    def _result(changed: bool, index: Store, previous: str, started: float) -> ReloadResult:
        counts = index.counts
        return ReloadResult(changed, index.version, previous, counts["articles"], counts["chunks"],
                            time.perf_counter() - started)

    def _close_later(self, generation: _Generation) -> None:
        timer = threading.Timer(self.grace, self._close, args=(generation,))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _close(self, generation: _Generation) -> None:
        with self._lock:
            if generation.closed or generation.users:
                return
            generation.closed = True
            self._retired = [g for g in self._retired if g is not generation]
        generation.index.close()
        log.info("closed index version %s", generation.index.version)

    @property
    def retired_versions(self) -> list[str]:
        """Versions swapped out but not closed yet (requests still use them, or the grace period runs)."""
        with self._lock:
            return [g.index.version for g in self._retired]

    def close(self) -> None:
        """Close every version now, the served one and the retired ones (at shutdown)."""
        with self._lock:
            timers, self._timers = self._timers, []
            retired, self._retired = self._retired, []
            current = self._current
        for timer in timers:
            timer.cancel()
        for generation in [*retired, current]:
            if not generation.closed:
                generation.closed = True
                generation.index.close()

    async def poll(self, interval: float) -> None:
        """Reload whenever `CURRENT` changes, checking every `interval` seconds; runs until cancelled."""
        reported = None
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload)
                reported = None
            except NewsqaError as exc:
                if exc.message != reported:  # say it once, not every tick
                    log.warning("index reload failed: %s", exc.message)
                    reported = exc.message
            except Exception:
                log.exception("index reload failed unexpectedly; will retry in %.1f s", interval)

    @asynccontextmanager
    async def polling(self, interval: float) -> AsyncIterator[None]:
        """Run `poll(interval)` in the background inside the block; `interval <= 0` turns it off."""
        if interval <= 0:
            yield
            return
        task = asyncio.create_task(self.poll(interval), name="newsqa-index-poll")
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
