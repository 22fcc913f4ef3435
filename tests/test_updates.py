"""Live updates: incremental add, change and delete, and a hot swap under concurrent queries.

Real model (wrapped only to count its calls), real FAISS, real HTTP to a real
uvicorn server for the hot swap.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from helpers import NEWS_PAGE, CountingEmbedder, LiveServer, QueryLoad, copy_tree, free_port, wait_for, write_jsonl


ARTICLES = [
    {"id": "quokka-1", "title": "Quokka census on Rottnest Island", "date": "2025-11-02", "source": "Island Post",
     "text": "Rangers counted the quokka population on Rottnest Island this spring. The quokka count rose by a "
             "tenth after a wet winter. Tourists are reminded not to feed the animals."},
    {"id": "glacier-2", "title": "Glacier retreat in the Pamir mountains", "date": "2025-11-03", "source": "Mountain Wire",
     "text": "Hydrologists measured the Fedchenko glacier again in October. The glacier lost more ice than in any "
             "year on record. Downstream farmers depend on its meltwater for irrigation."},
    {"id": "tram-3", "title": "New tram line opens in Almaty", "date": "2025-11-04", "source": "City Desk",
     "text": "The first tram line in decades opened in Almaty on Monday. Commuters praised the quiet carriages. "
             "The city plans two more lines by 2028."},
]
CHANGED_GLACIER = {**ARTICLES[1], "text": "Hydrologists found a colony of snow leopards near the Fedchenko glacier "
                   "camp. Camera traps recorded three cubs. Rangers will close the trail to protect the narwhal-shaped "
                   "ice cave where the animals shelter."}


def live_version(index_dir: Path) -> str:
    return (index_dir / "CURRENT").read_text().strip()


@pytest.fixture()
def small_index(tmp_path, embedder) -> Path:
    from indexer.ingest.build import build_index

    index_dir = tmp_path / "index"
    summary = build_index([write_jsonl(tmp_path / "feed.jsonl", ARTICLES)], index_dir, embedder=embedder, progress=False)
    assert summary.added == 3 and not summary.errors
    return index_dir


def test_reindexing_an_unchanged_feed_makes_no_model_calls(tmp_path, small_index, embedder):
    from indexer.ingest.build import build_index

    before = live_version(small_index)
    counting = CountingEmbedder(embedder)
    summary = build_index([write_jsonl(tmp_path / "feed.jsonl", ARTICLES)], small_index, embedder=counting,
                          progress=False)
    assert counting.calls == 0, f"{counting.calls} model calls ({counting.texts} texts) for unchanged input"
    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 3)
    assert summary.version is None and live_version(small_index) == before


def test_reindexing_an_unchanged_news_dump_makes_no_model_calls(tmp_path, news_index_dir, embedder):
    from indexer.ingest.build import build_index

    index_dir = copy_tree(news_index_dir, tmp_path / "index")
    before = live_version(index_dir)
    counting = CountingEmbedder(embedder)
    summary = build_index([NEWS_PAGE], index_dir, embedder=counting, progress=False)
    assert counting.calls == 0, f"{counting.calls} model calls ({counting.texts} texts) for unchanged input"
    # Segmenting a dump calls the model, so an unchanged file is recognised by its bytes and not parsed.
    assert summary.added == summary.updated == 0 and summary.unchanged == 7
    assert summary.version is None and live_version(index_dir) == before


def test_adding_embeds_only_the_new_article(tmp_path, small_index, embedder):
    from indexer.ingest.build import build_index
    from indexer.store.embedded import open_index

    extra = {"id": "falcon-4", "title": "Falconry festival in Bishkek", "date": "2025-11-05", "source": "City Desk",
             "text": "Falconers from five countries met in Bishkek. Golden eagles stole the show."}
    counting = CountingEmbedder(embedder)
    summary = build_index([write_jsonl(tmp_path / "feed.jsonl", [*ARTICLES, extra])], small_index,
                          embedder=counting, progress=False)
    assert (summary.added, summary.updated, summary.unchanged) == (1, 0, 3)
    index = open_index(small_index)
    try:
        assert counting.texts == summary.chunks == len(index.article_chunks("falcon-4")) > 0
    finally:
        index.close()


def test_a_changed_article_replaces_the_old_one_without_duplicates(tmp_path, small_index, embedder):
    from indexer.ingest.build import build_index
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    old_chunks = {c.chunk_id for c in open_index(small_index).article_chunks("glacier-2")}
    counting = CountingEmbedder(embedder)
    records = [ARTICLES[0], CHANGED_GLACIER, ARTICLES[2]]
    summary = build_index([write_jsonl(tmp_path / "feed.jsonl", records)], small_index, embedder=counting,
                          progress=False)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 2)
    index = open_index(small_index, model=embedder.name)
    try:
        new_chunks = {c.chunk_id for c in index.article_chunks("glacier-2")}
        assert counting.texts == len(new_chunks), "only the changed article is embedded again"
        assert new_chunks and not new_chunks & old_chunks
        assert "snow leopards" in index.article("glacier-2").text
        assert index.counts["articles"] == 3 and index.vector_count() == index.counts["chunks"]
        searcher = Searcher(index, embedder)
        for mode in ("dense", "lexical", "hybrid"):
            hits = searcher.search("Fedchenko glacier", k=100, mode=mode).hits
            ids = [h.chunk_id for h in hits]
            assert len(ids) == len(set(ids)), f"{mode}: duplicate passages {ids}"
            glacier = {h.chunk_id for h in hits if h.citation.article_id == "glacier-2"}
            assert glacier and glacier <= new_chunks, f"{mode}: old passages of the article came back"
            assert all("meltwater" not in h.text for h in hits), f"{mode}: old text is still searchable"
        assert searcher.search("meltwater irrigation farmers", k=10, mode="lexical").hits == []
    finally:
        index.close()


def test_deleted_articles_never_appear_in_results(small_index, embedder):
    from indexer.ingest.build import delete_articles
    from indexer.errors import NotFound
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    before = open_index(small_index)
    deleted_chunks = {c.chunk_id for c in before.article_chunks("tram-3")}
    before.close()
    assert delete_articles(small_index, ["tram-3", "never-indexed"]) == ["tram-3"]
    index = open_index(small_index, model=embedder.name)
    try:
        with pytest.raises(NotFound):
            index.article("tram-3")
        assert index.article_chunks("tram-3") == []
        assert index.vector_count() == index.counts["chunks"] == sum(
            len(index.article_chunks(a["id"])) for a in ARTICLES[:2])
        searcher = Searcher(index, embedder)
        for mode in ("dense", "lexical", "hybrid"):
            for query in (ARTICLES[2]["text"], "tram line Almaty commuters"):
                hits = searcher.search(query, k=100, mode=mode).hits
                assert all(h.citation.article_id != "tram-3" and h.chunk_id not in deleted_chunks for h in hits)
        # Exhaustive dense search: every live vector comes back, no tombstoned one.
        every = index.dense_search(embedder.encode(["tram"])[0], index.vector_count())
        assert len(every) == index.vector_count() and not {cid for cid, _ in every} & deleted_chunks
    finally:
        index.close()
    assert delete_articles(small_index, ["tram-3"]) == []


# --- hot swap in a running service -------------------------------------------------------------


def test_hot_swap_under_concurrent_queries_fails_no_request(tmp_path, small_index, embedder):
    from indexer.ingest.build import build_index, delete_articles
    from service.app import ServiceSettings

    # No background merges: they would add versions of their own to the reload counts checked below.
    settings = ServiceSettings(index_dir=small_index, port=free_port(), admin_key="admin-secret",
                               reload_interval=0.2, merge_interval=0)
    admin = {"Authorization": "Bearer admin-secret"}
    feed = tmp_path / "feed.jsonl"
    falcon = {"id": "falcon-4", "title": "Falconry festival in Bishkek", "date": "2025-11-05", "source": "City Desk",
              "text": "Falconers from five countries met in Bishkek. Golden eagles stole the show."}
    with LiveServer(settings, embedder) as server:
        reloader = server.app.state.reloader
        reloader.grace = 0.2
        first = live_version(small_index)
        with QueryLoad(server.url, clients=4) as load:
            wait_for(lambda: load.ok >= 20, 60, "queries did not get going")
            # 1. An added article, picked up by the background poll of CURRENT.
            build_index([write_jsonl(feed, [*ARTICLES, falcon])], small_index, embedder=embedder, progress=False)
            second = live_version(small_index)
            wait_for(lambda: server.app.state.resources.index.version == second, 10, "the poll did not reload")
            # 2. A changed article, swapped in by the admin route.
            build_index([write_jsonl(feed, [ARTICLES[0], CHANGED_GLACIER, ARTICLES[2], falcon])], small_index,
                        embedder=embedder, progress=False)
            third = live_version(small_index)
            reloaded = httpx.post(f"{server.url}/v1/admin/reload", headers=admin, timeout=30).json()
            assert reloaded["version"] == third and reloaded["articles"] == 4
            # 3. A deleted article: after the swap no search may return it.
            delete_articles(small_index, ["tram-3"])
            fourth = live_version(small_index)
            wait_for(lambda: server.app.state.resources.index.version == fourth, 10, "delete not picked up")
            swapped_at = time.monotonic()
            count_at_swap = load.ok
            wait_for(lambda: load.ok >= count_at_swap + 40, 60, "queries stalled after the swap")
        assert load.failures == [], f"{len(load.failures)} failed requests of {load.ok}: {load.failures[:5]}"
        assert len({first, second, third, fourth}) == 4
        after = [ids for sent, ids in load.seen if sent > swapped_at + 0.05]
        assert after and not any("tram-3" in ids for ids in after)
        assert any("falcon-4" in ids for ids in after)
        # The versions swapped out are closed once their last request finished.
        wait_for(lambda: reloader.retired_versions == [], 10, f"old versions never closed: {reloader.retired_versions}")
        status = httpx.get(f"{server.url}/v1/admin/status", headers=admin).json()
        assert status["version"] == fourth and status["reloads"] == 3 and status["failures"] == 0


def test_reload_keeps_serving_when_the_new_version_is_unusable(tmp_path, small_index, embedder):
    from litestar.testing import TestClient

    from helpers import assert_error
    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(index_dir=small_index, admin_key="k", reload_interval=0), embedder=embedder)
    with TestClient(app=app) as client:
        admin = {"X-API-Key": "k"}
        served = client.get("/health").json()["index"]
        assert client.post("/v1/admin/reload", headers=admin).json()["changed"] is False
        (small_index / "CURRENT").write_text("v-does-not-exist\n")
        error = assert_error(client.post("/v1/admin/reload", headers=admin), 503, "index_missing")
        assert served in error["message"]
        assert client.get("/v1/search", params={"q": "quokka"}).status_code == 200
        assert client.get("/health").json()["index"] == served
        # A damaged version (truncated FAISS file) is refused the same way.
        damaged = copy_tree(small_index / served, small_index / "v-99999999T999999-damaged")
        (damaged / "vectors.faiss").write_bytes(b"not a faiss index")
        (small_index / "CURRENT").write_text(damaged.name + "\n")
        error = assert_error(client.post("/v1/admin/reload", headers=admin), 503, "index_mismatch")
        assert damaged.name in error["message"] and served in error["message"]
        assert client.get("/v1/search", params={"q": "quokka"}).json()["hits"]
        (small_index / "CURRENT").write_text(served + "\n")
        status = client.get("/v1/admin/status", headers=admin).json()
        assert status["failures"] == 2 and status["version"] == served


@pytest.mark.slow
def test_soak_mixed_queries_through_many_swaps(tmp_path, small_index, embedder):
    """8 clients for the length of 12 swaps (adds, changes and deletes, by poll and by admin route)."""
    from indexer.ingest.build import build_index, delete_articles
    from service.app import ServiceSettings

    settings = ServiceSettings(index_dir=small_index, port=free_port(), admin_key="a", reload_interval=0.5,
                               merge_interval=0)  # exactly 12 reloads: no background merges
    feed = tmp_path / "feed.jsonl"
    with LiveServer(settings, embedder) as server:
        server.app.state.reloader.grace = 0.1
        with QueryLoad(server.url, clients=8) as load:
            wait_for(lambda: load.ok >= 20, 60, "queries did not get going")
            for round_ in range(12):
                extra = {"id": f"extra-{round_}", "title": f"Bulletin number {round_}", "date": "2025-11-06",
                         "text": f"Bulletin {round_}: the quokka and glacier desks filed short updates today."}
                if round_ % 3 == 2:
                    delete_articles(small_index, [f"extra-{round_ - 1}"])
                else:
                    build_index([write_jsonl(feed, [*ARTICLES, extra])], small_index, embedder=embedder,
                                progress=False)
                if round_ % 2:
                    httpx.post(f"{server.url}/v1/admin/reload", headers={"X-API-Key": "a"}, timeout=30)
                version = live_version(small_index)
                wait_for(lambda: server.app.state.resources.index.version == version, 10, "swap not picked up")
        assert load.failures == [], f"{len(load.failures)} failed requests of {load.ok}: {load.failures[:5]}"
        assert server.app.state.reloader.reloads == 12 and load.ok > 100
