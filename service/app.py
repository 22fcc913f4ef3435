"""The Litestar application: resources made once in a lifespan, kept on `app.state`.

`create_app(settings)` is the factory used by `newsqa serve`, the tests and
any ASGI server (`uvicorn --factory service.app:app_from_env`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from indexer.embed import Embedder
from indexer.search import Searcher
from indexer.store import Index, open_index, package_version
from service import admin, api, llm, web
from service.errors import EXCEPTION_HANDLERS

log = logging.getLogger("newsqa.service")


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of a running service; each is also a `newsqa serve` option."""

    index_dir: Path = field(default=Path("index"), metadata={"help": "index directory to serve"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "TCP port to listen on"})


class Resources:
    """The loaded model and index version. `searcher` is swapped as one reference."""

    def __init__(self, settings: ServiceSettings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder()
        self._lock = threading.Lock()
        self.searcher = Searcher(open_index(settings.index_dir, model=self.embedder.name), self.embedder)

    @property
    def index(self) -> Index:
        return self.searcher.index

    def close(self) -> None:
        self.searcher.index.close()


def provide_searcher(state: State) -> Searcher:
    return state.resources.searcher


def create_app(settings: ServiceSettings, *, embedder: Embedder | None = None) -> Litestar:
    """A Litestar app serving the index in `settings.index_dir`."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = Resources(settings, embedder)
        app.state.resources = resources
        log.info("serving index %s (%s chunks)", resources.index.version, resources.index.counts["chunks"])
        try:
            yield
        finally:
            resources.close()

    return Litestar(
        route_handlers=[*api.ROUTES, *web.ROUTES, *llm.ROUTES, *admin.ROUTES],
        lifespan=[lifespan],
        dependencies={"searcher": Provide(provide_searcher, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(title="newsqa", version=package_version(), path="/schema"),
    )


def app_from_env() -> Litestar:
    """App factory configured from NEWSQA_INDEX (for ASGI servers run by hand)."""
    return create_app(ServiceSettings(index_dir=Path(os.environ.get("NEWSQA_INDEX", "index"))))
