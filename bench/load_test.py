"""A bounded load test and soak: mixed requests against a real `newsqa serve`, with index swaps.

    python bench/load_test.py --index index --duration 60 --clients 8 --swap-every 10
    python bench/load_test.py --short                  # CI: 12 s, 4 clients, swaps every 3 s
    python bench/load_test.py --tail --index I --queries Q --requests 2000 --clients 8

`--tail` measures tail latency under concurrency instead (issue 13): in one run,
the queries/s the embedding model alone sustains on this machine's cores (the
service's own `Embedder` settings, `--clients` threads each embedding one query
at a time), then hybrid searches over HTTP from 1 client and from `--clients`
clients: p50, p99, p99/p50 and throughput against the model-alone figure.
The HTTP clients are query_latency's lean raw-socket keep-alive connections
(the same GET requests `http.client` sent, at half its client CPU): the load
generator runs on the server's cores, so its CPU is taken from the server's.
The load average (`uptime`) is printed beside every timing, and so are the
cores other processes used during it (the machine's CPU time from /proc/stat
less this bench's and its server's): a timing taken while other jobs run is not
a measurement, and the load average trails a job that starts mid-run. CPU time is reported too, which
other jobs disturb far less than wall time: the model's per query, and the
server's and this load generator's per request at each level. Once the cores
are saturated, throughput over model-alone approaches model CPU / (server +
client CPU) per request (`cpu_bound_share`).

A last level (`without_model`) runs the `--clients` clients again against a
server whose query cache already holds every query's vector: the same searches
with no model call. Its server + client CPU per request is everything the
service does besides the model, so model CPU / (model CPU + that) is the most
throughput over model-alone any service could reach that does this work on these
cores (`ceiling_over_model_alone`).

The index is copied to a temporary directory first (the swaps write new
versions into the copy, never into `--index`). The server polls `CURRENT`
every 0.5 s; every other swap is also requested with `POST /v1/admin/reload`.
Each client thread sends a mix of requests (hybrid GET searches, dense and
lexical POST searches, article look-ups of ids just returned, probes) and
records every non-2xx answer or transport error as a failure. Swaps alternate
between adding a bulletin article and deleting the previous one, so results
change while queries run. Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_latency import (  # noqa: E402
    DEFAULT_QUERIES,
    Server,
    build_news_index,
    load_average,
    load_queries,
    percentile,
    run_level,
)

ADMIN_KEY = "load-test-admin"


class Mix:
    """One client's request loop; results are merged under a lock at the end."""

    def __init__(self, url: str, queries: list[str], seed: int, stop: threading.Event) -> None:
        self.url, self.queries, self.stop = url, queries, stop
        self.random = random.Random(seed)
        self.latencies: dict[str, list[float]] = {}
        self.failures: list[str] = []

    def run(self) -> None:
        import httpx

        article_ids: list[str] = []
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set():
                roll = self.random.random()
                query = self.random.choice(self.queries)
                if roll < 0.6:
                    route, call = "GET /v1/search", lambda: http.get("/v1/search", params={"q": query, "k": 10})
                elif roll < 0.75:
                    mode = self.random.choice(["dense", "lexical"])
                    route, call = "POST /v1/search", lambda: http.post("/v1/search", json={"q": query, "k": 5, "mode": mode})
                elif roll < 0.9 and article_ids:
                    article = self.random.choice(article_ids)
                    route, call = "GET /v1/articles/{id}", lambda: http.get(f"/v1/articles/{article}")
                else:
                    path = self.random.choice(["/health", "/ready"])
                    route, call = f"GET {path}", lambda: http.get(path)
                t0 = time.perf_counter()
                try:
                    response = call()
                except httpx.HTTPError as exc:
                    self.failures.append(f"{route}: {exc!r}")
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                # A 404 for an article deleted by a swap since its id was seen is a correct answer.
                if response.status_code == 404 and route.startswith("GET /v1/articles"):
                    article_ids.remove(article)
                elif response.status_code >= 300:
                    self.failures.append(f"{route}: {response.status_code} {response.text[:160]}")
                    continue
                self.latencies.setdefault(route, []).append(elapsed)
                if route.endswith("/v1/search"):
                    ids = [h["citation"]["article_id"] for h in response.json()["hits"]]
                    article_ids = (article_ids + ids)[-50:]


def swapper(index_dir: Path, url: str, every: float, stop: threading.Event, log: list[dict]) -> None:
    """Add or delete a bulletin every `every` seconds and wait until the server serves the new version."""
    try:
        _swap_loop(index_dir, url, every, stop, log)
    except BaseException as exc:  # a thread's exception would vanish; the report must show it
        log.append({"error": repr(exc)})


def _swap_loop(index_dir: Path, url: str, every: float, stop: threading.Event, log: list[dict]) -> None:
    import httpx

    from indexer.ingest.build import build_index, delete_articles
    from indexer.ingest.chunk import ChunkSettings
    from indexer.embed import Embedder
    from indexer.store.embedded import current_version, read_manifest

    embedder = Embedder()
    # Bulletins are chunked as the served index was, or the incremental build would refuse them.
    settings = ChunkSettings(**read_manifest(current_version(index_dir))["chunking"])
    feed = index_dir.parent / "bulletins.jsonl"
    round_ = 0
    while not stop.wait(every):
        t0 = time.perf_counter()
        if round_ % 2 == 0:
            feed.write_text(json.dumps({"id": f"bulletin-{round_}", "title": f"Load test bulletin {round_}",
                                        "date": "2025-12-16", "source": "Load Desk",
                                        "text": f"Bulletin {round_}: water levels at the Toktogul reservoir and "
                                                "power imports were discussed again today."}) + "\n")
            build_index([feed], index_dir, embedder=embedder, settings=settings, progress=False)
            action = "add"
        else:
            delete_articles(index_dir, [f"bulletin-{round_ - 1}"])
            action = "delete"
        version = (index_dir / "CURRENT").read_text().strip()
        if round_ % 2:
            httpx.post(f"{url}/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}, timeout=60)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ready", timeout=10).json()["index"] != version:
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not pick up {version} within 30 s")
            time.sleep(0.05)
        log.append({"round": round_, "action": action, "version": version,
                    "seconds_to_serve": round(time.perf_counter() - t0, 2)})
        print(f"swap {round_}: {action} -> {version} in {log[-1]['seconds_to_serve']} s", file=sys.stderr)
        round_ += 1


def own_cpu_seconds() -> float:
    """CPU time this process (all its threads) has used so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used so far (all cores; steal and idle left out)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Quietness:
    """The load average before a timed step, and the cores other processes used during it:
    the CPU the whole machine used minus this bench's own (and its server's). A timing with other
    processes busy beside it is not a measurement; the load average alone lags by a minute."""

    def __init__(self, server: Server | None = None) -> None:
        self.server = server
        self.load_before = load_average()
        self._ours = self._own()
        self._busy = machine_busy_seconds()
        self._began = time.perf_counter()

    def _own(self) -> float:
        return own_cpu_seconds() + (self.server.cpu_seconds() if self.server else 0.0)

    def report(self) -> dict:
        wall = max(time.perf_counter() - self._began, 1e-9)
        others = (machine_busy_seconds() - self._busy) - (self._own() - self._ours)
        return {"load_before": self.load_before, "load_after": load_average(),
                "other_processes_cores": round(max(others, 0.0) / wall, 2)}


def model_alone(queries: list[str], clients: int, requests: int, concurrency: int | None) -> dict:
    """Queries per second the embedding model sustains alone: `clients` threads embedding one query each call."""
    from indexer.embed import Embedder

    embedder = Embedder(concurrency=concurrency)
    for query in queries[:5]:
        embedder.encode([query])  # warm-up
    per_client = max(1, requests // clients)
    start = threading.Barrier(clients + 1)

    def run(offset: int) -> None:
        start.wait()
        for i in range(per_client):
            embedder.encode([queries[(offset * per_client + i) % len(queries)]])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    quiet = Quietness()
    cpu = own_cpu_seconds()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu = own_cpu_seconds() - cpu
    return {"clients": clients, "queries": per_client * clients, "queries_per_s": round(per_client * clients / wall, 1),
            "cpu_ms_per_query": round(cpu / (per_client * clients) * 1000, 2),
            "backend": embedder.backend, "model_concurrency": embedder.concurrency, "intra_op_threads": embedder.threads,
            "wide_threads": embedder.wide_threads, **quiet.report()}


def measured_level(server: Server, queries: list[str], clients: int, requests: int) -> dict:
    """`run_level` with the server's and this client's CPU per request and the machine's quietness."""
    quiet = Quietness(server)
    server_cpu, client_cpu = server.cpu_seconds(), own_cpu_seconds()
    level = run_level(server.url, queries, clients, requests)
    answered = max(1, level["requests"])
    level.update(server_cpu_ms_per_request=round((server.cpu_seconds() - server_cpu) / answered * 1000, 2),
                 client_cpu_ms_per_request=round((own_cpu_seconds() - client_cpu) / answered * 1000, 2),
                 **quiet.report())
    return level


def quietness(step: dict) -> str:
    return f"[{step['load_before']}; other processes used {step['other_processes_cores']} cores meanwhile]"


def without_model(index_dir: Path, log: Path, queries: list[str], clients: int, requests: int,
                  extra: list[str]) -> dict:
    """`clients` clients searching a server whose query cache holds every query's vector: the
    service's CPU per request besides the model (HTTP, both legs, fusion, highlights, JSON)."""
    server = Server(index_dir, log, extra=[*extra, "--query-cache", str(max(len(queries), 1))])
    try:
        server.wait_ready()
        run_level(server.url, queries, 1, len(queries))  # every query embedded once, then cached
        return measured_level(server, queries, clients, requests)
    finally:
        server.stop()


def tail(args, queries: list[str]) -> int:
    """The `--tail` run: model alone, then 1 and `--clients` HTTP clients, then `--clients` clients
    without model calls, each with the load average and the other processes' CPU beside it."""
    extra = ["--model-concurrency", str(args.model_concurrency)] if args.model_concurrency else []
    with tempfile.TemporaryDirectory(prefix="newsqa-tail-") as tmp:
        index_dir = Path(args.index) if args.index else build_news_index(Path(tmp))
        alone = model_alone(queries, args.clients, args.requests, args.model_concurrency or None)
        print(f"model alone: {alone['queries_per_s']} queries/s ({alone['clients']} threads), "
              f"{alone['cpu_ms_per_query']} ms CPU per query  {quietness(alone)}", file=sys.stderr)
        server = Server(index_dir, Path(tmp) / "server.log", extra=extra)
        levels = []
        try:
            server.wait_ready()
            run_level(server.url, queries, args.clients, min(args.requests, 50))  # warm-up
            for clients in (1, args.clients):
                level = measured_level(server, queries, clients, args.requests)
                levels.append(level)
                print(f"{clients} client(s): p50 {level.get('p50_ms')} ms, p99 {level.get('p99_ms')} ms, "
                      f"{level['throughput_rps']} req/s; CPU per request: server {level['server_cpu_ms_per_request']} ms, "
                      f"client {level['client_cpu_ms_per_request']} ms  {quietness(level)}", file=sys.stderr)
        finally:
            server.stop()
        without = without_model(index_dir, Path(tmp) / "cached.log", queries, args.clients, args.requests, extra)
        print(f"{args.clients} client(s), query vectors cached (no model call): {without['throughput_rps']} req/s; "
              f"CPU per request: server {without['server_cpu_ms_per_request']} ms, "
              f"client {without['client_cpu_ms_per_request']} ms  {quietness(without)}", file=sys.stderr)
    many = levels[-1]
    ratio = round(many["p99_ms"] / many["p50_ms"], 2) if many.get("p50_ms") else None
    share = round(many["throughput_rps"] / alone["queries_per_s"], 2) if alone["queries_per_s"] else None
    per_request = many["server_cpu_ms_per_request"] + many["client_cpu_ms_per_request"]
    cpu_share = round(alone["cpu_ms_per_query"] / per_request, 2) if per_request else None
    besides_model = without["server_cpu_ms_per_request"] + without["client_cpu_ms_per_request"]
    ceiling = round(alone["cpu_ms_per_query"] / (alone["cpu_ms_per_query"] + besides_model), 2)
    report = {"model_alone": alone, "levels": levels, "without_model": without, "p99_over_p50": ratio,
              "throughput_over_model_alone": share, "cpu_bound_share": cpu_share,
              "ceiling_over_model_alone": ceiling,
              "targets": {"p99_le_3x_p50": ratio is not None and ratio <= 3,
                          "throughput_ge_0.8x_model_alone": share is not None and share >= 0.8}}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(level["errors"] for level in [*levels, without]) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index to copy and serve (default: build one of data/'s news page)")
    parser.add_argument("--queries", help="JSON lines with a `text` or `question` field (default: news queries)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default: %(default)s)")
    parser.add_argument("--swap-every", type=float, default=10, help="seconds between index swaps; 0: none")
    parser.add_argument("--short", action="store_true", help="CI mode: 12 s, 4 clients, a swap every 3 s")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    parser.add_argument("--tail", action="store_true",
                        help="measure p50/p99 at 1 and --clients clients and the model alone (no swaps)")
    parser.add_argument("--requests", type=int, default=2000, help="--tail: searches per level (default: %(default)s)")
    parser.add_argument("--model-concurrency", type=int, default=0,
                        help="--tail: the service's --model-concurrency (default: the service's default)")
    args = parser.parse_args(argv)
    if args.short:
        args.duration, args.clients, args.swap_every = 12, 4, 3
    queries = load_queries(args.queries) if args.queries else DEFAULT_QUERIES
    if args.tail:
        return tail(args, queries)
    with tempfile.TemporaryDirectory(prefix="newsqa-load-") as tmp:
        index_dir = Path(tmp) / "index"
        if args.index:
            shutil.copytree(args.index, index_dir)
        else:
            build_news_index(Path(tmp))
        server = Server(index_dir, Path(tmp) / "server.log",
                        extra=["--reload-interval", "0.5", "--admin-key", ADMIN_KEY])
        stop = threading.Event()
        swaps: list[dict] = []
        try:
            server.wait_ready()
            clients = [Mix(server.url, queries, seed, stop) for seed in range(args.clients)]
            threads = [threading.Thread(target=c.run) for c in clients]
            if args.swap_every > 0:
                threads.append(threading.Thread(target=swapper, args=(index_dir, server.url, args.swap_every, stop, swaps)))
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(args.duration)
            stop.set()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            rss = server.rss_bytes()
        finally:
            server.stop()
    routes: dict[str, list[float]] = {}
    failures = [f for c in clients for f in c.failures]
    for client in clients:
        for route, values in client.latencies.items():
            routes.setdefault(route, []).extend(values)
    answered = sum(len(v) for v in routes.values())
    report = {
        "duration_s": round(wall, 1), "clients": args.clients, "requests": answered + len(failures),
        "failures": len(failures), "failure_examples": failures[:5],
        "throughput_rps": round(answered / wall, 1), "swaps": swaps, "server_rss_bytes": rss,
        "routes": {route: {"count": len(v), "p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2)}
                   for route, v in sorted(routes.items())},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures or any("error" in swap for swap in swaps) else 0


if __name__ == "__main__":
    sys.exit(main())
