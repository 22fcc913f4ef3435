"""Operational routes: readiness, Prometheus metrics, index reload (issue 6).

- `GET /ready`: 200 once an index version is loaded and served, else 503.
- `GET /metrics`: Prometheus text format from a registry owned by the app
  (never the process-global one, so several apps in one process do not mix).
- `POST /v1/admin/reload`: serve the version `CURRENT` names now (admin key).
- `GET /v1/admin/status`: the served version, retired versions, reload counts, background merges (admin key).

`Metrics` and `MetricsMiddleware` count requests and time them per route. The
access log is written by `service.server.AccessLog`, around the whole app.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

import msgspec
from litestar import Response, get, post
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.params import Parameter
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from indexer.errors import IndexMissing
from indexer.query.search import Searcher
from service.reload import Reloader, ReloadResult
from service.schemas import error_responses

LATENCY_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)


class Metrics:
    """The app's Prometheus registry and the instruments the service updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("newsqa_http_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("newsqa_http_request_duration_seconds",
                                 "time from request to the end of the response, by route template",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inference = Histogram("newsqa_model_inference_seconds",
                                   "time in the embedding model per call (queries at search time)",
                                   buckets=INFERENCE_BUCKETS, registry=self.registry)
        self.inference_texts = Counter("newsqa_model_inference_texts", "texts embedded by the model",
                                       registry=self.registry)

    def watch(self, state: State) -> None:
        """Report the served index (size, version, reloads) from `state` at every scrape."""
        self.registry.register(_IndexCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _IndexCollector:
    """Index facts read at scrape time, so they follow hot reloads.

    Read with the served version leased (a reload meanwhile does not close it).
    The on-disk size is measured once per version: a version's files do not
    change, and walking its directory on every scrape costs I/O for nothing.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self._disk: tuple[str, int] | None = None  # (version, bytes) last measured

    def describe(self):
        return []  # values depend on the loaded index; nothing to check at registration

    def collect(self):
        reloader = getattr(self.state, "reloader", None)
        if reloader is None:
            return
        with reloader.lease() as searcher:
            families = self._index_facts(searcher)
        yield from families
        yield CounterMetricFamily("newsqa_index_reloads", "index versions swapped in while running",
                                  value=reloader.reloads)
        yield CounterMetricFamily("newsqa_index_reload_failures", "reloads refused (old version kept)",
                                  value=reloader.failures)
        yield GaugeMetricFamily("newsqa_index_retired_versions", "swapped-out versions not yet closed",
                                value=len(reloader.retired_versions))
        merger = getattr(self.state, "merger", None)
        if merger is not None:
            yield CounterMetricFamily("newsqa_index_merges", "background merges published (segments compacted)",
                                      value=merger.merges)
            yield CounterMetricFamily("newsqa_index_merge_failures", "background merges that failed (index unchanged)",
                                      value=merger.failures)
            yield GaugeMetricFamily("newsqa_index_merge_running", "1 while a background merge runs",
                                    value=int(merger.running))

    def _index_facts(self, searcher: Searcher) -> list:
        index = searcher.index
        version = index.version
        counts = index.counts
        manifest = index.manifest
        size = GaugeMetricFamily("newsqa_index_items", "items in the served index version", labels=["kind"])
        for kind in ("articles", "records", "chunks"):
            size.add_metric([kind], counts.get(kind, 0))
        segments = getattr(index, "segments", None)  # an embedded index; a PostgreSQL store has none
        return [
            size,
            *([GaugeMetricFamily("newsqa_index_segments", "segments the served version lists",
                                 value=len(segments))] if segments is not None else []),
            GaugeMetricFamily("newsqa_index_vectors", "vectors in the served vector index",
                              value=index.vector_count()),
            GaugeMetricFamily("newsqa_index_disk_bytes", "on-disk size of the served index version",
                              value=self._disk_bytes(version, index)),
            InfoMetricFamily("newsqa_index", "the served index version",
                             value={"version": version, "model": str(manifest.get("model")),
                                    "vector_index": str(manifest.get("vector_index", ""))}),
        ]

    def _disk_bytes(self, version: str, index) -> int:
        cached = self._disk
        if cached is None or cached[0] != version:
            # Two scrapes racing here both measure; either result is right.
            cached = self._disk = (version, index.disk_bytes())
        return cached[1]


class TimedEmbedder:
    """The embedder with each `encode` call timed into `Metrics.inference`; everything else passes through."""

    def __init__(self, embedder, metrics: Metrics) -> None:
        self._embedder = embedder
        self._metrics = metrics

    def encode(self, texts: Sequence[str], **kwargs):
        started = time.perf_counter()
        try:
            return self._embedder.encode(texts, **kwargs)
        finally:
            self._metrics.inference.observe(time.perf_counter() - started)
            self._metrics.inference_texts.inc(len(texts))

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


class MetricsMiddleware(ASGIMiddleware):
    """Counts and times every routed request (the outermost middleware, so 401/429 count too)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # if the app fails before answering, that is what the server sends

        async def recording_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            # The route template, not the path: one series per route, however many article ids exist.
            route = scope.get("path_template") or scope["path"]
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)


class ReadyOut(msgspec.Struct):
    status: str
    index: str
    chunks: int


class MergesOut(msgspec.Struct):
    merges: int
    failures: int
    running: bool
    last_version: str | None
    last_started: float | None  # Unix time
    last_seconds: float | None
    last_error: str | None


class StatusOut(msgspec.Struct):
    version: str
    index_dir: str
    reloads: int
    failures: int
    last_error: str | None
    retired_versions: list[str]
    background_merges: MergesOut | None = None  # None: background merges are off (or the store is PostgreSQL)


def served(state: State) -> Reloader:
    """The app's reloader (the owner of the served version), or 503 `index_missing` before it is loaded."""
    reloader = getattr(state, "reloader", None)
    if reloader is None:
        raise IndexMissing("the index is not loaded yet: retry in a moment")
    return reloader


@get("/ready", summary="Readiness: an index is loaded", security=[{}],
     responses=error_responses(503, common=False))
async def ready(state: State) -> ReadyOut:
    """200 once an index version is loaded and served; 503 `index_missing` before that."""
    return await served(state).read(
        lambda searcher: ReadyOut(status="ready", index=searcher.index.version, chunks=searcher.index.counts["chunks"]))


@get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    """Requests, latency per route, model inference time and index size, in Prometheus text format."""
    # Rendering reads the index (a lease is taken inside): on a worker thread, never on the event loop.
    body = await served(state).read(lambda _: state.metrics.render())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@post("/v1/admin/reload", sync_to_thread=True, status_code=200, summary="Serve the newest index version",
      responses=error_responses(400, 403, 413))
def reload_index(state: State, force: Annotated[bool, Parameter(
        description="Reload even when CURRENT names the version already served (re-open it).")] = False,
                 ) -> ReloadResult:
    """Load the version `CURRENT` names beside the served one and swap; requests in flight finish on the old one.

    Needs the admin key. `changed` is false when that version is already served.
    """
    return state.reloader.reload(force=force)


@get("/v1/admin/status", summary="Served index version and reload history",
     responses=error_responses(400, 403))
async def admin_status(state: State) -> StatusOut:
    """The served version, versions waiting to be closed, reload counts and the last reload error (admin key)."""
    reloader = served(state)
    merger = getattr(state, "merger", None)
    merges = None if merger is None else MergesOut(
        merges=merger.merges, failures=merger.failures, running=merger.running, last_version=merger.last_version,
        last_started=merger.last_started, last_seconds=merger.last_seconds, last_error=merger.last_error)
    return await reloader.read(lambda searcher: StatusOut(
        version=searcher.index.version, index_dir=str(reloader.index_dir), reloads=reloader.reloads,
        failures=reloader.failures, last_error=reloader.last_error, retired_versions=reloader.retired_versions,
        background_merges=merges))


ROUTES: list = [ready, metrics, reload_index, admin_status]
