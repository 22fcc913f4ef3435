"""Index builds: duplicates collapse, manifests are checked, a killed build leaves the old index intact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.ingest.build import build_index
from indexer.errors import IndexMismatch, IndexMissing
from indexer.query.search import Searcher
from indexer.store.embedded import current_version, open_index

from helpers import NEWS_PAGE, ROOT


def _news_hits(searcher, query, k=20):
    return [h for h in searcher.search(query, k=k, mode="dense").hits]


def test_manifest_records_model_settings_and_counts(news_index):
    manifest = news_index.manifest
    assert manifest["model"] == "all-MiniLM-L6-v2" and manifest["dimension"] == 384
    assert manifest["chunking"]["max_tokens"] == 200 and manifest["chunking"]["encoding"] == "cl100k_base"
    assert manifest["counts"] == {"articles": 6, "records": 1, "chunks": news_index.vector_count()}
    assert manifest["package_version"] and manifest["built_at"]
    assert {p.name for p in news_index.path.iterdir()} >= {"manifest.json", "vectors.faiss", "newsqa.sqlite", "lexical"}


def test_ticker_is_in_the_index_once(news_index):
    db = news_index.segments[0].db()
    assert db.execute("SELECT COUNT(*) FROM chunks WHERE text LIKE '%KGS/USD%'").fetchone()[0] == 1
    row = db.execute("SELECT kind, date FROM articles WHERE text LIKE '%KGS/USD%'").fetchone()
    assert tuple(row) == ("market_rates", "2025-12-16")


def test_same_file_twice_and_edited_copy_do_not_duplicate_results(tmp_path, embedder):
    page = NEWS_PAGE.read_text()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "page.txt").write_text(page)
    # A second copy under another name with small edits (a typo fixed, a sentence added).
    edited = page.replace("critically low water levels", "critically low water level").replace(
        "Hydropower provides around 90 percent", "Officials repeated the warning on Monday. Hydropower provides around 90 percent")
    (tmp_path / "in" / "copy-of-page.txt").write_text(edited)
    index_dir = tmp_path / "index"
    summary = build_index([tmp_path / "in", tmp_path / "in" / "page.txt"], index_dir, embedder=embedder, progress=False)
    assert summary.total_articles == 6
    assert summary.duplicates >= 7  # the edited copy's 6 articles + rates, and the file given twice
    index = open_index(index_dir)
    try:
        hits = _news_hits(Searcher(index, embedder), "Toktogul reservoir water", k=20)
        keys = [(h.citation.article_id, h.citation.start) for h in hits]
        assert len(keys) == len(set(keys))
        texts = [h.text for h in hits]
        assert len(texts) == len(set(texts))
    finally:
        index.close()


def test_unchanged_input_writes_no_new_version(tmp_path, embedder, news_index_dir):
    index_dir = tmp_path / "index"
    first = build_index([NEWS_PAGE], index_dir, embedder=embedder, progress=False)
    again = build_index([NEWS_PAGE], index_dir, embedder=embedder, progress=False)
    assert first.version and again.version is None and again.unchanged == 7 and again.chunks == 0
    assert current_version(index_dir).name == first.version


def test_loading_refuses_a_mismatched_model(tmp_path, news_index_dir):
    copy = tmp_path / "index"
    shutil.copytree(news_index_dir, copy)
    manifest_path = current_version(copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = "bge-large-en"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match=r"built with model 'bge-large-en'.*--rebuild"):
        open_index(copy, model="all-MiniLM-L6-v2")


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexMissing, match="newsqa index"):
        open_index(tmp_path / "nowhere")


def _many_articles(path: Path, n: int) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            text = " ".join(f"Sentence {j} of report {i} on river basin management and hydropower." for j in range(30))
            handle.write(json.dumps({"id": f"bulk-{i}", "title": f"Report {i}", "text": text}) + "\n")
    return path


@pytest.mark.slow
def test_a_build_killed_midway_leaves_the_previous_index_intact(tmp_path, news_index_dir, embedder):
    index_dir = tmp_path / "index"
    shutil.copytree(news_index_dir, index_dir)
    before = current_version(index_dir).name
    bulk = _many_articles(tmp_path / "bulk.jsonl", 400)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "index", str(bulk), "--index", str(index_dir), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(index_dir.glob(".tmp-*")) and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
        time.sleep(2)  # well into embedding
        assert process.poll() is None, "build finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert current_version(index_dir).name == before
    index = open_index(index_dir, model=embedder.name)
    try:
        assert index.counts["articles"] == 6
        top = Searcher(index, embedder).search("Toktogul water levels", k=1).hits[0]
        assert "Toktogul" in top.citation.title
    finally:
        index.close()
    # The next build clears the dead draft and succeeds.
    summary = build_index([NEWS_PAGE], index_dir, embedder=embedder, progress=False)
    assert summary.unchanged == 7
    assert not list(index_dir.glob(".tmp-*"))


def test_delete_then_reindex_restores_the_article(tmp_path, embedder, news_index_dir):
    from indexer.ingest.build import delete_articles

    index_dir = tmp_path / "index"
    shutil.copytree(news_index_dir, index_dir)
    index = open_index(index_dir)
    toktogul = next(r["article_id"] for r in index.list_articles() if "Toktogul" in r["title"])
    index.close()
    assert delete_articles(index_dir, [toktogul]) == [toktogul]
    # The page's bytes are unchanged, but its file record went with the delete: it is read again.
    summary = build_index([NEWS_PAGE], index_dir, embedder=embedder, progress=False)
    assert (summary.added, summary.unchanged) == (1, 6)
    index = open_index(index_dir)
    try:
        assert index.article(toktogul).title.startswith("Kyrgyzstan Faces")
    finally:
        index.close()


def test_a_file_with_bad_lines_is_read_again_so_errors_are_reported_again(tmp_path, embedder):
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "a", "title": "Fine", "text": "Good text."}\n{broken\n')
    first = build_index([feed], tmp_path / "index", embedder=embedder, progress=False)
    again = build_index([feed], tmp_path / "index", embedder=embedder, progress=False)
    assert len(first.errors) == len(again.errors) == 1 and again.unchanged == 1
