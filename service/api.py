"""JSON API route handlers: `/v1/search`, `/v1/answer`, `/v1/articles/{id}`, `/health`."""

from __future__ import annotations

from litestar import get, post
from litestar.datastructures import State

from indexer.query.answer import DEFAULT_PASSAGES, Answerer
from indexer.query.search import Searcher, make_filters
from service.schemas import (
    AnswerOut,
    ArticleOut,
    HealthOut,
    SearchIn,
    SearchOut,
    answer_out,
    article_out,
    search_out,
)


def run_search(searcher: Searcher, body: SearchIn) -> SearchOut:
    filters = make_filters(body.date_from, body.date_to, body.source, body.lang)
    return search_out(searcher.search(body.q, k=body.k, mode=body.mode, filters=filters, group=body.group))


@get("/v1/search", sync_to_thread=True, summary="Search passages")
def search_get(
    searcher: Searcher,
    q: str = "",
    k: int = 10,
    mode: str = "hybrid",
    group: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    source: str | None = None,
    lang: str | None = None,
) -> SearchOut:
    """Ranked passages for `q`, each with a citation (article, date, section, character offsets), its
    per-leg scores (`dense`, `lexical`) and highlights; `mode=dense|lexical|hybrid`; `group=article` for
    one result per article; `low_confidence` when the index does not seem to answer `q`."""
    return run_search(searcher, SearchIn(q=q, k=k, mode=mode, group=group, date_from=date_from, date_to=date_to,
                                         source=source, lang=lang))


@post("/v1/search", sync_to_thread=True, status_code=200, summary="Search passages (JSON body)")
def search_post(searcher: Searcher, data: SearchIn) -> SearchOut:
    """The same search as `GET /v1/search`, with the parameters in a JSON body."""
    return run_search(searcher, data)


@get("/v1/answer", sync_to_thread=True, summary="Answer a question with a cited sentence")
def answer_get(
    searcher: Searcher,
    q: str = "",
    k: int = DEFAULT_PASSAGES,
    mode: str = "hybrid",
    date_from: str | None = None,
    date_to: str | None = None,
    source: str | None = None,
    lang: str | None = None,
) -> AnswerOut:
    """The sentence of the top passages that best answers `q`, verbatim, with its citation (exact
    character span in the article), the confidence and the passages; `answer` is null with a `reason`
    when the confidence is below the calibrated threshold."""
    filters = make_filters(date_from, date_to, source, lang)
    return answer_out(Answerer(searcher).answer(q, k=k, mode=mode, filters=filters))


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


ROUTES = [search_get, search_post, answer_get, get_article, health]
