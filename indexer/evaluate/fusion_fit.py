"""Fitting the adaptive fusion (`indexer.query.fusion.FusionWeights`) on training queries.

1. `capture`: each training query is searched once (`group="article"`, the depth the evaluation
   uses); its candidates' exact leg scores give its `query_features` and, per article, the best
   normalised dense and lexical part (`fusion.normalised`). An article's fused score at dense weight `a` is then
   `a · dense + (1 − a) · lexical`, exactly as `group_by_article` ranks it.
2. `curves`: the query's metric (nDCG@10 with graded judgements, MRR@10 for known items) at each
   dense weight of a grid; between grid points it is interpolated.
3. `fit_fusion`: the weights of `a = sigmoid(bias + Σ w·z(feature))` that maximise the mean metric,
   each training set counting as much as the others however many queries it has: coordinate
   ascent from zero and from seeded random starts (the metric is a step function of the weights,
   so no gradient), with a small L2 penalty that keeps the weights from chasing single queries.

Only training splits go in; `bench/fit_fusion.py` is the command, and it reports held-out figures
separately, with the weights it wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.query.fusion import QUERY_FEATURES, FusionWeights, normalised, query_features

GRID = np.linspace(0.0, 1.0, 41)
_DISCOUNT = 1.0 / np.log2(np.arange(2, 12))


@dataclass(frozen=True)
class Captured:
    """One query's evidence: its features and each candidate article's normalised leg parts."""

    features: dict[str, float]
    dense: np.ndarray
    lexical: np.ndarray
    relevance: np.ndarray
    relevant: int  # judged relevant documents (for the ideal DCG), including any not retrieved


@dataclass(frozen=True)
class TrainingSet:
    """Captured queries of one training set and the metric it is fitted on (`ndcg@10` or `mrr@10`)."""

    name: str
    queries: list[Captured]
    metric: str


def capture(searcher, queries: Iterable[tuple[str, Mapping[str, int]]], *, k: int,
            normalise: str = "minmax") -> list[Captured]:
    """Search each `(query text, {article id: relevance})` once as `group="article"` search with `k`
    results would, and keep what fusion needs (legs scaled by `normalise`, see `fusion.normalised`)."""
    from indexer.query.search import validate_query

    captured = []
    for text, judged in queries:
        query = validate_query(text)
        found = searcher.candidates(query, k=k, mode="hybrid", group="article")
        if not found.ids:
            continue
        d = np.asarray([found.dense[c] for c in found.ids], dtype=np.float64)
        lex = np.asarray([found.lexical[c] for c in found.ids], dtype=np.float64)
        owner = searcher.index.owners(found.ids)
        articles: dict[str, int] = {}
        column = np.asarray([articles.setdefault(owner[c], len(articles)) if c in owner else -1 for c in found.ids])
        kept = column >= 0
        best_d, best_l = np.full(len(articles), -np.inf), np.full(len(articles), -np.inf)
        np.maximum.at(best_d, column[kept], normalised(d, normalise)[kept])
        np.maximum.at(best_l, column[kept], normalised(lex, normalise)[kept])
        relevance = np.asarray([float(judged.get(a, 0)) for a in articles])
        captured.append(Captured(query_features(d, lex, searcher.query_terms(query).weights), best_d, best_l,
                                 relevance, sum(1 for v in judged.values() if v > 0)))
    return captured


def metric_at(q: Captured, alpha: float, metric: str) -> float:
    """The query's `ndcg@10` or `mrr@10` with dense weight `alpha` (ties: first-seen article first)."""
    score = alpha * q.dense + (1 - alpha) * q.lexical
    top = np.argsort(-score, kind="stable")[:10]
    gains = q.relevance[top]
    if metric == "mrr@10":
        found = np.flatnonzero(gains > 0)
        return 1.0 / (found[0] + 1) if len(found) else 0.0
    ideal = np.sort(q.relevance)[::-1][:10]
    ideal = np.concatenate([ideal, np.ones(max(0, min(q.relevant, 10) - len(ideal)))])[:10]
    idcg = float((ideal * _DISCOUNT[:len(ideal)]).sum())
    return float((gains * _DISCOUNT[:len(gains)]).sum()) / idcg if idcg > 0 else 0.0


def curves(queries: Sequence[Captured], metric: str) -> np.ndarray:
    """[query, grid point] → the query's metric at that dense weight."""
    return np.asarray([[metric_at(q, a, metric) for a in GRID] for q in queries]).reshape(len(queries), len(GRID))


def _interpolate(table: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    x = alpha * (len(GRID) - 1)
    low = np.clip(np.floor(x).astype(int), 0, len(GRID) - 2)
    t = x - low
    rows = np.arange(len(table))
    return (1 - t) * table[rows, low] + t * table[rows, low + 1]


def _alpha(theta: np.ndarray, z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(theta[0] + z @ theta[1:], -50, 50)))


def fit_fusion(sets: Sequence[TrainingSet], *, features: Sequence[str] = QUERY_FEATURES, l2: float = 1e-4,
               restarts: int = 12, seed: int = 0, normalise: str = "minmax") -> FusionWeights:
    """The `FusionWeights` that maximise the mean over `sets` of each set's mean metric (`sets` captured
    with the same `normalise`)."""
    unknown = [f for f in features if f not in QUERY_FEATURES]
    if unknown:
        raise ValueError(f"unknown fusion features {unknown}: use some of {', '.join(QUERY_FEATURES)}")
    x = {s.name: np.asarray([[q.features[f] for f in features] for q in s.queries]).reshape(-1, len(features))
         for s in sets}
    stacked = np.concatenate(list(x.values()))
    mean, scale = stacked.mean(0), stacked.std(0)
    scale[scale < 1e-12] = 1.0
    z = {name: (v - mean) / scale for name, v in x.items()}
    tables = {s.name: curves(s.queries, s.metric) for s in sets}

    def objective(theta: np.ndarray) -> float:
        fit = np.mean([_interpolate(tables[n], _alpha(theta, z[n])).mean() for n in tables])
        return float(fit - l2 * float((theta[1:] ** 2).sum()))

    rng = np.random.default_rng(seed)
    best, best_value = np.zeros(len(features) + 1), -np.inf
    for start in range(restarts):
        theta = np.zeros(len(features) + 1) if start == 0 else rng.normal(0.0, 1.0, len(features) + 1)
        value, step = objective(theta), 1.0
        while step > 1e-3:
            moved = False
            for i in range(len(theta)):
                for delta in (step, -step):
                    trial = theta.copy()
                    trial[i] += delta
                    trial_value = objective(trial)
                    if trial_value > value + 1e-9:
                        theta, value, moved = trial, trial_value, True
            if not moved:
                step /= 2
        if value > best_value:
            best, best_value = theta, value
    figures = {}
    for s in sets:
        fitted = _interpolate(tables[s.name], _alpha(best, z[s.name])).mean()
        figures[s.name] = {"queries": len(s.queries), "metric": s.metric,
                           "lexical": round(float(tables[s.name][:, 0].mean()), 4),
                           "dense": round(float(tables[s.name][:, -1].mean()), 4),
                           "fixed_0.5": round(float(tables[s.name][:, len(GRID) // 2].mean()), 4),
                           "adaptive": round(float(fitted), 4)}
    return FusionWeights(bias=round(float(best[0]), 4),
                         weights={f: round(float(w), 4) for f, w in zip(features, best[1:])},
                         mean={f: round(float(m), 6) for f, m in zip(features, mean)},
                         scale={f: round(float(s), 6) for f, s in zip(features, scale)},
                         fitted_on={"sets": figures, "l2": l2, "restarts": restarts, "seed": seed},
                         normalise=normalise)


def evaluate_fusion(weights: FusionWeights, queries: Sequence[Captured], metric: str) -> dict[str, float]:
    """A set's mean metric for each leg, fixed 0.5 and `weights` (from captured queries, no search)."""
    alphas = [weights.alpha(q.features) for q in queries]
    return {"dense": float(np.mean([metric_at(q, 1.0, metric) for q in queries])),
            "lexical": float(np.mean([metric_at(q, 0.0, metric) for q in queries])),
            "fixed_0.5": float(np.mean([metric_at(q, 0.5, metric) for q in queries])),
            "adaptive": float(np.mean([metric_at(q, a, metric) for q, a in zip(queries, alphas)]))}
