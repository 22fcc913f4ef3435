"""A segmented embedded index: adds, changes and deletes as new segments and tombstones, searched as one.

Real model (memoised per text, so the same passage is not embedded twice across the
builds compared), real FAISS, real SQLite. The SciFact slice is read from
../shared/datasets at test time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from indexer.ingest.build import build_index, delete_articles, merge_index
from indexer.query.search import Searcher
from indexer.store.embedded import current_version, open_index, writer_lock

from helpers import SCIFACT, distinct_articles, write_jsonl

MODES = ("dense", "lexical", "hybrid")
needs_scifact = pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="shared SciFact corpus not present")


class MemoEmbedder:
    """The real embedder, remembering each text's vector: builds compared with each other embed once."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self._known: dict[str, object] = {}

    def encode(self, texts, **kwargs):
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            self._known.update(zip(missing, self._embedder.encode(missing, **kwargs)))
        return np.stack([self._known[t] for t in texts]) if texts else self._embedder.encode(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


@pytest.fixture(scope="module")
def memo(embedder) -> MemoEmbedder:
    return MemoEmbedder(embedder)


def _scifact(n: int) -> list[dict]:
    records = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            records.append({"id": f"sf-{doc['_id']}", "title": doc["title"] or doc["_id"], "text": doc["text"]})
            if len(records) == n:
                break
    return records


def _queries(n: int) -> list[str]:
    with open(SCIFACT / "queries_test.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line, _ in zip(handle, range(n))]


def _build(tmp: Path, name: str, batches: list[list[dict]], embedder) -> Path:
    """An index built by one `build_index` run per batch (each run sees its batch only as new input)."""
    index_dir = tmp / name
    for n, batch in enumerate(batches):
        summary = build_index([write_jsonl(tmp / f"{name}-{n}.jsonl", batch)], index_dir, embedder=embedder,
                              progress=False)
        assert not summary.errors, summary.errors
    return index_dir


def _results(index_dir: Path, embedder, queries: list[str], *, k: int = 10) -> dict:
    """Per query and mode: the hits as (article id, passage ordinal, score, dense, lexical)."""
    index = open_index(index_dir, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        out = {}
        for query in queries:
            for mode in MODES:
                hits = searcher.search(query, k=k, mode=mode).hits
                out[query, mode] = [(h.citation.article_id, index.chunks([h.chunk_id])[h.chunk_id].ordinal,
                                     h.score, h.dense, h.lexical) for h in hits]
        return out
    finally:
        index.close()


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert [h[:2] for h in got[key]] == [h[:2] for h in want[key]], key
        for a, b in zip(got[key], want[key]):
            for x, y in zip(a[2:], b[2:]):
                assert (x is None and y is None) or abs(x - y) <= 1e-5, (key, a, b)


def _files(directory: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime ns, size) of every file under `directory`."""
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _segment_dirs(index_dir: Path) -> list[Path]:
    index = open_index(index_dir, lazy=True)
    try:
        return [s.path for s in index.segments]
    finally:
        index.close()


# --- identical results however the index is split ----------------------------------------------


@needs_scifact
def test_segmented_scifact_equals_one_build(tmp_path, memo):
    docs = _scifact(45)
    whole = _build(tmp_path, "whole", [docs], memo)
    split = _build(tmp_path, "split", [docs[:15], docs[15:30], docs[30:]], memo)
    assert len(_segment_dirs(split)) == 3 and len(_segment_dirs(whole)) == 1
    queries = _queries(8) + [docs[3]["title"], docs[40]["title"]]
    _assert_same(_results(split, memo, queries), _results(whole, memo, queries))
    one, three = open_index(whole), open_index(split)
    try:
        assert three.counts == one.counts and three.vector_count() == one.vector_count()
        tokens = ["cell", "protein", "no-such-token"]
        assert three.idf(tokens) == pytest.approx(one.idf(tokens), abs=1e-9)
    finally:
        one.close()
        three.close()


def test_segmented_news_equals_one_build(tmp_path, memo, news_index):
    records = [{"id": a.article_id, "title": a.title, "text": a.text, "date": a.date, "source": a.source}
               for a in news_index.articles(r["article_id"] for r in news_index.list_articles(limit=100)).values()]
    assert len(records) == 7
    whole = _build(tmp_path, "whole", [records], memo)
    split = _build(tmp_path, "split", [records[:3], records[3:5], records[5:]], memo)
    assert len(_segment_dirs(split)) == 3
    queries = ["Toktogul water levels", "exchange rate of the som", "locomotive deal with the United States",
               "religious leaders congress", "oil tanker gift"]
    _assert_same(_results(split, memo, queries), _results(whole, memo, queries))
    one, three = open_index(whole), open_index(split)
    try:
        assert three.list_articles(limit=4, offset=2) == one.list_articles(limit=4, offset=2)
        assert three.source_stats() == one.source_stats() and three.sources() == one.sources()
        assert three.newest_date() == one.newest_date()
    finally:
        one.close()
        three.close()


# --- adds, changes and deletes: new segments and tombstones, old segments untouched -------------


@needs_scifact
def test_add_change_delete_leave_old_segments_untouched_and_match_a_fresh_build(tmp_path, memo, monkeypatch):
    import faiss

    docs = _scifact(30)
    index_dir = _build(tmp_path, "live", [docs[:20]], memo)
    [first] = _segment_dirs(index_dir)
    before = _files(first)

    # An add that also changes one article, while counting every FAISS file read.
    changed = {**docs[4], "text": "Narwhal tusks sense salinity changes in Arctic water, a sensory organ study reports."}
    reads = []
    real_read = faiss.read_index
    monkeypatch.setattr(faiss, "read_index", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    summary = build_index([write_jsonl(tmp_path / "add.jsonl", [*docs[:4], changed, *docs[5:30]])], index_dir,
                          embedder=memo, progress=False)
    assert (summary.added, summary.updated, summary.unchanged) == (10, 1, 19)
    assert delete_articles(index_dir, [docs[7]["id"], "never-indexed"]) == [docs[7]["id"]]
    monkeypatch.setattr(faiss, "read_index", real_read)
    assert reads == [], "a write read a FAISS file"
    assert _files(first) == before, "an old segment's files were rewritten"

    segments = _segment_dirs(index_dir)
    assert segments[0] == first and len(segments) == 2
    index = open_index(index_dir, model=memo.name)
    try:
        # The new segment holds only the new and the changed articles; the old one is tombstoned.
        added = index.segments[1].db().execute("SELECT article_id FROM articles").fetchall()
        assert {r[0] for r in added} == {d["id"] for d in docs[20:30]} | {changed["id"]}
        assert index.segments[0].deleted == {changed["id"], docs[7]["id"]}
        assert index.counts["articles"] == 29 and index.vector_count() == index.counts["chunks"]
        assert "Narwhal" in index.article(changed["id"]).text
        searcher = Searcher(index, memo)
        for mode in MODES:
            for query in (docs[7]["title"], docs[4]["title"], "narwhal tusk salinity"):
                hits = searcher.search(query, k=50, mode=mode).hits
                assert docs[7]["id"] not in {h.citation.article_id for h in hits}, mode
                assert all("Narwhal" in h.text for h in hits if h.citation.article_id == changed["id"]), mode
        assert searcher.search("narwhal tusk salinity", k=3, mode="lexical").hits[0].citation.article_id == changed["id"]
    finally:
        index.close()

    # Scores use the live passages only: the same as a fresh build of what is live now.
    live = [d for d in [*docs[:4], changed, *docs[5:30]] if d["id"] != docs[7]["id"]]
    fresh = _build(tmp_path, "fresh", [live], memo)
    queries = _queries(6) + [docs[7]["title"], "narwhal tusk salinity"]
    expected = _results(fresh, memo, queries)
    _assert_same(_results(index_dir, memo, queries), expected)

    # A merge keeps every result, leaves one segment without tombstones, and its old files go later.
    version = merge_index(index_dir)
    assert version == current_version(index_dir).name
    merged = open_index(index_dir)
    try:
        assert len(merged.segments) == 1 and not merged.segments[0].deleted and merged.counts["articles"] == 29
        assert merged.segments[0].postings.chunk_ids.size == merged.vector_count() == merged.counts["chunks"]
    finally:
        merged.close()
    _assert_same(_results(index_dir, memo, queries), expected)
    assert merge_index(index_dir) is None, "nothing left to merge"
    build_index([write_jsonl(tmp_path / "one.jsonl", _scifact(31)[30:])], index_dir, embedder=memo, progress=False)
    assert not first.exists() and not segments[1].exists(), "merged segments outlived the versions listing them"


def test_a_failed_merge_leaves_the_index_as_it_was(tmp_path, memo, monkeypatch):
    from indexer.store import embedded

    records = distinct_articles("m", 4)
    index_dir = _build(tmp_path, "idx", [records[:2], records[2:]], memo)
    before = current_version(index_dir).name
    expected = _results(index_dir, memo, ["harbour berth tides"])

    def crash(self):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(embedded.IndexDraft, "_finish_segment", crash)
    with pytest.raises(OSError, match="simulated"):
        merge_index(index_dir)
    monkeypatch.undo()
    assert current_version(index_dir).name == before and not list(index_dir.glob(".tmp-*"))
    _assert_same(_results(index_dir, memo, ["harbour berth tides"]), expected)
    assert merge_index(index_dir)
    _assert_same(_results(index_dir, memo, ["harbour berth tides"]), expected)


def test_a_reader_keeps_its_segments_through_a_merge(tmp_path, memo):
    records = distinct_articles("r", 10)
    index_dir = _build(tmp_path, "idx", [records[:3], records[3:6]], memo)
    reader = open_index(index_dir)
    try:
        held = [s.path for s in reader.segments]
        merge_index(index_dir)
        for n in range(6, 9):  # more versions than are kept: only the reader's lease keeps its segments
            build_index([write_jsonl(tmp_path / f"x{n}.jsonl", [records[n]])], index_dir, embedder=memo,
                        progress=False)
        assert all(p.is_dir() for p in held)
        hits = Searcher(reader, memo).search(records[4]["title"], k=6, mode="hybrid").hits
        assert len(hits) == 6 and hits[0].citation.article_id == "r-4"
    finally:
        reader.close()
    build_index([write_jsonl(tmp_path / "last.jsonl", [records[9]])], index_dir, embedder=memo, progress=False)
    assert not any(p.is_dir() for p in held), "segments no version lists stayed after their reader closed"


def test_an_index_of_format_1_opens_grows_and_merges(tmp_path, memo):
    """Today's single-segment layout (bm25s arrays, no segment list) is read as one segment."""
    import bm25s

    from indexer.store.bm25 import B, K1, tokenize
    from indexer.store.segments import LEXICAL_ROWS_SQL
    from indexer.store.common import lexical_text

    records = distinct_articles("o", 5)
    index_dir = _build(tmp_path, "old", [records], memo)
    queries = ["apple orchard harvest", "pear"]
    expected = _results(index_dir, memo, queries)
    version = current_version(index_dir)
    manifest = json.loads((version / "manifest.json").read_text())
    for key in ("segments", "next_chunk_id"):
        del manifest[key]
    manifest["format_version"] = 1
    (version / "manifest.json").write_text(json.dumps(manifest))
    lexical = version / "lexical"
    for path in lexical.iterdir():
        path.unlink()
    import sqlite3
    import numpy as np

    rows = sqlite3.connect(version / "newsqa.sqlite").execute(LEXICAL_ROWS_SQL).fetchall()
    retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
    retriever.index(tokenize([lexical_text(r[1], r[2], r[3]) for r in rows]), show_progress=False)
    retriever.save(str(lexical), show_progress=False)
    np.save(lexical / "chunk_ids.npy", np.asarray([r[0] for r in rows], dtype=np.int64), allow_pickle=False)

    _assert_same(_results(index_dir, memo, queries), expected)
    build_index([write_jsonl(tmp_path / "new.jsonl", [{"id": "o-new", "title": "Vineyard report",
                                                       "text": "The vineyard on the hill harvested grapes."}])],
                index_dir, embedder=memo, progress=False)
    grown = open_index(index_dir)
    try:
        assert [s.path for s in grown.segments][0] == version and grown.counts["articles"] == 6
        assert grown.next_chunk_id > max(r[0] for r in rows) + 1
    finally:
        grown.close()
    assert merge_index(index_dir)
    merged = current_version(index_dir)
    assert json.loads((merged / "manifest.json").read_text())["format_version"] == 2
    assert (merged / "lexical" / "postings.json").is_file()
    got = _results(index_dir, memo, queries)
    assert {h[0] for h in got["pear", "lexical"]} >= {h[0] for h in expected["pear", "lexical"]}


def test_merge_command(tmp_path, memo, capsys):
    from service.cli import main

    records = distinct_articles("c", 4)
    index_dir = _build(tmp_path, "idx", [records[:2], records[2:]], memo)
    with writer_lock(index_dir):
        assert main(["merge", "--index", str(index_dir), "--no-wait"]) == 75
    assert f"another writer (pid {os.getpid()})" in capsys.readouterr().err
    assert main(["merge", "--index", str(index_dir)]) == 0
    assert "merged into v-" in capsys.readouterr().out and len(_segment_dirs(index_dir)) == 1
    assert main(["merge", "--index", str(index_dir)]) == 0
    assert "nothing to merge: 4 articles, " in capsys.readouterr().out
    assert main(["merge", "--index", str(tmp_path / "none")]) == 2
    assert "no index at" in capsys.readouterr().err


def test_a_tiered_merge_leaves_the_large_segment_alone(tmp_path, memo):
    records = distinct_articles("t", 14)
    index_dir = _build(tmp_path, "idx", [records[:12], records[12:13], records[13:]], memo)
    large, *small = _segment_dirs(index_dir)
    before = _files(large)
    expected = _results(index_dir, memo, [records[13]["title"], records[2]["title"]])
    version = merge_index(index_dir, small_only=True)
    assert version and _segment_dirs(index_dir) == [large, index_dir / version]
    assert _files(large) == before
    _assert_same(_results(index_dir, memo, [records[13]["title"], records[2]["title"]]), expected)
    assert merge_index(index_dir, small_only=True) is None, "one small segment is left alone"


_KILLED_WRITER = """
import sys, time
from indexer.store import embedded
from indexer.ingest.build import build_index, merge_index

written = embedded.IndexDraft._finish_segment

def stall(self):
    entry = written(self)  # the new segment's files are complete; the version is not published yet
    print("segment written", flush=True)
    time.sleep(120)
    return entry

embedded.IndexDraft._finish_segment = stall
if sys.argv[1] == "merge":
    merge_index(sys.argv[2])
else:
    from indexer.embed import Embedder
    build_index([sys.argv[3]], sys.argv[2], embedder=Embedder(), progress=False)
"""


@pytest.mark.parametrize("write", ["add", "merge"])
def test_a_writer_killed_before_publishing_loses_nothing_committed(tmp_path, memo, write):
    import signal
    import subprocess
    import sys

    from helpers import ROOT

    records = distinct_articles("k", 6)
    index_dir = _build(tmp_path, "idx", [records[:3], records[3:5]], memo)
    before = current_version(index_dir).name
    queries = [r["title"] for r in records[:5]]
    expected = _results(index_dir, memo, queries)
    feed = write_jsonl(tmp_path / "more.jsonl", records[5:])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, write, str(index_dir), str(feed)], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line == "segment written\n", (line, process.communicate(timeout=60))
        assert list(index_dir.glob(".tmp-*")), "the killed writer's draft is on disk"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert current_version(index_dir).name == before
    _assert_same(_results(index_dir, memo, queries), expected)
    # The next writer clears the dead draft, and the write goes through.
    if write == "merge":
        assert merge_index(index_dir) and len(_segment_dirs(index_dir)) == 1
        _assert_same(_results(index_dir, memo, queries), expected)
    else:
        assert build_index([feed], index_dir, embedder=memo, progress=False).added == 1
        index = open_index(index_dir)
        try:
            assert index.counts["articles"] == 6 and index.article(records[5]["id"])
        finally:
            index.close()
    assert not list(index_dir.glob(".tmp-*"))


def test_loading_a_version_after_an_add_reads_only_the_new_segment(tmp_path, memo, monkeypatch):
    import faiss

    from indexer.store.embedded import Index

    records = distinct_articles("n", 5)
    index_dir = _build(tmp_path, "idx", [records[:4]], memo)
    served = open_index(index_dir)
    try:
        build_index([write_jsonl(tmp_path / "one.jsonl", records[4:])], index_dir, embedder=memo, progress=False)
        reads = []
        real_read = faiss.read_index
        monkeypatch.setattr(faiss, "read_index", lambda path, *a: reads.append(path) or real_read(path, *a))
        fresh = Index(current_version(index_dir), reuse=served)  # what the service's reload does
        try:
            assert reads == [str(current_version(index_dir) / "vectors.faiss")]
            assert fresh.segments[0].vectors is served.segments[0].vectors
            hits = Searcher(fresh, memo).search(records[4]["title"], k=5, mode="hybrid").hits
            assert hits[0].citation.article_id == "n-4" and len(hits) == 5
        finally:
            fresh.close()
    finally:
        served.close()


def test_the_service_reload_after_an_add_reads_only_the_new_segment(tmp_path, memo, monkeypatch):
    """The service wraps its store (time-budget checks); its reload must still share the loaded segments."""
    import faiss
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    records = distinct_articles("s", 5)
    index_dir = _build(tmp_path, "idx", [records[:4]], memo)
    app = create_app(ServiceSettings(index_dir=index_dir, reload_interval=0, merge_interval=0), embedder=memo)
    with TestClient(app) as client:
        build_index([write_jsonl(tmp_path / "one.jsonl", records[4:])], index_dir, embedder=memo, progress=False)
        reads = []
        real_read = faiss.read_index
        monkeypatch.setattr(faiss, "read_index", lambda path, *a: reads.append(path) or real_read(path, *a))
        assert app.state.reloader.reload().changed
        assert reads == [str(current_version(index_dir) / "vectors.faiss")]
        hits = client.get("/v1/search", params={"q": records[4]["title"], "k": 5}).json()["hits"]
        assert hits[0]["citation"]["article_id"] == "s-4"


# --- an add reads what it changes, not the whole index -----------------------------------------------


@needs_scifact
def test_an_add_finds_near_duplicates_by_key_without_reading_every_article(tmp_path, memo, monkeypatch):
    import sqlite3

    from indexer.store.embedded import Index

    docs = _scifact(33)
    index_dir = _build(tmp_path, "idx", [docs[0:10], docs[10:20], docs[20:30]], memo)
    first = _segment_dirs(index_dir)[0]
    # The first segment as written before band keys were stored: its keys are computed from its rows.
    with sqlite3.connect(first / "newsqa.sqlite") as conn:
        conn.execute("DROP TABLE bands")
    bulk = []
    for name in ("signatures", "article_hashes"):
        real = getattr(Index, name)
        monkeypatch.setattr(Index, name, lambda self, *a, _real=real, _name=name: bulk.append(_name) or _real(self, *a))

    copies = [{**docs[n], "id": f"copy-{n}", "text": docs[n]["text"] + " This is a reprint."} for n in (3, 15, 27)]
    changed = {**docs[12], "title": docs[31]["title"], "text": docs[31]["text"] + " Revised."}  # a new one's copy
    summary = build_index([write_jsonl(tmp_path / "add.jsonl", [*copies, docs[30], docs[5], changed, docs[31]])],
                          index_dir, embedder=memo, progress=False)
    # The reprints of an old article in each segment, and the new article `changed` now duplicates, are found.
    assert (summary.added, summary.updated, summary.unchanged, summary.duplicates) == (1, 1, 1, 4)
    assert bulk == [], "a small add read every article of the index"

    # A merge writes the band keys of the old segment's rows; a reprint is still found after it.
    merge_index(index_dir)
    index = open_index(index_dir, lazy=True)
    try:
        assert len(index.segments) == 1 and index.segments[0].has_bands
        assert index.content_hash(docs[12]["id"]) is not None and index.content_hash("copy-3") is None
    finally:
        index.close()
    again = build_index([write_jsonl(tmp_path / "again.jsonl", [{**copies[0], "id": "copy-again"}])], index_dir,
                        embedder=memo, progress=False)
    assert (again.added, again.duplicates) == (0, 1) and bulk == []


def test_a_large_run_reads_the_index_once_instead_of_per_article(tmp_path, memo):
    from indexer.ingest.dedupe import KnownArticles, signature

    records = distinct_articles("k", 6)
    index_dir = _build(tmp_path, "idx", [records[:3], records[3:]], memo)
    index = open_index(index_dir, lazy=True)
    try:
        reads = []

        def signatures():
            reads.append("signatures")
            return index.signatures()

        known = KnownArticles(hashes=index.article_hashes, signatures=signatures, hash_of=index.content_hash,
                              similar=index.similar_signatures, bulk_after=2)
        texts = [signature(r["title"] + "\n" + r["text"]) for r in records]
        # Before and after the switch to one bulk read, the answers are the same.
        found = [known.duplicate(sig, exclude="other") for sig in texts]
        assert found == [r["id"] for r in records] and reads == ["signatures"] and known.lookups == 2
        assert known.duplicate(texts[0], exclude=records[0]["id"]) is None
        assert known.duplicate(texts[4], exclude="other", replaced={records[4]["id"]}) is None
    finally:
        index.close()
