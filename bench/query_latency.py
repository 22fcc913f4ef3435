"""Query latency of a real `newsqa serve` process over loopback: p50/p99 of /v1/search.

    python bench/query_latency.py --index .cache/beir/<scifact>/index \
        --queries ../shared/datasets/beir-scifact/queries_test.jsonl
    python bench/query_latency.py --short          # CI: small index of data/, few requests

Starts the service as a subprocess (`python -m service.cli serve`, hot-reload
polling off), waits for /ready, then for each client count (default 1, 8, 32)
sends hybrid k=10 searches from that many threads, each with its own
keep-alive connection (a lean raw-socket client, `Connection`), and reports client-side latency percentiles, throughput
and errors. Then: the server's resident memory, the index size on disk, and a
per-stage breakdown (query embedding, vector search, lexical search, response
building) measured in-process on the same index and queries.

Clients and server share the machine (2 cores here), so at 8 and 32 clients the
load generator competes with the server for CPU: the numbers are an upper
bound on what a separate client machine would see. Exit status 1 if any
request failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "data" / "central-asia-news-2025-12-16.txt"
DEFAULT_QUERIES = [
    "Toktogul reservoir water levels", "power shortages in Kyrgyzstan", "locomotive deal Kazakhstan",
    "Wabtec Evolution Series", "Trump and Tokayev", "electricity imports winter", "exchange rates tenge",
    "Central Asia railway corridor", "hydropower plant", "gold mining Kyrgyzstan",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th value)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def load_average() -> str:
    """`uptime`'s load averages (1, 5, 15 min) and the core count, to print beside a timing."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def load_queries(path: str | None) -> list[str]:
    if not path:
        return DEFAULT_QUERIES
    queries = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            queries.append(record.get("text") or record.get("question") or record["q"])
    return queries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`newsqa serve` in a subprocess; its log goes to a file so writing it costs what it costs in production."""

    def __init__(self, index: Path, log_path: Path, extra: list[str] | tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--index", str(index), "--port", str(self.port),
             # The query cache is off: queries repeat across client levels, and every
             # measured search should pay for its embedding.
             "--reload-interval", "0", "--query-cache", "0", "--log-level", "warning", *extra],  # later options win
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}; see {self.log.name}")
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server was not ready within {timeout:.0f} s; see {self.log.name}")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Connection:
    """One keep-alive HTTP/1.1 connection on a raw socket: the lean client the levels use.

    It sends what `http.client` sent for the same search (request line, `Host`,
    `Accept-Encoding: identity`) and reads a `Content-Length` response, without
    `http.client`'s header parsing (the email package) and objects: on 2 cores the
    load generator shares the CPU with the server, and `http.client` plus
    `json.loads` of each response took ~0.8 ms of it per request; this takes
    less than half. The server is the same either way.
    """

    def __init__(self, host: str, port: int, timeout: float = 60) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def get(self, target: str) -> tuple[int, bytes]:
        """Status and body of `GET target`; OSError or ValueError if the connection or the answer fails."""
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          "Accept-Encoding: identity\r\n\r\n".encode())
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise ValueError(f"unexpected Transfer-Encoding {value.strip()!r}: the bench reads Content-Length only")
        if length is None:
            raise ValueError(f"a {status} answer without Content-Length")
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# The server's own timing, read from the raw body (a full JSON parse of each answer costs the
# client ~0.13 ms; JSON escapes quotes inside strings, so this key cannot occur in a hit's text).
_TOOK = re.compile(rb'"took_ms":(-?[0-9.eE+]+)')


def run_level(url: str, queries: list[str], clients: int, requests: int, *, stop: threading.Event | None = None,
              samples: list[tuple[float, float, bool]] | None = None) -> dict:
    """`requests` searches spread over `clients` threads; latency is measured per request by the client.

    Each client is one keep-alive `Connection`: a lean client, so that the
    numbers are the server's (httpx alone adds ~0.8 ms of client CPU per request,
    `http.client` ~0.5 ms). With `stop`, the clients search until it is set
    (`requests` is then ignored); `samples` receives each request's (Unix time
    sent, milliseconds, answered 200), for figures over part of the run.
    """
    from urllib.parse import urlencode, urlsplit

    where = urlsplit(url)
    per_client = max(1, math.ceil(requests / clients)) if stop is None else sys.maxsize
    latencies: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def target(query: str) -> str:
        return "/v1/search?" + urlencode({"q": query, "k": 10, "mode": "hybrid"})

    def client(offset: int) -> None:
        mine, theirs, failed = [], [], []
        timed: list[tuple[float, float, bool]] = []
        connection = Connection(where.hostname or "127.0.0.1", where.port or 80)
        try:
            connection.get(target(queries[offset % len(queries)]))  # open the connection
            start.wait()
            for i in range(per_client):
                if stop is not None and stop.is_set():
                    break
                path = target(queries[(offset * per_client + i) % len(queries)])
                sent, t0 = time.time(), time.perf_counter()
                try:
                    status, body = connection.get(path)
                    elapsed = time.perf_counter() - t0
                    if status != 200:
                        failed.append(f"{status}: {body[:120]!r}")
                        timed.append((sent, elapsed * 1000, False))
                        continue
                    mine.append(elapsed * 1000)
                    timed.append((sent, elapsed * 1000, True))
                    took = _TOOK.search(body)
                    if took:
                        theirs.append(float(took.group(1)))
                except (OSError, ValueError) as exc:
                    failed.append(repr(exc))
                    timed.append((sent, (time.perf_counter() - t0) * 1000, False))
                    connection.close()
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)
            server_ms.extend(theirs)
            errors.extend(failed)
            if samples is not None:
                samples.extend(timed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    result = {"clients": clients, "requests": len(latencies) + len(errors), "errors": len(errors),
              "error_examples": errors[:3], "throughput_rps": round(len(latencies) / wall, 1)}
    if latencies:
        result.update({
            "p50_ms": round(percentile(latencies, 50), 2), "p90_ms": round(percentile(latencies, 90), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies), 2),
        })
    if server_ms:
        result["server_took_p50_ms"] = round(percentile(server_ms, 50), 2)
    return result


def breakdown(index_dir: Path, queries: list[str], repeats: int) -> dict:
    """Median milliseconds per search stage, in-process on the same index (no HTTP, no JSON)."""
    from indexer.embed import Embedder
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    embedder = Embedder()
    index = open_index(index_dir, model=embedder.name)
    try:
        searcher = Searcher(index, embedder, query_cache=0)
        for query in queries[:5]:  # warm-up: first model call, SQLite pages, FAISS memory
            searcher.search(query, k=10)
        stages: dict[str, list[float]] = {}
        totals = []
        for i in range(repeats):
            result = searcher.search(queries[i % len(queries)], k=10, mode="hybrid")
            totals.append(result.took_ms)
            for stage, ms in result.timings.items():
                stages.setdefault(stage, []).append(ms)
        out = {stage: round(statistics.median(values), 3) for stage, values in stages.items()}
        out["total_ms"] = round(statistics.median(totals), 3)
        out["searches"] = repeats
        return out
    finally:
        index.close()


def disk_bytes(index_dir: Path) -> int:
    from indexer.store.embedded import current_version

    version = current_version(index_dir)
    return sum(p.stat().st_size for p in version.rglob("*") if p.is_file()) if version else 0


def build_news_index(directory: Path) -> Path:
    from indexer.ingest.build import build_index
    from indexer.embed import Embedder

    index = directory / "index"
    build_index([NEWS], index, embedder=Embedder(), progress=False)
    return index


def table(report: dict) -> str:
    lines = ["| clients | requests | errors | p50 ms | p90 ms | p99 ms | max ms | req/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for level in report["levels"]:
        lines.append(f"| {level['clients']} | {level['requests']} | {level['errors']} | {level.get('p50_ms', '-')} | "
                     f"{level.get('p90_ms', '-')} | {level.get('p99_ms', '-')} | {level.get('max_ms', '-')} | "
                     f"{level['throughput_rps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index directory to serve (default: build one of data/'s news page)")
    parser.add_argument("--queries", help="JSON lines with a `text` (BEIR) or `question` field (default: news queries)")
    parser.add_argument("--clients", default="1,8,32", help="client counts, comma separated (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=1000, help="searches per client count (default: %(default)s)")
    parser.add_argument("--breakdown-searches", type=int, default=300, help="in-process searches for the stage breakdown")
    parser.add_argument("--short", action="store_true", help="CI mode: clients 1,8, 40 searches each, short breakdown")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.short:
        args.clients, args.requests, args.breakdown_searches = "1,8", 40, 20
    levels = [int(c) for c in args.clients.split(",")]
    queries = load_queries(args.queries)
    with tempfile.TemporaryDirectory(prefix="newsqa-bench-") as tmp:
        index_dir = args.index or build_news_index(Path(tmp))
        server = Server(index_dir, Path(tmp) / "server.log")
        try:
            ready = server.wait_ready()
            rss_idle = server.rss_bytes()
            results = []
            for clients in levels:
                results.append(run_level(server.url, queries, clients, args.requests))
                print(f"{clients:>3} clients: {json.dumps(results[-1])}", file=sys.stderr)
            rss_loaded = server.rss_bytes()
        finally:
            server.stop()
        report = {
            "index": str(index_dir), "version": ready["index"], "chunks": ready["chunks"], "queries": len(queries),
            "mode": "hybrid", "k": 10, "cpus": os.cpu_count(), "levels": results,
            "server_rss_bytes": {"idle": rss_idle, "after_load": rss_loaded},
            "index_disk_bytes": disk_bytes(index_dir),
            "breakdown_ms": breakdown(index_dir, queries, args.breakdown_searches),
        }
    print(table(report))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(level["errors"] for level in results) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
