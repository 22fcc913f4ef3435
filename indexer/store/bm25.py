"""BM25 over passages (bm25s, Lucene variant, English Snowball stemming).

Saved as plain files (NumPy arrays and JSON, no pickle) beside an array that
maps bm25s document positions to chunk ids.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Anserini's BM25 settings, which score best on BEIR-style collections.
K1 = 0.9
B = 0.4


# bm25s's own token pattern (scikit-learn's): words of two or more characters.
_WORD = re.compile(r"(?u)\b\w\w+\b")


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def _thread_stemmers() -> threading.local:
    return threading.local()


@functools.lru_cache(maxsize=262_144)
def _stem(word: str) -> str:
    # PyStemmer objects must not be shared between threads: one per thread.
    local = _thread_stemmers()
    stemmer = getattr(local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = local.stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


def stem(word: str) -> str:
    """The Snowball English stem of a lower-case `word`, as `tokenize` stems it."""
    return _stem(word)


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens of each text.

    The same tokens as `bm25s.tokenize(texts, stopwords="en", stemmer=<Snowball
    English>)` (a test holds them equal), without its per-call set-up: that
    set-up cost ~3 ms per call, and a search tokenizes four times.
    """
    stop = _stopwords()
    return [[_stem(w) for w in _WORD.findall(text.lower()) if w not in stop] for text in texts]


class LexicalIndex:
    """BM25 scores for a query over all passages, as (chunk_id, score) pairs."""

    def __init__(self, retriever, chunk_ids: np.ndarray) -> None:
        self._retriever = retriever
        self.chunk_ids = chunk_ids
        self._position = {int(cid): pos for pos, cid in enumerate(chunk_ids)}

    @classmethod
    def build(cls, chunk_ids: Sequence[int], texts: Sequence[str]) -> "LexicalIndex":
        import bm25s

        retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        if texts:
            retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, np.asarray(chunk_ids, dtype=np.int64))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "chunk_ids.npy", self.chunk_ids, allow_pickle=False)
        if len(self.chunk_ids):
            self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        import bm25s

        chunk_ids = np.load(directory / "chunk_ids.npy", allow_pickle=False)
        if not len(chunk_ids):
            return cls(bm25s.BM25(k1=K1, b=B, method="lucene"), chunk_ids)
        return cls(bm25s.BM25.load(str(directory), mmap=False), chunk_ids)

    def query_scores(self, query: str) -> np.ndarray | None:
        """BM25 scores of every passage (by position) for `query`; None if no query term is indexed."""
        if not len(self.chunk_ids):
            return None
        tokens = [t for t in tokenize([query])[0] if t in self._retriever.vocab_dict]
        if not tokens:
            return None
        return self._retriever.get_scores(tokens)

    def scores_for(self, chunk_ids, scores: np.ndarray | None) -> dict[int, float]:
        """The exact BM25 score of each chunk id in `scores` (from `query_scores`); 0.0 when no term matched."""
        ids = [int(c) for c in chunk_ids]
        if scores is None or not ids:
            return dict.fromkeys(ids, 0.0)
        # One gather and tolist() instead of a numpy scalar per passage (~150 per hybrid search).
        positions = [self._position.get(c, -1) for c in ids]
        values = scores[np.asarray(positions, dtype=np.intp)].tolist()
        return {c: v if p >= 0 else 0.0 for c, p, v in zip(ids, positions, values)}

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene BM25 idf of each stemmed token; tokens absent from the index get the largest idf."""
        n = len(self.chunk_ids)
        ceiling = float(np.log(1 + (n + 0.5) / 0.5)) if n else 1.0
        indptr = self._retriever.scores.get("indptr") if isinstance(self._retriever.scores, dict) else None
        weights = {}
        for token in tokens:
            tid = self._retriever.vocab_dict.get(token) if n else None
            if tid is None or indptr is None:
                weights[token] = ceiling
                continue
            df = int(indptr[tid + 1] - indptr[tid])
            weights[token] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return weights

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, *, scores: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top `k` passages by BM25; `allowed` (chunk ids) restricts them before ranking.

        `scores` may pass in the array from `query_scores(query)` so a caller
        that also needs other passages' scores computes them once.
        """
        if not len(self.chunk_ids) or k <= 0:
            return []
        if scores is None:
            scores = self.query_scores(query)
        if scores is None:
            return []
        if allowed is not None:
            mask = np.zeros(len(self.chunk_ids), dtype=bool)
            positions = [self._position[int(c)] for c in allowed if int(c) in self._position]
            mask[positions] = True
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return list(zip(self.chunk_ids[order].tolist(), scores[order].tolist()))
