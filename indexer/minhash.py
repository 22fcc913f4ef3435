"""MinHash signatures of a text's word shingles, and their estimated Jaccard similarity.

Shared core: ingest finds near-duplicate articles with them (`indexer.ingest.dedupe`), query
time folds near-duplicate stories (`indexer.query.ordering`), and both stores keep them.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

PERMUTATIONS = 64
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
