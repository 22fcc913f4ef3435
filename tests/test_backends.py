"""The same checks on both storage backends: the embedded index and PostgreSQL + pgvector.

`backend_searcher` (tests/backends.py) runs each test once per backend over the
shipped news page; PostgreSQL is a real server started for the session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import NEWS_PAGE, TOKTOGUL, assert_error, write_jsonl


QUERIES = ["Toktogul water levels", "exchange rate of the som", "locomotive deal with the United States",
           "religious leaders congress", "oil tanker gift"]
MODES = ("dense", "lexical", "hybrid")


def _key(hit) -> tuple:
    """A hit independent of backend chunk ids: the cited span and its scores."""
    c = hit.citation
    return (c.article_id, c.start, c.end, round(hit.score, 4), round(hit.dense, 4), round(hit.lexical, 4))


def _same_ranking(a, b) -> None:
    # Ties may come in either order: compare score sequences, then the hits as sets.
    assert [round(h.score, 4) for h in a] == [round(h.score, 4) for h in b]
    assert sorted(map(_key, a)) == sorted(map(_key, b))


# --- search on each backend -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_top_hit_in_every_mode(backend_searcher, mode):
    result = backend_searcher.search("Toktogul water levels", k=5, mode=mode)
    assert result.hits[0].citation.title == TOKTOGUL
    top = result.hits[0]
    assert top.dense is not None and top.lexical is not None and top.lexical > 0
    article = backend_searcher.index.article(top.citation.article_id)
    assert article.text[top.citation.start : top.citation.end] == top.text


def test_filters_select_before_ranking(backend_searcher):
    from indexer.query.search import make_filters

    searcher = backend_searcher
    everything = searcher.search("water", k=20, mode="dense")
    source = everything.hits[0].citation.source
    kept = searcher.search("water", k=20, mode="hybrid", filters=make_filters(source=source))
    assert kept.hits and all(h.citation.source == source for h in kept.hits)
    assert searcher.search("water", k=5, filters=make_filters(source="no-such-source")).hits == []
    assert searcher.search("water", k=5, filters=make_filters(date_to="1990-01-01")).hits == []
    dated = searcher.search("water", k=5, filters=make_filters(date_from="2025-12-16", date_to="2025-12-16"))
    assert dated.hits and all(h.citation.date == "2025-12-16" for h in dated.hits)
    assert searcher.index.sources() == [source]


def test_grouping_one_result_per_article(backend_searcher):
    result = backend_searcher.search("water", k=5, group="article")
    ids = [g.article_id for g in result.groups]
    assert len(ids) == len(set(ids)) == len(result.hits)
    assert all(len(g.hits) <= 3 and all(h.citation.article_id == g.article_id for h in g.hits) for g in result.groups)


def test_lookups(backend_searcher):
    index = backend_searcher.index
    counts = index.counts
    assert counts == {"articles": 6, "records": 1, "chunks": 29}
    listed = index.list_articles(limit=100)
    assert len(listed) == 7 and {"article_id", "title", "date", "source"} <= set(listed[0])
    article_id = next(a["article_id"] for a in listed if a["title"] == TOKTOGUL)
    chunks = index.article_chunks(article_id)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert index.chunks([c.chunk_id for c in chunks]) == {c.chunk_id: c for c in chunks}
    assert index.manifest["model"] and index.manifest["built_at"]
    from indexer.errors import NotFound

    with pytest.raises(NotFound):
        index.article("no-such-article")


def test_answers(backend_searcher):
    from indexer.query.answer import Answerer

    result = Answerer(backend_searcher).answer("How much water had the Toktogul reservoir accumulated?")
    assert result.answer is not None, result.reason
    assert "10.8 billion cubic meters" in result.answer.text
    c = result.answer.citation
    assert backend_searcher.index.article(c.article_id).text[c.start : c.end] == result.answer.text


def test_context(backend_searcher):
    from indexer.query.context import pack_context

    hits = backend_searcher.search("Toktogul water levels", k=5).hits
    packed = pack_context(hits, backend_searcher.index, 300)
    assert packed.blocks and packed.tokens <= 300
    assert packed.blocks[0].citation.title == TOKTOGUL


# --- both backends agree ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_backends_return_the_same_results(both_searchers, mode):
    embedded, postgres = both_searchers
    for query in QUERIES:
        _same_ranking(embedded.search(query, k=10, mode=mode).hits, postgres.search(query, k=10, mode=mode).hits)


def test_backends_agree_on_groups_answers_and_context(both_searchers):
    from indexer.query.answer import Answerer
    from indexer.query.context import pack_context

    embedded, postgres = both_searchers
    for query in QUERIES:
        a = embedded.search(query, k=5, group="article")
        b = postgres.search(query, k=5, group="article")
        assert [round(g.score, 4) for g in a.groups] == [round(g.score, 4) for g in b.groups]
        assert sorted(g.article_id for g in a.groups) == sorted(g.article_id for g in b.groups)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        ans_a, ans_b = Answerer(embedded).answer(query), Answerer(postgres).answer(query)
        assert (ans_a.answer is None) == (ans_b.answer is None)
        if ans_a.answer is not None:
            assert ans_a.answer.text == ans_b.answer.text and ans_a.answer.citation == ans_b.answer.citation
        hits_a, hits_b = embedded.search(query, k=5).hits, postgres.search(query, k=5).hits
        if [_key(h) for h in hits_a] == [_key(h) for h in hits_b]:  # same order (no ties): same context
            assert pack_context(hits_a, embedded.index, 400).text == pack_context(hits_b, postgres.index, 400).text


def test_leg_scores_for_given_passages(both_searchers, embedder):
    """The store answers a leg's score for any passage: exact cosine and BM25, equal across backends."""
    embedded, postgres = both_searchers
    vector = embedder.encode(["Toktogul water levels"])[0]
    by_span = {}
    for index in (embedded.index, postgres.index):
        ids = [c.chunk_id for a in index.list_articles() for c in index.article_chunks(a["article_id"])]
        chunks = index.chunks(ids)
        dense = index.dense_scores(ids, vector)
        bm25 = index.lexical_scores(ids, index.lexical_terms("Toktogul water levels"))
        by_span[index is postgres.index] = {
            (chunks[i].article_id, chunks[i].start): (round(dense[i], 5), round(bm25[i], 4)) for i in ids}
    assert by_span[False] == by_span[True]


def test_postgres_ts_rank_cd_leg(pg_news_index):
    """PostgreSQL's own full-text ranking over the tsvector column (kept for comparison with BM25)."""
    hits = pg_news_index.lexical_search("Toktogul reservoir", 5, ranking="ts_rank_cd")
    assert hits and all(score > 0 for _, score in hits)
    title_ids = {c.chunk_id for c in pg_news_index.article_chunks(
        next(a["article_id"] for a in pg_news_index.list_articles() if a["title"] == TOKTOGUL))}
    assert hits[0][0] in title_ids


# --- writes: incremental and transactional ---------------------------------------------------


ARTICLES = [
    {"id": "a1", "title": "Glacier melt in the Pamir", "date": "2025-01-02", "source": "wire",
     "text": "Glaciers in the Pamir mountains lost a tenth of their ice over a decade, scientists said."},
    {"id": "a2", "title": "New railway to the port", "date": "2025-01-03", "source": "wire",
     "text": "A railway line to the Caspian port opened for freight trains carrying grain and cotton."},
    {"id": "a3", "title": "Apricot harvest", "date": "2025-01-04", "source": "farm",
     "text": "Farmers in the Fergana valley reported a record apricot harvest after a warm spring."},
]


@pytest.fixture()
def store_target(backend, tmp_path, request):
    """An empty index of the parametrized backend: a directory, or a fresh PostgreSQL database."""
    return str(tmp_path / "index") if backend == "embedded" else request.getfixturevalue("pg_url")


def test_incremental_add_change_delete(store_target, tmp_path, embedder):
    from indexer.query.search import Searcher
    from indexer.ingest.targets import build_store, delete_from
    from indexer.store.backends import open_store

    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, ARTICLES[:2])
    first = build_store([corpus], store_target, embedder=embedder, progress=False)
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    again = build_store([corpus], store_target, embedder=embedder, progress=False)
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 2, 0)

    changed = dict(ARTICLES[1], text="A railway line to the Caspian port was closed for repairs of the bridge.")
    write_jsonl(corpus, [ARTICLES[0], changed, ARTICLES[2]])
    update = build_store([corpus], store_target, embedder=embedder, progress=False)
    assert (update.added, update.updated, update.unchanged) == (1, 1, 1)
    index = open_store(store_target, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        assert index.counts["articles"] == 3
        assert "bridge" in index.article("a2").text and "cotton" not in index.article("a2").text
        assert searcher.search("apricot harvest", k=1).hits[0].citation.article_id == "a3"
        assert searcher.search("cotton freight", k=3, mode="lexical").hits == []
    finally:
        index.close()

    assert delete_from(store_target, ["a1", "missing"]) == ["a1"]
    index = open_store(store_target, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        assert index.counts["articles"] == 2
        assert all(h.citation.article_id != "a1" for h in searcher.search("glaciers Pamir", k=5).hits)
        assert searcher.search("glaciers Pamir", k=5, mode="lexical").hits == []
    finally:
        index.close()


def test_a_long_lived_searcher_cites_what_a_live_store_holds_now(pg_url, embedder, tmp_path):
    """PostgreSQL is live: a searcher opened before a change cites the changed article, not a kept copy."""
    from indexer.query.search import Searcher
    from indexer.ingest.targets import build_store
    from indexer.store.backends import open_store

    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, ARTICLES[:2])
    build_store([corpus], pg_url, embedder=embedder, progress=False)
    index = open_store(pg_url, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        before = searcher.search("cotton freight railway", k=1).hits[0].citation
        assert before.article_id == "a2" and before.title == ARTICLES[1]["title"]
        write_jsonl(corpus, [ARTICLES[0], dict(ARTICLES[1], title="Cotton freight, retitled")])
        build_store([corpus], pg_url, embedder=embedder, progress=False)
        after = searcher.search("cotton freight railway", k=1).hits[0].citation
        assert (after.article_id, after.title) == ("a2", "Cotton freight, retitled")
    finally:
        index.close()


def _pending(embedder, article_dict, *, dimension=None):
    from indexer.ingest.build import content_hash
    from indexer.ingest.chunk import ChunkSettings, chunk_article
    from indexer.ingest.dedupe import signature
    from indexer.store.protocols import PendingArticle
    from indexer.types import Article, Section

    end = len(article_dict["text"])
    article = Article(article_id=article_dict["id"], title=article_dict["title"], text=article_dict["text"],
                      date=article_dict["date"], source=article_dict["source"], sections=(Section(None, 0, end),),
                      paragraphs=((0, end),))
    chunks = chunk_article(article, ChunkSettings(), embedder.count_wordpieces, first_id=0)
    assert chunks
    vectors = embedder.encode([c.text for c in chunks])
    if dimension is not None:  # a vector the column cannot hold: the insert fails inside the transaction
        vectors = np.zeros((len(chunks), dimension), dtype=np.float32)
    return PendingArticle(article, tuple(chunks), vectors, content_hash(article), signature(article.text))


def test_postgres_writes_are_transactional(pg_url, embedder):
    """An article and its chunks commit together or not at all; a failed replace keeps the old version."""
    from dataclasses import asdict

    import psycopg

    from indexer.ingest.chunk import ChunkSettings
    from indexer.store.postgres import PgWriter

    writer = PgWriter(pg_url, model=embedder.name, dimension=embedder.dimension, settings=asdict(ChunkSettings()))
    try:
        writer.write([_pending(embedder, ARTICLES[0])])
        good = _pending(embedder, ARTICLES[1])
        bad = _pending(embedder, ARTICLES[2], dimension=embedder.dimension + 1)
        with pytest.raises(psycopg.Error):
            writer.write([good, bad])
        assert not writer.has_article("a2") and not writer.has_article("a3")
        broken_replace = _pending(embedder, dict(ARTICLES[0], text="Replaced text."), dimension=3)
        with pytest.raises(psycopg.Error):
            writer.write([broken_replace])
        rows = writer.conn.execute("SELECT a.text, COUNT(c.chunk_id), (SELECT COUNT(*) FROM chunks), "
                                   "(SELECT COUNT(DISTINCT chunk_id) FROM postings) FROM articles a "
                                   "JOIN chunks c USING (article_id) GROUP BY a.text").fetchall()
        assert len(rows) == 1 and rows[0][0] == ARTICLES[0]["text"] and rows[0][1] == rows[0][2] == rows[0][3] > 0
        stats = writer.conn.execute("SELECT chunks, total_length FROM newsqa_stats").fetchone()
        assert stats == writer.conn.execute("SELECT COUNT(*), SUM(lex_len) FROM chunks").fetchone()
    finally:
        writer.close()


def test_postgres_schema_is_created_once_and_checked(pg_url, embedder):
    from dataclasses import asdict

    from indexer.ingest.chunk import ChunkSettings
    from indexer.errors import IndexMismatch, IndexMissing
    from indexer.store.postgres import SCHEMA_VERSION, PgWriter
    from indexer.store.backends import open_store

    with pytest.raises(IndexMissing):
        open_store(pg_url, model=embedder.name)
    settings = asdict(ChunkSettings())
    for _ in range(2):  # the second writer finds the schema in place
        writer = PgWriter(pg_url, model=embedder.name, dimension=embedder.dimension, settings=settings)
        versions = writer.conn.execute("SELECT version FROM newsqa_schema").fetchall()
        writer.close()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    with pytest.raises(IndexMismatch, match="--rebuild"):
        PgWriter(pg_url, model="another-model", dimension=embedder.dimension, settings=settings)
    with pytest.raises(IndexMismatch, match="rebuild"):
        open_store(pg_url, model="another-model")


def test_shard_workers_together_index_everything(pg_server, tmp_path, embedder):
    from indexer.ingest.targets import index_into_store
    from indexer.store.postgres import shard_of
    from indexer.store.backends import open_store

    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, ARTICLES)
    assert {shard_of(a["id"], 2) for a in ARTICLES} == {0, 1}  # both workers get work
    single, split = pg_server.database(), pg_server.database()
    index_into_store([corpus], single, embedder=embedder, progress=False)
    added = [index_into_store([corpus], split, embedder=embedder, progress=False, shard=(i, 2)).added for i in range(2)]
    assert sum(added) == 3 and all(added)
    one, two = open_store(single, model=embedder.name), open_store(split, model=embedder.name)
    try:
        assert one.counts == two.counts
        assert {a["article_id"] for a in one.list_articles()} == {a["article_id"] for a in two.list_articles()}
    finally:
        one.close()
        two.close()


def test_shard_and_url_errors(tmp_path, embedder):
    from indexer.errors import IndexMissing, InvalidParameter
    from indexer.store.postgres import parse_shard
    from indexer.ingest.targets import build_store
    from indexer.store.backends import open_store

    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(InvalidParameter, match="i/n"):
            parse_shard(bad)
    with pytest.raises(InvalidParameter, match="PostgreSQL"):
        build_store([NEWS_PAGE], tmp_path / "index", embedder=embedder, shard=(0, 2))
    with pytest.raises(InvalidParameter, match="pool_size"):
        open_store("postgresql://nobody@localhost/none?pool_size=zero")
    with pytest.raises(IndexMissing, match="cannot connect"):
        open_store(f"postgresql://nobody@/none?host={tmp_path}")


def test_http_service_on_postgres(pg_news_url, embedder):
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(store=pg_news_url), embedder=embedder)
    with TestClient(app=app) as client:
        response = client.get("/v1/search", params={"q": "Toktogul water levels", "k": 3})
        assert response.status_code == 200, response.text
        assert response.json()["hits"][0]["citation"]["title"] == TOKTOGUL
        assert client.get("/health").json()["chunks"] == 29
        assert_error(client.get("/v1/articles/no-such-article"), 404, "not_found")


def test_postgres_schema_migrates_an_older_store(pg_url, embedder, tmp_path):
    """A store left at schema version 1 is refused by readers and migrated by the next `newsqa index`."""
    import psycopg

    from indexer.errors import IndexMismatch
    from indexer.store.postgres import SCHEMA_VERSION
    from indexer.query.search import Searcher
    from indexer.ingest.targets import build_store
    from indexer.store.backends import open_store

    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, ARTICLES)
    build_store([corpus], pg_url, embedder=embedder, progress=False)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what version 1 of newsqa left behind
        conn.execute("DROP TABLE newsqa_stats; DELETE FROM newsqa_schema WHERE version > 1")
    with pytest.raises(IndexMismatch, match="migrates"):
        open_store(pg_url, model=embedder.name)
    summary = build_store([corpus], pg_url, embedder=embedder, progress=False)
    assert summary.unchanged == 3 and summary.chunks == 0
    index = open_store(pg_url, model=embedder.name)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            versions = conn.execute("SELECT version FROM newsqa_schema ORDER BY version").fetchall()
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
        assert Searcher(index, embedder).search("apricot harvest", k=1, mode="lexical").hits[0].citation.article_id == "a3"
    finally:
        index.close()


@pytest.mark.slow
def test_backend_bench_short(tmp_path):
    """bench/backends.py --short: SciFact slice nDCG@10 equal across backends, latency and workers measured."""
    import subprocess
    import sys

    from helpers import ROOT, SCIFACT

    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "backends.py"), "--short", "--scifact", str(SCIFACT),
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["max_ndcg_difference"] <= 0.005
    assert {row["clients"] for row in report["latency"]["postgres"]} == {1, 8}
    one, two = report["workers"]
    assert one["passages"] == two["passages"] > 0
    # Each of two workers does about half the work of one (CPU seconds; wall time depends on free cores).
    assert max(two["cpu_seconds"]) < 0.8 * one["cpu_seconds"][0]
