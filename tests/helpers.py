"""Constants and helpers shared by the tests (fixtures stay in conftest.py).

Test modules import from here, never from each other or from conftest.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
NEWS_PAGE = DATA / "central-asia-news-2025-12-16.txt"
SCIFACT = ROOT.parent / "shared" / "datasets" / "beir-scifact"
ARTIFACTS = ROOT / "artifacts"
TOKTOGUL = "Kyrgyzstan Faces Power Shortages Amid Record Low Water Levels at Toktogul Reservoir"


WORDS = ("harbour ferry tide berth crane cargo council bridge repair minutes orchard apple pear harvest spring "
         "rail train station coast timetable glacier river valley meadow market price wheat cotton copper tram "
         "museum theatre festival concert library school clinic vaccine doctor nurse budget tax pension court "
         "judge verdict appeal mayor election ballot voter turbine solar grid storm flood drought").split()


def distinct_articles(prefix: str, n: int) -> list[dict]:
    """`n` short one-passage articles (ids `prefix-0`...) whose texts share few word sequences, so none
    is a near duplicate of another; the same `prefix` always gives the same articles."""
    import random

    out = []
    for i in range(n):
        words = random.Random(f"{prefix}{i}").sample(WORDS, 24)
        out.append({"id": f"{prefix}-{i}", "title": " ".join(words[:4]).capitalize(),
                    "text": " ".join(words[4:14]).capitalize() + ". " + " ".join(words[14:]).capitalize() + "."})
    return out


def assert_error(response, status: int, code: str) -> dict:
    """Every error has one JSON shape: {"error": {"code": str, "message": str}}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and len(body["error"]["message"]) > 10
    assert "Traceback" not in response.text
    return body["error"]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """`records` as a JSON-lines file at `path` (an input `newsqa index` reads); returns `path`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`newsqa serve`'s app in a real uvicorn server on a loopback port, in a thread."""

    def __init__(self, settings, embedder) -> None:
        import uvicorn

        from service.app import create_app

        self.app = create_app(settings, embedder=embedder)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=settings.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class CountingEmbedder:
    """The real embedder; counts `encode` calls and texts so tests can prove no model work was done."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.calls = 0
        self.texts = 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        self.texts += len(texts)
        return self._embedder.encode(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


class QueryLoad:
    """Client threads sending mixed queries until stopped; every failure is recorded with its reason."""

    QUERIES = ["quokka population", "glacier meltwater", "tram line Almaty", "falconry eagles", "snow leopards"]

    def __init__(self, url: str, clients: int, headers: dict | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.seen: list[tuple[float, set[str]]] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            i = offset
            while not self.stop.is_set():
                query = self.QUERIES[i % len(self.QUERIES)]
                mode = ("hybrid", "dense", "lexical")[i % 3]
                i += 1
                sent = time.monotonic()
                try:
                    response = client.get("/v1/search", params={"q": query, "k": 10, "mode": mode})
                    if response.status_code != 200:
                        raise AssertionError(f"{response.status_code} {response.text[:200]}")
                    hits = response.json()["hits"]
                    if hits:  # the article endpoint must work for ids the same moment's search returned
                        article = client.get(f"/v1/articles/{hits[0]['citation']['article_id']}")
                        if article.status_code not in (200, 404):
                            raise AssertionError(f"article {article.status_code} {article.text[:200]}")
                    with self.lock:
                        self.ok += 1
                        self.seen.append((sent, {h["citation"]["article_id"] for h in hits}))
                except Exception as exc:  # any failure at all is what this test is about
                    with self.lock:
                        self.failures.append(f"{query}/{mode}: {exc!r}")

    def __enter__(self) -> QueryLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def wait_for(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
