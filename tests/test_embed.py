"""Both embedding backends give the same vectors, and the model loads offline."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.embed import Embedder
from indexer.errors import InvalidParameter

from helpers import NEWS_PAGE


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(backend="torch")


def test_onnx_agrees_with_torch(embedder, torch_embedder):
    assert embedder.backend == "onnx"
    texts = ["Toktogul water levels", "How much water had the Toktogul reservoir accumulated?", "",
             NEWS_PAGE.read_text()[:5000],  # longer than the window: both truncate at 256 wordpieces
             *NEWS_PAGE.read_text().split("\n\n")[40:60]]
    onnx, reference = embedder.encode(texts), torch_embedder.encode(texts)
    assert onnx.shape == reference.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    cosine = (onnx * reference).sum(axis=1)
    assert cosine.min() > 0.999, cosine


def test_wordpiece_counts_match_the_models_tokenizer(embedder, torch_embedder):
    tokenizer = torch_embedder._impl._model.tokenizer
    texts = ["Berdimuhamedov Sr.’s visit", "KGS/USD = 0.01144 0%", "Ürümqi—Almaty"]
    assert embedder.count_wordpieces(texts) == [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def test_unknown_backend_is_refused():
    with pytest.raises(InvalidParameter, match="auto, onnx, torch"):
        Embedder(backend="tensorflow")


def test_auto_takes_the_faster_backend_for_each_purpose(monkeypatch):
    from indexer.embed import resolve_backend

    assert resolve_backend("auto", "queries") == "onnx"
    assert resolve_backend("auto", "passages") == "torch"
    assert resolve_backend("onnx", "passages") == "onnx" and resolve_backend("torch", "queries") == "torch"
    # Without sentence-transformers, passages fall back to ONNX Runtime.
    import indexer.embed as embed

    monkeypatch.setattr(embed, "_installed", lambda module: module != "sentence_transformers")
    assert resolve_backend("auto", "passages") == "onnx"
    with pytest.raises(InvalidParameter, match="purpose 'documents' is not known"):
        resolve_backend("auto", "documents")
    with pytest.raises(InvalidParameter, match="backend 'gpu' is not known"):
        resolve_backend("gpu", "queries")


@pytest.mark.slow
def test_encoder_bench_short(tmp_path):
    """bench/encoders.py --short: both backends measured in their own processes, same scores, same vectors."""
    import json
    import os
    import subprocess
    import sys

    from helpers import ROOT, SCIFACT

    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip("SciFact is not in ../shared")
    out = tmp_path / "encoders.json"
    # Its own cache, so each backend embeds the slice itself.
    env = {**os.environ, "NEWSQA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "encoders.py"), "--short", "--beir", str(SCIFACT),
                           "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["backends"]) == {"torch", "onnx"}
    assert report["agreement"]["min_cosine"] > 0.999
    assert report["max_ndcg_delta"] <= 0.002
    for backend in report["backends"].values():
        assert backend["passages_per_second"] > 0 and 0 < backend["query_ms_p50"] <= backend["query_ms_p90"]
        assert 0.5 < backend["ndcg@10_dense"] <= 1
