"""Fusing the dense and lexical legs into one ranking, and grouping passages by article.

Every candidate carries both legs' exact scores. Its ranking score is the sum of
two parts, (dense part, lexical part):

- `dense` / `lexical` mode: the leg's own score, and 0 for the other part;
- `hybrid` with `fusion="score"`: `alpha · minmax(dense)` and `(1 − alpha) · minmax(lexical)`
  over the candidate set (`HYBRID_ALPHA`, chosen on the SciFact train split, README);
- `hybrid` with `fusion="rrf"`: reciprocal rank fusion terms `1/(RRF_K + rank)` of each leg.

An article (`group="article"`) scores as each leg's best passage part, summed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

RRF_K = 60
# Weight of the dense leg in normalised score fusion; chosen on SciFact train (see README).
HYBRID_ALPHA = 0.5
# Passages shown per article with group=article.
GROUP_PASSAGES = 3

Parts = tuple[dict[int, float], dict[int, float]]


def fuse(mode: str, fusion: str, candidates: Sequence[int], dense_scores: Mapping[int, float],
         lexical_scores: Mapping[int, float], alpha: float = HYBRID_ALPHA) -> Parts:
    """Each candidate's score as (dense part, lexical part); its ranking score is their sum."""
    zero = dict.fromkeys(candidates, 0.0)
    if not candidates:
        return zero, zero
    if mode == "dense":
        return {c: dense_scores[c] for c in candidates}, zero
    if mode == "lexical":
        return zero, {c: lexical_scores[c] for c in candidates}
    if fusion == "rrf":
        return reciprocal_rank_parts(candidates, dense_scores, lexical_scores)
    return score_fusion_parts(candidates, dense_scores, lexical_scores, alpha)


def rank(candidates: Sequence[int], parts: Parts) -> list[tuple[int, float]]:
    """(chunk id, fused score), best first; ties by chunk id."""
    return sorted(((c, parts[0][c] + parts[1][c]) for c in candidates), key=lambda item: (-item[1], item[0]))


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
    dense_part, lexical_part = alpha * _minmax(d), (1 - alpha) * _minmax(lex)
    return ({c: float(v) for c, v in zip(candidates, dense_part)},
            {c: float(v) for c, v in zip(candidates, lexical_part)})


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        # One value for all: the leg cannot tell the candidates apart.
        return np.zeros_like(values)
    return (values - low) / (high - low)
