"""Exact and near-duplicate detection for articles (MinHash over word shingles + LSH).

Two articles are near duplicates when the estimated Jaccard similarity of
their 5-word shingles is at least `threshold` (default `DEDUPE_THRESHOLD`, 0.8): a copy with a
fixed typo or an added sentence collapses, a different story does not.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

import numpy as np

PERMUTATIONS = 64
BANDS = 16
ROWS = PERMUTATIONS // BANDS
SHINGLE = 5
# Estimated shingle Jaccard at or above which two articles are one (every index build's default).
DEDUPE_THRESHOLD = 0.8
_PRIME = (1 << 31) - 1
_WORD = re.compile(r"\w+", re.UNICODE)


def _permutations() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20251216)  # fixed: signatures are stored and compared across runs
    a = rng.integers(1, _PRIME, size=PERMUTATIONS, dtype=np.int64)
    b = rng.integers(0, _PRIME, size=PERMUTATIONS, dtype=np.int64)
    return a, b


def signature(text: str) -> np.ndarray:
    """MinHash signature (PERMUTATIONS int64 values) of the text's word shingles."""
    words = _WORD.findall(text.casefold())
    if len(words) < SHINGLE:
        shingles = {" ".join(words)}
    else:
        shingles = {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") for s in shingles),
        dtype=np.int64,
        count=len(shingles),
    ) % _PRIME
    a, b = _permutations()
    return ((hashes[:, None] * a[None, :] + b[None, :]) % _PRIME).min(axis=0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures (0..1)."""
    return float(np.mean(a == b))


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
