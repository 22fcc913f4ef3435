"""Query-time retrieval over a `Store`: dense, lexical and hybrid.

`Searcher.search` is the one entry point the HTTP API, the CLI, the answer
module, the evaluation harness and the LLM tools share. It validates its input
and raises domain errors. It reaches the index only through the `Store`
protocol (`indexer.store.protocols`), never FAISS or SQL.

How a query is ranked:

1. Filters become a set of allowed passages *before* ranking, so both legs
   search only inside it (never "rank, truncate, then filter").
2. Candidates are the union of the top passages of each leg: dense (exact
   cosine) and lexical (BM25, Snowball-stemmed).
3. Every candidate then gets *both* leg scores exactly: a passage the dense
   leg did not return is scored by its stored vector · the query vector, one
   the lexical leg did not return by its BM25 score. So every hit reports
   `dense` and `lexical`, in every mode.
4. `hybrid` fuses the two legs by normalised score fusion whose
   dense weight adapts to the query (`fusion="adaptive"`, `indexer.query.fusion`):
   how sure each leg is of its best candidate sets it (the packaged weights use
   the best cosine and how much of the query the best BM25 hit covers), fitted on
   training data only (`FusionWeights`, `fusion_weights.json`, loaded when the
   Searcher is built). `fusion="score"` (fixed `HYBRID_ALPHA`) and
   `fusion="rrf"` are kept for comparison (README, "Retrieval quality").
5. `group="article"` keeps one result per article (its best passage first,
   with up to `GROUP_PASSAGES` passages). An article scores as each leg's best
   passage of the article, fused; with one leg, as its best passage.
6. Highlights (`indexer.query.highlight`): the sentences of each hit that best
   match the query, as character spans into the article text; lexical overlap
   with the stemmed query terms (IDF weighted) needs no model call; a hit that
   shares no term with the query falls back to sentence embeddings, cached per
   passage.
7. Confidence (`indexer.query.confidence`): a logistic function of the top
   hits' dense cosine and query term coverage, calibrated on
   `bench/news-qa.jsonl`, its weights loaded from `confidence_weights.json`
   (`newsqa eval --qa ... --calibrate --fit-confidence FILE` writes it); below
   `CONFIDENCE_THRESHOLD` the result is `low_confidence`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from indexer.embed import Embedder
from indexer.errors import InvalidParameter, InvalidQuery
from indexer.query import ordering as ordering_
from indexer.query import fusion as fusing
from indexer.query.cache import BoundedCache
from indexer.query.confidence import CONFIDENCE_THRESHOLD, ConfidenceWeights, coverage, signals
from indexer.query.fusion import HYBRID_ALPHA, FusionWeights
from indexer.query.highlight import QueryTerms, Sentences, highlight, query_terms
from indexer.store.protocols import Store
from indexer.types import Article, Chunk, Citation, Filters, Hit

# Re-exported: callers import these from here.
__all__ = [
    "CONFIDENCE_THRESHOLD", "DEFAULT_MODE", "FUSIONS", "GROUPS", "MAX_K", "MAX_QUERY_CHARS", "MODES", "QUERY_CACHE", "ArticleGroup",
    "BoundedCache", "SearchResult", "Searcher", "citation", "make_filters", "span_citation", "validate_fusion",
    "validate_group", "validate_k", "validate_mode", "validate_query",
]

MAX_QUERY_CHARS = 1000
MAX_K = 100
DEFAULT_K = 10  # results per search when the caller does not say
DEFAULT_MODE = "hybrid"  # dense and lexical fused, the mode when the caller does not say
MODES = (DEFAULT_MODE, "dense", "lexical")
GROUPS = ("passage", "article")
FUSIONS = ("adaptive", "score", "rrf")
# Query vectors kept (least recently used dropped).
QUERY_CACHE = 2048
# Articles of a fixed index version kept decoded for citations (least recently used dropped).
ARTICLE_CACHE = 1024


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
        raise InvalidParameter(f"k={k} is out of range: use 1..{MAX_K} (default {DEFAULT_K})", code="invalid_k")
    return k


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidParameter(f"mode={mode!r} is not known: use one of {', '.join(MODES)}", code="invalid_mode")
    return mode


def validate_group(group: str | None) -> str:
    """`passage` (default, also for None or "") or `article`."""
    if group in (None, ""):
        return "passage"
    if group not in GROUPS:
        raise InvalidParameter(
            f"group={group!r} is not known: use group=article for one result per article, "
            "or leave it out for passages", code="invalid_group")
    return group


def validate_fusion(fusion: str) -> str:
    if fusion not in FUSIONS:
        raise InvalidParameter(f"fusion={fusion!r} is not known: use one of {', '.join(FUSIONS)}",
                               code="invalid_fusion")
    return fusion


def make_filters(date_from: str | None = None, date_to: str | None = None, source: str | None = None,
                 lang: str | None = None) -> Filters:
    """Validated filters: dates must be ISO `YYYY-MM-DD` and in order; `lang` a 2- or 3-letter code (en, de)."""
    dates: list[str | None] = []
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
    lang = (lang or "").strip().lower() or None
    if lang is not None and not (lang.isascii() and lang.isalpha() and 2 <= len(lang) <= 3):
        raise InvalidParameter(f"lang={lang!r} is not a language code: write it like en, de or fr",
                               code="invalid_lang")
    return Filters(date_from=dates[0], date_to=dates[1], source=(source or None), lang=lang)


@dataclass(frozen=True)
class ArticleGroup:
    """One article of a `group=article` result: its best passages, best first."""

    rank: int
    score: float
    article_id: str
    title: str
    hits: tuple[Hit, ...]


@dataclass
class SearchResult:
    """Ranked hits (one per article with `group="article"`, then `groups` holds their passages)."""

    query: str
    hits: list[Hit]
    took_ms: float
    mode: str
    timings: dict[str, float] = field(default_factory=dict)
    group: str = "passage"
    groups: list[ArticleGroup] = field(default_factory=list)
    confidence: float = 0.0
    low_confidence: bool = True
    signals: dict[str, float] = field(default_factory=dict)
    # Results (passages, or articles with group="article") ranked within the retrieval depth.
    total: int = 0
    # With collapse="story": chunk id of a hit -> citations of the near-duplicate articles folded under it.
    similar: dict[int, tuple[Citation, ...]] = field(default_factory=dict)
    # The query's stemmed terms and idf weights, for callers that score the hits further.
    terms: QueryTerms = field(default_factory=lambda: QueryTerms({}))


def citation(article: Article, chunk: Chunk) -> Citation:
    """The citation of a passage (its section and paragraph are those of its first character)."""
    return span_citation(article, chunk.start, chunk.end)


def span_citation(article: Article, start: int, end: int) -> Citation:
    """The citation of any span `article.text[start:end]`."""
    return Citation(
        article_id=article.article_id,
        title=article.title,
        date=article.date,
        source=article.source,
        url=article.url,
        section=article.section_at(start),
        start=start,
        end=end,
        paragraph=article.paragraph_at(start),
    )


@dataclass(frozen=True)
class Candidates:
    """The passages one search ranks, with both legs' exact scores, and the query vector."""

    ids: list[int]
    dense: dict[int, float]
    lexical: dict[int, float]
    vector: np.ndarray


class Searcher:
    """Ranks passages of one index version for a query. Safe to share between threads."""

    def __init__(
        self, index: Store, embedder: Embedder, *, alpha: float = HYBRID_ALPHA, query_cache: int = QUERY_CACHE,
        confidence: ConfidenceWeights | None = None, fusion_weights: FusionWeights | None = None,
    ) -> None:
        """`fusion_weights` drive `fusion="adaptive"` (default: the packaged `fusion_weights.json`);
        `alpha` is the fixed dense weight of `fusion="score"`."""
        self.index = index
        self.embedder = embedder
        self.alpha = alpha
        # The fitted confidence model (default: the packaged `confidence_weights.json`).
        self.confidence_weights = confidence or ConfidenceWeights.load()
        self.fusion_weights = fusion_weights if fusion_weights is not None else FusionWeights.load()
        # Sentence spans, tokens and vectors of passages, for highlights and answers.
        self.sentences = Sentences(embedder)
        self._queries: BoundedCache[str, np.ndarray] = BoundedCache(query_cache)  # query text -> its vector
        # A live store (PostgreSQL) changes under the searcher: its articles are read each time.
        self._articles: BoundedCache[str, Article] | None = None if index.live else BoundedCache(ARTICLE_CACHE)

    def search(
        self,
        query: str,
        *,
        k: int = DEFAULT_K,
        mode: str = DEFAULT_MODE,
        filters: Filters = Filters(),
        group: str | None = None,
        fusion: str = "adaptive",
        highlights: bool = True,
        ordering: ordering_.Ordering = ordering_.Ordering(),
    ) -> SearchResult:
        """The top `k` passages (or articles with `group="article"`) for `query`; `ordering` (default:
        relevance) sorts by date, favours recent articles or collapses stories (`indexer.query.ordering`)."""
        started = time.perf_counter()
        query = validate_query(query)
        validate_k(k)
        validate_mode(mode)
        group = validate_group(group)
        validate_fusion(fusion)
        timings: dict[str, float] = {}
        found = self.candidates(query, k=k, mode=mode, group=group, filters=filters, timings=timings)
        candidates, dense_scores, lexical_scores, vector = found.ids, found.dense, found.lexical, found.vector
        t0 = time.perf_counter()
        terms = self.query_terms(query)
        parts = fusing.fuse(mode, fusion, candidates, dense_scores, lexical_scores, self.alpha,
                            weights=self.fusion_weights, idf=terms.weights)
        ranked = fusing.rank(candidates, parts)
        ranked, parts = ordering_.rescore(self.index, query, ranked, parts, ordering, group)
        timings["fuse_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        wanted = ordering_.depth(k, group, ordering)
        if group == "article":
            hits, groups, total = self._grouped(ranked, parts, wanted, dense_scores, lexical_scores)
        else:
            hits, groups = self._hits(ranked[:wanted], dense_scores, lexical_scores, terms, highlights, query), []
            total = len(ranked)
        if group == "article" and highlights:
            self._highlight_groups(groups, terms, query)
            hits = [g.hits[0] for g in groups]
        hits, groups, total, similar = ordering_.arrange(self.index, hits, groups, total, k, ordering, group)
        timings["build_ms"] = (time.perf_counter() - t0) * 1000
        features = signals(hits, terms, self.sentences)
        conf = self.confidence_weights.confidence(features["dense"], features["coverage"]) if hits else 0.0
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000, mode, timings, group, groups,
                            confidence=conf, low_confidence=conf < CONFIDENCE_THRESHOLD, signals=features,
                            total=total, similar=similar, terms=terms)

    def candidates(self, query: str, *, k: int, mode: str, group: str, filters: Filters = Filters(),
                   timings: dict[str, float] | None = None) -> "Candidates":
        """The passages a search ranks for a validated `query` (the union of each leg's top, or one leg's
        top in a one-leg mode) with both legs' exact scores; `timings` gets each step's milliseconds."""
        timings = timings if timings is not None else {}
        allowed = self.index.allowed_chunks(filters)
        # Grouping needs passages from k different articles, and fusion needs both legs deep.
        depth = max(k * 10, 200) if group == "article" else max(k * 5, 100)

        t0 = time.perf_counter()
        vector = self.query_vector(query)
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        # A leg that does not rank (e.g. lexical in dense mode) still scores the candidates below.
        dense = self.index.dense_search(vector, depth, allowed) if mode != "lexical" else []
        timings["dense_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        bm25 = self.index.lexical_terms(query)
        lexical = self.index.lexical_search(bm25, depth, allowed) if mode != "dense" else []
        timings["lexical_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        if mode == "dense":
            ids = [cid for cid, _ in dense]
        elif mode == "lexical":
            ids = [cid for cid, _ in lexical]
        else:
            ids = list(dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in lexical]))
        dense_scores = dict(dense)
        dense_scores.update(self.index.dense_scores([c for c in ids if c not in dense_scores], vector))
        lexical_scores = dict(lexical)
        lexical_scores.update(self.index.lexical_scores([c for c in ids if c not in lexical_scores], bm25))
        timings["score_ms"] = (time.perf_counter() - t0) * 1000
        return Candidates(ids, dense_scores, lexical_scores, vector)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's unit vector; repeated queries (a page and its answer, paging, popular
        searches) skip the model, which is most of a search's cost."""
        vector = self._queries.get(query)
        if vector is None:
            vector = self.embedder.encode([query])[0]
            vector.flags.writeable = False
            self._queries.put(query, vector)
        return vector

    def query_terms(self, query: str) -> QueryTerms:
        """Stemmed content terms of `query` with this store's idf weights."""
        return query_terms(query, self.index.idf)

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]:
        """The store's articles by id (those it holds); a fixed version's are decoded once and kept
        while they recur (hits of popular stories do: decoding was a tenth of a search's CPU)."""
        cache = self._articles
        if cache is None:
            return self.index.articles(article_ids)
        found: dict[str, Article] = {}
        missing = []
        for article_id in dict.fromkeys(article_ids):
            article = cache.get(article_id)
            if article is None:
                missing.append(article_id)
            else:
                found[article_id] = article
        for article_id, article in self.index.articles(missing).items():
            cache.put(article_id, article)
            found[article_id] = article
        return found

    def signals(self, hits: list[Hit], terms: QueryTerms) -> dict[str, float]:
        """The confidence features of `hits` (see `indexer.query.confidence.signals`)."""
        return signals(hits, terms, self.sentences)

    def relevance(self, hits: list[Hit], terms: QueryTerms) -> list[float]:
        """Each hit's calibrated relevance (0..1): the confidence model applied to the hit alone, so
        it means the same for every query, unlike the fused `score` (1.0 for every query's top hit)."""
        return [self.confidence_weights.confidence(h.dense or 0.0, c)
                for h, c in zip(hits, coverage(hits, terms, self.sentences))]

    def _make_hits(self, ranked, dense_scores, lexical_scores) -> tuple[list[Hit], dict[int, Chunk], dict[str, Article]]:
        chunks = self.index.chunks([cid for cid, _ in ranked])
        articles = self.articles(c.article_id for c in chunks.values())
        hits: list[Hit] = []
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
        return hits, chunks, articles

    def _hits(self, ranked, dense_scores, lexical_scores, terms, highlights, query) -> list[Hit]:
        hits, _, _ = self._make_hits(ranked, dense_scores, lexical_scores)
        return highlight(hits, terms, query, self.sentences) if highlights else hits

    def _grouped(self, ranked, parts, k, dense_scores, lexical_scores) -> tuple[list[Hit], list[ArticleGroup], int]:
        """One result per article (`indexer.query.fusion.group_by_article`), its best passage first; and
        the number of articles among the candidates."""
        # Article of each candidate without loading every passage.
        owner = self.index.owners([cid for cid, _ in ranked])
        kept = fusing.group_by_article(ranked, parts, owner, k)
        total = len(set(owner.values()))
        flat = [pair for _, members in kept for pair in members]
        hits, _, articles = self._make_hits(flat, dense_scores, lexical_scores)
        by_chunk = {h.chunk_id: h for h in hits}
        scores = dict(flat)
        groups: list[ArticleGroup] = []
        best: list[Hit] = []
        for rank, (article_id, members) in enumerate(kept, start=1):
            group_hits = tuple(_rerank(by_chunk[cid], i + 1, scores[cid])
                               for i, (cid, _) in enumerate(members) if cid in by_chunk)
            if not group_hits:
                continue
            groups.append(ArticleGroup(rank=len(groups) + 1, score=group_hits[0].score, article_id=article_id,
                                       title=articles[article_id].title, hits=group_hits))
            best.append(_rerank(group_hits[0], len(best) + 1))
        # The flat hits of a grouped result are each article's best passage, ranked by article.
        groups = [ArticleGroup(g.rank, g.score, g.article_id, g.title, (best[i], *g.hits[1:]))
                  for i, g in enumerate(groups)]
        return best, groups, total

    def _highlight_groups(self, groups: list[ArticleGroup], terms: QueryTerms, query: str) -> None:
        flat = [h for g in groups for h in g.hits]
        # A passage belongs to one article, so chunk ids are unique across groups.
        done = {h.chunk_id: h for h in highlight(flat, terms, query, self.sentences)}
        for i, g in enumerate(groups):
            groups[i] = ArticleGroup(g.rank, g.score, g.article_id, g.title, tuple(done[h.chunk_id] for h in g.hits))


def _rerank(hit: Hit, rank: int, score: float | None = None) -> Hit:
    return Hit(rank=rank, score=hit.score if score is None else score, text=hit.text, citation=hit.citation, chunk_id=hit.chunk_id,
               dense=hit.dense, lexical=hit.lexical, highlights=hit.highlights)
