"""The Litestar application: resources made once in a lifespan, kept on `app.state`.

`create_app(settings)` is the factory used by `newsqa serve`, the tests and
any ASGI server (`uvicorn --factory service.app:app_from_env`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from indexer.embed import Embedder
from indexer.query.search import Searcher
from indexer.store.embedded import package_version
from indexer.store.backends import default_index_dir, open_store
from indexer.store.protocols import Store
from service import admin, api, conventions, sources, tools, web
from service.docs import docs_plugins
from service.errors import EXCEPTION_HANDLERS, check_json_body
from service.limits import BudgetedEmbedder, BudgetedStore, limit_middleware, security_headers
from service.merger import BackgroundMerger
from service.reload import Reloader
from service.settings import ServiceSettings, settings_with_env

log = logging.getLogger("newsqa.service")


class Resources:
    """The loaded model and the served index versions, from startup to `close()`.

    The versions and their searchers have one owner, `reloader`: it builds the
    searcher of the first version and of every version reloaded after it, with
    `make_searcher(index, embedder)` (default: a plain `Searcher`), and closes
    them all. Raises the store's domain error (IndexMissing, IndexMismatch)
    when there is nothing to serve.
    """

    def __init__(self, settings: ServiceSettings, embedder: Embedder | None = None, *,
                 make_searcher: Callable[[Store, Embedder], Searcher] | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder(concurrency=settings.model_concurrency or None)
        build = make_searcher or (lambda store, encoder: Searcher(store, encoder, query_cache=settings.query_cache))
        index = open_store(settings.store or settings.index_dir, model=self.embedder.name,
                           read_store=settings.read_store or None)
        try:
            self.reloader = Reloader(index, index_dir=settings.index_dir, model=self.embedder.name,
                                     make_searcher=lambda store: build(store, self.embedder))
        except BaseException:
            index.close()
            raise

    @property
    def index(self) -> Store:
        """The served version, without a lease: for logs and tests (requests lease it)."""
        return self.reloader.current.index

    def close(self) -> None:
        self.reloader.close()


# Responses smaller than this are sent uncompressed: gzip would save nothing worth the CPU.
COMPRESS_MIN_BYTES = 500


def openapi_config() -> OpenAPIConfig:
    """The schema at /schema: the API key schemes of `service.limits` (either one is enough)."""
    return OpenAPIConfig(
        title="newsqa", version=package_version(), path="/schema",
        description="Semantic search and cited answers over a news archive. Every error is "
                    '`{"error": {"code", "message"}}`. With an API key configured (`--api-key`), every route but '
                    "/health and /ready needs it, as a bearer token or in `X-API-Key`.",
        components=Components(security_schemes={
            "bearerAuth": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer KEY"),
            "apiKeyHeader": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header",
                                           description="X-API-Key: KEY"),
        }),
        security=[{"bearerAuth": []}, {"apiKeyHeader": []}],
        render_plugins=docs_plugins(),
    )


async def check_request(request: Request) -> None:
    """Before every route: unknown `/v1` query parameters and unreadable JSON bodies are 400s."""
    conventions.reject_unknown_params(request)
    await check_json_body(request)


async def provide_searcher(state: State) -> AsyncIterator[Searcher]:
    # A lease: a hot reload during this request does not close the version it searches. Async, because
    # Litestar ends a sync generator dependency on a worker thread: a thread hop per request to release
    # a lease, which only takes a lock (and, for a retired version, starts its close timer).
    with state.reloader.lease() as searcher:
        yield searcher


def create_app(settings: ServiceSettings, *, embedder: Embedder | None = None) -> Litestar:
    """A Litestar app serving the index in `settings.index_dir`."""
    metrics = admin.Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Model calls are timed for /metrics; model and store calls are where a timed-out request stops.
        resources = Resources(settings, embedder, make_searcher=lambda store, encoder: Searcher(
            BudgetedStore(store), admin.TimedEmbedder(BudgetedEmbedder(encoder), metrics),
            query_cache=settings.query_cache))
        app.state.resources = resources
        app.state.reloader = resources.reloader
        log.info("serving index %s (%s chunks)", resources.index.version, resources.index.counts["chunks"])
        # Segments to merge exist only in an embedded index; a PostgreSQL store maintains itself.
        merger = None if settings.store or settings.merge_interval <= 0 else BackgroundMerger(
            settings.index_dir, settings.merge_policy(), interval=settings.merge_interval,
            reload=resources.reloader.reload)
        app.state.merger = merger
        try:
            # A PostgreSQL store is live (every query sees committed writes): no versions to poll.
            async with resources.reloader.polling(0 if settings.store else settings.reload_interval):
                if merger is not None:
                    merger.start()
                try:
                    yield
                finally:
                    if merger is not None:
                        await anyio.to_thread.run_sync(merger.stop)
        finally:
            resources.close()

    app = Litestar(
        route_handlers=[*api.ROUTES, *web.ROUTES, *tools.ROUTES, *admin.ROUTES,
                        *sources.ROUTES],
        lifespan=[lifespan],
        dependencies={"searcher": Provide(provide_searcher)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        before_request=check_request,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origin)) if settings.cors_origin else None,
        compression_config=CompressionConfig(backend="gzip", minimum_size=COMPRESS_MIN_BYTES),
        template_config=web.template_config(),
        middleware=[admin.MetricsMiddleware(metrics), *limit_middleware(settings)],
        request_max_body_size=settings.max_body_bytes,
        before_send=[security_headers],
    )
    app.state.metrics = metrics
    metrics.watch(app.state)
    return app


def app_from_env() -> Litestar:
    """App factory configured from NEWSQA_INDEX (for ASGI servers run by hand).

    The server's own defaults then apply, not `newsqa serve`'s (service/server.py): uvicorn, for one,
    trusts X-Forwarded-For from 127.0.0.1 unless run with `--no-proxy-headers`, and has no header timeout.
    """
    return create_app(settings_with_env(ServiceSettings(index_dir=default_index_dir())))
