"""Background merges: the tiered merge policy, a merge that publishes over writes committed while it
worked, and `newsqa serve` merging while it takes writes and searches.

Real model, real FAISS, real SQLite, a real uvicorn server on a loopback port. The only
interference is a pause inside the merge (after its segment is written, before it publishes),
so that writes and searches certainly land while a merge is running.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from indexer.errors import InvalidParameter
from indexer.ingest.build import MergePolicy, build_index, delete_articles, merge_index, plan_merge
from indexer.query.search import Searcher
from indexer.store.embedded import IndexDraft, open_index

from helpers import LiveServer, QueryLoad, distinct_articles, free_port, wait_for, write_jsonl

MODES = ("dense", "lexical", "hybrid")


# --- the policy (pure) ----------------------------------------------------------------------------


def test_small_segments_merge_only_when_more_than_allowed():
    policy = MergePolicy(small_segments=3, deleted_share=0.25)
    large = (1000, 0)
    assert plan_merge([], policy) == []
    assert plan_merge([large], policy) == []
    assert plan_merge([large, (5, 0), (90, 0), (99, 0)], policy) == [], "three small segments are allowed"
    assert plan_merge([large, (5, 0), (90, 0), (99, 0), (7, 0)], policy) == [1, 2, 3, 4]
    # Small is under a tenth of the largest segment's live passages: 100 is not small beside 1000.
    assert plan_merge([large, (5, 0), (100, 0), (99, 0), (7, 0)], policy) == []
    assert plan_merge([(5, 0), large, (5, 0), (5, 0), (5, 0)], policy) == [0, 2, 3, 4], "small ones anywhere"
    # Equal segments: none is small, so nothing is merged however many there are.
    assert plan_merge([(10, 0)] * 20, policy) == []


def test_a_segment_over_the_deleted_share_is_rewritten():
    policy = MergePolicy(small_segments=4, deleted_share=0.25)
    assert plan_merge([(750, 250)], policy) == [], "exactly the share is allowed"
    assert plan_merge([(749, 251)], policy) == [0]
    assert plan_merge([(1000, 10), (20, 80), (30, 0)], policy) == [1], "only the one over the share"
    assert plan_merge([(0, 40), (1000, 0)], policy) == [0], "a segment with every article deleted goes"
    # Both reasons at once: the small ones due, and a large one with many deletes.
    both = [(600, 400), (5, 0), (5, 0), (5, 0), (5, 0), (5, 0)]
    assert plan_merge(both, policy) == [0, 1, 2, 3, 4, 5]
    assert plan_merge([(1, 999)], MergePolicy(deleted_share=1.0)) == [], "1: never rewritten for deletes"


@pytest.mark.parametrize(("field", "value", "words"), [
    ("small_segments", 0, "--merge-segments is 0, it must be at least 1"),
    ("deleted_share", 0.0, "--merge-deleted-share is 0.0, it must be above 0 and at most 1"),
    ("deleted_share", 1.5, "--merge-deleted-share is 1.5"),
])
def test_policy_values_out_of_range_are_refused_with_the_limit(field, value, words):
    with pytest.raises(InvalidParameter, match=words):
        MergePolicy(**{field: value})


# --- a merge publishes over writes committed while it worked ---------------------------------------


def _hits(index_dir: Path, embedder, queries: list[str]) -> dict:
    index = open_index(index_dir, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        return {(q, mode): [(h.citation.article_id, h.score) for h in searcher.search(q, k=8, mode=mode).hits]
                for q in queries for mode in MODES}
    finally:
        index.close()


def test_a_merge_moves_onto_writes_committed_while_it_ran(tmp_path, embedder, monkeypatch):
    """Adds, a change and deletes committed between the merge's start and its publish all survive it,
    and the result equals one build of the same articles."""
    records = distinct_articles("w", 24)
    index_dir = tmp_path / "idx"
    for n, batch in enumerate([records[:20], records[20:21], records[21:22]]):
        build_index([write_jsonl(tmp_path / f"b{n}.jsonl", batch)], index_dir, embedder=embedder, progress=False)
    changed = {**records[21], "text": "The tram depot repair finished early and the museum reopened its doors."}
    sealed = IndexDraft.seal

    def write_meanwhile(self):
        sealed(self)
        if self._absorbed and not getattr(write_meanwhile, "done", False):
            write_meanwhile.done = True  # type: ignore[attr-defined]
            build_index([write_jsonl(tmp_path / "during.jsonl", [changed, *records[22:]])], index_dir,
                        embedder=embedder, progress=False)
            delete_articles(index_dir, ["w-20", "w-2"])  # one from a merged segment, one from the large one

    monkeypatch.setattr(IndexDraft, "seal", write_meanwhile)
    version = merge_index(index_dir, policy=MergePolicy(small_segments=1))  # the two small segments
    monkeypatch.undo()
    assert version and write_meanwhile.done  # type: ignore[attr-defined]
    index = open_index(index_dir)
    try:
        assert index.version == version
        live = {a for s in index.segments for r in s.rows("SELECT article_id FROM articles WHERE {live}")
                for a in r}
        assert live == {r["id"] for r in records} - {"w-20", "w-2"}
        assert "tram depot" in index.article("w-21").text
        assert index.vector_count() == index.counts["chunks"] == index.counts["articles"] == 22
        # The large one, the merged one (both its articles since deleted or replaced), the one added meanwhile.
        assert len(index.segments) == 3 and index.entries[1]["deleted"] == ["w-20", "w-21"]
        assert index.entries[1]["counts"]["chunks"] == 0 and index.entries[1]["rows"]["chunks"] == 2
    finally:
        index.close()
    final = [r for r in records if r["id"] not in ("w-20", "w-2", "w-21")] + [changed]
    fresh = tmp_path / "fresh"
    build_index([write_jsonl(tmp_path / "all.jsonl", final)], fresh, embedder=embedder, progress=False)
    queries = [records[20]["title"], records[21]["title"], "tram depot museum", records[2]["title"]]
    got, want = _hits(index_dir, embedder, queries), _hits(fresh, embedder, queries)
    for key in want:
        assert [a for a, _ in got[key]] == [a for a, _ in want[key]], key
        assert all(abs(x - y) <= 1e-5 for (_, x), (_, y) in zip(got[key], want[key])), key
        assert not {"w-20", "w-2"} & {a for a, _ in got[key]}


def test_a_merge_whose_segments_another_merge_took_starts_again_from_that_merge(tmp_path, embedder, monkeypatch):
    records = distinct_articles("c", 24)
    index_dir = tmp_path / "idx"
    for n, batch in enumerate([records[:20], records[20:22], records[22:]]):
        build_index([write_jsonl(tmp_path / f"b{n}.jsonl", batch)], index_dir, embedder=embedder, progress=False)
    delete_articles(index_dir, ["c-21"])
    sealed, others, started = IndexDraft.seal, [], []

    def merge_meanwhile(self):
        sealed(self)
        if not started:
            started.append(True)
            others.append(merge_index(index_dir))  # `newsqa merge` runs meanwhile: every segment into one

    monkeypatch.setattr(IndexDraft, "seal", merge_meanwhile)
    assert merge_index(index_dir, policy=MergePolicy(small_segments=1)) is None, "nothing left to merge"
    monkeypatch.undo()
    assert others[0] and (index_dir / "CURRENT").read_text().strip() == others[0]
    assert not list(index_dir.glob(".tmp-*")), "the merge that lost left its draft behind"
    index = open_index(index_dir)
    try:
        assert len(index.segments) == 1 and index.counts["articles"] == 23 and not index.segments[0].deleted
    finally:
        index.close()


def test_a_merge_gives_up_when_asked_to_stop(tmp_path, embedder):
    records = distinct_articles("s", 4)
    index_dir = tmp_path / "idx"
    for n, batch in enumerate([records[:2], records[2:]]):
        build_index([write_jsonl(tmp_path / f"b{n}.jsonl", batch)], index_dir, embedder=embedder, progress=False)
    before = (index_dir / "CURRENT").read_text()
    assert merge_index(index_dir, should_stop=lambda: True) is None
    assert (index_dir / "CURRENT").read_text() == before and not list(index_dir.glob(".tmp-*"))


# --- newsqa serve merges in the background --------------------------------------------------------


class _MergeLog:
    """The service's merges, each paused after its merged segment is written (before it publishes):
    records each merge that published, each pause, and how long each publish held the writer lock."""

    PAUSE = 2.5

    def __init__(self, monkeypatch) -> None:
        import indexer.ingest.build
        import service.merger

        self.lock = threading.Lock()
        self.merges: list[str] = []
        self.pauses: list[tuple[float, float]] = []
        self.publishes: list[float] = []
        self.sealing = threading.Event()
        real_merge, real_seal = service.merger.merge_index, IndexDraft.seal
        real_publish = indexer.ingest.build._publish_merge

        def merge(*args, **kwargs):
            version = real_merge(*args, **kwargs)
            if version is not None:
                with self.lock:
                    self.merges.append(version)
            return version

        def seal(draft):
            first = not draft._sealed  # commit() seals again: a no-op
            real_seal(draft)
            if first and draft._absorbed:  # a merge, not a write
                started = time.monotonic()
                self.sealing.set()
                time.sleep(self.PAUSE)
                self.sealing.clear()
                with self.lock:
                    self.pauses.append((started, time.monotonic()))

        def publish(*args):
            started = time.monotonic()
            try:
                return real_publish(*args)
            finally:
                with self.lock:
                    self.publishes.append(time.monotonic() - started)

        monkeypatch.setattr(service.merger, "merge_index", merge)
        monkeypatch.setattr(IndexDraft, "seal", seal)
        monkeypatch.setattr(indexer.ingest.build, "_publish_merge", publish)


def test_writes_and_searches_through_a_live_server_during_background_merges(tmp_path, embedder, monkeypatch):
    from service.app import ServiceSettings

    base, pushed = distinct_articles("base", 30), distinct_articles("push", 6)
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "base.jsonl", base)], index_dir, embedder=embedder, progress=False)
    log = _MergeLog(monkeypatch)
    admin = {"X-API-Key": "merge-admin"}
    # Every one-passage push is a small segment (under a tenth of the 30-passage base); two start a merge.
    settings = ServiceSettings(index_dir=index_dir, port=free_port(), admin_key="merge-admin", reload_interval=0.2,
                               merge_interval=0.5, merge_segments=1)
    gone = pushed[2]
    changed = {**base[5], "text": "Lighthouse keepers count puffins on the northern skerries every June."}

    class Load(QueryLoad):
        QUERIES = [a["title"] for a in (*pushed, *base[:4])]

    posts: list[tuple[float, float]] = []
    with LiveServer(settings, embedder) as server:
        merger = server.app.state.merger
        assert merger is not None and merger.interval == 0.5
        with Load(server.url, clients=3) as load, httpx.Client(base_url=server.url, headers=admin,
                                                               timeout=60) as http:
            wait_for(lambda: load.ok >= 10, 60, "queries did not get going")
            for n, article in enumerate(pushed):
                if n == 2:
                    # The first two pushes made two small segments: a merge is running; write during it.
                    wait_for(log.sealing.is_set, 20, "no background merge started after two small segments")
                sent = time.monotonic()
                response = http.post("/v1/articles", json=article)
                assert response.status_code == 200 and response.json()["added"] == 1, response.text
                posts.append((sent, time.monotonic()))
                if n == 1:
                    # A change: an indexed article with a new text replaces the old one.
                    response = http.post("/v1/articles", json=changed)
                    assert response.status_code == 200 and response.json()["updated"] == 1, response.text
                if n == 3:
                    deleted = http.delete(f"/v1/articles/{gone['id']}")
                    assert deleted.status_code == 200, deleted.text
                    assert deleted.json()["deleted"] == gone["id"]
                    deleted_at = time.monotonic()
            # Quiet: no merge running and none due for the served version.
            wait_for(lambda: not merger.running and not log.sealing.is_set() and _nothing_due(index_dir, settings)
                     and server.app.state.resources.index.version == (index_dir / "CURRENT").read_text().strip(),
                     30, "background merges did not settle")
            count = load.ok
            wait_for(lambda: load.ok >= count + 10, 30, "queries stalled after the merges")
        assert load.failures == [], f"{len(load.failures)} failed requests of {load.ok}: {load.failures[:5]}"
        # The push sent as a merge had written its segment returned while that merge was still paused:
        # the merge does not hold the writer lock while it works, only while it publishes (briefly).
        sent, done = posts[2]
        pause = next((p for p in log.pauses if p[0] <= sent <= p[1]), None)
        assert pause is not None and done < pause[1], f"a push waited for a merge: push {posts[2]}, pauses {log.pauses}"
        assert log.publishes and max(log.publishes) < 1.0, f"a publish held the writer lock long: {log.publishes}"
        assert merger.merges >= 1 and merger.failures == 0 and len(log.merges) == merger.merges
        served = server.app.state.resources.index
        # Without merges: the base and one segment per push.
        assert len(served.segments) < 1 + len(pushed), [s.path.name for s in served.segments]
        assert served.counts["articles"] == len(base) + len(pushed) - 1
        # Nothing committed was lost, and the deleted article never came back after its DELETE returned.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for article in [a for a in pushed if a is not gone] + base[:3]:
                hits = http.get("/v1/search", params={"q": article["title"], "k": 10}).json()["hits"]
                assert article["id"] in {h["citation"]["article_id"] for h in hits}, article["id"]
            assert http.get(f"/v1/articles/{gone['id']}").status_code == 404
            assert http.get(f"/v1/articles/{changed['id']}").json()["text"] == changed["text"]
            hits = http.get("/v1/search", params={"q": "puffins lighthouse skerries", "k": 10}).json()["hits"]
            assert [h["citation"]["article_id"] for h in hits].count(changed["id"]) == 1
            assert all("puffins" in h["text"] for h in hits if h["citation"]["article_id"] == changed["id"])
            metrics = http.get("/metrics").text
            status = http.get("/v1/admin/status", headers=admin).json()
        after = [ids for sent, ids in load.seen if sent > deleted_at]
        assert after and not any(gone["id"] in ids for ids in after)
        assert f"newsqa_index_merges_total {float(merger.merges)}" in metrics
        assert f"newsqa_index_segments {float(len(served.segments))}" in metrics
        assert status["background_merges"]["merges"] == merger.merges and status["background_merges"]["failures"] == 0
    assert not merger._thread.is_alive(), "the merge thread outlived the server"


def _nothing_due(index_dir: Path, settings) -> bool:
    from indexer.ingest.build import segment_sizes

    index = open_index(index_dir, lazy=True)
    try:
        return plan_merge(segment_sizes(index), settings.merge_policy()) == []
    finally:
        index.close()


def test_background_merges_are_off_for_interval_zero(two_article_index, embedder):
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(index_dir=two_article_index, merge_interval=0), embedder=embedder)
    with TestClient(app=app) as client:
        assert app.state.merger is None
        assert "newsqa_index_merges" not in client.get("/metrics").text


@pytest.fixture()
def two_article_index(tmp_path, embedder) -> Path:
    index_dir = tmp_path / "index"
    build_index([write_jsonl(tmp_path / "a.jsonl", distinct_articles("z", 2))], index_dir, embedder=embedder, progress=False)
    return index_dir


def test_the_delete_route_needs_the_admin_key_and_an_indexed_id(two_article_index, embedder):
    from litestar.testing import TestClient

    from helpers import assert_error
    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(index_dir=two_article_index, admin_key="k", merge_interval=0), embedder=embedder)
    with TestClient(app=app) as client:
        assert_error(client.delete("/v1/articles/z-0"), 401, "unauthorized")
        assert_error(client.delete("/v1/articles/z-0", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        error = assert_error(client.delete("/v1/articles/nope", headers={"X-API-Key": "k"}), 404, "not_found")
        assert "'nope'" in error["message"]
        assert client.get("/v1/articles/z-0").status_code == 200  # GET on the same path still works
        before = client.get("/health").json()["index"]
        done = client.delete("/v1/articles/z-0", headers={"X-API-Key": "k"})
        assert done.status_code == 200 and done.json()["deleted"] == "z-0" and done.json()["version"] != before
        assert_error(client.get("/v1/articles/z-0"), 404, "not_found")
        assert client.get("/health").json()["articles"] == 1
