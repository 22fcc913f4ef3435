"""Updates on a live index (issue 15): how soon an add or a delete is searchable, what it costs, and
what unmerged segments cost search.

    python bench/updates.py --index /path/to/index [--runs 10] [--articles 10] [--via http|cli]
    python bench/updates.py --short          # CI: the shipped news page, 2 small adds
    python bench/updates.py --backend postgres --pg-url postgresql://... [--runs 10] [--articles 10]
    python bench/updates.py --backend postgres --short    # CI: data/ loaded into a private PostgreSQL

The index is copied to a temporary directory first (`--index` is never written). A real
`newsqa serve` process serves the copy with `--reload-interval 0.2`. Then `--runs` times:

1. `--articles` new articles (real BBC articles from `--bbc`, read at run time and never copied
   into the repository, under fresh ids) are added: with `--via http` (the default) by
   `POST /v1/articles` to the running server, which embeds them with its loaded model, writes a
   segment and serves it; with `--via cli` by `newsqa index` in a subprocess (which loads the model
   first). Reported: the add's wall time, the embedding time of the same texts measured in-process
   beforehand (so "add minus embedding" is what the index itself costs), and the time from the add's
   return (its commit) until a search of each new article's title returns it (the start of the first
   check that holds: the searches' own time is not counted).
2. The peak extra disk the index used while the command ran (sampled every 50 ms) against the
   index's size before it.
3. One of the added articles is deleted, by `DELETE /v1/articles/{id}` (`--via http`) or `newsqa delete`
   (`--via cli`); reported: the delete's wall time, and the time from its return until no search returns it.

Then, in-process on the final copy, search p50/p99 over the SciFact test claims (`--queries`) with
the unmerged segments, then after `newsqa merge --small` (`--merge small`, the default: the small
segments into one, the large base as it is) or `newsqa merge` (`--merge all`), and whether the two return the same ids (scores
within 1e-5). The load average (`uptime`) is printed beside the timings.

`--backend postgres` measures the same on a PostgreSQL store, which is incremental by design (every
write is a transaction that searches see as soon as it commits): the store `--pg-url` (e.g. loaded by
`bench/million.py --backend postgres --url URL`; the bench deletes the articles it added at the end),
or without it a private server (the `pgserver` package, as bench/backends.py starts it) loaded with
data/. The server is `newsqa serve --store URL`, deletes are `newsqa delete ID --store URL`, the extra
disk is the database's `pg_database_size` (sampled the same way), and search p50/p99 is measured once,
after the runs. Segments and merges do not apply: those figures are "n/a".

With `--merge-under-load` (embedded; also in `--short`), the merge is instead the one a running
`newsqa serve` does in the background (its tiered policy with `--merge-segments 1`, so every small
segment the adds left is merged, and segments over the deleted share are rewritten): a server is
started on the copy with its first merge check `MERGE_AFTER_S` seconds after start, while `--clients`
clients (load_test's raw-socket keep-alive clients, `query_latency.run_level`) run hybrid searches
against it. Reported: requests, failures, p50/p99 before the merge and during it (from its start to its
publish, from `/v1/admin/status`), the merge's seconds and the segments before and after. The server of
the add runs has background merges off (`--merge-interval 0`), so those runs measure adds alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_latency import Server, load_average, load_queries, percentile, run_level  # noqa: E402

ADMIN_KEY = "updates-bench-admin"
BBC = ROOT.parent / "shared" / "datasets" / "bbc-news" / "corpus.jsonl"
SCIFACT_QUERIES = ROOT.parent / "shared" / "datasets" / "beir-scifact" / "queries_test.jsonl"
# What a backend without segments reports for the segment and merge figures.
NOT_APPLICABLE = "n/a"
# --merge-under-load: seconds of load before the server's first background merge check.
MERGE_AFTER_S = 5.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


class DiskWatch:
    """The largest value of `measure()` (bytes on disk) seen while running, sampled every 50 ms."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self.measure, self.peak, self._stop = measure, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.measure())
            except FileNotFoundError:  # a file removed while walking
                pass
            self._stop.wait(0.05)

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


class PgSize:
    """pg_database_size of the store's database (tables, indexes, TOAST; the WAL is the server's, not the
    database's), over one connection of its own."""

    def __init__(self, url: str) -> None:
        import psycopg

        from indexer.store.postgres import StoreUrl

        self.conn = psycopg.connect(StoreUrl.parse(url).conninfo, autocommit=True)
        self._lock = threading.Lock()  # the watch thread and the main thread share the connection

    def __call__(self) -> int:
        with self._lock:
            row = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None  # a SELECT of one value returns one row
        return int(row[0])

    def close(self) -> None:
        self.conn.close()


def cli(*args: str) -> float:
    """Run a newsqa command; its wall time in seconds (exit status checked)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service.cli", *args, "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"newsqa {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def found_ids(url: str, query: str) -> set[str]:
    import httpx

    response = httpx.get(f"{url}/v1/search", params={"q": query, "k": 10, "group": "article"}, timeout=30)
    response.raise_for_status()
    return {h["citation"]["article_id"] for h in response.json()["hits"]}


def wait_until(predicate, timeout: float = 60.0) -> float:
    """Seconds from the call until the start of the first `predicate()` check that holds (checked every
    20 ms): how long after a commit the change was visible, not counting the searches that check it
    (ten title searches at 1M passages take about a second themselves). 0 when the first check holds."""
    started = time.perf_counter()
    while True:
        checked = time.perf_counter()
        if predicate():
            return checked - started
        if checked - started > timeout:
            raise SystemExit(f"not visible within {timeout:.0f} s")
        time.sleep(0.02)


def in_process(target: Path | str, queries: list[str], *, times: list[float] | None = None
               ) -> tuple[dict, list[list[tuple[str, int, float]]]]:
    """Search p50/p99 over `queries` in-process on the index directory, version directory or PostgreSQL
    store `target` (query vectors cached first), and each query's hits; "segments" is "n/a" for a store
    without them. `times` (if given) gets each search's milliseconds."""
    from indexer.embed import Embedder
    from indexer.query.search import Searcher
    from indexer.store.backends import open_store
    from indexer.store.embedded import Index

    embedder = Embedder()
    version = Path(target) / "manifest.json"
    index = Index(Path(target), model=embedder.name) if version.is_file() else open_store(target, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        for query in queries:  # query vectors cached: the legs, fusion and hits are what differ
            searcher.search(query, k=10)
        taken, results = [], []
        for query in queries:
            started = time.perf_counter()
            result = searcher.search(query, k=10)
            taken.append((time.perf_counter() - started) * 1000)
            # Passages by article and offset: a merge may renumber them.
            results.append([(h.citation.article_id, h.citation.start, h.score) for h in result.hits])
        if times is not None:
            times.extend(taken)
        segments = getattr(index, "segments", None)
        return ({"p50_ms": round(statistics.median(taken), 2), "p99_ms": round(percentile(taken, 99), 2),
                 "segments": len(segments) if segments is not None else NOT_APPLICABLE}, results)
    finally:
        index.close()


def compare_versions(versions: dict[str, Path], queries: list[str], rounds: int = 3) -> dict[str, dict]:
    """Search p50/p99 of each version directory, measured in `rounds` alternating rounds (A B, then B A, ...)
    and pooled: one pass on one index in a process varies by ±20% from the next (measured 25-39 ms p50 on
    the same 1M index), so two single passes in a fixed order cannot show a 1.2x difference."""
    times: dict[str, list[float]] = {name: [] for name in versions}
    rounds_p50: dict[str, list[float]] = {name: [] for name in versions}
    segments: dict[str, object] = {}
    names = list(versions)
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            stats, _ = in_process(versions[name], queries, times=times[name])
            rounds_p50[name].append(stats["p50_ms"])
            segments[name] = stats["segments"]
    return {name: {"p50_ms": round(statistics.median(times[name]), 2), "p99_ms": round(percentile(times[name], 99), 2),
                   "segments": segments[name], "rounds_p50_ms": rounds_p50[name], "searches": len(times[name])}
            for name in names}


def batches(articles: list[dict], runs: int, size: int) -> list[list[dict]]:
    """The articles each run adds: consecutive BBC articles under fresh ids, dated today."""
    return [[{**a, "id": f"update-{run}-{a['id']}", "date": "2026-12-01", "source": "updates-bench"}
             for a in articles[run * size : (run + 1) * size]] for run in range(runs)]


def update_runs(server_url: str, target: list[str], plan: list[list[dict]], measure: Callable[[], int],
                via: str, embedder, tmp: Path) -> list[dict]:
    """Each batch of `plan` added (POST to the server, or `newsqa index` with `target`'s option), waited for
    in search, then its first article deleted (`DELETE /v1/articles/{id}`, or `newsqa delete` with `via` cli)
    and waited for until gone."""
    import httpx

    rows = []
    for run, batch in enumerate(plan):
        path = tmp / f"add-{run}.jsonl"
        path.write_text("".join(json.dumps(a) + "\n" for a in batch), encoding="utf-8")
        started = time.perf_counter()
        embedder.encode([a["text"] for a in batch])
        embed_s = time.perf_counter() - started
        before = measure()
        with DiskWatch(measure) as watch:
            if via == "cli":
                add_s = cli("index", str(path), *target)
            else:
                started = time.perf_counter()
                pushed = httpx.post(f"{server_url}/v1/articles", json=batch, timeout=600,
                                    headers={"X-API-Key": ADMIN_KEY})
                add_s = time.perf_counter() - started
                if pushed.status_code != 200 or pushed.json()["added"] != len(batch):
                    raise SystemExit(f"POST /v1/articles: {pushed.status_code} {pushed.text[:500]}")
        visible_s = wait_until(lambda: all(a["id"] in found_ids(server_url, a["title"]) for a in batch))
        found = sum(a["id"] in found_ids(server_url, a["title"]) for a in batch)
        gone = batch[0]
        if via == "cli":
            delete_s = cli("delete", gone["id"], *target)
        else:
            started = time.perf_counter()
            deleted = httpx.delete(f"{server_url}/v1/articles/{quote(gone['id'], safe='')}", timeout=600,
                                   headers={"X-API-Key": ADMIN_KEY})
            delete_s = time.perf_counter() - started
            if deleted.status_code != 200:
                raise SystemExit(f"DELETE /v1/articles/{gone['id']}: {deleted.status_code} {deleted.text[:500]}")
        deleted_s = wait_until(lambda: gone["id"] not in found_ids(server_url, gone["title"]))
        row = {"via": via, "articles": len(batch), "add_s": round(add_s, 2), "embed_s": round(embed_s, 2),
               "visible_after_commit_s": round(visible_s, 3), "found": found, "delete_s": round(delete_s, 2),
               "deleted_visible_after_commit_s": round(deleted_s, 3),
               "deleted_gone": gone["id"] not in found_ids(server_url, gone["title"]),
               "bytes_before": before, "bytes_peak": watch.peak, "bytes_after": measure(),
               "extra_disk_share": round((watch.peak - before) / before, 4), "load": load_average()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def start_server(index: Path, log: Path, extra: list[str]) -> Server:
    """`newsqa serve` with a 0.2 s reload interval and the admin key, started (not yet ready)."""
    return Server(index, log, ["--reload-interval", "0.2", "--admin-key", ADMIN_KEY, *extra])


def ready(server: Server) -> Server:
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def serve(index: Path, log: Path, extra: list[str]) -> Server:
    return ready(start_server(index, log, extra))


def latency(samples: list[tuple[float, float, bool]]) -> dict:
    """Requests, failures and p50/p99 (ms) of (sent, ms, ok) samples."""
    ok = [ms for _, ms, good in samples if good]
    out: dict = {"requests": len(samples), "failures": len(samples) - len(ok)}
    if ok:
        out.update(p50_ms=round(percentile(ok, 50), 2), p99_ms=round(percentile(ok, 99), 2))
    return out


def merge_under_load(index_dir: Path, log_path: Path, queries: list[str], clients: int,
                     timeout: float = 3600) -> dict:
    """A background merge in a running `newsqa serve` on `index_dir` while `clients` clients search."""
    import httpx

    server = serve(index_dir, log_path, ["--merge-interval", str(MERGE_AFTER_S), "--merge-segments", "1"])
    stop: threading.Event = threading.Event()
    samples: list[tuple[float, float, bool]] = []
    level: dict = {}
    load = threading.Thread(target=lambda: level.update(run_level(server.url, queries, clients, 0, stop=stop,
                                                                  samples=samples)))
    try:
        segments_before = _segments(server.url)
        load.start()
        started = time.perf_counter()
        while True:
            merges = httpx.get(f"{server.url}/v1/admin/status", headers={"X-API-Key": ADMIN_KEY},
                               timeout=30).json()["background_merges"]
            if merges["merges"] >= 1 and not merges["running"]:
                break
            if merges["failures"] or time.perf_counter() - started > timeout:
                raise SystemExit(f"no background merge within {timeout:.0f} s: {merges}")
            time.sleep(0.05)
        time.sleep(1.0)  # searches on the merged version
        stop.set()
        load.join()
        segments_after = _segments(server.url)
    finally:
        stop.set()
        server.stop()
    began, ended = merges["last_started"], merges["last_started"] + merges["last_seconds"]
    return {"clients": clients, "all": {**latency(samples), "error_examples": level.get("error_examples", [])},
            "before_merge": latency([s for s in samples if s[0] < began]),
            "during_merge": latency([s for s in samples if began <= s[0] <= ended]),
            "merge_s": merges["last_seconds"], "merges": merges["merges"], "merged_version": merges["last_version"],
            "segments_before": segments_before, "segments_after": segments_after, "load": load_average()}


def _segments(url: str) -> int:
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("newsqa_index_segments "):
            return int(float(line.split()[1]))
    raise SystemExit("/metrics has no newsqa_index_segments: not an embedded index?")


def embedded_bench(args, plan: list[list[dict]], embedder, report: dict, tmp: Path) -> bool:
    """The updates on a copy of the embedded index `--index` (or of data/ indexed), then the segment
    overhead before and after a merge (`newsqa merge`, or with `--merge-under-load` the server's background
    merge); True when the merged results equal the unmerged ones and no search failed during the merge."""
    copy = tmp / "index"
    if args.index:
        shutil.copytree(args.index, copy)
    else:
        cli("index", str(ROOT / "data"), "--index", str(copy))
    report["index_bytes"] = disk_bytes(copy)
    server = serve(copy, tmp / "server.log", ["--merge-interval", "0"])  # the adds alone
    try:
        report["runs"] = update_runs(server.url, ["--index", str(copy)], plan, lambda: disk_bytes(copy), args.via,
                                     embedder, tmp)
    finally:
        server.stop()

    from indexer.store.embedded import current_version

    queries = load_queries(str(args.queries))[: args.searches]
    unmerged_version = current_version(copy)
    _, before_merge = in_process(copy, queries)
    failed = 0
    if args.merge_under_load:
        log(f"a background merge under {args.clients} searching clients")
        report["merge_under_load"] = under_load = merge_under_load(copy, tmp / "merge-server.log", queries,
                                                                   args.clients)
        print(json.dumps({"merge_under_load": under_load}), flush=True)
        args.merge, merge_s, failed = "background", under_load["merge_s"], under_load["all"]["failures"]
    else:
        merge_s = cli("merge", *(["--small"] if args.merge == "small" else []), "--index", str(copy))
    merged_version = current_version(copy)
    _, after_merge = in_process(copy, queries)
    # The unmerged version is still on disk (the version before the newest is kept): both are timed
    # in alternating rounds.
    if unmerged_version is None or not unmerged_version.is_dir():
        raise SystemExit(f"the unmerged version {unmerged_version} was pruned (more than one merge ran?): "
                         "cannot compare it with the merged one")
    compared = compare_versions({"unmerged": unmerged_version, "merged": merged_version}, queries)
    unmerged, merged = compared["unmerged"], compared["merged"]
    same = all([r[:2] for r in a] == [r[:2] for r in b] and all(abs(x[2] - y[2]) <= 1e-5 for x, y in zip(a, b))
               for a, b in zip(before_merge, after_merge))
    report.update(merge=args.merge, unmerged=unmerged, merged=merged, merge_s=round(merge_s, 2),
                  merged_results_identical=same)
    return same and not failed


def postgres_bench(args, plan: list[list[dict]], embedder, report: dict, tmp: Path) -> None:
    """The same updates on a PostgreSQL store: `--pg-url` (its added articles are deleted again at the end,
    and before the start in case an earlier run stopped half way), or a private server loaded with data/.
    Extra disk is the database's size (`pg_database_size`); search p50/p99 in-process after the runs."""
    from indexer.store.postgres import delete_from_store

    pg_server, server = None, None
    try:
        if args.pg_url:
            url = args.pg_url
        else:
            from dataclasses import asdict

            from backends import Server as PgServer  # bench/backends.py: pgserver in a temporary directory
            from indexer.ingest.chunk import ChunkSettings
            from indexer.ingest.targets import index_into_store
            from indexer.store.postgres import PgWriter

            log("starting a private PostgreSQL server")
            pg_server = PgServer()
            url = pg_server.database("updates")
            # The schema first, so `newsqa serve` loads its model while data/ is embedded here (a store is
            # live: the server sees the rows as they commit).
            PgWriter(url, model=embedder.name, dimension=embedder.dimension,
                     settings=asdict(ChunkSettings().validate())).close()
            server = start_server(tmp / "no-index", tmp / "server.log", ["--store", url])
            log("loading data/ into it")
            loaded = index_into_store([ROOT / "data"], url, embedder=embedder, progress=False)
            if loaded.errors:
                raise SystemExit(f"loading data/ into PostgreSQL: {loaded.errors[:3]}")
        added = [a["id"] for batch in plan for a in batch]
        delete_from_store(url, added)
        size = PgSize(url)
        try:
            report["index_bytes"] = size()
            log("starting newsqa serve --store")
            # --index is not read with --store (serve checks for an index directory only without one).
            server = ready(server or start_server(tmp / "no-index", tmp / "server.log", ["--store", url]))
            try:
                report["runs"] = update_runs(server.url, ["--store", url], plan, size, args.via, embedder, tmp)
            finally:
                server.stop()
                server = None
            log("search p50/p99 in-process")
            queries = load_queries(str(args.queries))[: args.searches]
            search, _ = in_process(url, queries)
            report["index_bytes_after"] = size()
        finally:
            size.close()
            if args.pg_url:  # the given store back as it was loaded, also after a failed run
                delete_from_store(url, added)
    finally:
        if server is not None:  # started, and the load or the delete before the runs failed
            server.stop()
        if pg_server is not None:
            pg_server.stop()
    report.update(merge=NOT_APPLICABLE, unmerged=search, merged=NOT_APPLICABLE, merge_s=NOT_APPLICABLE,
                  merged_results_identical=NOT_APPLICABLE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded",
                        help="embedded: a copy of --index; postgres: the store --pg-url, or a private server "
                             "loaded with data/")
    parser.add_argument("--index", type=Path, help="index to copy and update (default with --short: data/ indexed)")
    parser.add_argument("--pg-url", help="with --backend postgres: a loaded store (postgresql://...; e.g. by "
                        "bench/million.py --backend postgres); the articles the bench adds are deleted at the end")
    parser.add_argument("--runs", type=int, default=10, help="adds (each followed by one delete)")
    parser.add_argument("--articles", type=int, default=10, help="articles per add")
    parser.add_argument("--bbc", type=Path, default=BBC, help="BBC corpus.jsonl (read only)")
    parser.add_argument("--queries", type=Path, default=SCIFACT_QUERIES, help="queries for the segment overhead")
    parser.add_argument("--searches", type=int, default=300, help="queries for the segment overhead")
    parser.add_argument("--merge", choices=["small", "all"], default="small",
                        help="merge only the small segments (default) or everything (--short: all)")
    parser.add_argument("--via", choices=["http", "cli"], default="http", help="how articles are added")
    parser.add_argument("--merge-under-load", action="store_true",
                        help="embedded: merge with the server's background merge while --clients clients search "
                             "(--short: on)")
    parser.add_argument("--clients", type=int, default=8, help="--merge-under-load: searching clients")
    parser.add_argument("--short", action="store_true", help="CI: the shipped news page, 2 adds of 3 articles")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.short:
        args.runs, args.articles, args.searches, args.merge = 2, 3, 30, "all"
        args.merge_under_load = args.backend == "embedded"
    if args.backend == "postgres" and args.index:
        parser.error("--index is an embedded index; with --backend postgres give --pg-url (or nothing: data/ "
                     "is loaded into a private server)")
    if args.pg_url and args.backend != "postgres":
        parser.error("--pg-url needs --backend postgres")
    if args.merge_under_load and args.backend != "embedded":
        parser.error("--merge-under-load needs --backend embedded: a PostgreSQL store has no segments to merge")

    from indexer.embed import Embedder

    articles = [json.loads(line) for line in args.bbc.read_text(encoding="utf-8").splitlines() if line.strip()]
    plan = batches(articles, args.runs, args.articles)
    embedder = Embedder(purpose="passages")
    log("model loaded")
    report: dict = {"backend": args.backend, "runs": [], "load_before": load_average()}
    ok = True
    with tempfile.TemporaryDirectory(prefix="newsqa-updates-") as tmp:
        if args.backend == "postgres":
            postgres_bench(args, plan, embedder, report, Path(tmp))
        else:
            ok = embedded_bench(args, plan, embedder, report, Path(tmp))
    report["load_after"] = load_average()
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
