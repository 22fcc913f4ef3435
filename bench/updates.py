"""Updates on a live index (issue 15): how soon an add or a delete is searchable, what it costs, and
what unmerged segments cost search.

    python bench/updates.py --index /path/to/index [--runs 10] [--articles 10] [--via http|cli]
    python bench/updates.py --short          # CI: the shipped news page, 2 small adds

The index is copied to a temporary directory first (`--index` is never written). A real
`newsqa serve` process serves the copy with `--reload-interval 0.2`. Then `--runs` times:

1. `--articles` new articles (real BBC articles from `--bbc`, read at run time and never copied
   into the repository, under fresh ids) are added: with `--via http` (the default) by
   `POST /v1/articles` to the running server, which embeds them with its loaded model, writes a
   segment and serves it; with `--via cli` by `newsqa index` in a subprocess (which loads the model
   first). Reported: the add's wall time, the embedding time of the same texts measured in-process
   beforehand (so "add minus embedding" is what the index itself costs), and the time from the add's
   return (its commit) until the server returns every new article for a search of its title.
2. The peak extra disk the index used while the command ran (sampled every 50 ms) against the
   index's size before it.
3. One of the added articles is deleted with `newsqa delete`; reported: the time from the command's
   exit until no search returns it.

Then, in-process on the final copy, search p50/p99 over the SciFact test claims (`--queries`) with
the unmerged segments, then after `newsqa merge --small` (`--merge small`, the default: the small
segments into one, the large base as it is) or `newsqa merge` (`--merge all`), and whether the two return the same ids (scores
within 1e-5). The load average (`uptime`) is printed beside the timings.

With `--merge-under-load` (also in `--short`), the merge is instead the one a running `newsqa serve`
does in the background (its tiered policy with `--merge-segments 1`, so every small segment the adds
left is merged, and segments over the deleted share are rewritten): a server is started on the copy with
its first merge check `MERGE_AFTER_S` seconds after start, while `--clients` clients (load_test's
raw-socket keep-alive clients, `query_latency.run_level`) run hybrid searches against it. Reported:
requests, failures, p50/p99 before the merge and during it (from its start to its publish, from
`/v1/admin/status`), the merge's seconds and the segments before and after. The servers of the add
runs have background merges off (`--merge-interval 0`), so those runs measure adds alone.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_latency import Server, load_average, load_queries, percentile, run_level  # noqa: E402

ADMIN_KEY = "updates-bench-admin"
BBC = ROOT.parent / "shared" / "datasets" / "bbc-news" / "corpus.jsonl"
SCIFACT_QUERIES = ROOT.parent / "shared" / "datasets" / "beir-scifact" / "queries_test.jsonl"
# --merge-under-load: seconds of load before the server's first background merge check.
MERGE_AFTER_S = 5.0


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


class DiskWatch:
    """The largest size of `directory` seen while running, sampled every 50 ms."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.peak, self._stop = directory, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, disk_bytes(self.directory))
            except FileNotFoundError:  # a file removed while walking
                pass
            self._stop.wait(0.05)

    def __enter__(self) -> "DiskWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, disk_bytes(self.directory))


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
    """Seconds until `predicate()` holds (polled every 20 ms)."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"not visible within {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter() - started


def in_process(index_dir: Path, queries: list[str]) -> tuple[dict, list[list[tuple[str, int, float]]]]:
    from indexer.embed import Embedder
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    embedder = Embedder()
    index = open_index(index_dir, model=embedder.name)
    try:
        searcher = Searcher(index, embedder)
        for query in queries:  # query vectors cached: the legs, fusion and hits are what differ
            searcher.search(query, k=10)
        times, results = [], []
        for query in queries:
            started = time.perf_counter()
            result = searcher.search(query, k=10)
            times.append((time.perf_counter() - started) * 1000)
            # Passages by article and offset: a merge may renumber them.
            results.append([(h.citation.article_id, h.citation.start, h.score) for h in result.hits])
        return ({"p50_ms": round(statistics.median(times), 2), "p99_ms": round(percentile(times, 99), 2),
                 "segments": len(index.segments)}, results)
    finally:
        index.close()


def latency(samples: list[tuple[float, float, bool]]) -> dict:
    """Requests, failures and p50/p99 (ms) of (sent, ms, ok) samples."""
    ok = [ms for _, ms, good in samples if good]
    out: dict = {"requests": len(samples), "failures": len(samples) - len(ok)}
    if ok:
        out.update(p50_ms=round(percentile(ok, 50), 2), p99_ms=round(percentile(ok, 99), 2))
    return out


def merge_under_load(index_dir: Path, log: Path, queries: list[str], clients: int, timeout: float = 3600) -> dict:
    """A background merge in a running `newsqa serve` on `index_dir` while `clients` clients search."""
    import httpx

    server = Server(index_dir, log, ["--reload-interval", "0.2", "--admin-key", ADMIN_KEY,
                                     "--merge-interval", str(MERGE_AFTER_S), "--merge-segments", "1"])
    stop, samples, level = threading.Event(), [], {}
    load = threading.Thread(target=lambda: level.update(run_level(server.url, queries, clients, 0, stop=stop,
                                                                  samples=samples)))
    try:
        server.wait_ready()
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


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="index to copy and update (default with --short: data/ indexed)")
    parser.add_argument("--runs", type=int, default=10, help="adds (each followed by one delete)")
    parser.add_argument("--articles", type=int, default=10, help="articles per add")
    parser.add_argument("--bbc", type=Path, default=BBC, help="BBC corpus.jsonl (read only)")
    parser.add_argument("--queries", type=Path, default=SCIFACT_QUERIES, help="queries for the segment overhead")
    parser.add_argument("--searches", type=int, default=300, help="queries for the segment overhead")
    parser.add_argument("--merge", choices=["small", "all"], default="small",
                        help="merge only the small segments (default) or everything (--short: all)")
    parser.add_argument("--via", choices=["http", "cli"], default="http", help="how articles are added")
    parser.add_argument("--merge-under-load", action="store_true",
                        help="merge with the server's background merge while --clients clients search (--short: on)")
    parser.add_argument("--clients", type=int, default=8, help="--merge-under-load: searching clients")
    parser.add_argument("--short", action="store_true", help="CI: the shipped news page, 2 adds of 3 articles")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.short:
        args.runs, args.articles, args.searches, args.merge, args.merge_under_load = 2, 3, 30, "all", True

    from indexer.embed import Embedder

    articles = [json.loads(line) for line in args.bbc.read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = Embedder(purpose="passages")
    report: dict = {"runs": [], "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="newsqa-updates-") as tmp:
        copy = Path(tmp) / "index"
        if args.index:
            shutil.copytree(args.index, copy)
        else:
            cli("index", str(ROOT / "data"), "--index", str(copy))
        report["index_bytes"] = disk_bytes(copy)
        server = Server(copy, Path(tmp) / "server.log", ["--reload-interval", "0.2", "--admin-key", ADMIN_KEY,
                                                         "--merge-interval", "0"])
        try:
            server.wait_ready()
            for run in range(args.runs):
                batch = [{**a, "id": f"update-{run}-{a['id']}", "date": "2026-12-01", "source": "updates-bench"}
                         for a in articles[run * args.articles : (run + 1) * args.articles]]
                path = Path(tmp) / f"add-{run}.jsonl"
                path.write_text("".join(json.dumps(a) + "\n" for a in batch), encoding="utf-8")
                started = time.perf_counter()
                embedder.encode([a["text"] for a in batch])
                embed_s = time.perf_counter() - started
                before = disk_bytes(copy)
                with DiskWatch(copy) as watch:
                    if args.via == "cli":
                        add_s = cli("index", str(path), "--index", str(copy))
                    else:
                        started = time.perf_counter()
                        pushed = httpx.post(f"{server.url}/v1/articles", json=batch, timeout=600,
                                            headers={"X-API-Key": ADMIN_KEY})
                        add_s = time.perf_counter() - started
                        if pushed.status_code != 200 or pushed.json()["added"] != len(batch):
                            raise SystemExit(f"POST /v1/articles: {pushed.status_code} {pushed.text[:500]}")
                visible_s = wait_until(lambda: all(a["id"] in found_ids(server.url, a["title"]) for a in batch))
                gone = batch[0]
                delete_s = cli("delete", gone["id"], "--index", str(copy))
                deleted_s = wait_until(lambda: gone["id"] not in found_ids(server.url, gone["title"]))
                row = {"via": args.via, "articles": len(batch), "add_s": round(add_s, 2), "embed_s": round(embed_s, 2),
                       "visible_after_commit_s": round(visible_s, 3), "delete_s": round(delete_s, 2),
                       "deleted_visible_after_commit_s": round(deleted_s, 3),
                       "extra_disk_share": round((watch.peak - before) / before, 4), "load": load_average()}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.process.terminate()
            server.process.wait(timeout=30)

        queries = load_queries(str(args.queries))[: args.searches]
        unmerged, before_merge = in_process(copy, queries)
        if args.merge_under_load:
            report["merge_under_load"] = under_load = merge_under_load(copy, Path(tmp) / "merge-server.log",
                                                                       queries, args.clients)
            print(json.dumps({"merge_under_load": under_load}), flush=True)
            args.merge, merge_s = "background", under_load["merge_s"]
        else:
            merge_s = cli("merge", *(["--small"] if args.merge == "small" else []), "--index", str(copy))
        merged, after_merge = in_process(copy, queries)
        same = all([r[:2] for r in a] == [r[:2] for r in b] and all(abs(x[2] - y[2]) <= 1e-5 for x, y in zip(a, b))
                   for a, b in zip(before_merge, after_merge))
        report.update(merge=args.merge, unmerged=unmerged, merged=merged, merge_s=round(merge_s, 2), merged_results_identical=same,
                      load_after=load_average())
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = report.get("merge_under_load", {}).get("all", {}).get("failures", 0)
    return 0 if same and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
