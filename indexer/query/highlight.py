"""Highlights: the sentences of each hit that best match the query, as character spans into the article.

Sentences are scored by IDF-weighted overlap with the stemmed query terms,
which needs no model call. A hit among the first `DENSE_HIGHLIGHT_RANKS` that
shares no term with the query (a paraphrase) falls back to cosine between the
query vector and its sentences' vectors; lower ones stay unmarked.

`Sentences` caches each passage's sentence spans, tokens and vectors by chunk
id; the answer module picks its answer sentence from the same cache
(`Sentences.vectors`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from indexer.embed import Embedder
from indexer.query.cache import BoundedCache
from indexer.sentences import split_sentences
from indexer.store.bm25 import tokenize
from indexer.types import Hit, Span

# Highlights per hit, and the share of the best sentence's score another sentence needs.
MAX_HIGHLIGHTS = 2
HIGHLIGHT_RATIO = 0.6
# A hit sharing no term with the query gets highlights from sentence vectors only within
# the first ranks: embedding a long passage's sentences costs up to seconds on 2 cores
# (measured: 45 SciFact sentences, 4.3 s), and readers look at the top first.
DENSE_HIGHLIGHT_RANKS = 3
# Passages whose sentence spans, tokens and vectors are kept for highlights and answers
# (least recently used dropped).
SENTENCE_CACHE = 4096
# Words of the question form, not of its topic; BM25's stop list keeps them, term coverage must not.
_QUESTION_WORDS = re.compile(
    r"\b(who|whom|whose|what|which|when|where|why|how|much|many|does|did|do|can|could|would|should|tell|me)\b",
    re.IGNORECASE,
)

SentenceSpans = list[tuple[int, int]]


@dataclass(frozen=True)
class QueryTerms:
    """The stemmed content terms of a query with their BM25 idf weights."""

    weights: dict[str, float]

    @cached_property
    def total(self) -> float:
        return sum(self.weights.values())

    @cached_property
    def _items(self) -> tuple[tuple[str, float], ...]:
        return tuple(self.weights.items())

    def overlap(self, tokens: Sequence[str] | frozenset[str]) -> float:
        """IDF-weighted share of the query terms found in `tokens` (0..1)."""
        # Called for every sentence of every hit (~60 per search): the loop is kept lean.
        items = self._items
        if not items:
            return 0.0
        present = tokens if isinstance(tokens, (set, frozenset)) else set(tokens)
        found = 0.0
        for term, weight in items:
            if term in present:
                found += weight
        return found / self.total


def query_terms(query: str, idf: Callable[[Sequence[str]], dict[str, float]]) -> QueryTerms:
    """Stemmed content terms of `query` weighted by `idf` (a store's); question words say nothing
    about the topic."""
    tokens = list(dict.fromkeys(tokenize([_QUESTION_WORDS.sub(" ", query)])[0]))
    return QueryTerms(idf(tokens))


class Sentences:
    """Sentence spans (article offsets), stemmed tokens and unit vectors of passages, cached by
    chunk id (chunk ids name passages within one store, so one instance serves one store).
    Thread-safe."""

    def __init__(self, embedder: Embedder, *, size: int = SENTENCE_CACHE) -> None:
        self.embedder = embedder
        self._analysed: BoundedCache[int, tuple[SentenceSpans, list[frozenset[str]]]] = BoundedCache(size)
        self._vectors: BoundedCache[int, tuple[SentenceSpans, np.ndarray]] = BoundedCache(size)
        self._terms: BoundedCache[int, frozenset[str]] = BoundedCache(size)

    def terms(self, hit: Hit) -> frozenset[str]:
        """The stemmed tokens of the passage with its title and section (what term coverage counts)."""
        found = self._terms.get(hit.chunk_id)
        if found is None:
            # A search scores the coverage of every hit it returns: stemming ten passages per
            # request was a quarter of a search's CPU outside the model.
            found = frozenset(tokenize([f"{hit.citation.title} {hit.citation.section or ''} {hit.text}"])[0])
            self._terms.put(hit.chunk_id, found)
        return found

    def analyse(self, hit: Hit) -> tuple[SentenceSpans, list[frozenset[str]]]:
        """The passage's sentence spans (article offsets) and each sentence's stemmed tokens."""
        found = self._analysed.get(hit.chunk_id)
        if found is None:
            spans = _sentence_spans(hit)
            base = hit.citation.start
            tokens = tokenize([hit.text[s - base : e - base] for s, e in spans]) if spans else []
            found = (spans, [frozenset(t) for t in tokens])
            self._analysed.put(hit.chunk_id, found)
        return found

    def vectors(self, hits: Sequence[Hit]) -> dict[int, tuple[SentenceSpans, np.ndarray]]:
        """Sentence spans (article offsets) and unit vectors of each hit's passage, by chunk id."""
        result: dict[int, tuple[SentenceSpans, np.ndarray]] = {}
        todo: dict[int, Hit] = {}
        for hit in hits:
            cached = self._vectors.get(hit.chunk_id)
            if cached is not None:
                result[hit.chunk_id] = cached
            else:
                todo.setdefault(hit.chunk_id, hit)
        if todo:
            spans = {cid: self.analyse(h)[0] for cid, h in todo.items()}
            texts = [h.text[s - h.citation.start : e - h.citation.start] for cid, h in todo.items() for s, e in spans[cid]]
            vectors = self.embedder.encode(texts)
            offset = 0
            for cid in todo:
                n = len(spans[cid])
                entry = (spans[cid], vectors[offset : offset + n])
                offset += n
                self._vectors.put(cid, entry)
                result[cid] = entry
        return result


def highlight(hits: list[Hit], terms: QueryTerms, vector: np.ndarray | None, sentences: Sentences) -> list[Hit]:
    """`hits` with `highlights`: spans (article offsets) of the sentences that best match the query
    (see the module docstring); `vector` None turns the dense fallback off."""
    if not hits:
        return hits
    # Splitting and stemming ten passages costs milliseconds; popular passages recur.
    analysed = {h.chunk_id: sentences.analyse(h) for h in hits}
    lexical = {cid: [terms.overlap(tokens) for tokens in sentence_tokens]
               for cid, (_, sentence_tokens) in analysed.items()}
    needs_dense = [h for h in hits[:DENSE_HIGHLIGHT_RANKS]
                   if vector is not None and max(lexical[h.chunk_id], default=0.0) == 0.0]
    dense: dict[int, list[float]] = {}
    if needs_dense and vector is not None:
        dense = {cid: list((vectors @ vector).astype(float))
                 for cid, (_, vectors) in sentences.vectors(needs_dense).items()}
    return [_with_highlights(hit, analysed[hit.chunk_id][0], dense.get(hit.chunk_id) or lexical[hit.chunk_id])
            for hit in hits]


def _sentence_spans(hit: Hit) -> SentenceSpans:
    """Sentences of the passage as article offsets (the passage is article.text[start:end])."""
    base = hit.citation.start
    return [(base + s, base + e) for s, e in split_sentences(hit.text)]


def _with_highlights(hit: Hit, spans: SentenceSpans, scores: list[float]) -> Hit:
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
