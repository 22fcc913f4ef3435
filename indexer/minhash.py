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
# LSH: a signature is cut into BANDS bands of ROWS values; articles sharing a whole band are candidates.
BANDS = 16
ROWS = PERMUTATIONS // BANDS
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


def _band_multipliers() -> np.ndarray:
    rng = np.random.default_rng(20261201)  # fixed: band keys are stored in the index
    multipliers = rng.integers(1, 1 << 63, size=(BANDS, ROWS), dtype=np.int64).astype(np.uint64) | np.uint64(1)
    multipliers.setflags(write=False)
    return multipliers


_BAND_MULTIPLIERS = _band_multipliers()
_BAND_SALTS = np.arange(BANDS, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
_BAND_SALTS.setflags(write=False)


def band_keys(sig: np.ndarray) -> list[int]:
    """The signature's LSH bucket keys: one signed 64-bit key per band (a multiply-add hash of its values).

    Equal bands always give equal keys; unequal ones collide with odds near 2^-64 (a collision only
    costs one extra similarity check). Keys are stored in the index (a segment's `bands` table), so
    the hash must never change.
    """
    # Unsigned array arithmetic wraps around silently: the wrap-around is the hash.
    rows = np.asarray(sig, dtype=np.int64).view(np.uint64).reshape(BANDS, ROWS)
    return ((rows * _BAND_MULTIPLIERS).sum(axis=1) ^ _BAND_SALTS).view(np.int64).tolist()
