"""Passages longer than the model's window (whole documents, as the BEIR evaluation indexes them) are
embedded as the mean of their windows' vectors, so text past the window still counts."""

from __future__ import annotations

import numpy as np

from indexer.embed import MODEL_MAX_WORDPIECES, passage_input
from indexer.evaluate.harness import WHOLE_DOCUMENTS
from indexer.ingest.chunk import ChunkSettings, chunk_article, window_inputs
from indexer.ingest.documents import make_article
from tests.helpers import write_jsonl

# About 400 wordpieces on one subject, then one sentence on another: a truncating model never reads it.
FILLER = " ".join(
    f"The orchestra rehearsed movement {n} of the symphony for the spring concert season in the old hall."
    for n in range(1, 21)
)
TAIL = "Separately, the harbour authority closed the northern ferry terminal after a fuel barge ran aground."
QUERY = "ferry terminal closed after fuel barge ran aground"


def long_article() -> dict:
    return {"id": "long-1", "title": "Concert season notes", "date": "2005-03-01", "text": FILLER + " " + TAIL}


def test_windows_fit_the_model_cover_the_passage_and_share_a_sentence(embedder):
    article, _ = make_article(title="Concert season notes", blocks=[(None, FILLER + " " + TAIL)])
    [chunk] = chunk_article(article, WHOLE_DOCUMENTS, embedder.count_wordpieces)
    whole = passage_input(article.title, chunk.section, chunk.text)
    assert embedder.count_wordpieces([whole])[0] > MODEL_MAX_WORDPIECES  # the model would cut it

    windows = window_inputs(article, chunk, embedder.count_wordpieces)
    assert len(windows) >= 2
    assert all(embedder.count_wordpieces([w])[0] + 2 <= MODEL_MAX_WORDPIECES for w in windows)
    assert all(w.startswith(article.title + "\n") for w in windows)
    assert TAIL in windows[-1] and "movement 1 of" in windows[0]
    bodies = [w.split("\n", 1)[1] for w in windows]
    for a, b in zip(bodies, bodies[1:]):
        last_sentence = a[a.rstrip(".").rfind(".") + 2:]
        assert b.startswith(last_sentence)  # consecutive windows share one sentence

    # A passage the chunker already kept inside the window is its own single input.
    [short] = chunk_article(article, ChunkSettings(), embedder.count_wordpieces)[:1]
    assert window_inputs(article, short, embedder.count_wordpieces) == [
        passage_input(article.title, short.section, short.text)]


def test_a_whole_document_vector_is_the_mean_of_its_windows_and_hears_its_tail(tmp_path, embedder):
    from indexer.ingest.build import build_index
    from indexer.store.embedded import open_index

    source = write_jsonl(tmp_path / "long.jsonl", [long_article()])
    summary = build_index([source], tmp_path / "index", embedder=embedder, settings=WHOLE_DOCUMENTS, progress=False)
    assert not summary.errors and summary.chunks == 1
    index = open_index(tmp_path / "index")
    try:
        article = index.article("long-1")
        [chunk] = index.article_chunks("long-1")
        windows = embedder.encode(window_inputs(article, chunk, embedder.count_wordpieces))
        mean = windows.mean(axis=0)
        mean /= np.linalg.norm(mean)
        query = embedder.encode([QUERY])[0]
        stored = index.dense_scores([chunk.chunk_id], query)[chunk.chunk_id]
        assert abs(stored - float(mean @ query)) < 1e-4
        # What the model alone makes of the passage (truncated at its window) misses the tail.
        truncated = float(embedder.encode([passage_input(article.title, chunk.section, chunk.text)])[0] @ query)
        assert stored > truncated + 0.05
    finally:
        index.close()
