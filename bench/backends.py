"""Embedded index vs PostgreSQL + pgvector: quality, query latency and parallel indexing.

    .venv/bin/python bench/backends.py --short      # a slice: ~2 minutes once embeddings are cached
    .venv/bin/python bench/backends.py              # all of SciFact test, longer latency runs

Three measurements, each on a private PostgreSQL 16 + pgvector server started
here (the `pgserver` package) in a temporary directory:

1. nDCG@10 (and Recall@100) on SciFact for dense, lexical and hybrid on both
   backends, with the harness of `newsqa eval --beir` (indexer/evaluate/harness.py).
   The PostgreSQL store is filled by its own indexer; passage vectors come from
   the evaluation's embedding cache, so both backends hold the same vectors.
2. Query latency (hybrid, k=10, highlights off, query vectors cached so the
   model is not timed) at 1 and 8 concurrent clients: p50, p95 and queries/s.
3. `newsqa index --store URL` with one worker vs two `--shard i/2` workers on
   a slice of the corpus, each worker a separate process limited to one CPU
   thread (as one core per worker on separate machines): wall time including
   model loading, and each worker's CPU seconds (the wall time on dedicated
   cores or machines; on a machine busy with other jobs the wall time cannot
   show the split, the CPU seconds still do).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCIFACT = ROOT.parent / "shared" / "datasets" / "beir-scifact"
MODES = ("dense", "lexical", "hybrid")
# Largest nDCG@10 difference between the backends the issue allows.
TOLERANCE = 0.005


class Server:
    """A private PostgreSQL server in a temporary directory."""

    def __init__(self) -> None:
        import pgserver

        self.directory = tempfile.mkdtemp(prefix="newsqa-bench-pg-")
        self.server = pgserver.get_server(self.directory, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def database(self, name: str, **options) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.url)
        query = "&".join([parts.query] + [f"{k}={v}" for k, v in options.items()])
        return urlunsplit(parts._replace(path="/" + name, query=query))

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)


def subset(data, *, queries: int, documents: int):
    """The first `queries` test queries and a corpus of their judged documents plus the first `documents`."""
    from indexer.evaluate.harness import BeirSet

    qids = list(data.queries)[:queries]
    keep = list(dict.fromkeys([d for q in qids for d in data.qrels.get(q, {})] + list(data.corpus)[:documents]))
    return BeirSet(data.name + f"-slice{len(keep)}", {d: data.corpus[d] for d in keep if d in data.corpus},
                   {q: data.queries[q] for q in qids}, {q: data.qrels[q] for q in qids if q in data.qrels})


def write_corpus(data, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for doc_id, (title, text) in data.corpus.items():
            handle.write(json.dumps({"id": doc_id, "title": title or doc_id, "text": text}) + "\n")
    return path


def beir_run(searcher, data, mode: str, depth: int) -> dict:
    """`indexer.evaluate.harness.beir_run` without highlights: they cost model calls and do not change the ranking."""
    run = {}
    for qid, text in data.queries.items():
        result = searcher.search(text, k=depth, mode=mode, group="article", highlights=False)
        run[qid] = {h.citation.article_id: float(depth - h.rank + 1) for h in result.hits} or {"__no_result__": 0.0}
    return run


def quality(data, embedded_dir: Path, pg_url: str, cached) -> dict:
    from indexer.evaluate.harness import RUN_DEPTH, score_run
    from indexer.query.search import Searcher
    from indexer.store.backends import open_store

    cached.encode(list(data.queries.values()))
    out = {}
    for backend, target in (("embedded", embedded_dir), ("postgres", pg_url)):
        index = open_store(target, model=cached.name)
        try:
            searcher = Searcher(index, cached)
            out[backend] = {}
            for mode in MODES:
                t0 = time.perf_counter()
                out[backend][mode] = score_run(data.qrels, beir_run(searcher, data, mode, RUN_DEPTH))
                out[backend][mode]["seconds"] = round(time.perf_counter() - t0, 1)
            if backend == "postgres":
                # PostgreSQL's own full-text ranking (ts_rank_cd over the english tsvector), for comparison.
                t0 = time.perf_counter()
                out[backend]["ts_rank_cd"] = score_run(data.qrels, ts_rank_run(index, data, RUN_DEPTH))
                out[backend]["ts_rank_cd"]["seconds"] = round(time.perf_counter() - t0, 1)
        finally:
            index.close()
    return out


def ts_rank_run(index, data, depth: int) -> dict:
    """Document rankings from `ts_rank_cd` alone (best passage per document)."""
    run = {}
    for qid, text in data.queries.items():
        hits = index.lexical_search(text, depth * 3, ranking="ts_rank_cd")
        owner = {c.chunk_id: c.article_id for c in index.chunks([cid for cid, _ in hits]).values()}
        ranking: dict[str, float] = {}
        for cid, _ in hits:
            if len(ranking) < depth:
                ranking.setdefault(owner[cid], float(depth - len(ranking)))
        run[qid] = ranking or {"__no_result__": 0.0}
    return run


def latency(queries: list[str], target, cached, *, clients: int, rounds: int) -> dict:
    from indexer.query.search import Searcher
    from indexer.store.backends import open_store

    index = open_store(target, model=cached.name)
    try:
        searcher = Searcher(index, cached)
        for q in queries[:5]:  # warm caches and connections
            searcher.search(q, k=10, highlights=False)
        work = queries * rounds

        def one(q: str) -> float:
            t0 = time.perf_counter()
            searcher.search(q, k=10, mode="hybrid", highlights=False)
            return (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            times = list(pool.map(one, work))
        wall = time.perf_counter() - t0
    finally:
        index.close()
    times.sort()
    return {"clients": clients, "queries": len(times), "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2), "qps": round(len(times) / wall, 1)}


def index_workers(corpus: Path, server: Server, workers: int) -> dict:
    """Wall time of `workers` processes `newsqa index --store URL --shard i/workers` over `corpus`."""
    url = server.database(f"workers{workers}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "service.cli", "index", str(corpus), "--store", url, "--no-progress", "--json"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(workers)]
    procs = [subprocess.Popen(command + (["--shard", f"{i}/{workers}"] if workers > 1 else []), cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=logs[i], text=True) for i in range(workers)]
    results, cpu = [], []
    for proc, log in zip(procs, logs):
        out = proc.stdout.read()
        # wait4 gives this worker's own CPU seconds: the work each worker did, whatever else runs here.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"index worker failed ({proc.returncode}): {log.read()[-2000:]}")
        results.append(json.loads(out))
        cpu.append(round(usage.ru_utime + usage.ru_stime, 1))
    wall = time.perf_counter() - t0
    from indexer.store.backends import open_store

    index = open_store(url)
    try:
        chunks = index.counts["chunks"]
    finally:
        index.close()
    return {"workers": workers, "seconds": round(wall, 1), "passages": chunks,
            "passages_per_second": round(chunks / wall, 2), "cpu_seconds": cpu, "load_before": round(load, 1),
            "per_worker": [{"added": r["added"], "chunks": r["chunks"], "seconds": round(r["seconds"], 1)}
                           for r in results]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a slice of SciFact and shorter runs")
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    parser.add_argument("--cache", type=Path, help="evaluation cache (default: $NEWSQA_CACHE_DIR or ~/.cache/newsqa)")
    parser.add_argument("--skip-workers", action="store_true", help="leave out the indexing workers run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    # A terminated run still stops its PostgreSQL server (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from indexer.embed import Embedder
    from indexer.evaluate.harness import NO_DEDUPE, WHOLE_DOCUMENTS, CachedEmbedder, beir_index, cache_dir, load_beir
    from indexer.ingest.targets import index_into_store

    cache = args.cache or cache_dir()
    embedder = Embedder()
    cached = CachedEmbedder(embedder, cache / "embeddings")
    full = load_beir(args.scifact)
    data = subset(full, queries=40, documents=600) if args.short else full
    results: dict = {"mode": "short" if args.short else "full", "queries": len(data.queries),
                     "documents": len(data.corpus)}
    server = Server()
    work = Path(tempfile.mkdtemp(prefix="newsqa-bench-"))
    try:
        t0 = time.perf_counter()
        embedded_dir = beir_index(data, cached, settings=WHOLE_DOCUMENTS, cache=cache)
        results["embedded_index_seconds"] = round(time.perf_counter() - t0, 1)
        corpus = write_corpus(data, work / "corpus.jsonl")
        pg_url = server.database("scifact", pool_size=8)
        t0 = time.perf_counter()
        summary = index_into_store([corpus], pg_url, embedder=cached, settings=WHOLE_DOCUMENTS,
                                   dedupe_threshold=NO_DEDUPE, progress=False)
        results["postgres_index_seconds"] = round(time.perf_counter() - t0, 1)
        results["passages"] = summary.total_chunks
        print(f"indexed {len(data.corpus)} documents ({summary.total_chunks} passages): embedded "
              f"{results['embedded_index_seconds']} s, postgres {results['postgres_index_seconds']} s "
              f"(vectors from the embedding cache)", flush=True)

        scores = quality(data, embedded_dir, pg_url, cached)
        results["quality"] = scores
        print(f"\nSciFact {'slice' if args.short else 'test'}: {len(data.queries)} queries, {len(data.corpus)} docs")
        print("| mode | embedded nDCG@10 | postgres nDCG@10 | diff | embedded R@100 | postgres R@100 |")
        print("|---|---:|---:|---:|---:|---:|")
        worst = 0.0
        for mode in MODES:
            e, p = scores["embedded"][mode], scores["postgres"][mode]
            diff = p["ndcg@10"] - e["ndcg@10"]
            worst = max(worst, abs(diff))
            print(f"| {mode} | {e['ndcg@10']:.4f} | {p['ndcg@10']:.4f} | {diff:+.4f} | "
                  f"{e['recall@100']:.4f} | {p['recall@100']:.4f} |")
        ts = scores["postgres"]["ts_rank_cd"]
        print(f"| lexical, PostgreSQL ts_rank_cd | – | {ts['ndcg@10']:.4f} | – | – | {ts['recall@100']:.4f} |")
        results["max_ndcg_difference"] = round(worst, 5)
        print(f"largest nDCG@10 difference {worst:.4f} (allowed {TOLERANCE})", flush=True)

        queries = list(data.queries.values())[: 40 if args.short else 300]
        rounds = 1 if args.short else 2
        results["latency"] = {}
        print("\n| backend | clients | p50 ms | p95 ms | queries/s |\n|---|---:|---:|---:|---:|")
        for backend, target in (("embedded", embedded_dir), ("postgres", pg_url)):
            for clients in (1, 8):
                row = latency(queries, target, cached, clients=clients, rounds=rounds)
                results["latency"].setdefault(backend, []).append(row)
                print(f"| {backend} | {clients} | {row['p50_ms']} | {row['p95_ms']} | {row['qps']} |", flush=True)

        if not args.skip_workers:
            slice_docs = 120 if args.short else 240
            worker_corpus = write_corpus(subset(full, queries=0, documents=slice_docs), work / "workers.jsonl")
            print(f"\nindexing {slice_docs} SciFact documents with the model (one CPU thread per worker):")
            results["workers"] = []
            for workers in (1, 2):
                row = index_workers(worker_corpus, server, workers)
                results["workers"].append(row)
                print(f"  {workers} worker(s): {row['seconds']} s wall, {row['passages_per_second']} passages/s, "
                      f"CPU s per worker {row['cpu_seconds']} (load average before: {row['load_before']}); "
                      f"{row['per_worker']}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results.get("max_ndcg_difference", 1.0) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
