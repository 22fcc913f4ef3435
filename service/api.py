"""JSON API route handlers: `/v1/search`, `/v1/articles/{id}`, `/health`."""

from __future__ import annotations

from litestar import get, post
from litestar.datastructures import State

from indexer.search import Searcher, make_filters
from service.schemas import (
    ArticleOut,
    HealthOut,
    SearchIn,
    SearchOut,
    article_out,
    search_out,
)


def run_search(searcher: Searcher, body: SearchIn) -> SearchOut:
    filters = make_filters(body.date_from, body.date_to, body.source)
    return search_out(searcher.search(body.q, k=body.k, mode=body.mode, filters=filters))


@get("/v1/search", sync_to_thread=True, summary="Search passages")
def search_get(
    searcher: Searcher,
    q: str = "",
    k: int = 10,
    mode: str = "hybrid",
    date_from: str | None = None,
    date_to: str | None = None,
    source: str | None = None,
) -> SearchOut:
    """Ranked passages for `q`, each with a citation (article, date, section, character offsets)."""
    return run_search(searcher, SearchIn(q=q, k=k, mode=mode, date_from=date_from, date_to=date_to, source=source))


@post("/v1/search", sync_to_thread=True, status_code=200, summary="Search passages (JSON body)")
def search_post(searcher: Searcher, data: SearchIn) -> SearchOut:
    """The same search as `GET /v1/search`, with the parameters in a JSON body."""
    return run_search(searcher, data)


@get("/v1/articles/{article_id:str}", sync_to_thread=True, summary="One article")
def get_article(searcher: Searcher, article_id: str) -> ArticleOut:
    """The whole article: title, date, source, sections and text (citation offsets index into `text`)."""
    return article_out(searcher.index.article(article_id))


@get("/health", sync_to_thread=False, summary="Liveness and index facts")
def health(state: State) -> HealthOut:
    index = state.resources.index
    manifest = index.manifest
    counts = index.counts
    return HealthOut(
        status="ok",
        index=index.version,
        model=manifest["model"],
        articles=counts["articles"],
        records=counts["records"],
        chunks=counts["chunks"],
        built_at=manifest["built_at"],
    )


ROUTES = [search_get, search_post, get_article, health]
