"""The real `newsqa` processes: `serve` on a free port, `search` and `index` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from helpers import ROOT, TOKTOGUL, free_port


def newsqa(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def server(news_index_dir):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(news_index_dir), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode())
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        raise AssertionError("server did not start")
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_real_server_answers_searches_with_citations(server):
    body = httpx.get(f"{server}/v1/search", params={"q": "Toktogul water levels", "k": 3}, timeout=30).json()
    top = body["hits"][0]
    assert top["citation"]["title"] == TOKTOGUL
    article = httpx.get(f"{server}/v1/articles/{top['citation']['article_id']}", timeout=30).json()
    assert article["text"][top["citation"]["start"]:top["citation"]["end"]] == top["text"]
    error = httpx.get(f"{server}/v1/search", params={"q": " "}, timeout=30)
    assert error.status_code == 400 and error.json()["error"]["code"] == "empty_query"


def test_cli_search_prints_ranked_passages_with_citations(news_index_dir):
    out = newsqa("search", "Toktogul water levels", "--index", str(news_index_dir), "-k", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1. " + TOKTOGUL)
    assert "cite: article" in out.stdout
    as_json = newsqa("search", "Toktogul water levels", "--index", str(news_index_dir), "--json")
    assert json.loads(as_json.stdout)["hits"][0]["citation"]["title"] == TOKTOGUL


def test_cli_reports_errors_without_tracebacks(tmp_path, news_index_dir):
    missing = newsqa("search", "water", "--index", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no index at" in missing.stderr and "Traceback" not in missing.stderr
    empty = newsqa("search", "  ", "--index", str(news_index_dir))
    assert empty.returncode == 2 and "query is empty" in empty.stderr and "Traceback" not in empty.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "title": "ok", "text": "Fine text here."}\n{broken\n')
    built = newsqa("index", str(bad), "--index", str(tmp_path / "idx"), "--no-progress")
    assert built.returncode == 3, built.stderr  # some records failed: documented exit code
    assert f"{bad}:2: invalid JSON" in built.stderr
    assert "1 added" in built.stdout and "1 errors" in built.stdout and "passages/s" in built.stdout
