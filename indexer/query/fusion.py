"""Fusing the dense and lexical legs into one ranking, and grouping passages by article.

Every candidate carries both legs' exact scores. Its ranking score is the sum of
two parts, (dense part, lexical part):

- `dense` / `lexical` mode: the leg's own score, and 0 for the other part;
- `hybrid` with `fusion="adaptive"` (the default): `a · minmax(dense)` and `(1 − a) · minmax(lexical)`
  over the candidate set, where the dense weight `a` is set per query from the legs' evidence:
  `a = sigmoid(bias + Σ w·z(feature))` over the query features of `query_features` (how sure each
  leg is of its best candidate, how much the legs agree, how long the query is); the weights file
  may put the legs on one scale by their standard deviation instead of their range. The weights are
  `FusionWeights`, fitted on training data only (SciFact train and the BBC known-item train split)
  by `bench/fit_fusion.py` and shipped as `fusion_weights.json`;
- `hybrid` with `fusion="score"`: the same with a fixed `a = alpha` (`HYBRID_ALPHA`);
- `hybrid` with `fusion="rrf"`: reciprocal rank fusion terms `1/(RRF_K + rank)` of each leg.

An article (`group="article"`) scores as each leg's best passage part, summed.
"""

from __future__ import annotations

import math
from operator import itemgetter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.query.weights import read_weights

RRF_K = 60
# Weight of the dense leg in fixed score fusion (`fusion="score"`); chosen on SciFact train (see README).
HYBRID_ALPHA = 0.5
WEIGHTS_FILE = Path(__file__).with_name("fusion_weights.json")
# Candidates each leg's "best few" spans in the features (top-k agreement, mean of the head).
HEAD = 10
# How each leg's scores are put on one scale before weighting: by their range over the candidates
# (min-max) or by their standard deviation (a z-score, shifted so the worst candidate scores 0).
NORMALISATIONS = ("minmax", "std")
QUERY_FEATURES = ("dense_top", "dense_gap", "dense_z", "lexical_gap", "lexical_z", "lexical_cover", "agreement",
                  "terms")
# Passages shown per article with group=article.
GROUP_PASSAGES = 3

Parts = tuple[dict[int, float], dict[int, float]]


@dataclass(frozen=True)
class FusionWeights:
    """The adaptive fusion's parameters: dense weight = sigmoid(bias + Σ weights[f] · (x_f − mean[f]) / scale[f]).

    Features missing from `weights` count 0. `fitted_on` records the data and the figures of the fit."""

    bias: float
    weights: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    fitted_on: dict = field(default_factory=dict)
    normalise: str = "minmax"

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_FILE) -> "FusionWeights":
        def parse(data: dict) -> "FusionWeights":
            weights = {str(k): float(v) for k, v in data["weights"].items()}
            unknown = sorted(set(weights) - set(QUERY_FEATURES))
            if unknown:
                raise KeyError(f"unknown features {', '.join(unknown)}; known: {', '.join(QUERY_FEATURES)}")
            scale = {f: float(data["scale"][f]) for f in weights}
            if any(not v > 0 for v in scale.values()):
                raise ValueError("every scale must be > 0")
            normalise = str(data.get("normalise", "minmax"))
            if normalise not in NORMALISATIONS:
                raise ValueError(f"normalise={normalise!r} is not one of {', '.join(NORMALISATIONS)}")
            return cls(bias=float(data["bias"]), weights=weights, mean={f: float(data["mean"][f]) for f in weights},
                       scale=scale, fitted_on=dict(data.get("fitted_on") or {}), normalise=normalise)

        return read_weights(path, "fusion weights",
                            "`python bench/fit_fusion.py --out FILE` (README, \"Retrieval quality\")", parse)

    def as_dict(self) -> dict:
        return {"normalise": self.normalise, "bias": self.bias, "weights": self.weights, "mean": self.mean,
                "scale": self.scale, "fitted_on": self.fitted_on}

    def alpha(self, features: Mapping[str, float]) -> float:
        """The dense leg's weight (0..1) for a query with these `query_features`."""
        z = self.bias + sum(w * (features[f] - self.mean[f]) / self.scale[f] for f, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def fuse(mode: str, fusion: str, candidates: Sequence[int], dense_scores: Mapping[int, float],
         lexical_scores: Mapping[int, float], alpha: float = HYBRID_ALPHA, *,
         weights: FusionWeights | None = None, idf: Mapping[str, float] | None = None) -> Parts:
    """Each candidate's score as (dense part, lexical part); its ranking score is their sum.

    `fusion="adaptive"` needs `weights` and the query terms' `idf`; `"score"` uses `alpha`."""
    zero = dict.fromkeys(candidates, 0.0)
    if not candidates:
        return zero, zero
    if mode == "dense":
        return {c: dense_scores[c] for c in candidates}, zero
    if mode == "lexical":
        return zero, {c: lexical_scores[c] for c in candidates}
    if fusion == "rrf":
        return reciprocal_rank_parts(candidates, dense_scores, lexical_scores)
    if fusion == "adaptive":
        if weights is None:
            raise ValueError("fusion='adaptive' needs the fusion weights")
        # map over the dict's own lookup: np.fromiter over a generator cost ~0.3 ms per search.
        d = np.array(list(map(dense_scores.__getitem__, candidates)), dtype=np.float64)
        lex = np.array(list(map(lexical_scores.__getitem__, candidates)), dtype=np.float64)
        alpha = weights.alpha(query_features(d, lex, idf or {}))
        return _weighted_parts(candidates, d, lex, alpha, weights.normalise)
    return score_fusion_parts(candidates, dense_scores, lexical_scores, alpha)


def query_features(dense: np.ndarray, lexical: np.ndarray, idf: Mapping[str, float]) -> dict[str, float]:
    """What the adaptive fusion knows of a query, from its candidates' scores (same order in both arrays):

    - `dense_top`: the best cosine (a sure dense leg finds something close to the query);
    - `dense_gap`, `lexical_gap`: how far each leg's best stands above its second (lexical: as a share
      of the best, BM25 having no fixed scale);
    - `dense_z`, `lexical_z`: the best over the mean of the leg's first `HEAD`, in standard deviations
      of all candidates;
    - `lexical_cover`: the best BM25 over the query terms' summed idf (how much of the query it matches);
    - `agreement`: the share of each leg's first `HEAD` candidates the other leg also has there;
    - `terms`: log(1 + number of distinct query terms).
    """
    n = len(dense)
    head = min(HEAD, n)
    features = {}
    for name, x in (("dense", dense), ("lexical", lexical)):
        top = np.partition(x, n - head)[n - head:] if n > head else x.copy()
        top.sort()
        best = float(top[-1])
        second = float(top[-2]) if head > 1 else best
        gap = best - second
        features[f"{name}_gap"] = gap if name == "dense" else (gap / best if best > 0 else 0.0)
        spread = float(x.std())
        features[f"{name}_z"] = (best - float(top.mean())) / spread if spread > 1e-12 else 0.0
        features[f"{name}_top"] = best
    total_idf = float(sum(idf.values()))
    features["lexical_cover"] = features.pop("lexical_top") / total_idf if total_idf > 0 else 0.0
    if n > head:
        dense_head = np.argpartition(-dense, head - 1)[:head]
        lexical_head = np.argpartition(-lexical, head - 1)[:head]
        features["agreement"] = len(np.intersect1d(dense_head, lexical_head)) / head
    else:
        features["agreement"] = 1.0
    features["terms"] = math.log1p(len(idf))
    return features


def rank(candidates: Sequence[int], parts: Parts) -> list[tuple[int, float]]:
    """(chunk id, fused score), best first; ties by chunk id."""
    dense, lexical = parts
    scored = [(c, dense[c] + lexical[c]) for c in candidates]
    # Two stable sorts (id, then score descending) give the (-score, id) order without a key tuple per item.
    scored.sort(key=itemgetter(0))
    scored.sort(key=itemgetter(1), reverse=True)
    return scored


def group_by_article(ranked: Sequence[tuple[int, float]], parts: Parts, owner: Mapping[int, str],
                     k: int) -> list[tuple[str, list[tuple[int, float]]]]:
    """The top `k` articles with up to `GROUP_PASSAGES` (chunk id, score) each, best first.

    An article scores as each leg's best passage of the article, fused: a
    document whose dense and lexical evidence sit in different passages ranks
    as it should. Its first passage carries the article score, which is at
    least that of each of its passages. Passages without an owner are skipped.
    """
    members_of: dict[str, list[tuple[int, float]]] = {}
    best_dense: dict[str, float] = {}
    best_lexical: dict[str, float] = {}
    for cid, score in ranked:
        article_id = owner.get(cid)
        if article_id is None:
            continue
        members = members_of.setdefault(article_id, [])
        if len(members) < GROUP_PASSAGES:
            members.append((cid, score))
        best_dense[article_id] = max(best_dense.get(article_id, -math.inf), parts[0][cid])
        best_lexical[article_id] = max(best_lexical.get(article_id, -math.inf), parts[1][cid])
    article_score = {a: best_dense[a] + best_lexical[a] for a in members_of}
    # Ties keep the passage ranking's order (dicts keep first-seen order; sorted is stable).
    order = sorted(members_of, key=lambda a: -article_score[a])
    return [(a, [(members_of[a][0][0], article_score[a]), *members_of[a][1:]]) for a in order[:k]]


def reciprocal_rank_parts(candidates: Sequence[int], dense_scores: Mapping[int, float],
                          lexical_scores: Mapping[int, float]) -> Parts:
    """RRF terms 1/(60 + rank) of each leg, each leg ranking all candidates by its exact score."""
    parts = []
    for scores in (dense_scores, lexical_scores):
        order = sorted(candidates, key=lambda c: (-scores[c], c))
        parts.append({cid: 1.0 / (RRF_K + rank) for rank, cid in enumerate(order, start=1)})
    return parts[0], parts[1]


def score_fusion_parts(candidates: Sequence[int], dense_scores: Mapping[int, float],
                       lexical_scores: Mapping[int, float], alpha: float) -> Parts:
    """alpha · minmax(dense) and (1 − alpha) · minmax(lexical) over the candidate set."""
    d = np.asarray([dense_scores[c] for c in candidates], dtype=np.float64)
    lex = np.asarray([lexical_scores[c] for c in candidates], dtype=np.float64)
    return _weighted_parts(candidates, d, lex, alpha)


def normalised(values: np.ndarray, how: str = "minmax") -> np.ndarray:
    """A leg's scores on the common scale (`NORMALISATIONS`); the worst candidate gets 0, and a leg that
    gives every candidate one score gets 0 throughout (it cannot tell them apart)."""
    if how == "std":
        spread = float(values.std())
        return (values - float(values.min())) / spread if spread > 1e-12 else np.zeros_like(values)
    return _minmax(values)


def _weighted_parts(candidates: Sequence[int], d: np.ndarray, lex: np.ndarray, alpha: float,
                    how: str = "minmax") -> Parts:
    dense, lexical = normalised(d, how), normalised(lex, how)
    # A flat leg (e.g. BM25 when no candidate shares a query term) cannot tell the candidates apart: the
    # other leg takes all the weight. The order is the same either way; the top hit then scores 1, not
    # the other leg's weight, as every query's top hit does when the legs agree on it.
    if not lexical.any():
        alpha = 1.0
    elif not dense.any():
        alpha = 0.0
    dense_part, lexical_part = alpha * dense, (1 - alpha) * lexical
    if how != "minmax":
        # Fused scores stay within 0..1 as with min-max (one factor for both legs: the order is kept).
        top = float(dense_part.max()) + float(lexical_part.max())
        if top > 0:
            dense_part, lexical_part = dense_part / top, lexical_part / top
    return dict(zip(candidates, dense_part.tolist())), dict(zip(candidates, lexical_part.tolist()))


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        # One value for all: the leg cannot tell the candidates apart.
        return np.zeros_like(values)
    return (values - low) / (high - low)
