"""JSON API route handlers: `/v1/search`, `/v1/answer`, `/v1/articles/{id}`, `/v1/sources`, `/health`.

Query parameters are declared once here (`QueryParam`, `ModeParam`, ...) with the
description and the enum or format the OpenAPI schema shows; the values are
still checked by the domain validators, whose messages say how to fix them.
Every route documents its errors in the one error shape (`error_responses`).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Annotated

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from indexer.errors import InvalidParameter
from indexer.query.answer import DEFAULT_PASSAGES, Answerer
from indexer.query.search import GROUPS, MAX_K, MAX_QUERY_CHARS, MODES, Searcher, make_filters, validate_k, \
    validate_query
from indexer.types import Filters
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

DEFAULT_K = 10
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
# Keyword arguments a handler receives that are not query parameters.
_NOT_QUERY = frozenset({"request", "state", "data", "scope", "headers", "cookies", "body", "query"})


def reject_unknown_params(request: Request) -> None:
    """Before every `/v1` route: a query parameter the route does not take is a 400 that names it,
    and a missing `q` the usual `empty_query` 400 (not the framework's generic message).

    A typo (`dat_from=`) would otherwise be ignored silently and look like a bug in
    the results. Pages (`/`, `/articles/...`) ignore unknown parameters instead:
    shared links often carry tracking parameters.
    """
    if not request.url.path.startswith("/v1/"):
        return
    handler = request.scope["route_handler"]
    known = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies()) - _NOT_QUERY
    known -= set(request.path_params)
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise InvalidParameter(
            f"unknown query parameter {', '.join(repr(u) for u in unknown)} for {request.url.path}: "
            f"it takes {takes}", code="unknown_parameter")
    if "q" in known and "q" not in request.query_params:
        validate_query(None)  # the required query, missing: the domain error says how to write one


def validate_page(k: int, offset: int) -> None:
    validate_k(k)
    if offset < 0 or offset + k > MAX_K:
        raise InvalidParameter(
            f"offset={offset} with k={k} is out of range: use offset >= 0 and offset + k <= {MAX_K} "
            f"(results deeper than rank {MAX_K} are not served; narrow the query or add filters)",
            code="invalid_offset")


def empty_reason(searcher: Searcher, filters: Filters) -> str | None:
    """Why a search with `filters` found nothing when the filters caused it, else None.

    Each filter is tried alone: the ones that match no article are named, with
    what the index holds instead (its sources, its date range, undated articles).
    """
    if filters.empty:
        return None
    index = searcher.index
    if len(index.allowed_chunks(filters)) > 0:
        return None  # passages pass the filters: the query found nothing among them
    stats = index.source_stats()
    dated = [s for s in stats if s["date_from"]]
    first = min((s["date_from"] for s in dated), default=None)
    last = max((s["date_to"] for s in dated), default=None)
    undated = sum(s["undated"] for s in stats)
    parts = []
    if filters.source and not len(index.allowed_chunks(Filters(source=filters.source))):
        names = ", ".join(s["name"] for s in stats[:20]) or "none"
        parts.append(f"source={filters.source!r} matches no article (sources: {names}; GET /v1/sources lists them)")
    for name, value in (("date_from", filters.date_from), ("date_to", filters.date_to)):
        if value and not len(index.allowed_chunks(Filters(**{name: value}))):
            span = f"articles are dated {first} to {last}" if first else "no article has a date"
            parts.append(f"{name}={value} matches no article ({span})")
    if not parts:
        parts.append("no article matches all the filters together (each matches some articles alone)")
    if (filters.date_from or filters.date_to) and undated:
        parts.append(f"date filters exclude the {undated} undated article{'s' if undated != 1 else ''}: "
                     "leave out date_from/date_to to include them")
    return "the filters exclude every article: " + "; ".join(parts)


def run_search(searcher: Searcher, body: SearchIn) -> SearchOut:
    """One page of the search: ranks offset+1..offset+k, with totals, relevance and an empty reason."""
    validate_page(body.k, body.offset)
    filters = make_filters(body.date_from, body.date_to, body.source)
    result = searcher.search(body.q, k=body.offset + body.k, mode=body.mode, filters=filters, group=body.group)
    page = replace(result, hits=result.hits[body.offset:], groups=result.groups[body.offset:])
    hits = page.hits + [h for g in page.groups for h in g.hits]
    terms = searcher.query_terms(result.query)
    relevance = dict(zip((h.chunk_id for h in hits), searcher.relevance(hits, terms)))
    total = min(result.total, MAX_K)
    reason = empty_reason(searcher, filters) if not result.hits else None
    return search_out(page, relevance, offset=body.offset, total=total,
                      more=body.offset + len(page.hits) < total, reason=reason)


_SEARCH_ERRORS = error_responses(400)


@get("/v1/search", sync_to_thread=True, summary="Search passages", operation_id="search",
     responses=_SEARCH_ERRORS)
def search_get(
    searcher: Searcher,
    q: QueryParam,
    k: KParam = DEFAULT_K,
    offset: OffsetParam = 0,
    mode: ModeParam = "hybrid",
    group: GroupParam = None,
    date_from: DateFromParam = None,
    date_to: DateToParam = None,
    source: SourceParam = None,
) -> SearchOut:
    """Ranked passages for `q`, each with a citation (article, date, section, character offsets), its
    fused `score`, a calibrated `relevance` (0..1, comparable across queries), per-leg scores (`dense`,
    `lexical`) and highlights; `mode=dense|lexical|hybrid`; `group=article` for one result per article;
    `offset` pages, `total` and `more` say how many results there are; `low_confidence` when the index
    does not seem to answer `q`; `reason` when the filters exclude every article."""
    return run_search(searcher, SearchIn(q=q, k=k, offset=offset, mode=mode, group=group, date_from=date_from,
                                         date_to=date_to, source=source))


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
    mode: ModeParam = "hybrid",
    date_from: DateFromParam = None,
    date_to: DateToParam = None,
    source: SourceParam = None,
) -> AnswerOut:
    """The sentence of the top passages that best answers `q`, verbatim, with its citation (exact
    character span in the article), the confidence and the passages; `answer` is null with a `reason`
    when the confidence is below the calibrated threshold, or when the filters exclude every article."""
    filters = make_filters(date_from, date_to, source)
    out = answer_out(Answerer(searcher).answer(q, k=k, mode=mode, filters=filters))
    if out.answer is None and not out.passages:
        out.reason = empty_reason(searcher, filters) or out.reason
    return out


def article_etag(version: str, key: str) -> str:
    """A weak ETag for a response about `key` in index `version` (a new version changes it); weak
    because gzip and identity encodings of the response share it."""
    return 'W/"' + hashlib.sha256(f"{version}\0{key}".encode()).hexdigest()[:32] + '"'


NOT_MODIFIED = ResponseSpec(data_container=None, description="Not modified: the If-None-Match ETag is current",
                            generate_examples=False)
# Clients may keep an article but must revalidate it: a reload can change or remove it.
REVALIDATE = "no-cache"


class ConditionalGet(ASGIMiddleware):
    """Answers a GET whose `If-None-Match` names the response's ETag with a bodiless 304.

    The handler runs as usual (a missing article is still a 404); only a 200 with
    a matching ETag becomes a 304, keeping its ETag and Cache-Control.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        wanted = {_opaque(t) for name, value in scope.get("headers", ()) if name == b"if-none-match"
                  for t in value.decode("latin-1").split(",")}
        if not wanted or scope["method"] not in ("GET", "HEAD"):
            await next_app(scope, receive, send)
            return
        swallowing = False

        async def conditional_send(message: Message) -> None:
            nonlocal swallowing
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = dict(message.get("headers", ()))
                etag = _opaque(headers.get(b"etag", b"").decode("latin-1"))
                if etag and (etag in wanted or "*" in wanted):
                    swallowing = True
                    kept = [(k, v) for k, v in message.get("headers", ()) if k in _KEPT_ON_304]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b""})
                    return
            if swallowing:
                return
            await send(message)

        await next_app(scope, receive, conditional_send)


_KEPT_ON_304 = frozenset({b"etag", b"cache-control", b"vary", b"last-modified"})


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag: If-None-Match compares weakly (RFC 9110, 13.1.2)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


@get("/v1/articles/{article_id:str}", sync_to_thread=True, summary="One article",
     operation_id="getArticle", responses={**error_responses(400, 404), 304: NOT_MODIFIED},
     middleware=[ConditionalGet()])
def get_article(searcher: Searcher,
                article_id: Annotated[str, Parameter(description="The article id, from a citation.")]
                ) -> Response[ArticleOut]:
    """The whole article: title, date, source, sections and text (citation offsets index into `text`).

    Carries an `ETag` keyed by the index version; send it back as `If-None-Match` for a 304."""
    return Response(article_out(searcher.index.article(article_id)),
                    headers={"ETag": article_etag(searcher.index.version, article_id), "Cache-Control": REVALIDATE})


@get("/v1/sources", sync_to_thread=True, summary="Sources with article counts and date ranges",
     operation_id="listSources", responses=error_responses(400))
def list_sources(searcher: Searcher) -> list[SourceOut]:
    """Every source in the index with its article count, undated articles and first and last date,
    for a `source=` filter (matched in any case)."""
    return source_list(searcher)


def source_list(searcher: Searcher) -> list[SourceOut]:
    return [SourceOut(**s) for s in searcher.index.source_stats()]


@get("/health", sync_to_thread=False, summary="Liveness and index facts", security=[{}],
     operation_id="health", responses=error_responses(503, common=False))
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


ROUTES = [search_get, search_post, answer_get, get_article, list_sources, health]
