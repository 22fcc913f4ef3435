"""Query-time retrieval over a loaded index: dense, lexical and hybrid.

`Searcher.search` is the one entry point the HTTP API, the CLI, the answer
module, the evaluation harness and the LLM tools share. It validates its input
and raises domain errors.

How a query is ranked:

1. Filters become a set of allowed passages *before* ranking, so both legs
   search only inside it (never "rank, truncate, then filter").
2. Candidates are the union of the top passages of each leg: dense (exact
   cosine over FAISS) and lexical (BM25, Snowball-stemmed).
3. Every candidate then gets *both* leg scores exactly: a passage the dense
   leg did not return is scored by its stored vector · the query vector, one
   the lexical leg did not return by its BM25 score. So every hit reports
   `dense` and `lexical`, in every mode.
4. `hybrid` fuses the two legs by min-max normalised score fusion
   (`HYBRID_ALPHA` on dense). It was picked over reciprocal rank fusion by
   measurement on the SciFact *train* split (README, "Retrieval quality");
   `fusion="rrf"` is kept for comparison.
5. `group="article"` keeps one result per article (its best passage first,
   with up to `GROUP_PASSAGES` passages). An article scores as each leg's best
   passage of the article, fused; with one leg, as its best passage.
6. Highlights: the sentences of each hit that best match the query, as
   character spans into the article text; lexical overlap with the stemmed
   query terms (IDF weighted) needs no model call; a hit that shares no term
   with the query falls back to sentence embeddings, cached per passage.
7. Confidence: a logistic function of the top hits' dense cosine and query
   term coverage, calibrated on `bench/news-qa.jsonl` (`newsqa eval --qa ...
   --calibrate`); below `CONFIDENCE_THRESHOLD` the result is `low_confidence`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from indexer.embed import Embedder
from indexer.errors import InvalidParameter, InvalidQuery
from indexer.store.bm25 import tokenize
from indexer.sentences import split_sentences
from indexer.store.embedded import Index
from indexer.types import Article, Chunk, Citation, Filters, Hit, Span

MAX_QUERY_CHARS = 1000
MAX_K = 100
DEFAULT_K = 10  # results per search when the caller does not say
MODES = ("hybrid", "dense", "lexical")
GROUPS = ("passage", "article")
FUSIONS = ("score", "rrf")
RRF_K = 60
# Weight of the dense leg in normalised score fusion; chosen on SciFact train (see README).
HYBRID_ALPHA = 0.5
# Passages shown per article with group=article.
GROUP_PASSAGES = 3
# Highlights per hit, and the share of the best sentence's score another sentence needs.
MAX_HIGHLIGHTS = 2
HIGHLIGHT_RATIO = 0.6
# A hit sharing no term with the query gets highlights from sentence vectors only within
# the first ranks: embedding a long passage's sentences costs up to seconds on 2 cores
# (measured: 45 SciFact sentences, 4.3 s), and readers look at the top first.
DENSE_HIGHLIGHT_RANKS = 3
# Query vectors kept (least recently used dropped).
QUERY_CACHE = 2048
# Passages whose sentence spans, tokens and vectors are kept for highlights and answers
# (least recently used dropped).
SENTENCE_CACHE = 4096
# Confidence = sigmoid(W0 + W_DENSE * best cosine + W_COVER * best coverage), fitted by
# `newsqa eval --qa bench/news-qa.jsonl --calibrate`; THRESHOLD splits answerable from not.
CONFIDENCE_W0 = -7.371
CONFIDENCE_W_DENSE = 13.362
CONFIDENCE_W_COVER = 8.937
CONFIDENCE_THRESHOLD = 0.5
# Hits whose scores feed the confidence features.
CONFIDENCE_TOP = 3
# Words of the question form, not of its topic; BM25's stop list keeps them, term coverage must not.
_QUESTION_WORDS = re.compile(
    r"\b(who|whom|whose|what|which|when|where|why|how|much|many|does|did|do|can|could|would|should|tell|me)\b",
    re.IGNORECASE,
)


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


def confidence_of(dense: float, coverage: float) -> float:
    """Calibrated probability that the corpus answers the query, from the retrieval signals."""
    z = CONFIDENCE_W0 + CONFIDENCE_W_DENSE * dense + CONFIDENCE_W_COVER * coverage
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class QueryTerms:
    """The stemmed content terms of a query with their BM25 idf weights."""

    weights: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.weights.values())

    def overlap(self, tokens) -> float:
        """IDF-weighted share of the query terms found in `tokens` (0..1)."""
        if not self.weights:
            return 0.0
        present = set(tokens)
        return sum(w for t, w in self.weights.items() if t in present) / self.total


class BoundedCache:
    """A thread-safe mapping that keeps the `size` most recently used entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class Searcher:
    """Ranks passages of one index version for a query. Safe to share between threads."""

    def __init__(
        self, index: Index, embedder: Embedder, *, alpha: float = HYBRID_ALPHA, query_cache: int = QUERY_CACHE
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.alpha = alpha
        self._sentences = BoundedCache(SENTENCE_CACHE)  # chunk id -> (spans, sentence vectors)
        self._analysed = BoundedCache(SENTENCE_CACHE)  # chunk id -> (spans, sentence token sets)
        self._queries = BoundedCache(query_cache)  # query text -> its vector

    def search(
        self,
        query: str,
        *,
        k: int = DEFAULT_K,
        mode: str = "hybrid",
        filters: Filters = Filters(),
        group: str | None = None,
        fusion: str = "score",
        highlights: bool = True,
    ) -> SearchResult:
        """The top `k` passages (or articles with `group="article"`) for `query`."""
        started = time.perf_counter()
        query = validate_query(query)
        validate_k(k)
        validate_mode(mode)
        group = validate_group(group)
        validate_fusion(fusion)
        timings: dict[str, float] = {}
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
        bm25 = self.index.lexical.query_scores(query)
        lexical = self.index.lexical.search(query, depth, allowed, scores=bm25) if mode != "dense" else []
        timings["lexical_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        if mode == "dense":
            candidates = [cid for cid, _ in dense]
        elif mode == "lexical":
            candidates = [cid for cid, _ in lexical]
        else:
            candidates = list(dict.fromkeys([cid for cid, _ in dense] + [cid for cid, _ in lexical]))
        dense_scores = dict(dense)
        dense_scores.update(self._dense_fill([c for c in candidates if c not in dense_scores], vector))
        lexical_scores = dict(lexical)
        missing = [c for c in candidates if c not in lexical_scores]
        lexical_scores.update(self.index.lexical.scores_for(missing, bm25))
        parts = self._parts(mode, fusion, candidates, dense_scores, lexical_scores)
        ranked = sorted(((c, parts[0][c] + parts[1][c]) for c in candidates), key=lambda item: (-item[1], item[0]))
        timings["fuse_ms"] = (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        terms = self.query_terms(query)
        if group == "article":
            hits, groups = self._grouped(ranked, parts, k, dense_scores, lexical_scores)
        else:
            hits, groups = self._hits(ranked[:k], dense_scores, lexical_scores, terms, highlights, vector), []
        if group == "article" and highlights:
            self._highlight_groups(groups, terms, vector)
            hits = [g.hits[0] for g in groups]
        timings["build_ms"] = (time.perf_counter() - t0) * 1000
        signals = self.signals(hits, terms)
        conf = confidence_of(signals["dense"], signals["coverage"]) if hits else 0.0
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000, mode, timings, group, groups,
                            confidence=conf, low_confidence=conf < CONFIDENCE_THRESHOLD, signals=signals)

    def query_vector(self, query: str) -> np.ndarray:
        """The query's unit vector; repeated queries (a page and its answer, paging, popular
        searches) skip the model, which is most of a search's cost."""
        vector = self._queries.get(query)
        if vector is None:
            vector = self.embedder.encode([query])[0]
            vector.flags.writeable = False
            self._queries.put(query, vector)
        return vector

    # --- scoring ------------------------------------------------------------------------

    def _dense_fill(self, chunk_ids: list[int], vector: np.ndarray) -> dict[int, float]:
        """Exact cosine of stored passage vectors the dense leg did not return."""
        if not chunk_ids:
            return {}
        ids = np.asarray(chunk_ids, dtype=np.int64)
        try:
            stored = self.index.vectors.reconstruct_batch(ids)
        except RuntimeError:  # an index type without batch reconstruction
            stored = np.stack([self.index.vectors.reconstruct(int(i)) for i in ids])
        return {int(c): float(s) for c, s in zip(chunk_ids, stored @ vector)}

    def _parts(self, mode, fusion, candidates, dense_scores, lexical_scores) -> tuple[dict, dict]:
        """Each candidate's score as (dense part, lexical part); its ranking score is their sum."""
        zero = dict.fromkeys(candidates, 0.0)
        if not candidates:
            return zero, zero
        if mode == "dense":
            return {c: dense_scores[c] for c in candidates}, zero
        if mode == "lexical":
            return zero, {c: lexical_scores[c] for c in candidates}
        if fusion == "rrf":
            return _reciprocal_rank_parts(candidates, dense_scores, lexical_scores)
        return _score_fusion_parts(candidates, dense_scores, lexical_scores, self.alpha)

    def query_terms(self, query: str) -> QueryTerms:
        """Stemmed content terms of `query` with idf weights; question words say nothing about the topic."""
        tokens = list(dict.fromkeys(tokenize([_QUESTION_WORDS.sub(" ", query)])[0]))
        return QueryTerms(self.index.lexical.idf(tokens))

    def signals(self, hits: list[Hit], terms: QueryTerms) -> dict[str, float]:
        """The confidence features: best dense cosine and best query-term coverage of the top hits."""
        if not hits:
            return {"dense": 0.0, "coverage": 0.0}
        top = hits[:CONFIDENCE_TOP]
        texts = [f"{h.citation.title} {h.citation.section or ''} {h.text}" for h in top]
        return {"dense": max(h.dense or 0.0 for h in top),
                "coverage": max(terms.overlap(tokens) for tokens in tokenize(texts))}

    # --- hits, groups and highlights -----------------------------------------------------

    def _make_hits(self, ranked, dense_scores, lexical_scores) -> tuple[list[Hit], dict[int, Chunk], dict[str, Article]]:
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
        return hits, chunks, articles

    def _hits(self, ranked, dense_scores, lexical_scores, terms, highlights, vector) -> list[Hit]:
        hits, _, _ = self._make_hits(ranked, dense_scores, lexical_scores)
        return self.highlight(hits, terms, vector) if highlights else hits

    def _grouped(self, ranked, parts, k, dense_scores, lexical_scores) -> tuple[list[Hit], list[ArticleGroup]]:
        """One result per article, scored by each leg's best passage of the article, then fused.

        Fusing the legs' per-article best (rather than taking the best fused
        passage) lets a document whose dense and lexical evidence sit in
        different passages rank as it should. The article score is at least
        that of each of its passages, so a group's first hit carries it.
        """
        # Article of each candidate without loading every passage: one query for the ids.
        owner = self._owners([cid for cid, _ in ranked])
        members_of: dict[str, list[tuple[int, float]]] = {}
        best_dense: dict[str, float] = {}
        best_lexical: dict[str, float] = {}
        for cid, score in ranked:
            article_id = owner.get(cid)
            if article_id is None:
                continue
            members = members_of.setdefault(article_id, [])
            if len(members) < GROUP_PASSAGES:
                members.append((cid, score))
            best_dense[article_id] = max(best_dense.get(article_id, -math.inf), parts[0][cid])
            best_lexical[article_id] = max(best_lexical.get(article_id, -math.inf), parts[1][cid])
        article_score = {a: best_dense[a] + best_lexical[a] for a in members_of}
        # Ties keep the passage ranking's order (dicts keep first-seen order; sorted is stable).
        order = sorted(members_of, key=lambda a: -article_score[a])
        kept = [(a, [(members_of[a][0][0], article_score[a]), *members_of[a][1:]]) for a in order[:k]]
        flat = [pair for _, members in kept for pair in members]
        hits, _, articles = self._make_hits(flat, dense_scores, lexical_scores)
        by_chunk = {h.chunk_id: h for h in hits}
        scores = dict(flat)
        groups, best = [], []
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
        return best, groups

    def _highlight_groups(self, groups: list[ArticleGroup], terms: QueryTerms, vector: np.ndarray) -> None:
        flat = [h for g in groups for h in g.hits]
        # A passage belongs to one article, so chunk ids are unique across groups.
        done = {h.chunk_id: h for h in self.highlight(flat, terms, vector)}
        for i, g in enumerate(groups):
            groups[i] = ArticleGroup(g.rank, g.score, g.article_id, g.title, tuple(done[h.chunk_id] for h in g.hits))

    def _owners(self, chunk_ids: list[int]) -> dict[int, str]:
        if not chunk_ids:
            return {}
        owners: dict[int, str] = {}
        # SQLite limits bound parameters; 900 per query stays under every build's limit.
        for start in range(0, len(chunk_ids), 900):
            part = chunk_ids[start : start + 900]
            marks = ",".join("?" * len(part))
            rows = self.index.db().execute(
                f"SELECT chunk_id, article_id FROM chunks WHERE chunk_id IN ({marks})", part).fetchall()
            owners.update((int(r[0]), r[1]) for r in rows)
        return owners

    def highlight(self, hits: list[Hit], terms: QueryTerms, vector: np.ndarray | None) -> list[Hit]:
        """`hits` with `highlights`: spans (article offsets) of the sentences that best match the query.

        Sentences are scored by IDF-weighted overlap with the stemmed query
        terms. A hit among the first `DENSE_HIGHLIGHT_RANKS` with no
        overlapping term (a paraphrase) is scored by cosine between the query
        vector and its sentences' cached vectors; lower ones stay unmarked.
        """
        if not hits:
            return hits
        # Splitting and stemming ten passages costs milliseconds; popular passages recur.
        analysed = {h.chunk_id: self._analyse(h) for h in hits}
        lexical = {cid: [terms.overlap(tokens) for tokens in sentence_tokens]
                   for cid, (_, sentence_tokens) in analysed.items()}
        needs_dense = [h for h in hits[:DENSE_HIGHLIGHT_RANKS]
                       if vector is not None and max(lexical[h.chunk_id], default=0.0) == 0.0]
        dense = self._sentence_scores(needs_dense, vector) if needs_dense else {}
        return [_with_highlights(hit, analysed[hit.chunk_id][0], dense.get(hit.chunk_id) or lexical[hit.chunk_id])
                for hit in hits]

    def _analyse(self, hit: Hit) -> tuple[list[tuple[int, int]], list[frozenset[str]]]:
        """The passage's sentence spans (article offsets) and each sentence's stemmed tokens, cached."""
        found = self._analysed.get(hit.chunk_id)
        if found is None:
            spans = _sentence_spans(hit)
            base = hit.citation.start
            tokens = tokenize([hit.text[s - base : e - base] for s, e in spans]) if spans else []
            found = (spans, [frozenset(t) for t in tokens])
            self._analysed.put(hit.chunk_id, found)
        return found

    def sentence_vectors(self, hits: list[Hit]) -> dict[int, tuple[list[tuple[int, int]], np.ndarray]]:
        """Sentence spans (article offsets) and unit vectors of each hit's passage, cached by chunk id."""
        result, todo = {}, {}
        for hit in hits:
            cached = self._sentences.get(hit.chunk_id)
            if cached is not None:
                result[hit.chunk_id] = cached
            else:
                todo.setdefault(hit.chunk_id, hit)
        if todo:
            spans = {cid: self._analyse(h)[0] for cid, h in todo.items()}
            texts = [h.text[s - h.citation.start : e - h.citation.start] for cid, h in todo.items() for s, e in spans[cid]]
            vectors = self.embedder.encode(texts)
            offset = 0
            for cid in todo:
                n = len(spans[cid])
                entry = (spans[cid], vectors[offset : offset + n])
                offset += n
                self._sentences.put(cid, entry)
                result[cid] = entry
        return result

    def _sentence_scores(self, hits: list[Hit], vector: np.ndarray) -> dict[int, list[float]]:
        found = self.sentence_vectors(hits)
        return {cid: list((vectors @ vector).astype(float)) for cid, (_, vectors) in found.items()}


def _rerank(hit: Hit, rank: int, score: float | None = None) -> Hit:
    return Hit(rank=rank, score=hit.score if score is None else score, text=hit.text, citation=hit.citation, chunk_id=hit.chunk_id,
               dense=hit.dense, lexical=hit.lexical, highlights=hit.highlights)


def _sentence_spans(hit: Hit) -> list[tuple[int, int]]:
    """Sentences of the passage as article offsets (the passage is article.text[start:end])."""
    base = hit.citation.start
    return [(base + s, base + e) for s, e in split_sentences(hit.text)]


def _with_highlights(hit: Hit, spans: list[tuple[int, int]], scores: list[float]) -> Hit:
    if not spans:
        return hit
    best = max(scores)
    if best <= 0:
        return hit
    order = sorted(range(len(spans)), key=lambda i: (-scores[i], i))
    chosen = [i for i in order[:MAX_HIGHLIGHTS] if scores[i] >= HIGHLIGHT_RATIO * best]
    marks = tuple(Span(*spans[i]) for i in sorted(chosen))
    return Hit(rank=hit.rank, score=hit.score, text=hit.text, citation=hit.citation, chunk_id=hit.chunk_id,
               dense=hit.dense, lexical=hit.lexical, highlights=marks)


def _reciprocal_rank_parts(candidates, dense_scores, lexical_scores) -> tuple[dict, dict]:
    """RRF terms 1/(60 + rank) of each leg, each leg ranking all candidates by its exact score."""
    parts = []
    for scores in (dense_scores, lexical_scores):
        order = sorted(candidates, key=lambda c: (-scores[c], c))
        parts.append({cid: 1.0 / (RRF_K + rank) for rank, cid in enumerate(order, start=1)})
    return parts[0], parts[1]


def _score_fusion_parts(candidates, dense_scores, lexical_scores, alpha: float) -> tuple[dict, dict]:
    """alpha · minmax(dense) and (1 − alpha) · minmax(lexical) over the candidate set."""
    d = np.asarray([dense_scores[c] for c in candidates], dtype=np.float64)
    lex = np.asarray([lexical_scores[c] for c in candidates], dtype=np.float64)
    dense_part, lexical_part = alpha * _minmax(d), (1 - alpha) * _minmax(lex)
    return ({c: float(v) for c, v in zip(candidates, dense_part)},
            {c: float(v) for c, v in zip(candidates, lexical_part)})


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        # One value for all: the leg cannot tell the candidates apart.
        return np.zeros_like(values)
    return (values - low) / (high - low)
