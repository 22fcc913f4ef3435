"""JSON API route handlers: `/v1/search`, `/v1/answer`, `/v1/articles/{id}`, `/v1/sources`, `/health`.

Query parameters are declared once here (`QueryParam`, `ModeParam`, ...) with the
description and the enum or format the OpenAPI schema shows; the values are
still checked by the domain validators, whose messages say how to fix them.
Every route documents its errors in the one error shape (`error_responses`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import Parameter

from indexer.errors import InvalidParameter
from indexer.query.answer import DEFAULT_PASSAGES, Answerer
from indexer.query.ordering import COLLAPSES, MAX_HALF_LIFE_DAYS, QUERY_DATE_MODES, SORTS, make_ordering
from indexer.query.search import (DEFAULT_K, DEFAULT_MODE, GROUPS, MAX_K, MAX_QUERY_CHARS, MODES, Searcher, make_filters,
                                  validate_k)
from service.admin import served
from service.conventions import REVALIDATE, ConditionalGet, article_etag, empty_reason, offloaded, path_article_id
from service.schemas import (
    AnswerOut,
    ArticleOut,
    HealthOut,
    SearchIn,
    SearchOut,
    SourceOut,
    answer_out,
    article_out,
    error_responses,
    search_out,
)

# Validators with good messages do the checking; `schema_extra` only documents the contract.
QueryParam = Annotated[str, Parameter(
    description="What to look for, in plain words (a question or keywords); required, 1..1000 characters.",
    required=True, schema_extra={"min_length": 1, "max_length": MAX_QUERY_CHARS})]
KParam = Annotated[int, Parameter(description=f"Results per page, 1..{MAX_K}; offset + k must be at most {MAX_K}.",
                                  schema_extra={"minimum": 1, "maximum": MAX_K})]
OffsetParam = Annotated[int, Parameter(
    description=f"Results to skip (paging): the page holds ranks offset+1..offset+k; offset + k <= {MAX_K}.",
    schema_extra={"minimum": 0, "maximum": MAX_K - 1})]
ModeParam = Annotated[str, Parameter(
    description="Ranking: hybrid (meaning and exact words, default), dense (meaning) or lexical (exact words).",
    schema_extra={"enum": list(MODES)})]
GroupParam = Annotated[str | None, Parameter(
    description="passage (default): ranked passages; article: one result per article with its best passages.",
    schema_extra={"enum": list(GROUPS)})]
DateFromParam = Annotated[str | None, Parameter(
    description="Only articles dated on or after this day (YYYY-MM-DD); undated articles are excluded.",
    schema_extra={"format": "date"})]
DateToParam = Annotated[str | None, Parameter(
    description="Only articles dated on or before this day (YYYY-MM-DD); undated articles are excluded.",
    schema_extra={"format": "date"})]
SourceParam = Annotated[str | None, Parameter(
    description="Only articles from this source (any case); GET /v1/sources lists them.")]
LangParam = Annotated[str | None, Parameter(
    description="Only articles in this language (ISO 639-1 code, e.g. en; recorded at ingest).")]
SortParam = Annotated[str | None, Parameter(
    description="relevance (default) or date: the relevant results newest first (same day by relevance, "
                "undated last).", schema_extra={"enum": list(SORTS)})]
RecencyParam = Annotated[str | None, Parameter(
    description=f"Half-life in days favouring newer articles, e.g. 30 or 30d (up to {MAX_HALF_LIFE_DAYS}): "
                "a score is multiplied by 0.5 ** (age / half-life), the age counted from the newest "
                "article in the index.", schema_extra={"pattern": r"^\d+(\.\d+)?d?$"})]
DatesParam = Annotated[str | None, Parameter(
    description="auto: favour articles of a year or month named in the query (\"December 2025 blackouts\"); "
                "off (default).", schema_extra={"enum": list(QUERY_DATE_MODES)})]
CollapseParam = Annotated[str | None, Parameter(
    description="story: near-duplicate articles (syndicated rewrites) fold into one result that lists them "
                "as `similar`.", schema_extra={"enum": list(COLLAPSES)})]
def validate_page(k: int, offset: int) -> None:
    validate_k(k)
    if offset < 0 or offset + k > MAX_K:
        raise InvalidParameter(
            f"offset={offset} with k={k} is out of range: use offset >= 0 and offset + k <= {MAX_K} "
            f"(results deeper than rank {MAX_K} are not served; narrow the query or add filters)",
            code="invalid_offset")


def run_search(searcher: Searcher, body: SearchIn) -> SearchOut:
    """One page of the search: ranks offset+1..offset+k, with totals, relevance and an empty reason."""
    validate_page(body.k, body.offset)
    filters = make_filters(body.date_from, body.date_to, body.source, body.lang)
    order = make_ordering(body.sort, body.recency, body.dates, body.collapse)
    result = searcher.search(body.q, k=body.offset + body.k, mode=body.mode, filters=filters, group=body.group,
                             ordering=order)
    page = replace(result, hits=result.hits[body.offset:], groups=result.groups[body.offset:])
    hits = page.hits + [h for g in page.groups for h in g.hits]
    relevance = dict(zip((h.chunk_id for h in hits), searcher.relevance(hits, result.terms)))
    total = min(result.total, MAX_K)
    reason = empty_reason(searcher, filters) if not result.hits else None
    return search_out(page, relevance, offset=body.offset, total=total,
                      more=body.offset + len(page.hits) < total, reason=reason)


_SEARCH_ERRORS = error_responses(400)


@get("/v1/search", summary="Search passages", operation_id="search", responses=_SEARCH_ERRORS)
async def search_get(
    searcher: Searcher,
    q: QueryParam,
    k: KParam = DEFAULT_K,
    offset: OffsetParam = 0,
    mode: ModeParam = DEFAULT_MODE,
    group: GroupParam = None,
    date_from: DateFromParam = None,
    date_to: DateToParam = None,
    source: SourceParam = None,
    lang: LangParam = None,
    sort: SortParam = None,
    recency: RecencyParam = None,
    dates: DatesParam = None,
    collapse: CollapseParam = None,
) -> SearchOut:
    """Ranked passages for `q`, each with a citation (article, date, section, character offsets), its
    fused `score`, a calibrated `relevance` (0..1, comparable across queries), per-leg scores (`dense`,
    `lexical`) and highlights; `mode=dense|lexical|hybrid`; `group=article` for one result per article;
    `offset` pages, `total` and `more` say how many results there are; `low_confidence` when the index
    does not seem to answer `q`; `reason` when the filters exclude every article; `sort=date` for newest
    first, `recency` to favour newer articles, `dates=auto` for dates named in `q`, `collapse=story` to
    fold near-duplicate articles."""
    # Async with an explicit offload (see `offloaded`): the search runs on one worker thread.
    return await offloaded(run_search, searcher, SearchIn(
        q=q, k=k, offset=offset, mode=mode, group=group, date_from=date_from, date_to=date_to, source=source,
        lang=lang, sort=sort, recency=recency, dates=dates, collapse=collapse))


@post("/v1/search", sync_to_thread=True, status_code=200, summary="Search passages (JSON body)",
      operation_id="searchPost", responses=error_responses(400, 413))
def search_post(searcher: Searcher, data: SearchIn) -> SearchOut:
    """The same search as `GET /v1/search`, with the parameters in a JSON body."""
    return run_search(searcher, data)


@get("/v1/answer", sync_to_thread=True, summary="Answer a question with a cited sentence", operation_id="answer",
     responses=_SEARCH_ERRORS)
def answer_get(
    searcher: Searcher,
    q: QueryParam,
    k: Annotated[int, Parameter(description=f"Passages the answer is chosen from, 1..{MAX_K} "
                                            f"(default {DEFAULT_PASSAGES}).",
                                schema_extra={"minimum": 1, "maximum": MAX_K})] = DEFAULT_PASSAGES,
    mode: ModeParam = DEFAULT_MODE,
    date_from: DateFromParam = None,
    date_to: DateToParam = None,
    source: SourceParam = None,
    lang: LangParam = None,
) -> AnswerOut:
    """The sentence of the top passages that best answers `q`, verbatim, with its citation (exact
    character span in the article), the confidence and the passages; `answer` is null with a `reason`
    when the confidence is below the calibrated threshold, or when the filters exclude every article."""
    filters = make_filters(date_from, date_to, source, lang)
    out = answer_out(Answerer(searcher).answer(q, k=k, mode=mode, filters=filters))
    if out.answer is None and not out.passages:
        out.reason = empty_reason(searcher, filters) or out.reason
    return out


NOT_MODIFIED = ResponseSpec(data_container=None, description="Not modified: the If-None-Match ETag is current",
                            generate_examples=False)


@get("/v1/articles/{article_id:path}", summary="One article",
     operation_id="getArticle", responses={**error_responses(400, 404), 304: NOT_MODIFIED},
     middleware=[ConditionalGet()])
async def get_article(request: Request, searcher: Searcher,
                article_id: Annotated[str, Parameter(description="The article id, from a citation; encode it "
                                                                 "whole (`/` too, as `%2F`): ids may hold any "
                                                                 "character.")]
                ) -> Response[ArticleOut]:
    """The whole article: title, date, source, sections and text (citation offsets index into `text`).

    Carries an `ETag` keyed by the index version; send it back as `If-None-Match` for a 304."""
    article_id = path_article_id(request, article_id, "/v1/articles/")
    # Async with an explicit offload (see `offloaded`): DELETE shares this path.
    return Response(article_out(await offloaded(searcher.index.article, article_id)),
                    headers={"ETag": article_etag(searcher.index.version, article_id), "Cache-Control": REVALIDATE})


@get("/v1/sources", sync_to_thread=True, summary="Sources with article counts and date ranges",
     operation_id="listSources", responses=error_responses(400))
def list_sources(searcher: Searcher) -> list[SourceOut]:
    """Every source in the index with its article count, undated articles and first and last date,
    for a `source=` filter (matched in any case)."""
    return source_list(searcher)


def source_list(searcher: Searcher) -> list[SourceOut]:
    return [SourceOut(**s) for s in searcher.index.source_stats()]


@get("/health", summary="Liveness and index facts", security=[{}],
     operation_id="health", responses=error_responses(503, common=False))
async def health(state: State) -> HealthOut:
    """The served index version, its model, counts and build time."""
    # On a worker thread with the version leased: on PostgreSQL these are a few queries.
    return await served(state).read(health_of)


def health_of(searcher: Searcher) -> HealthOut:
    index = searcher.index
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


ROUTES = [search_get, search_post, answer_get, get_article, list_sources, health]
