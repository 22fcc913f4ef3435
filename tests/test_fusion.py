"""Issue 14, adaptive fusion: the dense weight follows the legs' evidence, from a fitted weights file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOKTOGUL


def _candidates(n: int = 200):
    return list(range(1000, 1000 + n))


def _fused_order(weights, candidates, dense, lexical, idf):
    from indexer.query.fusion import fuse, rank

    parts = fuse("hybrid", "adaptive", candidates, dict(zip(candidates, dense)), dict(zip(candidates, lexical)),
                 weights=weights, idf=idf)
    return [cid for cid, _ in rank(candidates, parts)]


def test_an_unsure_dense_leg_does_not_outvote_a_sure_lexical_leg():
    """Keyword query: BM25 has one clear winner; the dense cosines are low and flat (noise). The packaged
    weights give the dense leg little say, so the lexical winner ranks first, where fixed 50/50 fusion
    lets the dense noise put another candidate first."""
    from indexer.query.fusion import FusionWeights, fuse, query_features, rank

    rng = np.random.default_rng(7)
    candidates = _candidates()
    dense = 0.30 + 0.04 * rng.random(len(candidates))
    lexical = 2.0 * rng.random(len(candidates))
    winner, runner_up = candidates[5], candidates[9]
    lexical[5], lexical[9] = 14.0, 8.0
    dense[5], dense[9] = dense.min(), dense.max()  # the dense leg's noise favours the runner-up
    idf = {"toktogul": 6.5, "reservoir": 4.0, "level": 2.5}
    weights = FusionWeights.load()
    alpha = weights.alpha(query_features(dense, lexical, idf))
    assert alpha < 0.3
    assert _fused_order(weights, candidates, dense, lexical, idf)[0] == winner
    fixed = fuse("hybrid", "score", candidates, dict(zip(candidates, dense)), dict(zip(candidates, lexical)), 0.5)
    assert rank(candidates, fixed)[0][0] == runner_up


def test_a_flat_lexical_leg_leaves_the_ranking_to_a_sure_dense_leg():
    """Paraphrase query: no candidate shares a term (BM25 flat at 0), the dense leg has a clear winner."""
    from indexer.query.fusion import FusionWeights

    rng = np.random.default_rng(3)
    candidates = _candidates()
    dense = 0.35 + 0.1 * rng.random(len(candidates))
    dense[42] = 0.83
    lexical = np.zeros(len(candidates))
    order = _fused_order(FusionWeights.load(), candidates, dense, lexical, {"trains": 3.0, "kazakhstan": 5.0})
    assert order[:3] == [candidates[i] for i in np.argsort(-dense, kind="stable")[:3]]
    # The flat leg carries no weight, so the top hit scores 1 whatever weight the query gave it.
    from indexer.query.fusion import fuse, rank

    parts = fuse("hybrid", "adaptive", candidates, dict(zip(candidates, dense)), dict(zip(candidates, lexical)),
                 weights=FusionWeights.load(), idf={"trains": 3.0, "kazakhstan": 5.0})
    assert rank(candidates, parts)[0] == (candidates[42], 1.0)
    assert not any(parts[1].values())


def test_the_packaged_weights_load_and_were_fitted_on_training_splits_only():
    from indexer.query.fusion import QUERY_FEATURES, WEIGHTS_FILE, FusionWeights

    weights = FusionWeights.load()
    assert weights.weights and set(weights.weights) <= set(QUERY_FEATURES)
    assert all(weights.scale[f] > 0 for f in weights.weights)
    data = json.loads(WEIGHTS_FILE.read_text())
    assert data["fitted_on"]["sets"] and all(name.endswith("-train") for name in data["fitted_on"]["sets"])


def test_the_weights_file_drives_the_ranking(tmp_path):
    """The same candidates rank as the dense leg with a weights file whose bias says 'dense', and as
    the lexical leg with one that says 'lexical'; the file round-trips through load."""
    from indexer.query.fusion import FusionWeights

    rng = np.random.default_rng(11)
    candidates = _candidates(50)
    dense, lexical = rng.random(50), 10 * rng.random(50)
    orders = {}
    for name, bias in (("dense", 12.0), ("lexical", -12.0)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(FusionWeights(bias, {"terms": 0.0}, {"terms": 1.0}, {"terms": 1.0}).as_dict()))
        orders[name] = _fused_order(FusionWeights.load(path), candidates, dense, lexical, {"a": 1.0})
    assert orders["dense"] == [candidates[i] for i in np.argsort(-dense, kind="stable")]
    assert orders["lexical"] == [candidates[i] for i in np.argsort(-lexical, kind="stable")]


def test_a_searcher_uses_the_weights_it_was_built_with(news_index, embedder):
    from indexer.query.fusion import FusionWeights
    from indexer.query.search import Searcher

    query = "water shortage in the region this winter"
    lexical_like = Searcher(news_index, embedder, fusion_weights=FusionWeights(-30.0, {}, {}, {}))
    dense_like = Searcher(news_index, embedder, fusion_weights=FusionWeights(30.0, {}, {}, {}))
    for searcher, leg in ((lexical_like, "lexical"), (dense_like, "dense")):
        fused = searcher.search(query, k=8, mode="hybrid", highlights=False)
        alone = searcher.search(query, k=8, mode=leg, highlights=False)
        assert [h.chunk_id for h in fused.hits] == [h.chunk_id for h in alone.hits]
    assert lexical_like.search("Toktogul reservoir", k=1).hits[0].citation.title == TOKTOGUL


@pytest.mark.parametrize("content, problem", [
    ("not json", "cannot read the fusion weights"),
    ('{"bias": 0, "weights": {"moon_phase": 1.0}, "mean": {"moon_phase": 0}, "scale": {"moon_phase": 1}}',
     "unknown features moon_phase"),
    ('{"bias": 0, "weights": {"terms": 1.0}, "mean": {"terms": 0}, "scale": {"terms": 0}}', "scale must be > 0"),
])
def test_a_broken_weights_file_is_a_clear_error(tmp_path, content, problem):
    from indexer.errors import ResourceMissing
    from indexer.query.fusion import FusionWeights

    path = tmp_path / "weights.json"
    path.write_text(content)
    with pytest.raises(ResourceMissing) as error:
        FusionWeights.load(path)
    assert problem in str(error.value) and str(path) in str(error.value) and "fit_fusion.py" in str(error.value)


def test_query_features_read_each_legs_sureness():
    from indexer.query.fusion import query_features

    flat = np.full(100, 0.4)
    sure = np.concatenate([[0.9], np.full(99, 0.4)])
    f = query_features(sure, flat, {"a": 2.0, "b": 3.0})
    assert f["dense_top"] == pytest.approx(0.9) and f["dense_gap"] == pytest.approx(0.5)
    assert f["dense_z"] > 2 and f["lexical_z"] == 0.0 and f["lexical_gap"] == 0.0
    assert f["lexical_cover"] == pytest.approx(0.4 / 5.0) and f["terms"] == pytest.approx(np.log(3))


@pytest.mark.parametrize("n", [1, 2, 11])
def test_adaptive_fusion_handles_few_candidates(n):
    """A filter can leave one or two passages: features and fusion still give finite scores in 0..1."""
    from indexer.query.fusion import FusionWeights, fuse

    candidates = _candidates(n)
    dense = dict(zip(candidates, np.linspace(0.2, 0.6, n)))
    lexical = dict(zip(candidates, np.linspace(3.0, 0.0, n)))
    parts = fuse("hybrid", "adaptive", candidates, dense, lexical, weights=FusionWeights.load(), idf={})
    totals = [parts[0][c] + parts[1][c] for c in candidates]
    assert all(np.isfinite(totals)) and all(0.0 <= t <= 1.0 + 1e-9 for t in totals)


def test_feature_selection_by_cross_validation_keeps_the_informative_feature_only():
    from indexer.evaluate.fusion_fit import Captured, TrainingSet, cross_validate, select_features
    from indexer.query.fusion import QUERY_FEATURES

    # Each query's relevant article is the dense leg's top when `agreement` is high and the lexical
    # leg's top otherwise; every other feature is noise.
    rng = np.random.default_rng(1)
    queries = []
    for _ in range(160):
        dense_wins = bool(rng.random() < 0.5)
        features = {f: float(rng.normal()) for f in QUERY_FEATURES}
        features["agreement"] = (1.0 if dense_wins else -1.0) + 0.1 * float(rng.normal())
        dense, lexical = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5])
        relevance = np.array([1.0, 0.0, 0.0]) if dense_wins else np.array([0.0, 1.0, 0.0])
        queries.append(Captured(features, dense, lexical, relevance, 1))
    sets = [TrainingSet("synthetic-train", queries, "mrr@10")]
    chosen, value = select_features(sets, folds=4)
    assert chosen == ["agreement"]
    assert value > 0.95 > cross_validate(sets, [], folds=4)
