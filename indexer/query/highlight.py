"""Highlights: the sentences of each hit that best match the query, as character spans into the article.

Sentences are scored by IDF-weighted overlap with the stemmed query terms,
which needs no model call. A hit that shares no term with the query (a
paraphrase) falls back to word-level similarity: the model's wordpiece (input)
embeddings of the query against each sentence's (`Embedder.wordpiece_vectors`),
which still needs no model call.

`Sentences` caches each passage's sentence spans, tokens, wordpiece vectors and
sentence vectors by chunk id; the answer module picks its answer sentence from
the same cache (`Sentences.vectors`).
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
# Sentence vectors from the model would pick a paraphrase's sentence better, but embedding a
# passage's sentences costs ~12 ms each on 2 cores: searches whose top hits shared no term with
# the query took 100 ms more. Wordpiece similarity agrees with the model's choice on 53% of
# such SciFact hits (the first sentence: 39%; chance: 29%), and the model's choice is among
# its two highlights on 83% (measured over 87 hits from 1,109 claims, 1,000-abstract index).
# Passages whose sentence spans, tokens and vectors are kept for highlights and answers
# (least recently used dropped).
SENTENCE_CACHE = 4096
# Words of the question form, not of its topic; BM25's stop list keeps them, term coverage must not.
QUESTION_WORDS = re.compile(
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
    tokens = list(dict.fromkeys(tokenize([QUESTION_WORDS.sub(" ", query)])[0]))
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
        self._wordpieces: BoundedCache[int, tuple[np.ndarray, np.ndarray]] = BoundedCache(size)

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

    def wordpieces(self, hit: Hit) -> tuple[np.ndarray, np.ndarray]:
        """The passage's content wordpiece vectors (`Embedder.wordpiece_vectors`), ordered by
        position, and the index of the sentence (in `analyse`'s spans) each one falls in."""
        found = self._wordpieces.get(hit.chunk_id)
        if found is None:
            spans = self.analyse(hit)[0]
            vectors, offsets = self.embedder.wordpiece_vectors(hit.text)
            ends = np.array([e - hit.citation.start for _, e in spans], dtype=np.int64)
            which = np.searchsorted(ends, offsets, side="right")
            inside = which < len(spans)  # text between or after the sentences counts for none
            found = (vectors[inside], which[inside])
            self._wordpieces.put(hit.chunk_id, found)
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


def highlight(hits: list[Hit], terms: QueryTerms, query: str | None, sentences: Sentences) -> list[Hit]:
    """`hits` with `highlights`: spans (article offsets) of the sentences that best match the query
    (see the module docstring); `query` None turns the wordpiece fallback off."""
    if not hits:
        return hits
    # Splitting and stemming ten passages costs milliseconds; popular passages recur.
    analysed = {h.chunk_id: sentences.analyse(h) for h in hits}
    scores = {cid: [terms.overlap(tokens) for tokens in sentence_tokens]
              for cid, (_, sentence_tokens) in analysed.items()}
    paraphrases = [h for h in hits if query is not None and max(scores[h.chunk_id], default=0.0) == 0.0]
    if paraphrases and query is not None:
        wanted = sentences.embedder.wordpiece_vectors(QUESTION_WORDS.sub(" ", query))[0]
        for hit in paraphrases:
            scores[hit.chunk_id] = word_similarity(wanted, *sentences.wordpieces(hit), len(analysed[hit.chunk_id][0]))
    return [_with_highlights(hit, analysed[hit.chunk_id][0], scores[hit.chunk_id]) for hit in hits]


def word_similarity(query: np.ndarray, vectors: np.ndarray, which: np.ndarray, sentences: int) -> list[float]:
    """Each sentence's match with the query's wordpieces: how well its wordpieces (`vectors`, in
    sentence `which`) cover the query's (each query wordpiece's best cosine in the sentence), plus
    half how on-topic they are (each one's best cosine in the query). 0 for a sentence without any."""
    scores = [0.0] * sentences
    if not len(query) or not len(vectors):
        return scores
    # One matrix-vector product per query wordpiece: a matrix product this small runs 100x slower
    # on a busy machine when OpenBLAS splits it over threads (measured 48 ms against 0.5 ms).
    cosines = np.stack([vectors @ wordpiece for wordpiece in query])
    on_topic = cosines.max(axis=0)
    present, starts = np.unique(which, return_index=True)
    coverage = np.maximum.reduceat(cosines, starts, axis=1).mean(axis=0)
    topic = np.add.reduceat(on_topic, starts) / np.diff(np.append(starts, len(which)))
    for sentence, value in zip(present.tolist(), (coverage + 0.5 * topic).tolist()):
        scores[sentence] = value
    return scores


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
