"""Issue 13, the HTTP, server and MCP side: what a hostile or careless client sent that used to hurt.

Bodies the JSON decoder crashed on (500 and a traceback), a rate limit bypassed
with X-Forwarded-For, MCP lines answered with silence, missing security headers
and a CDN script on /schema, slow-loris sockets and huge headers, article ids
with "/" that no link reached, model calls oversubscribing the cores, and the
access log. Everything that depends on the server runs against a real
`newsqa serve` process on a loopback port.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from helpers import ROOT, assert_error, free_port


ODD_IDS = ["a/b", "x y", "ü?#", "/lead", "a//b", "trail/", "50%"]
ODD_ARTICLES = [
    {"id": article_id, "title": f"{topic} report", "date": "2025-11-0" + str(i + 1), "source": "Test Wire",
     "text": f"The {topic} report was published on Monday. Officials said the {topic} figures were the highest "
             f"on record. A second {topic} survey follows next year."}
    for i, (article_id, topic) in enumerate(zip(ODD_IDS, ["quokka", "glacier", "tram", "falcon", "walnut", "apricot",
                                                         "yurt"]))
]
DEEP = b'{"q":' * 1200 + b'"x"' + b"}" * 1200


@pytest.fixture(scope="module")
def odd_index(tmp_path_factory, embedder) -> Path:
    """An index whose article ids hold "/", spaces, "?", "#", "%" and non-ASCII letters."""
    from indexer.ingest.build import build_index

    root = tmp_path_factory.mktemp("odd")
    feed = root / "feed.jsonl"
    feed.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in ODD_ARTICLES), encoding="utf-8")
    summary = build_index([feed], root / "index", embedder=embedder, progress=False)
    assert summary.added == len(ODD_ARTICLES) and not summary.errors, summary.errors
    return root / "index"


class Served:
    """A `newsqa serve` subprocess: its base URL, port, and its stdout (the access log) and stderr files."""

    def __init__(self, index_dir: Path, folder: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = folder / f"serve-{self.port}.out"
        self.stderr_path = folder / f"serve-{self.port}.err"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._out = self.stdout_path.open("w")
        self._err = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--index", str(index_dir), "--port", str(self.port),
             "--reload-interval", "0", *flags],
            cwd=ROOT, env=env, stdout=self._out, stderr=self._err)
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.stderr_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._out.close()
        self._err.close()


@pytest.fixture(scope="module")
def served(odd_index, tmp_path_factory):
    """A server with default limits but a 2 s header timeout, so the slow-loris check stays short."""
    server = Served(odd_index, tmp_path_factory.mktemp("served"), "--header-timeout", "2")
    yield server
    server.stop()


# --- 3. bodies the JSON decoder cannot read are 400s, not 500s -----------------------------------------

JSON_ROUTES = ["/v1/search", "/v1/context", "/v1/tools/search_news", "/v1/tools/get_article"]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("body, words", [(b'{"q":"\xff"}', "not valid UTF-8"), (DEEP, "nested too deeply")],
                         ids=["invalid-utf8", "nested-1200"])
def test_unreadable_json_bodies_are_400_with_the_fix_and_no_traceback(client, caplog, route, body, words):
    with caplog.at_level(logging.INFO):
        response = client.post(route, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 400, "invalid_request")
    assert words in error["message"] and "send" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


def test_readable_bodies_still_work_after_the_check(client):
    assert client.post("/v1/search", json={"q": "Toktogul water levels", "k": 2}).status_code == 200
    assert_error(client.post("/v1/search", content=b"{oops", headers={"content-type": "application/json"}),
                 400, "invalid_request")


# --- 4. the rate limit counts the connection's address unless a proxy is trusted ------------------------


def test_spoofed_forwarded_for_does_not_escape_the_rate_limit(odd_index, tmp_path):
    server = Served(odd_index, tmp_path, "--rate-limit", "1", "--rate-burst", "10")
    try:
        statuses = []
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for i in range(300):
                spoof = f"10.{i // 250}.{i % 250}.7"
                response = http.get("/v1/tools", headers={"X-Forwarded-For": spoof})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert spoof not in response.text and "10." not in response.json()["error"]["message"]
        assert statuses.count(429) >= 250, f"{statuses.count(200)} of 300 answered 200"
        log_lines = [json.loads(line) for line in server.stdout_path.read_text().splitlines()]
        assert {line["client"] for line in log_lines if line["path"] == "/v1/tools"} == {"127.0.0.1"}
    finally:
        server.stop()


def test_forwarded_for_is_honoured_from_a_configured_proxy(odd_index, tmp_path):
    server = Served(odd_index, tmp_path, "--rate-limit", "1", "--rate-burst", "3", "--forwarded-allow-ips", "127.0.0.1")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            # Behind the trusted proxy each forwarded client has its own bucket.
            first = [http.get("/v1/tools", headers={"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(6)]
            other = http.get("/v1/tools", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
        assert first[:3] == [200, 200, 200] and 429 in first[3:] and other == 200
    finally:
        server.stop()


def test_messages_quote_client_text_bounded_and_escaped(client):
    error = assert_error(client.get("/nothing%0Aforged-line" + "z" * 2000), 404, "not_found")
    assert "\n" not in error["message"] and "\\n" in error["message"] and len(error["message"]) < 250


# --- 5. every MCP line gets an answer --------------------------------------------------------------------


class RawMcp:
    """`newsqa mcp` as a subprocess, spoken to in raw lines."""

    def __init__(self, index_dir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen([sys.executable, "-m", "service.cli", "mcp", "--index", str(index_dir)],
                                        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, raw: bytes) -> None:
        self.process.stdin.write(raw + b"\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = 120) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError("no answer: a client waiting on this message would hang") from None

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_mcp_answers_every_unreadable_line_with_a_json_rpc_error(news_index_dir):
    mcp = RawMcp(news_index_dir)
    try:
        mcp.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}).encode())
        assert mcp.answer()["id"] == 1
        mcp.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        cases = [
            (b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"', -32700, None),  # truncated line
            (b"this is not json", -32700, None),
            (b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_news",'
             b'"arguments":{"q":"lone \\ud800 x"}}}', -32700, 3),
            (b'[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]', -32600, None),
            (b'{"id":5,"method":"tools/list"}', -32600, 5),
            (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', -32600, None),
            (b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', -32600, None),
            (b'{"jsonrpc":"2.0","id":6,"method":7}', -32600, 6),
        ]
        for raw, code, request_id in cases:
            mcp.send(raw)
            answer = mcp.answer(timeout=20)
            assert answer["jsonrpc"] == "2.0" and answer["id"] == request_id, (raw, answer)
            assert answer["error"]["code"] == code and len(answer["error"]["message"]) > 20, (raw, answer)
        # A huge or negative cursor is an invalid-params error, not SQLite's message with code 0.
        for i, cursor in enumerate(["9" * 30, "-5", "abc"]):
            mcp.send(json.dumps({"jsonrpc": "2.0", "id": 10 + i, "method": "resources/list",
                                 "params": {"cursor": cursor}}).encode())
            answer = mcp.answer(timeout=20)
            assert answer["id"] == 10 + i and answer["error"]["code"] == -32602, answer
            assert "cursor" in answer["error"]["message"] and "SQLite" not in answer["error"]["message"]
        # The session is still fine afterwards.
        mcp.send(b'{"jsonrpc":"2.0","id":20,"method":"tools/list"}')
        assert len(mcp.answer(timeout=20)["result"]["tools"]) >= 3
    finally:
        mcp.close()


# --- 6. security headers everywhere, and the docs page without a CDN ----------------------------------------


def test_every_response_carries_strict_security_headers(served):
    paths = ["/", "/?q=quokka", f"/articles/{quote('a/b', safe='')}", "/v1/search?q=quokka", "/health",
             "/schema", "/schema/openapi.json", "/static/style.css", "/static/search.js",
             "/schema/assets/swagger-ui-bundle.js", "/no/such/route", "/v1/articles/missing"]
    for path in paths:
        response = httpx.get(served.url + path, timeout=30)
        assert response.status_code in (200, 404), (path, response.status_code)
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers.get("x-content-type-options") == "nosniff", path
        assert response.headers.get("x-frame-options") == "DENY", path
        assert response.headers.get("referrer-policy") == "no-referrer", path


def test_the_docs_page_loads_only_local_files_and_no_inline_script(served):
    page = httpx.get(f"{served.url}/schema", timeout=30).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
    for source in sources:
        assert httpx.get(served.url + source, timeout=30).status_code == 200, source
    assert httpx.get(f"{served.url}/schema/openapi.json", timeout=30).json()["info"]["title"] == "newsqa"


def test_templates_hold_no_inline_script_or_style():
    for template in (ROOT / "service" / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=", text), template.name


# --- 7. header deadline and size ---------------------------------------------------------------------------


def _read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and after how many seconds (limit: still open)."""
    started = time.monotonic()
    data = b""
    sock.settimeout(0.5)
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def test_slow_loris_sockets_are_closed_after_the_header_timeout(served):
    sockets = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", served.port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    idle = socket.create_connection(("127.0.0.1", served.port))  # connects and never sends a byte
    try:
        for sock in [*sockets, idle]:
            data, seconds = _read_until_closed(sock, 8)
            assert seconds < 8, "still open 8 s after the 2 s header timeout"
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
    finally:
        for sock in [*sockets, idle]:
            sock.close()


def test_an_oversized_header_is_refused_and_the_connection_closed(served):
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")
        except ConnectionError:
            pass  # closed while we were still sending: refused either way
        data, seconds = _read_until_closed(sock, 10)
    assert seconds < 10
    assert data == b"" or data.startswith(b"HTTP/1.1 431"), data[:200]
    if data:
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "headers_too_large"


def test_ordinary_headers_bodies_and_keep_alive_are_unaffected(served):
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for _ in range(6):  # 6 x 8 KB of headers on one kept-alive connection: the limit is per request
            assert http.get("/health", headers={"X-Pad": "p" * 8000}).status_code == 200
        # Headers and a 100 KB body in one packet: the body is not counted as header bytes.
        response = http.post("/v1/search", json={"q": "q" * 100_000})
        assert_error(response, 400, "query_too_long")


# --- 8. every article id is reachable --------------------------------------------------------------------------


def test_article_ids_with_slashes_and_odd_characters_round_trip(served):
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for article in ODD_ARTICLES:
            response = http.get(f"/v1/articles/{quote(article['id'], safe='')}")
            assert response.status_code == 200, (article["id"], response.text)
            assert response.json()["article_id"] == article["id"]
            page = http.get(f"/articles/{quote(article['id'], safe='')}")
            assert page.status_code == 200 and article["title"] in page.text, article["id"]
        # Citations from the API, and the page's own "Read in context" links, lead to the cited article.
        for article in ODD_ARTICLES:
            topic = article["title"].split()[0]
            cited = http.get("/v1/search", params={"q": f"{topic} report", "k": 1}).json()["hits"][0]["citation"]
            assert cited["article_id"] == article["id"]
            assert http.get(f"/v1/articles/{quote(cited['article_id'], safe='')}").json()["title"] == article["title"]
            page = http.get("/", params={"q": f"{topic} report", "k": 1}).text
            links = re.findall(r'<a class="cite" href="([^"]+)"', page)
            assert links, page[:500]
            target = http.get(links[0].replace("&amp;", "&").split("#")[0])
            assert target.status_code == 200 and article["title"] in target.text, (article["id"], links[0])


# --- the access log ---------------------------------------------------------------------------------------------


def test_one_bounded_json_access_line_per_request(served):
    marker = "/access-log-check-" + "x" * 2048
    with httpx.Client(base_url=served.url, timeout=30) as http:
        assert http.get(marker).status_code == 404
        assert http.get("/v1/search", params={"q": "quokka"}).status_code == 200
        assert http.get("/health").status_code == 200
    time.sleep(0.5)
    lines = served.stdout_path.read_text().splitlines()
    assert lines
    records = [json.loads(line) for line in lines]  # every line parses as it stands
    long = [r for r in records if r["path"].startswith("/access-log-check-")]
    assert len(long) == 1 and len(long[0]["path"]) == 256 and long[0]["path_truncated"] is True
    assert long[0]["status"] == 404 and long[0]["method"] == "GET"
    assert all(len(line) < 600 for line in lines)
    assert {"time", "method", "path", "status", "ms", "bytes", "client"} <= set(records[-1])
    # uvicorn's own text access log is off: one access log, not two.
    assert '"GET /health HTTP/1.1" 200' not in served.stderr_path.read_text()


# --- 10. model calls bounded to the cores ----------------------------------------------------------------------


class _CountingSession:
    """A real ONNX session; calls and intra-op threads in flight are counted in a shared `tally`."""

    def __init__(self, session, threads: int, tally: dict, lock: threading.Lock) -> None:
        self.session, self.threads, self.tally, self.lock = session, threads, tally, lock

    def run(self, *args, **kwargs):
        with self.lock:
            self.tally["calls"] += 1
            self.tally["threads"] += self.threads
            self.tally["peak_calls"] = max(self.tally["peak_calls"], self.tally["calls"])
            self.tally["peak_threads"] = max(self.tally["peak_threads"], self.tally["threads"])
            self.tally["runs"].append(self.threads)
        try:
            time.sleep(0.01)  # widen the window in which calls could overlap
            return self.session.run(*args, **kwargs)
        finally:
            with self.lock:
                self.tally["calls"] -= 1
                self.tally["threads"] -= self.threads

    def __getattr__(self, name):
        return getattr(self.session, name)


def _count_model_calls(embedder) -> dict:
    tally = {"calls": 0, "threads": 0, "peak_calls": 0, "peak_threads": 0, "runs": []}
    lock = threading.Lock()
    impl = embedder._impl
    wide = impl._wide_session is not impl._session
    impl._session = _CountingSession(impl._session, embedder.threads, tally, lock)
    impl._wide_session = (_CountingSession(impl._wide_session, embedder.wide_threads, tally, lock) if wide
                          else impl._session)
    return tally


@pytest.mark.parametrize("concurrency", [1, 2])
def test_concurrent_queries_run_the_model_at_most_concurrency_at_once(concurrency):
    from indexer.embed import Embedder

    embedder = Embedder(backend="onnx", concurrency=concurrency)
    assert embedder.concurrency == concurrency
    assert embedder.threads * concurrency <= max(os.cpu_count() or 1, concurrency)
    tally = _count_model_calls(embedder)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(embedder.encode([f"query number {i}"])))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and tally["peak_calls"] == concurrency
    # Wide calls (every core) and narrow ones (a share each) never add up to more threads than the slots hold.
    assert tally["peak_threads"] <= concurrency * embedder.threads


def test_a_lone_query_runs_on_every_core_and_concurrent_ones_share_them():
    from indexer.embed import Embedder

    embedder = Embedder(backend="onnx", concurrency=2, purpose="queries")
    assert embedder.threads == 1 and embedder.wide_threads == 2
    tally = _count_model_calls(embedder)
    embedder.encode(["Toktogul water levels"])
    assert tally["runs"] == [2]
    tally["runs"].clear()
    threads = [threading.Thread(target=embedder.encode, args=([f"query number {i}"],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tally["runs"]) == 8 and 1 in tally["runs"]
    assert tally["peak_threads"] <= 2
    # An explicit thread count is taken as given: no wide session beside it.
    assert Embedder(backend="onnx", concurrency=2, threads=1).wide_threads is None


def test_model_concurrency_is_a_service_setting(news_index_dir):
    from service.app import Resources, ServiceSettings

    resources = Resources(ServiceSettings(index_dir=news_index_dir, model_concurrency=1))
    try:
        if resources.embedder.backend == "onnx":
            assert resources.embedder.concurrency == 1
            assert resources.embedder.threads == min(os.cpu_count() or 1, 4)
    finally:
        resources.close()
