"""Exact and near-duplicate detection for articles (MinHash over word shingles + LSH).

Two articles are near duplicates when the estimated Jaccard similarity of
their 5-word shingles is at least `threshold` (default `DEDUPE_THRESHOLD`, 0.8): a copy with a
fixed typo or an added sentence collapses, a different story does not.

`DuplicateFinder` holds signatures in memory (one run's articles, or a whole
index read in bulk). `KnownArticles` answers for what an index already holds,
per article while a run is small, so that adding ten articles to a large index
reads ten articles' worth of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping

import numpy as np

# The signatures are shared core: query time compares them too (story collapse).
from indexer.minhash import BANDS, DEDUPE_THRESHOLD, ROWS, band_keys, signature, similarity

__all__ = ["BANDS", "BULK_AFTER", "DEDUPE_THRESHOLD", "DuplicateFinder", "KnownArticles", "ROWS", "closest",
           "signature", "similarity"]

# Per-article look-ups into the index before one bulk read is cheaper (a bulk read of 100,000 articles
# costs about as much as 2,000 look-ups on a ten-segment index).
BULK_AFTER = 1000

Candidates = Iterable[tuple[str, np.ndarray]]


def closest(candidates: Candidates, sig: np.ndarray, threshold: float) -> str | None:
    """The candidate id most similar to `sig` at or above `threshold`, or None."""
    best, best_score = None, 0.0
    for candidate, other in candidates:
        score = similarity(other, sig)
        if score >= threshold and score > best_score:
            best, best_score = candidate, score
    return best


class DuplicateFinder:
    """Remembers signatures and answers which known article a new one duplicates."""

    def __init__(self, threshold: float = DEDUPE_THRESHOLD) -> None:
        self.threshold = threshold
        self._signatures: dict[str, np.ndarray] = {}
        self._buckets: dict[int, set[str]] = defaultdict(set)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._signatures

    def add(self, article_id: str, sig: np.ndarray) -> None:
        self.remove(article_id)
        self._signatures[article_id] = sig
        for key in band_keys(sig):
            self._buckets[key].add(article_id)

    def remove(self, article_id: str) -> None:
        sig = self._signatures.pop(article_id, None)
        if sig is None:
            return
        for key in band_keys(sig):
            self._buckets[key].discard(article_id)

    def candidates(self, sig: np.ndarray) -> Candidates:
        """Every remembered (id, signature) sharing an LSH band with `sig`."""
        ids: set[str] = set()
        for key in band_keys(sig):
            ids |= self._buckets.get(key, set())
        return [(i, self._signatures[i]) for i in ids]

    def find(self, sig: np.ndarray, *, exclude: str | None = None) -> str | None:
        """The id of a known article (but `exclude`) whose estimated similarity to `sig` reaches the threshold."""
        return closest(((a, s) for a, s in self.candidates(sig) if a != exclude), sig, self.threshold)


class KnownArticles:
    """What an index held when a run started: each article's content hash, and its near duplicates.

    `hash_of(id)` and `similar(sig)` (the index's live articles sharing an LSH
    band with `sig`) are per-article look-ups; after `BULK_AFTER` of them (both kinds
    counted together), `hashes()` or `signatures()` is read once into memory instead, so a large run
    costs no more than it did when everything was read up front. A store without
    per-article look-ups passes None and is read in bulk on first use.
    """

    def __init__(self, *, hashes: Callable[[], Mapping[str, str]], signatures: Callable[[], Candidates],
                 hash_of: Callable[[str], str | None] | None = None,
                 similar: Callable[[np.ndarray], Candidates] | None = None,
                 threshold: float = DEDUPE_THRESHOLD, bulk_after: int = BULK_AFTER) -> None:
        self._hashes, self._signatures = hashes, signatures
        self._hash_of, self._similar = hash_of, similar
        self.threshold = threshold
        self._bulk_after = bulk_after
        self._all_hashes: Mapping[str, str] | None = None
        self._finder: DuplicateFinder | None = None
        self.lookups = 0  # per-article look-ups made (tests and benches read it)

    @classmethod
    def empty(cls, threshold: float = DEDUPE_THRESHOLD) -> KnownArticles:
        return cls(hashes=dict, signatures=tuple, threshold=threshold)

    def content_hash(self, article_id: str) -> str | None:
        """The stored content hash of `article_id`, or None when the index does not hold it."""
        if self._all_hashes is None and self._hash_of is not None and self.lookups < self._bulk_after:
            self.lookups += 1
            return self._hash_of(article_id)
        if self._all_hashes is None:
            self._all_hashes = self._hashes()
        return self._all_hashes.get(article_id)

    def duplicate(self, sig: np.ndarray, *, exclude: str, replaced: Container[str] = ()) -> str | None:
        """A held article that `sig` near-duplicates, or None: never `exclude` (the article itself) nor
        one in `replaced` (whose held text a run has replaced)."""
        if self._finder is None and self._similar is not None and self.lookups < self._bulk_after:
            self.lookups += 1
            candidates = self._similar(sig)
        else:
            if self._finder is None:
                self._finder = DuplicateFinder(self.threshold)
                for article_id, known in self._signatures():
                    self._finder.add(article_id, known)
            candidates = self._finder.candidates(sig)
        return closest(((a, s) for a, s in candidates if a != exclude and a not in replaced), sig, self.threshold)
