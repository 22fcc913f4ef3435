"""Exact and near-duplicate detection for articles (MinHash over word shingles + LSH).

Two articles are near duplicates when the estimated Jaccard similarity of
their 5-word shingles is at least `threshold` (default `DEDUPE_THRESHOLD`, 0.8): a copy with a
fixed typo or an added sentence collapses, a different story does not.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# The signatures are shared core: query time compares them too (story collapse).
from indexer.minhash import DEDUPE_THRESHOLD, PERMUTATIONS, signature, similarity

__all__ = ["BANDS", "DEDUPE_THRESHOLD", "DuplicateFinder", "ROWS", "signature", "similarity"]

BANDS = 16
ROWS = PERMUTATIONS // BANDS


class DuplicateFinder:
    """Remembers signatures and answers which known article a new one duplicates."""

    def __init__(self, threshold: float = DEDUPE_THRESHOLD) -> None:
        self.threshold = threshold
        self._signatures: dict[str, np.ndarray] = {}
        self._buckets: dict[tuple[int, bytes], set[str]] = defaultdict(set)

    def add(self, article_id: str, sig: np.ndarray) -> None:
        self._signatures[article_id] = sig
        for band in range(BANDS):
            self._buckets[(band, sig[band * ROWS : (band + 1) * ROWS].tobytes())].add(article_id)

    def remove(self, article_id: str) -> None:
        sig = self._signatures.pop(article_id, None)
        if sig is None:
            return
        for band in range(BANDS):
            self._buckets[(band, sig[band * ROWS : (band + 1) * ROWS].tobytes())].discard(article_id)

    def find(self, sig: np.ndarray, *, exclude: str | None = None) -> str | None:
        """The id of a known article whose estimated similarity to `sig` reaches the threshold."""
        candidates: set[str] = set()
        for band in range(BANDS):
            candidates |= self._buckets.get((band, sig[band * ROWS : (band + 1) * ROWS].tobytes()), set())
        candidates.discard(exclude)
        best, best_score = None, 0.0
        for candidate in candidates:
            score = similarity(self._signatures[candidate], sig)
            if score >= self.threshold and score > best_score:
                best, best_score = candidate, score
        return best
