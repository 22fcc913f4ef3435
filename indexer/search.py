"""Query-time retrieval over a loaded index: dense, lexical and hybrid.

`Searcher.search` is the one entry point the HTTP API, the CLI and the LLM
tools share. It validates its input and raises domain errors.
"""

from __future__ import annotations

import time
from datetime import date
from dataclasses import dataclass, field

from indexer.embed import Embedder
from indexer.errors import InvalidParameter, InvalidQuery
from indexer.store import Index
from indexer.types import Article, Chunk, Citation, Filters, Hit

MAX_QUERY_CHARS = 1000
MAX_K = 100
MODES = ("hybrid", "dense", "lexical")
RRF_K = 60


def validate_query(query: str | None) -> str:
    """The stripped query, or InvalidQuery saying what is wrong and how to fix it."""
    if query is None or not query.strip():
        raise InvalidQuery("the query is empty: pass some words to search for, e.g. q=Toktogul+water+levels",
                           code="empty_query")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(
            f"the query is {len(query)} characters long, the limit is {MAX_QUERY_CHARS}: shorten it",
            code="query_too_long",
        )
    return query


def validate_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise InvalidParameter(f"k={k} is out of range: use 1..{MAX_K} (default 10)", code="invalid_k")
    return k


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidParameter(f"mode={mode!r} is not known: use one of {', '.join(MODES)}", code="invalid_mode")
    return mode


def make_filters(date_from: str | None = None, date_to: str | None = None, source: str | None = None) -> Filters:
    """Validated filters: dates must be ISO `YYYY-MM-DD` and in order."""
    dates = []
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if value in (None, ""):
            dates.append(None)
            continue
        try:
            dates.append(date.fromisoformat(value.strip()).isoformat())
        except ValueError:
            raise InvalidParameter(
                f"{name}={value!r} is not a date: write it as YYYY-MM-DD, e.g. 2025-12-16", code="invalid_date"
            ) from None
    if dates[0] and dates[1] and dates[0] > dates[1]:
        raise InvalidParameter(
            f"date_from={dates[0]} is after date_to={dates[1]}: swap them", code="invalid_date_range"
        )
    return Filters(date_from=dates[0], date_to=dates[1], source=(source or None))


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    took_ms: float
    mode: str
    timings: dict[str, float] = field(default_factory=dict)


def citation(article: Article, chunk: Chunk) -> Citation:
    return Citation(
        article_id=article.article_id,
        title=article.title,
        date=article.date,
        source=article.source,
        url=article.url,
        section=chunk.section,
        start=chunk.start,
        end=chunk.end,
        paragraph=chunk.paragraph,
    )


class Searcher:
    """Ranks passages of one index version for a query."""

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def search(
        self, query: str, *, k: int = 10, mode: str = "hybrid", filters: Filters = Filters()
    ) -> SearchResult:
        started = time.perf_counter()
        query = validate_query(query)
        validate_k(k)
        validate_mode(mode)
        timings: dict[str, float] = {}
        allowed = self.index.allowed_chunks(filters)
        depth = max(k * 5, 100)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if mode in ("dense", "hybrid"):
            t0 = time.perf_counter()
            vector = self.embedder.encode([query])[0]
            timings["embed_ms"] = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            dense = self.index.dense_search(vector, depth if mode == "hybrid" else k, allowed)
            timings["dense_ms"] = (time.perf_counter() - t0) * 1000
        if mode in ("lexical", "hybrid"):
            t0 = time.perf_counter()
            lexical = self.index.lexical_search(query, depth if mode == "hybrid" else k, allowed)
            timings["lexical_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        if mode == "dense":
            ranked = dense[:k]
        elif mode == "lexical":
            ranked = lexical[:k]
        else:
            ranked = _reciprocal_rank_fusion([dense, lexical])[:k]
        hits = self._hits(ranked, dense_scores, lexical_scores)
        timings["build_ms"] = (time.perf_counter() - t0) * 1000
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000, mode, timings)

    def _hits(self, ranked, dense_scores, lexical_scores) -> list[Hit]:
        chunks = self.index.chunks([cid for cid, _ in ranked])
        articles = self.index.articles(c.article_id for c in chunks.values())
        hits = []
        for cid, score in ranked:
            chunk = chunks.get(cid)
            if chunk is None:
                continue
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=float(score),
                    text=chunk.text,
                    citation=citation(articles[chunk.article_id], chunk),
                    chunk_id=cid,
                    dense=dense_scores.get(cid),
                    lexical=lexical_scores.get(cid),
                )
            )
        return hits


def _reciprocal_rank_fusion(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (cid, _) in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
