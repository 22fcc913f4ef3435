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
# Cross-validated gain below which feature selection counts two choices as equal.
MIN_GAIN = 0.001
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


def _check(features: Sequence[str]) -> None:
    unknown = [f for f in features if f not in QUERY_FEATURES]
    if unknown:
        raise ValueError(f"unknown fusion features {unknown}: use some of {', '.join(QUERY_FEATURES)}")


def _features(queries: Sequence[Captured], features: Sequence[str]) -> np.ndarray:
    return np.asarray([[q.features[f] for f in features] for q in queries], dtype=np.float64).reshape(len(queries), len(features))


def _fit(tables: Sequence[np.ndarray], xs: Sequence[np.ndarray], *, l2: float, restarts: int,
         seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, mean, scale): the coordinate-ascent fit over sets given as metric tables and raw
    feature rows (see the module docstring)."""
    stacked = np.concatenate(list(xs))
    mean, scale = stacked.mean(0), stacked.std(0)
    scale[scale < 1e-12] = 1.0
    z = [(v - mean) / scale for v in xs]
    width = stacked.shape[1] + 1

    def objective(theta: np.ndarray) -> float:
        fit = np.mean([_interpolate(t, _alpha(theta, zi)).mean() for t, zi in zip(tables, z)])
        return float(fit - l2 * float((theta[1:] ** 2).sum()))

    rng = np.random.default_rng(seed)
    best, best_value = np.zeros(width), -np.inf
    for start in range(restarts):
        theta = np.zeros(width) if start == 0 else rng.normal(0.0, 1.0, width)
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
    return best, mean, scale


def fit_fusion(sets: Sequence[TrainingSet], *, features: Sequence[str] = QUERY_FEATURES, l2: float = 1e-4,
               restarts: int = 12, seed: int = 0, normalise: str = "minmax") -> FusionWeights:
    """The `FusionWeights` that maximise the mean over `sets` of each set's mean metric (`sets` captured
    with the same `normalise`)."""
    _check(features)
    tables = [curves(s.queries, s.metric) for s in sets]
    xs = [_features(s.queries, features) for s in sets]
    best, mean, scale = _fit(tables, xs, l2=l2, restarts=restarts, seed=seed)
    figures = {}
    for s, table, x in zip(sets, tables, xs):
        fitted = _interpolate(table, _alpha(best, (x - mean) / scale)).mean()
        figures[s.name] = {"queries": len(s.queries), "metric": s.metric,
                           "lexical": round(float(table[:, 0].mean()), 4),
                           "dense": round(float(table[:, -1].mean()), 4),
                           "fixed_0.5": round(float(table[:, len(GRID) // 2].mean()), 4),
                           "adaptive": round(float(fitted), 4)}
    return FusionWeights(bias=round(float(best[0]), 4),
                         weights={f: round(float(w), 4) for f, w in zip(features, best[1:])},
                         mean={f: round(float(m), 6) for f, m in zip(features, mean)},
                         scale={f: round(float(s), 6) for f, s in zip(features, scale)},
                         fitted_on={"sets": figures, "l2": l2, "restarts": restarts, "seed": seed},
                         normalise=normalise)


def cross_validate(sets: Sequence[TrainingSet], features: Sequence[str], *, folds: int = 5, l2: float = 1e-4,
                   restarts: int = 4, seed: int = 0, tables: Sequence[np.ndarray] | None = None) -> float:
    """Mean over `folds` of the held-out fold's metric (each set counting equally) when fitting on the
    other folds of every set: how well a feature set generalises, from training data alone. `tables`:
    each set's `curves`, when the caller already has them (they do not depend on the features)."""
    _check(features)
    if tables is None:
        tables = [curves(s.queries, s.metric) for s in sets]
    xs = [_features(s.queries, features) for s in sets]
    rng = np.random.default_rng(seed)
    assignment = [rng.permutation(len(s.queries)) % folds for s in sets]
    scores = []
    for fold in range(folds):
        train = [(t[a != fold], x[a != fold]) for t, x, a in zip(tables, xs, assignment)]
        theta, mean, scale = _fit([t for t, _ in train], [x for _, x in train], l2=l2, restarts=restarts, seed=seed)
        scores.append(np.mean([_interpolate(t[a == fold], _alpha(theta, (x[a == fold] - mean) / scale)).mean()
                               for t, x, a in zip(tables, xs, assignment)]))
    return float(np.mean(scores))


def select_features(sets: Sequence[TrainingSet], *, candidates: Sequence[str] = QUERY_FEATURES, folds: int = 5,
                    l2: float = 1e-4, min_gain: float = MIN_GAIN, seed: int = 0,
                    log=None) -> tuple[list[str], float]:
    """Forward selection by `cross_validate`: start from no feature (a fixed weight) and add the
    feature that raises the cross-validated metric most, until none adds `min_gain`. Returns the
    features and their cross-validated metric."""
    # Computed once: every trial below fits on the same per-query metric curves.
    tables = [curves(s.queries, s.metric) for s in sets]
    chosen: list[str] = []
    best = cross_validate(sets, chosen, folds=folds, l2=l2, seed=seed, tables=tables)
    if log:
        log(f"cv {best:.4f} with no feature")
    while True:
        trials = {f: cross_validate(sets, [*chosen, f], folds=folds, l2=l2, seed=seed, tables=tables)
                  for f in candidates if f not in chosen}
        if not trials:
            break
        feature, value = max(trials.items(), key=lambda item: item[1])
        if log:
            log("cv " + ", ".join(f"+{f} {v:.4f}" for f, v in sorted(trials.items(), key=lambda i: -i[1])))
        if value < best + min_gain:
            break
        chosen, best = [*chosen, feature], value
    return chosen, best


def evaluate_fusion(weights: FusionWeights, queries: Sequence[Captured], metric: str) -> dict[str, float]:
    """A set's mean metric for each leg, fixed 0.5 and `weights` (from captured queries, no search)."""
    alphas = [weights.alpha(q.features) for q in queries]
    return {"dense": float(np.mean([metric_at(q, 1.0, metric) for q in queries])),
            "lexical": float(np.mean([metric_at(q, 0.0, metric) for q in queries])),
            "fixed_0.5": float(np.mean([metric_at(q, 0.5, metric) for q in queries])),
            "adaptive": float(np.mean([metric_at(q, a, metric) for q, a in zip(queries, alphas)]))}
