"""Confidence that the corpus answers a query, from the retrieval signals of its top hits.

A logistic function of the top hits' best dense cosine and best query-term
coverage, calibrated on `bench/news-qa.jsonl`: the weights are data,
`confidence_weights.json` (package data), written by
`newsqa eval --qa bench/news-qa.jsonl --index DIR --calibrate --fit-confidence FILE`
and loaded by each `Searcher` (`ConfidenceWeights.load`). Below
`CONFIDENCE_THRESHOLD` a result is `low_confidence` and no answer is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from indexer.query.highlight import QueryTerms, Sentences
from indexer.query.weights import read_weights
from indexer.types import Hit

CONFIDENCE_WEIGHTS_FILE = Path(__file__).with_name("confidence_weights.json")
# The logistic model's own split: a probability of 0.5 separates answerable from not.
CONFIDENCE_THRESHOLD = 0.5
# Hits whose scores feed the confidence features.
CONFIDENCE_TOP = 3


@dataclass(frozen=True)
class ConfidenceWeights:
    """The fitted model: confidence = sigmoid(w0 + w_dense · best cosine + w_cover · best coverage)."""

    w0: float
    w_dense: float
    w_cover: float
    fitted_on: dict = field(default_factory=dict, compare=False)

    @classmethod
    def load(cls, path: str | Path = CONFIDENCE_WEIGHTS_FILE) -> "ConfidenceWeights":
        """The weights in `path` (default: the packaged ones); ResourceMissing naming the fix if unreadable."""
        return read_weights(
            path, "confidence weights",
            "`newsqa eval --qa bench/news-qa.jsonl --index DIR --calibrate --fit-confidence FILE`",
            lambda data: cls(w0=float(data["w0"]), w_dense=float(data["w_dense"]), w_cover=float(data["w_cover"]),
                             fitted_on=dict(data.get("fitted_on") or {})))

    @classmethod
    def from_calibration(cls, calibration: dict, **fitted_on) -> "ConfidenceWeights":
        """The weights `indexer.evaluate.harness.calibrate` fitted, with what they were fitted on."""
        return cls(w0=calibration["w0"], w_dense=calibration["w_dense"], w_cover=calibration["w_cover"],
                   fitted_on={**fitted_on, **{k: v for k, v in calibration.items()
                                               if k not in ("w0", "w_dense", "w_cover")}})

    def as_dict(self) -> dict:
        return {"w0": self.w0, "w_dense": self.w_dense, "w_cover": self.w_cover, "fitted_on": self.fitted_on}

    def confidence(self, dense: float, coverage: float) -> float:
        """Calibrated probability that the corpus answers the query, from the retrieval signals."""
        z = self.w0 + self.w_dense * dense + self.w_cover * coverage
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
