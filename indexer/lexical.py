"""BM25 over passages (bm25s, Lucene variant, English Snowball stemming).

Saved as plain files (NumPy arrays and JSON, no pickle) beside an array that
maps bm25s document positions to chunk ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Anserini's BM25 settings, which score best on BEIR-style collections.
K1 = 0.9
B = 0.4


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens of each text."""
    import bm25s

    return bm25s.tokenize(
        list(texts), lower=True, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )


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

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top `k` passages by BM25; `allowed` (chunk ids) restricts them before ranking."""
        if not len(self.chunk_ids) or k <= 0:
            return []
        tokens = [t for t in tokenize([query])[0] if t in self._retriever.vocab_dict]
        if not tokens:
            return []
        scores = self._retriever.get_scores(tokens)
        if allowed is not None:
            mask = np.zeros(len(self.chunk_ids), dtype=bool)
            positions = [self._position[int(c)] for c in allowed if int(c) in self._position]
            mask[positions] = True
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(int(self.chunk_ids[i]), float(scores[i])) for i in order]
