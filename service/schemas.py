"""Request and response bodies of the HTTP API (msgspec Structs, in the OpenAPI schema)."""

from __future__ import annotations

import msgspec

from indexer.query.answer import AnswerResult
from indexer.query.search import SearchResult
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
    score: float
    text: str
    citation: CitationOut
    dense: float | None = None
    lexical: float | None = None
    highlights: list[SpanOut] = []


class GroupOut(msgspec.Struct):
    """One article of a `group=article` search: its best passages, best first."""

    rank: int
    score: float
    article_id: str
    title: str
    hits: list[HitOut]


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


class SearchIn(msgspec.Struct, forbid_unknown_fields=True):
    q: str
    k: int = 10
    mode: str = "hybrid"
    group: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    source: str | None = None


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


class HealthOut(msgspec.Struct):
    status: str
    index: str
    model: str
    articles: int
    records: int
    chunks: int
    built_at: str


def citation_out(citation: Citation) -> CitationOut:
    return CitationOut(**{f: getattr(citation, f) for f in CitationOut.__struct_fields__})


def hit_out(hit: Hit) -> HitOut:
    return HitOut(
        rank=hit.rank,
        score=round(hit.score, 6),
        text=hit.text,
        citation=citation_out(hit.citation),
        dense=None if hit.dense is None else round(hit.dense, 6),
        lexical=None if hit.lexical is None else round(hit.lexical, 6),
        highlights=[SpanOut(s.start, s.end) for s in hit.highlights],
    )


def search_out(result: SearchResult) -> SearchOut:
    return SearchOut(
        query=result.query, took_ms=round(result.took_ms, 3), mode=result.mode, hits=[hit_out(h) for h in result.hits],
        confidence=round(result.confidence, 4), low_confidence=result.low_confidence, group=result.group,
        groups=[GroupOut(g.rank, round(g.score, 6), g.article_id, g.title, [hit_out(h) for h in g.hits])
                for g in result.groups],
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
    )
