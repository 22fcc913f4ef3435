"""Service edges: probes and metrics read off the event loop under a lease, the disk-size metric
measured once per version, and timed-out work that stops.

Real model, real index, real uvicorn server (tests/helpers.py LiveServer) where the behaviour
depends on the event loop.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers import LiveServer, free_port, wait_for

ADMIN = {"Authorization": "Bearer admin-secret"}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_the_reloader_builds_one_searcher_per_version_and_closes_them_all(monkeypatch, news_index_dir, embedder):
    """No searcher is built at startup only to be replaced: one per version served, each closed at shutdown."""
    from litestar.testing import TestClient

    import service.app
    from service.app import ServiceSettings, create_app

    built: list = []

    class CountingSearcher(service.app.Searcher):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(service.app, "Searcher", CountingSearcher)
    app = create_app(ServiceSettings(index_dir=news_index_dir, reload_interval=0, admin_key="admin-secret"),
                     embedder=embedder)
    with TestClient(app=app) as client:
        reloader = app.state.reloader
        assert len(built) == 1 and reloader.current is built[0]
        assert client.post("/v1/admin/reload", params={"force": "true"}, headers=ADMIN).json()["changed"] is True
        assert len(built) == 2 and reloader.current is built[1]
        assert reloader.retired_versions  # the first waits out its grace period
    # Shutdown closed both, the served one and the retired one, at once.
    assert reloader.retired_versions == []
    assert all(searcher.index._pin.closed for searcher in built)


@pytest.mark.slow
def test_probes_answer_while_a_metrics_read_is_stuck_and_the_read_keeps_its_version(
        monkeypatch, news_index_dir, embedder):
    """A scrape stuck in an index read (a slow disk, a slow PostgreSQL query) must not stall the
    event loop, and the version it reads must stay open through a reload until it is done."""
    import service.app
    from service.app import ServiceSettings

    entered, release = threading.Event(), threading.Event()
    real_open = service.app.open_store

    def open_with_stuck_disk(*args, **kwargs):
        index = real_open(*args, **kwargs)
        measure = index.disk_bytes

        def stuck() -> int:
            entered.set()
            release.wait(30)
            return measure()

        index.disk_bytes = stuck
        return index

    monkeypatch.setattr(service.app, "open_store", open_with_stuck_disk)
    settings = ServiceSettings(index_dir=news_index_dir, port=free_port(), reload_interval=0,
                               admin_key="admin-secret")
    with LiveServer(settings, embedder) as server:
        reloader = server.app.state.reloader
        reloader.grace = 0.1
        first = reloader.current.index.version
        scrape: dict[str, httpx.Response] = {}
        scraper = threading.Thread(target=lambda: scrape.update(
            response=httpx.get(f"{server.url}/metrics", timeout=30)))
        scraper.start()
        try:
            assert entered.wait(10), "the scrape never read the index size"
            with httpx.Client(base_url=server.url, timeout=5) as client:
                for path, headers in (("/health", {}), ("/ready", {}), ("/v1/admin/status", ADMIN)):
                    started = time.monotonic()
                    response = client.get(path, headers=headers)
                    assert response.status_code == 200, response.text
                    assert time.monotonic() - started < 2, f"{path} waited for the stuck scrape"
                assert client.get("/health").json()["index"] == first
                reloaded = client.post("/v1/admin/reload", params={"force": "true"}, headers=ADMIN)
                assert reloaded.status_code == 200 and reloaded.json()["changed"] is True
            time.sleep(1.0)  # ten grace periods: an unleased version would be closed by now
            assert reloader.retired_versions == [first], "the version the scrape reads was closed under it"
        finally:
            release.set()
            scraper.join(30)
        response = scrape["response"]
        assert response.status_code == 200
        assert f'newsqa_index_disk_bytes {float(dir_bytes(news_index_dir / first))}' in response.text
        wait_for(lambda: reloader.retired_versions == [], 5, "the scraped version was never closed")


def test_disk_size_is_measured_once_per_version(tmp_path, embedder):
    """The version directory is walked once, not on every scrape; a new version is measured anew."""
    from litestar.testing import TestClient

    from indexer.ingest.build import build_index, delete_articles
    from service.app import ServiceSettings, create_app

    records = [{"id": f"a-{i}", "title": f"Article {i}", "date": f"2025-11-0{i}", "source": "Wire",
                "text": f"Story number {i} about the quokka census and the glacier. It has two sentences."}
               for i in range(1, 4)]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    index_dir = tmp_path / "index"
    summary = build_index([feed], index_dir, embedder=embedder, progress=False)
    assert summary.added == 3 and not summary.errors, summary.errors

    def disk_metric(client) -> float:
        lines = [line for line in client.get("/metrics").text.splitlines()
                 if line.startswith("newsqa_index_disk_bytes ")]
        return float(lines[0].split()[1])

    app = create_app(ServiceSettings(index_dir=index_dir, reload_interval=0, admin_key="admin-secret"),
                     embedder=embedder)
    with TestClient(app=app) as client:
        first = client.get("/health").json()["index"]
        size = dir_bytes(index_dir / first)
        assert disk_metric(client) == size
        # A file added to the served version is not seen: scrapes reuse the first measurement.
        (index_dir / first / "padding.bin").write_bytes(b"x" * 50_000)
        assert disk_metric(client) == disk_metric(client) == size
        delete_articles(index_dir, ["a-3"])
        reloaded = client.post("/v1/admin/reload", headers=ADMIN).json()
        assert reloaded["changed"] is True and reloaded["version"] != first
        # The delete's version holds its manifest and lists the first version's segment: both are served.
        assert disk_metric(client) == dir_bytes(index_dir / reloaded["version"]) + dir_bytes(index_dir / first)


def test_an_expired_request_stops_at_its_next_store_call(news_index, embedder):
    """Between search stages: once the budget runs out (here, during the query's model call), the
    next store call (the dense leg) raises instead of running; outside a budget nothing is checked."""
    from indexer.query.search import Searcher
    from service.limits import BudgetedEmbedder, BudgetedStore, RequestTimedOut, request_budget

    called: list[str] = []

    class RecordingStore:  # the real index, recording which of its methods ran
        def __getattr__(self, name):
            value = getattr(news_index, name)
            if not callable(value):
                return value

            def run(*args, **kwargs):
                called.append(name)
                return value(*args, **kwargs)

            return run

    class ExpiringEmbedder:  # the real model; the budget runs out while it embeds the query
        expired = None

        def encode(self, texts, **kwargs):
            vectors = embedder.encode(texts, **kwargs)
            if self.expired is not None:
                self.expired.set()
            return vectors

        def __getattr__(self, name):
            return getattr(embedder, name)

    model = ExpiringEmbedder()
    searcher = Searcher(BudgetedStore(RecordingStore()), BudgetedEmbedder(model), query_cache=0)
    assert searcher.search("Toktogul water levels", k=3).hits  # no budget: a whole search
    called.clear()
    with request_budget() as expired:
        model.expired = expired
        with pytest.raises(RequestTimedOut):
            searcher.search("locomotives for the railway", k=3)
    assert called == ["allowed_chunks"], f"store calls after the budget ran out: {called[1:]}"


class SlowEmbedder:
    """The real embedder, `delay` seconds slower per call (a loaded machine); counts calls in progress."""

    def __init__(self, embedder, delay: float) -> None:
        self._embedder = embedder
        self.delay = delay
        self.lock = threading.Lock()
        self.calls = 0
        self.active = 0

    def encode(self, texts, **kwargs):
        with self.lock:
            self.calls += 1
            self.active += 1
        try:
            time.sleep(self.delay)
            return self._embedder.encode(texts, **kwargs)
        finally:
            with self.lock:
                self.active -= 1

    def __getattr__(self, name):
        return getattr(self._embedder, name)


@pytest.mark.slow
def test_a_timed_out_search_stops_at_its_next_step_and_frees_its_worker(news_index_dir, embedder):
    """An answer is two model calls (the question, then the candidate sentences). When the time budget
    runs out during the first, the client gets its 503 at once and the second never starts: the
    worker thread is free as soon as the step in progress ends, instead of finishing the whole request."""
    from service.app import ServiceSettings

    from helpers import assert_error

    delay, budget = 1.0, 0.5
    question = "Which company will supply the locomotives?"  # its sentences need a model call of their own
    slow = SlowEmbedder(embedder, delay)
    settings = ServiceSettings(index_dir=news_index_dir, port=free_port(), reload_interval=0,
                               request_timeout=budget, query_cache=0)
    with LiveServer(settings, slow) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        sent = time.monotonic()
        response = client.get("/v1/answer", params={"q": question})
        answered = time.monotonic() - sent
        error = assert_error(response, 503, "timeout")
        assert f"{budget:g} s" in error["message"]
        assert answered < delay, f"the 503 came after {answered:.2f} s, not at the {budget} s budget"
        assert slow.calls == 1, "the question's model call should be running when the budget ran out"
        # Free within the step in progress (it ends `delay` after it began), with slack for a busy machine.
        wait_for(lambda: slow.active == 0, delay + 0.5, "the worker is still busy after its step ended")
        time.sleep(delay / 2)  # a second step would have started by now
        assert slow.calls == 1, "the timed-out answer went on to its next model call"
        # The worker serves the next request; the same answer untimed takes both steps (the
        # sentences were never embedded), so the one above really stopped short.
        slow.delay = 0.0
        assert client.get("/v1/answer", params={"q": question}).status_code == 200
        assert slow.calls == 3


def test_probes_metrics_and_status_on_postgres(pg_news_url, embedder):
    """On PostgreSQL every probe is a few queries (run on worker threads under a lease); the
    facts agree with each other, and a store with no local files reports 0 bytes on disk."""
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(store=pg_news_url, admin_key="admin-secret"), embedder=embedder)
    with TestClient(app=app) as client:
        health = client.get("/health").json()
        assert health["chunks"] == 29 and health["index"].startswith("pg-")
        assert client.get("/ready").json() == {"status": "ready", "index": health["index"], "chunks": 29}
        metrics = client.get("/metrics").text
        assert 'newsqa_index_items{kind="chunks"} 29.0' in metrics
        assert "newsqa_index_vectors 29.0" in metrics and "newsqa_index_disk_bytes 0.0" in metrics
        status = client.get("/v1/admin/status", headers=ADMIN).json()
        assert status["version"] == health["index"] and status["retired_versions"] == []
