"""Request and response bodies of the HTTP API (msgspec Structs, in the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.openapi import ResponseSpec

from indexer.query.answer import AnswerResult
from indexer.query.ordering import COLLAPSES, MAX_HALF_LIFE_DAYS, QUERY_DATE_MODES, SORTS
from indexer.query.search import DEFAULT_K, DEFAULT_MODE, GROUPS, MAX_K, MAX_QUERY_CHARS, MODES, SearchResult
from indexer.types import Article, Citation, Hit


class CitationOut(msgspec.Struct):
    article_id: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    section: str | None
    start: int
    end: int
    paragraph: int


class SpanOut(msgspec.Struct):
    start: int
    end: int


class HitOut(msgspec.Struct):
    rank: int
    # The fused ranking score: it orders this query's hits (the top hit of any query scores 1.0).
    score: float
    text: str
    citation: CitationOut
    dense: float | None = None
    lexical: float | None = None
    highlights: list[SpanOut] = []
    # Calibrated relevance (0..1) of this passage alone: comparable across queries, so a client can
    # threshold it; a nonsense query's top hit scores low. Absent on answer passages.
    relevance: float | None = None
    # With collapse=story: the near-duplicate articles (syndicated rewrites) folded under this result.
    similar: list[CitationOut] = []


class GroupOut(msgspec.Struct):
    """One article of a `group=article` search: its best passages, best first."""

    rank: int
    score: float
    article_id: str
    title: str
    hits: list[HitOut]
    relevance: float | None = None


class SearchOut(msgspec.Struct):
    query: str
    took_ms: float
    mode: str
    hits: list[HitOut]
    # Calibrated probability that the index answers the query; below the threshold `low_confidence`.
    confidence: float = 0.0
    low_confidence: bool = False
    group: str = "passage"
    groups: list[GroupOut] = []
    # Paging: `hits` are ranks offset+1..; `total` results are ranked for the query within the
    # retrieval depth (at most MAX_K, the deepest rank served); `more` when a next page exists.
    offset: int = 0
    total: int = 0
    more: bool = False
    # Why `hits` is empty when a filter emptied it (which filter, and how to widen it); else null.
    reason: str | None = None


class AnswerSpanOut(msgspec.Struct):
    """The short answer: the exact answer phrase inside the sentence, `article.text[start:end] == text`."""

    text: str
    start: int
    end: int


class AnswerTextOut(msgspec.Struct):
    """A sentence (or two adjacent ones) taken verbatim from an article, with its exact span, and the
    short answer inside it (`span`, null when no phrase of the asked type was found)."""

    text: str
    citation: CitationOut
    span: AnswerSpanOut | None = None


class AnswerOut(msgspec.Struct):
    query: str
    answer: AnswerTextOut | None
    confidence: float
    passages: list[HitOut]
    # Why `answer` is null (low confidence or nothing found); null when there is an answer.
    reason: str | None = None
    took_ms: float = 0.0


def doc(description: str, **schema: Any) -> msgspec.Meta:
    """Documentation of a body field for the OpenAPI schema only (`schema`: e.g. enum=..., format=...).

    The domain validators check the values, with messages that say how to fix them.
    """
    return msgspec.Meta(extra_json_schema={"description": description, "extra": schema or None})


DATE = {"format": "date"}


class SearchIn(msgspec.Struct, forbid_unknown_fields=True):
    """The parameters of `GET /v1/search` as a JSON body (unknown fields are a 400)."""

    q: Annotated[str, doc("What to look for, in plain words; 1..1000 characters.", min_length=1,
                          max_length=MAX_QUERY_CHARS)]
    k: Annotated[int, doc(f"Results per page, 1..{MAX_K}; offset + k <= {MAX_K}.", minimum=1,
                          maximum=MAX_K)] = DEFAULT_K
    offset: Annotated[int, doc("Results to skip (paging).", minimum=0, maximum=MAX_K - 1)] = 0
    mode: Annotated[str, doc("Ranking: hybrid (default), dense (meaning) or lexical (exact words).",
                             enum=list(MODES))] = DEFAULT_MODE
    group: Annotated[str | None, doc("passage (default) or article: one result per article.",
                                     enum=[*GROUPS, None])] = None
    date_from: Annotated[str | None, doc("Only articles dated on or after this day (YYYY-MM-DD).", **DATE)] = None
    date_to: Annotated[str | None, doc("Only articles dated on or before this day (YYYY-MM-DD).", **DATE)] = None
    source: Annotated[str | None, doc("Only articles from this source (any case); see GET /v1/sources.")] = None
    lang: Annotated[str | None, doc("Only articles in this language (ISO 639-1 code, e.g. en).")] = None
    sort: Annotated[str | None, doc("relevance (default) or date: the relevant results newest first.",
                                    enum=[*SORTS, None])] = None
    recency: Annotated[str | int | float | None, doc(
        f"Half-life in days (e.g. 30 or \"30d\", up to {MAX_HALF_LIFE_DAYS}) favouring newer articles; "
        "age counts from the index's newest article.")] = None
    dates: Annotated[str | None, doc("auto: favour articles of a year or month named in the query; off (default).",
                                     enum=[*QUERY_DATE_MODES, None])] = None
    collapse: Annotated[str | None, doc("story: fold near-duplicate articles into one result with `similar`.",
                                        enum=[*COLLAPSES, None])] = None


class SectionOut(msgspec.Struct):
    title: str | None
    start: int
    end: int


class ArticleOut(msgspec.Struct):
    article_id: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    kind: str
    sections: list[SectionOut]
    paragraphs: list[tuple[int, int]]
    text: str
    lang: str | None = None


class HealthOut(msgspec.Struct):
    status: str
    index: str
    model: str
    articles: int
    records: int
    chunks: int
    built_at: str


class SourceOut(msgspec.Struct):
    """One source of the index: its article count and date range (null when none is dated)."""

    name: str
    articles: int
    # Articles without a date: a date filter excludes them.
    undated: int
    date_from: str | None
    date_to: str | None


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorOut(msgspec.Struct):
    """Every error: a stable `code` to branch on and a `message` that says how to fix the request."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Invalid request: a parameter is missing, unknown, malformed or out of range",
    401: "Missing or wrong API key (only when the server runs with an API key)",
    403: "Admin routes need the admin key (refused when the server has none)",
    404: "No such article, tool or route",
    413: "Request body larger than the server's limit",
    429: "Rate limited: retry after the Retry-After seconds",
    503: "The request took longer than the server's time budget, or no index is loaded",
}
# Statuses any guarded route can answer, whatever it does: auth, rate limit, time budget.
COMMON_ERRORS = (401, 429, 503)


def error_responses(*statuses: int, common: bool = True) -> dict[int, ResponseSpec]:
    """OpenAPI responses for `statuses` (plus COMMON_ERRORS with `common`), all in the one error shape."""
    return {status: ResponseSpec(data_container=ErrorOut, description=ERROR_DESCRIPTIONS[status],
                                 generate_examples=False)
            for status in sorted({*statuses, *(COMMON_ERRORS if common else ())})}


def citation_out(citation: Citation) -> CitationOut:
    return CitationOut(**{f: getattr(citation, f) for f in CitationOut.__struct_fields__})


def hit_out(hit: Hit, relevance: float | None = None, similar=()) -> HitOut:
    return HitOut(
        similar=[citation_out(c) for c in similar],
        relevance=None if relevance is None else round(relevance, 4),
        rank=hit.rank,
        score=round(hit.score, 6),
        text=hit.text,
        citation=citation_out(hit.citation),
        dense=None if hit.dense is None else round(hit.dense, 6),
        lexical=None if hit.lexical is None else round(hit.lexical, 6),
        highlights=[SpanOut(s.start, s.end) for s in hit.highlights],
    )


def search_out(result: SearchResult, relevance: dict[int, float] | None = None, *, offset: int = 0,
               total: int | None = None, more: bool = False, reason: str | None = None) -> SearchOut:
    """The API body of `result`; `relevance` maps chunk ids to their calibrated relevance;
    `total` defaults to the result's own."""
    relevance = relevance or {}

    def out(h: Hit) -> HitOut:
        return hit_out(h, relevance.get(h.chunk_id), result.similar.get(h.chunk_id, ()))

    return SearchOut(
        query=result.query, took_ms=round(result.took_ms, 3), mode=result.mode, hits=[out(h) for h in result.hits],
        confidence=round(result.confidence, 4), low_confidence=result.low_confidence, group=result.group,
        groups=[GroupOut(g.rank, round(g.score, 6), g.article_id, g.title, [out(h) for h in g.hits],
                         relevance=out(g.hits[0]).relevance if g.hits else None)
                for g in result.groups],
        offset=offset, total=result.total if total is None else total, more=more, reason=reason,
    )


def answer_out(result: AnswerResult) -> AnswerOut:
    answer = None
    if result.answer is not None:
        s = result.answer.span
        answer = AnswerTextOut(text=result.answer.text, citation=citation_out(result.answer.citation),
                               span=AnswerSpanOut(s.text, s.start, s.end) if s is not None else None)
    return AnswerOut(query=result.query, answer=answer, confidence=round(result.confidence, 4),
                     passages=[hit_out(h) for h in result.passages], reason=result.reason,
                     took_ms=round(result.took_ms, 3))


def article_out(article: Article) -> ArticleOut:
    return ArticleOut(
        article_id=article.article_id,
        title=article.title,
        date=article.date,
        source=article.source,
        url=article.url,
        kind=article.kind,
        sections=[SectionOut(s.title, s.start, s.end) for s in article.sections],
        paragraphs=[tuple(p) for p in article.paragraphs],
        text=article.text,
        lang=article.lang,
    )
