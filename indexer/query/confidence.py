"""Confidence that the corpus answers a query, from the retrieval signals of its top hits.

A logistic function of the top hits' best dense cosine and best query-term
coverage, calibrated on `bench/news-qa.jsonl` (`newsqa eval --qa ... --calibrate`);
below `CONFIDENCE_THRESHOLD` a result is `low_confidence` and no answer is given.
"""

from __future__ import annotations

import math

from indexer.query.highlight import QueryTerms, Sentences
from indexer.types import Hit

# Confidence = sigmoid(W0 + W_DENSE * best cosine + W_COVER * best coverage), fitted by
# `newsqa eval --qa bench/news-qa.jsonl --calibrate`; THRESHOLD splits answerable from not.
CONFIDENCE_W0 = -7.371
CONFIDENCE_W_DENSE = 13.362
CONFIDENCE_W_COVER = 8.937
CONFIDENCE_THRESHOLD = 0.5
# Hits whose scores feed the confidence features.
CONFIDENCE_TOP = 3


def confidence_of(dense: float, coverage: float) -> float:
    """Calibrated probability that the corpus answers the query, from the retrieval signals."""
    z = CONFIDENCE_W0 + CONFIDENCE_W_DENSE * dense + CONFIDENCE_W_COVER * coverage
    return 1.0 / (1.0 + math.exp(-z))


def signals(hits: list[Hit], terms: QueryTerms, sentences: Sentences) -> dict[str, float]:
    """The confidence features: best dense cosine and best query-term coverage of the top hits."""
    if not hits:
        return {"dense": 0.0, "coverage": 0.0}
    top = hits[:CONFIDENCE_TOP]
    return {"dense": max(h.dense or 0.0 for h in top), "coverage": max(coverage(top, terms, sentences))}


def coverage(hits: list[Hit], terms: QueryTerms, sentences: Sentences) -> list[float]:
    """Each hit's IDF-weighted share of the query terms in its title, section and text (0..1);
    `sentences` caches each passage's tokens."""
    return [terms.overlap(sentences.terms(h)) for h in hits]
