"""Search at a million passages: latency, recall and memory of `newsqa serve` on a synthetic index.

    NEWSQA_CACHE_DIR=.cache HF_HUB_OFFLINE=1 python bench/million.py --json .cache/million/report.json
    python bench/million.py --chunks 100000 --out /tmp/million-100k    # a smaller run
    python bench/million.py --reuse --json report.json                 # benchmark the index built before
    python bench/million.py --short      # CI: 1,000 SciFact documents, 20,000 chunks, a few requests
    python bench/million.py --backend postgres --url postgresql://... --chunks 100000   # load PostgreSQL only

Embedding a million real passages takes about half a day on 2 cores, so the
index is synthetic where it must be and real where it can be:

- Text: real BEIR SciFact abstracts (read from `--scifact`, never copied into
  the repository), cut into passages of up to three sentences and reused
  round-robin until there are `--chunks` of them; 6..14 consecutive passages
  (10 on average) make one synthetic article, whose `Chunk.start/end` slice
  `Article.text` exactly, with a real title, a date (2015..2025) and one of 12
  sources, so citations work as for news.
- Vectors: each passage gets the real all-MiniLM-L6-v2 embedding of the
  SciFact document it comes from (the one `newsqa eval --beir` computes; read
  from its on-disk cache, embedded only on a cache miss) plus Gaussian noise,
  renormalized. The noise scale sigma is calibrated, not guessed: bisection on
  sigma until the median top-1 nearest-neighbour cosine of a sample of the
  synthetic vectors (against all of them) equals that of the real SciFact
  document vectors. Uniform random vectors would be a worst case no corpus has.
- Queries: the 300 real SciFact test queries, embedded by the real model.

The index is written by the project's own writer (`IndexDraft`: SQLite with
FTS5, BM25 arrays, FAISS; graph index above `EXACT_SEARCH_LIMIT`), so
`newsqa serve --index DIR` serves it unchanged. Then:

1. Vector search study, in-process on the built FAISS index: recall@10 against
   exact search (`faiss.IndexFlatIP` over the same vectors) and single-query
   milliseconds for several efSearch values, at k=10 and at the depth hybrid
   search asks the vector leg for (k=100), with FAISS's default OpenMP threads
   (as the service runs it) and with one thread: on a busy 2-core machine a
   single-query search with 2 OpenMP threads waits for the second thread to be
   scheduled (about 8 ms here), whatever the work. A setting "meets" the
   targets with recall@10 >= 0.95 and p99 < 10 ms at k=100. Below
   `EXACT_SEARCH_LIMIT` the served index is exact; the study then builds the
   graph `_build_graph` would build, to check its settings at this size.
2. A real `newsqa serve` process (bench/query_latency.py's `Server`): hybrid
   k=10 searches at 1, 8 and 32 clients over loopback; p50/p90/p99, errors and
   req/s; resident memory idle and after load; the same for a server on a tiny
   index (data/'s news page), so memory per million chunks is the difference
   scaled to 1,000,000.
3. The in-process per-stage breakdown (query embedding, vector search, lexical
   search, fusion, response building) from bench/query_latency.py.

Clients and server share the machine (2 cores here). Exit status 1 if any
request failed or recall@10 at the index's own efSearch is below 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_latency import (DEFAULT_QUERIES, Server, breakdown, build_news_index, disk_bytes,  # noqa: E402
                           percentile, run_level, table)

SCIFACT = ROOT.parent / "shared" / "datasets" / "beir-scifact"
DEFAULT_OUT = ROOT / ".cache" / "million" / "index"
PASSAGE_SENTENCES = 3
SOURCES = 12
FIRST_DAY = date(2015, 1, 1)
DAYS = 4018  # 2015-01-01 .. 2025-12-31
BLOCK = 65_536  # vectors generated per block; each block has its own seeded noise
TARGET_RECALL = 0.95
TARGET_MS = 10.0
EXACT_TIMED_QUERIES = 50  # exact search one query at a time is slow at 1M: time only these
SERVICE_DEPTH = 100  # what hybrid k=10 asks the vector leg for: max(k * 5, 100) in indexer/query/search.py


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class MemoryWatch:
    """Peak resident memory of this process per phase, sampled every 0.2 s by a thread."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss_bytes())

    def enter(self, phase: str) -> None:
        self.sample()
        self.phase = phase
        self.sample()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self.sample()
        return dict(self.peaks)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- SciFact: document vectors, passages, queries -------------------------------------------


def scifact_documents(corpus: dict[str, tuple[str, str]]):
    """Each document as the article `newsqa eval --beir` indexes (same reader rules, same id)."""
    from indexer.ingest.documents import make_article

    articles = []
    for doc_id, (title, text) in corpus.items():
        # As indexer/ingest/read.py reads a JSONL record, and as beir_index writes one (empty title: the id).
        paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
        article, _ = make_article(title=title or doc_id, blocks=[(None, p) for p in paragraphs], article_id=doc_id)
        if article.text:
            articles.append(article)
    return articles


def document_vectors(articles, embedder) -> tuple[np.ndarray, dict]:
    """The embedding of each document as `newsqa eval --beir` indexes it, from its on-disk cache.

    Documents are whole (WHOLE_DOCUMENTS: one passage each, the model truncates);
    the embedded input is `passage_input(title, section, passage)`, so the cache
    keys are those of the evaluation run. Misses are embedded (and cached).
    """
    from indexer.ingest.chunk import chunk_article
    from indexer.embed import passage_input
    from indexer.evaluate.harness import WHOLE_DOCUMENTS, CachedEmbedder, cache_dir

    cached = CachedEmbedder(embedder, cache_dir() / "embeddings")
    inputs, multi = [], 0
    for article in articles:
        chunks = chunk_article(article, WHOLE_DOCUMENTS, embedder.count_wordpieces)
        multi += len(chunks) > 1
        inputs.append(passage_input(article.title, chunks[0].section, chunks[0].text))
    t0 = time.perf_counter()
    vectors = cached.encode(inputs)
    info = {"documents": len(articles), "cache_hits": cached.hits, "cache_misses": cached.misses,
            "documents_with_several_passages": multi, "seconds": round(time.perf_counter() - t0, 1),
            "cache": str(cached.directory)}
    return vectors, info


def passage_pool(articles) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Passages of up to PASSAGE_SENTENCES sentences of each document: texts, source document, tokens."""
    from indexer.sentences import split_sentences
    from indexer.tokens import DEFAULT_ENCODING, get_encoding

    encoding = get_encoding(DEFAULT_ENCODING)
    texts, sources = [], []
    for number, article in enumerate(articles):
        spans = split_sentences(article.text)
        for first in range(0, len(spans), PASSAGE_SENTENCES):
            group = spans[first : first + PASSAGE_SENTENCES]
            text = " ".join(article.text[group[0][0] : group[-1][1]].split())
            if len(text) >= 20:
                texts.append(text)
                sources.append(number)
    tokens = np.asarray([len(t) for t in encoding.encode_batch(texts, disallowed_special=())], dtype=np.int32)
    return texts, np.asarray(sources, dtype=np.int32), tokens


# --- synthetic vectors and the noise calibration ------------------------------------------------


class Synthetic:
    """Vectors of chunk ids 0..n-1: the source document's vector plus sigma * N(0, I), renormalized."""

    def __init__(self, doc_vectors: np.ndarray, pool_sources: np.ndarray, n: int, seed: int) -> None:
        self.doc_vectors = doc_vectors
        self.pool_sources = pool_sources
        self.n = n
        self.seed = seed
        self.dimension = doc_vectors.shape[1]

    def source(self, chunk_ids: np.ndarray) -> np.ndarray:
        return self.pool_sources[chunk_ids % len(self.pool_sources)]

    def block(self, number: int, sigma: float) -> np.ndarray:
        start, stop = number * BLOCK, min((number + 1) * BLOCK, self.n)
        noise = np.random.default_rng([self.seed, number]).standard_normal((stop - start, self.dimension),
                                                                          dtype=np.float32)
        vectors = self.doc_vectors[self.source(np.arange(start, stop))] + np.float32(sigma) * noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def all(self, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((self.n, self.dimension), dtype=np.float32) if out is None else out
        for number in range((self.n + BLOCK - 1) // BLOCK):
            out[number * BLOCK : (number + 1) * BLOCK] = self.block(number, sigma)
        return out


def nn_cosines(sample: np.ndarray, sample_ids: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Cosine of each sample vector's nearest neighbour in `database`, itself excluded (exact)."""
    import faiss

    scores, ids = faiss.knn(np.ascontiguousarray(sample), database, 2, faiss.METRIC_INNER_PRODUCT)
    self_first = ids[:, 0] == sample_ids
    return np.where(self_first, scores[:, 1], scores[:, 0])


def summary(values: np.ndarray) -> dict:
    return {"p10": round(float(np.percentile(values, 10)), 4), "median": round(float(np.median(values)), 4),
            "p90": round(float(np.percentile(values, 90)), 4), "mean": round(float(np.mean(values)), 4)}


def calibrate(synthetic: Synthetic, target: float, sample_size: int, tolerance: float = 0.002,
              max_steps: int = 14) -> tuple[float, np.ndarray, list[dict], np.ndarray]:
    """Bisection on sigma until the median top-1 NN cosine of a sample equals `target` (within `tolerance`).

    Returns sigma, the vectors for it, the trials and the sampled ids. The median falls as sigma grows.
    """
    rng = np.random.default_rng(synthetic.seed + 1)
    sample_ids = np.sort(rng.choice(synthetic.n, size=min(sample_size, synthetic.n), replace=False))
    buffer = np.empty((synthetic.n, synthetic.dimension), dtype=np.float32)
    trials: list[dict] = []

    def median_at(sigma: float) -> float:
        t0 = time.perf_counter()
        vectors = synthetic.all(sigma, buffer)
        cosines = nn_cosines(vectors[sample_ids], sample_ids, vectors)
        trials.append({"sigma": round(sigma, 6), **summary(cosines), "seconds": round(time.perf_counter() - t0, 1)})
        log(f"  sigma={sigma:.5f}: median NN cosine {trials[-1]['median']:.4f} (target {target:.4f})")
        return float(np.median(cosines))

    # Start near the value where two noisy copies of one vector have the target cosine, 1 / (1 + d sigma^2).
    guess = float(np.sqrt(max(1 / target - 1, 1e-6) / synthetic.dimension))
    lo, hi = guess / 2, guess * 2
    while median_at(lo) < target:
        lo /= 2
    while median_at(hi) > target:
        hi *= 2
    sigma = (lo + hi) / 2
    for _ in range(max_steps):
        sigma = (lo + hi) / 2
        value = median_at(sigma)
        if abs(value - target) <= tolerance:
            break
        lo, hi = (sigma, hi) if value > target else (lo, sigma)
    else:
        sigma = min(trials, key=lambda t: abs(t["median"] - target))["sigma"]
    vectors = synthetic.all(sigma, buffer)
    return sigma, vectors, trials, sample_ids


# --- the synthetic index --------------------------------------------------------------------


def article_sizes(n: int) -> list[int]:
    """6..14 passages per article (10 on average), the last one takes what is left."""
    sizes, total, a = [], 0, 0
    while total < n:
        size = min(6 + (a * 5) % 9, n - total)
        sizes.append(size)
        total += size
        a += 1
    return sizes


def synthetic_articles(n: int, pool: tuple, titles: list[str]):
    """The synthetic articles over chunk ids 0..n-1, in order: (article, its chunks, first chunk id).

    Both writers (`build` for an embedded index, `build_postgres`) take the same articles from here.
    """
    from indexer.types import Article, Chunk, Section

    texts, sources, tokens = pool
    sizes = article_sizes(n)
    chunk_id = 0
    for number, size in enumerate(sizes):
        ids = np.arange(chunk_id, chunk_id + size)
        positions = ids % len(texts)
        pieces, spans, offset = [], [], 0
        for p in positions:
            pieces.append(texts[p])
            spans.append((offset, offset + len(texts[p])))
            offset += len(texts[p]) + 2
        text = "\n\n".join(pieces)
        article_id = f"syn-{number:07d}"
        article = Article(
            article_id=article_id,
            title=titles[sources[positions[0]]],
            text=text,
            date=(FIRST_DAY + timedelta(days=number * DAYS // len(sizes))).isoformat(),
            source=f"scifact-wire-{number % SOURCES:02d}",
            kind="news",
            sections=(Section(None, 0, len(text)),),
            paragraphs=tuple(spans),
            origin="bench/million.py",
        )
        chunks = [Chunk(chunk_id=int(cid), article_id=article_id, ordinal=j, text=texts[p], start=s, end=e,
                        section=None, paragraph=j, tokens=int(tokens[p]))
                  for j, (cid, p, (s, e)) in enumerate(zip(ids, positions, spans))]
        assert all(text[c.start : c.end] == c.text for c in chunks)
        yield article, chunks, chunk_id
        chunk_id += size


def build(out: Path, synthetic: Synthetic, vectors: np.ndarray, pool: tuple, titles: list[str],
          model: str, extra: dict, watch: MemoryWatch) -> dict:
    """Write the synthetic index with `IndexDraft` (one `add_article` per article, one commit)."""
    import indexer.store.embedded as store
    from indexer.ingest.build import content_hash
    from indexer.ingest.chunk import ChunkSettings
    from indexer.ingest.dedupe import signature

    n = synthetic.n
    articles = len(article_sizes(n))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    watch.enter("build: add articles")
    draft = store.IndexDraft(out, base=None, model=model, dimension=synthetic.dimension,
                             settings=asdict(ChunkSettings()))
    try:
        step = max(articles // 10, 1)
        for number, (article, chunks, chunk_id) in enumerate(synthetic_articles(n, pool, titles)):
            size = len(chunks)
            draft.add_article(article, chunks, vectors[chunk_id : chunk_id + size], content_hash=content_hash(article),
                              minhash=signature(article.title + "\n" + article.text))
            draft.next_chunk_id = chunk_id = chunk_id + size
            if (number + 1) % step == 0 or number + 1 == articles:
                elapsed = time.perf_counter() - started
                log(f"  {number + 1:,}/{articles:,} articles, {chunk_id:,} chunks, {elapsed:.0f} s, "
                    f"RSS {gib(rss_bytes())}")
        timings["add_articles_s"] = round(time.perf_counter() - started, 1)

        # Time the two heavy parts of commit() by wrapping them (the code itself is unchanged).
        original_lexical, original_graph = store.postings_from_rows, store._build_graph

        def timed_postings(conn):
            watch.enter("build: commit: BM25 postings (with their SQLite read)")
            t0 = time.perf_counter()
            built = original_lexical(conn)
            timings["bm25_index_s"] = round(time.perf_counter() - t0, 1)
            log(f"  BM25 postings over {len(built.chunk_ids):,} passages: {timings['bm25_index_s']} s")
            watch.enter("build: commit: write BM25, SQLite optimize")
            return built

        def timed_graph(exact, dimension):
            watch.enter("build: commit: HNSW graph")
            t0 = time.perf_counter()
            graph = original_graph(exact, dimension)
            timings["hnsw_graph_s"] = round(time.perf_counter() - t0, 1)
            log(f"  HNSW graph over {exact.ntotal:,} vectors: {timings['hnsw_graph_s']} s")
            watch.enter("build: commit: write FAISS, manifest")
            return graph

        log("committing: SQLite, BM25, FAISS")
        watch.enter("build: commit: SQLite read")
        t0 = time.perf_counter()
        store.postings_from_rows, store._build_graph = timed_postings, timed_graph
        try:
            version = draft.commit(extra)
        finally:
            store.postings_from_rows, store._build_graph = original_lexical, original_graph
        timings["commit_s"] = round(time.perf_counter() - t0, 1)
    except BaseException:
        draft.abort()
        raise
    timings["build_s"] = round(time.perf_counter() - started, 1)
    watch.enter("after build")
    return {"version": version.name, "articles": articles, "chunks": n, **timings}


# Indexes built once after the load (pgvector and GIN build faster in bulk than row by row); their
# definitions are read from the database, so they stay the schema's own (indexer/store/postgres/schema.py).
DEFERRED_PG_INDEXES = ("chunks_embedding", "chunks_tsv")
PG_BUILD_MEMORY = "4GB"  # maintenance_work_mem of the loading session: the 1M graph fits, so it is built in memory


def pg_database_bytes(url: str) -> int:
    """pg_database_size of the store's database: its tables, indexes and TOAST."""
    import psycopg

    from indexer.store.postgres import StoreUrl

    with psycopg.connect(StoreUrl.parse(url).conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None  # a SELECT of one value returns one row
    return int(row[0])


def build_postgres(url: str, synthetic: Synthetic, vectors: np.ndarray, pool: tuple, titles: list[str],
                   model: str) -> dict:
    """Load the same synthetic articles as `build` into the PostgreSQL store `url` (emptied first) with
    `PgWriter`: batches of `WRITE_BATCH_CHUNKS` passages, one transaction each, as `newsqa index --store`
    writes them. The vector (HNSW) and full-text (GIN) indexes are dropped for the load and built after
    it, also when the load fails, so the store never stays without them."""
    from indexer.ingest.build import content_hash
    from indexer.ingest.chunk import ChunkSettings
    from indexer.ingest.dedupe import signature
    from indexer.store.postgres import WRITE_BATCH_CHUNKS, PgWriter, StoreUrl
    from indexer.store.protocols import PendingArticle

    n = synthetic.n
    articles = len(article_sizes(n))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    writer = PgWriter(url, model=model, dimension=synthetic.dimension, settings=asdict(ChunkSettings()), rebuild=True)
    try:
        conn = writer.conn
        definitions = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
                                        [list(DEFERRED_PG_INDEXES)]).fetchall())
        for name in definitions:
            conn.execute(f"DROP INDEX {name}")
        try:
            batch: list = []
            step, written = max(articles // 10, 1), 0
            for number, (article, chunks, chunk_id) in enumerate(synthetic_articles(n, pool, titles)):
                batch.append(PendingArticle(article, tuple(chunks), vectors[chunk_id : chunk_id + len(chunks)],
                                            content_hash(article), signature(article.title + "\n" + article.text)))
                written += len(chunks)
                if sum(len(p.chunks) for p in batch) >= WRITE_BATCH_CHUNKS or number + 1 == articles:
                    writer.write(batch)
                    batch = []
                if (number + 1) % step == 0 or number + 1 == articles:
                    log(f"  {number + 1:,}/{articles:,} articles, {written:,} chunks, "
                        f"{time.perf_counter() - started:.0f} s")
            timings["write_rows_s"] = round(time.perf_counter() - started, 1)
        finally:
            conn.execute(f"SET maintenance_work_mem = '{PG_BUILD_MEMORY}'")
            for name, definition in definitions.items():
                t0 = time.perf_counter()
                log(f"  building {name}")
                conn.execute(definition)
                timings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
                log(f"  {name}: {timings[f'{name}_s']} s")
        t0 = time.perf_counter()
        conn.execute("ANALYZE articles, chunks, postings")
        timings["analyze_s"] = round(time.perf_counter() - t0, 1)
        totals = writer.totals()
    finally:
        writer.close()
    timings["load_s"] = round(time.perf_counter() - started, 1)
    return {"store": StoreUrl.parse(url).safe, "articles": totals[0], "chunks": totals[1], **timings,
            "database_bytes": pg_database_bytes(url)}


def disk_breakdown(version: Path) -> dict:
    parts = {"vectors.faiss": 0, "newsqa.sqlite": 0, "lexical/": 0, "other": 0}
    for path in version.rglob("*"):
        if path.is_file():
            key = path.name if path.name in parts else ("lexical/" if "lexical" in path.parts else "other")
            parts[key] += path.stat().st_size
    return parts


# --- vector search study --------------------------------------------------------------------------


def vector_study(version: Path, queries: np.ndarray, ef_values: list[int], watch: MemoryWatch,
                 source_of=None) -> dict:
    """Recall@10 against exact search and single-query milliseconds for each efSearch."""
    import faiss

    from indexer.store.embedded import _build_graph

    watch.enter("study: load FAISS")
    served = faiss.read_index(str(version / "vectors.faiss"))
    served_type = type(faiss.downcast_index(served.index)).__name__
    built_here = False
    if isinstance(faiss.downcast_index(served.index), faiss.IndexFlat):
        # Below EXACT_SEARCH_LIMIT the service searches exactly; check the graph it would get anyway.
        watch.enter("study: build graph in-process")
        t0 = time.perf_counter()
        graph_index = _build_graph(served, served.index.d)
        built_here = round(time.perf_counter() - t0, 1)
        exact_store = served
    else:
        graph_index = served
        exact_store = None
    hnsw = faiss.downcast_index(graph_index.index)
    stored_ef = int(hnsw.hnsw.efSearch)
    ids = faiss.vector_to_array(graph_index.id_map).astype(np.int64)

    watch.enter("study: exact search")
    if exact_store is not None:
        xb = exact_store.index.reconstruct_n(0, exact_store.ntotal)
        exact_ids = faiss.vector_to_array(exact_store.id_map).astype(np.int64)
    else:
        xb = hnsw.storage.reconstruct_n(0, hnsw.ntotal)
        exact_ids = ids
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    del xb
    t0 = time.perf_counter()
    _, truth_pos = flat.search(queries, 10)
    batch_ms = (time.perf_counter() - t0) * 1000
    truth = [set(exact_ids[row].tolist()) for row in truth_pos]
    structure = {}
    if source_of is not None:
        # How many of the exact top 10 are noisy copies of one SciFact document (the top hit's).
        sources = source_of(exact_ids[truth_pos])
        structure = {"exact_top10_from_top1_document_mean": round(float(np.mean(sources == sources[:, :1]) * 10), 2),
                     "exact_top10_distinct_documents_mean": round(float(np.mean([len(set(r)) for r in sources])), 2)}
    single = []
    for q in queries[:EXACT_TIMED_QUERIES]:
        t0 = time.perf_counter()
        flat.search(q[None, :], SERVICE_DEPTH)
        single.append((time.perf_counter() - t0) * 1000)
    exact = {"batch_all_queries_ms": round(batch_ms, 1), "timed_queries": len(single),
             "single_query_k100_median_ms": round(statistics.median(single), 2),
             "single_query_k100_p99_ms": round(percentile(single, 99), 2)}
    del flat

    watch.enter("study: efSearch sweep")
    rows = []
    for ef in sorted(set(ef_values) | {stored_ef}):
        rows.append(sweep_row(graph_index, hnsw, ef, queries, truth))
        log(f"  efSearch={ef}: {json.dumps(rows[-1])}")
    hnsw.hnsw.efSearch = stored_ef
    chosen = next(r for r in rows if r["efSearch"] == stored_ef)
    meeting = [r["efSearch"] for r in rows if r["meets_targets"]]
    hnsw_params = {"M": int(hnsw.hnsw.nb_neighbors(1)), "efConstruction": int(hnsw.hnsw.efConstruction),
                   "efSearch": stored_ef}
    return {"served_index": served_type, "graph_built_in_process_s": built_here, "graph": hnsw_params,
            "faiss_threads": faiss.omp_get_max_threads(),
            "vectors": int(graph_index.ntotal), "queries": len(queries), "exact": {**exact, **structure}, "sweep": rows,
            "chosen": chosen, "settings_meeting_targets": meeting,
            "settings_meeting_targets_1thread": [r["efSearch"] for r in rows if r["meets_targets_1thread"]],
            "targets": {"recall@10": TARGET_RECALL, "p99_ms_at_k100": TARGET_MS}}


def sweep_row(graph_index, hnsw, ef: int, queries: np.ndarray, truth: list[set]) -> dict:
    """Recall@10 and single-query milliseconds at one efSearch: k=10 and the service's depth (k=100)
    with FAISS's default OpenMP threads (as the service runs it), and k=100 with one thread."""
    import faiss

    hnsw.hnsw.efSearch = ef
    row = {"efSearch": ef}
    threads = faiss.omp_get_max_threads()
    for k, n_threads, label in ((10, threads, "k10"), (SERVICE_DEPTH, threads, "k100"),
                                (SERVICE_DEPTH, 1, "k100_1thread")):
        faiss.omp_set_num_threads(n_threads)
        try:
            for q in queries[:10]:  # warm-up
                graph_index.search(q[None, :], k)
            times, hits = [], 0
            for q, want in zip(queries, truth):
                t0 = time.perf_counter()
                _, found = graph_index.search(q[None, :], k)
                times.append((time.perf_counter() - t0) * 1000)
                hits += len(want & set(found[0][:10].tolist()))
        finally:
            faiss.omp_set_num_threads(threads)
        if label != "k100_1thread":
            row[f"recall@10_{label}"] = round(hits / (10 * len(queries)), 4)
        row[f"{label}_median_ms"] = round(statistics.median(times), 3)
        row[f"{label}_p99_ms"] = round(percentile(times, 99), 3)
    row["meets_targets"] = row["recall@10_k10"] >= TARGET_RECALL and row["k100_p99_ms"] < TARGET_MS
    row["meets_targets_1thread"] = row["recall@10_k10"] >= TARGET_RECALL and row["k100_1thread_p99_ms"] < TARGET_MS
    return row


# --- serving ----------------------------------------------------------------------------------------


def serve(index_dir: Path, queries: list[str], levels: list[int], requests: int, log_path: Path) -> dict:
    server = Server(index_dir, log_path)
    try:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        ready = server.wait_ready(timeout=1800)
        ready_s = time.perf_counter() - t0
        time.sleep(1)
        idle = server.rss_bytes()
        results = []
        for clients in levels:
            results.append(run_level(server.url, queries, clients, requests))
            log(f"  {clients:>3} clients: {json.dumps(results[-1])}")
        loaded = server.rss_bytes()
    finally:
        server.stop()
    return {"version": ready.get("index"), "chunks": ready.get("chunks"), "ready_s": round(ready_s, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "levels": results, "rss_bytes": {"idle": idle, "after_load": loaded}}


# --- report ---------------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    cal, study, mem = report["calibration"], report["vector_study"], report["memory"]
    lines = [f"## Search at {report['chunks']:,} chunks (synthetic: SciFact text, SciFact vectors + noise)", ""]
    lines += ["| calibration | p10 | median | p90 |", "|---|---:|---:|---:|",
              f"| real SciFact documents ({cal['real_documents']}), top-1 NN cosine | "
              f"{cal['real_nn_cosine']['p10']} | {cal['real_nn_cosine']['median']} | {cal['real_nn_cosine']['p90']} |",
              f"| synthetic, sigma={cal['sigma']} (sample of {cal['sample']}) | {cal['synthetic_nn_cosine']['p10']} | "
              f"{cal['synthetic_nn_cosine']['median']} | {cal['synthetic_nn_cosine']['p90']} |", ""]
    b = report["build"]
    if b.get("reused") and "build_s" not in b:
        lines += [f"Build: reused {report['version']} (built earlier).", ""]
    else:
        lines += [("Build (reused; when it was built): " if b.get("reused") else "Build: ") + f"{b['build_s']} s ({b['add_articles_s']} s adding {b['articles']:,} articles, commit "
                  f"{b['commit_s']} s of which BM25 {b.get('bm25_index_s', '-')} s, HNSW {b.get('hnsw_graph_s', '-')} s); "
                  f"peak RSS of the builder {gib(b['peak_rss_bytes'])}.", ""]
    lines += [f"Disk: {gib(report['index_disk_bytes'])} ("
              + ", ".join(f"{k} {gib(v)}" for k, v in report["index_disk_parts"].items()) + ")", ""]
    g = study["graph"]
    lines += [f"Vector search ({study['served_index']} served; HNSW M={g['M']}, efConstruction={g['efConstruction']}, "
              f"stored efSearch={g['efSearch']}; {study['queries']} SciFact test queries; exact k=100 single query "
              f"median {study['exact']['single_query_k100_median_ms']} ms"
              + (f"; the exact top 10 hold on average {study['exact']['exact_top10_from_top1_document_mean']} noisy "
                 f"copies of the top hit's SciFact document, {study['exact']['exact_top10_distinct_documents_mean']} "
                 "distinct documents" if "exact_top10_from_top1_document_mean" in study["exact"] else "") + "):", "",
              f"| efSearch | recall@10 | k=10 median ms | k=10 p99 ms | k=100 median ms | k=100 p99 ms | "
              f"k=100 1 thread median ms | k=100 1 thread p99 ms | meets ({study['faiss_threads']} threads / 1 thread) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in study["sweep"]:
        lines.append(f"| {r['efSearch']} | {r['recall@10_k10']:.4f} | {r['k10_median_ms']} | {r['k10_p99_ms']} | "
                     f"{r['k100_median_ms']} | {r['k100_p99_ms']} | {r['k100_1thread_median_ms']} | "
                     f"{r['k100_1thread_p99_ms']} | {'yes' if r['meets_targets'] else 'no'} / "
                     f"{'yes' if r['meets_targets_1thread'] else 'no'} |")
    lines += ["", f"HTTP /v1/search hybrid k=10 over loopback ({report['queries']} queries; server ready in "
              f"{report['serve']['ready_s']} s; load average before {report['serve']['load_average_before']}):", "",
              table({"levels": report["serve"]["levels"]}), ""]
    lines += ["| stage (in-process median) | ms |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in report["breakdown_ms"].items() if k != "searches"]
    lines += ["", "| memory | bytes | |", "|---|---:|---|",
              f"| server RSS idle | {mem['server_idle']} | {gib(mem['server_idle'])} |",
              f"| server RSS after load | {mem['server_after_load']} | {gib(mem['server_after_load'])} |",
              f"| tiny-index server RSS idle | {mem['tiny_idle']} | {gib(mem['tiny_idle'])} |",
              f"| tiny-index server RSS after load | {mem['tiny_after_load']} | {gib(mem['tiny_after_load'])} |",
              f"| RSS per million chunks, idle | {mem['per_million_idle']} | {gib(mem['per_million_idle'])} |",
              f"| RSS per million chunks, after load | {mem['per_million_after_load']} | "
              f"{gib(mem['per_million_after_load'])} |"]
    return "\n".join(lines)


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000, help="passages in the synthetic index (default: %(default)s)")
    parser.add_argument("--out", type=Path, help=f"index directory (default: {DEFAULT_OUT}; --short: a temporary one)")
    parser.add_argument("--scifact", type=Path, default=SCIFACT, help="BEIR SciFact folder (read only)")
    parser.add_argument("--documents", type=int,
                        help="use only the first N SciFact documents (default: all 5,183; --short: 1,000, so a cold "
                             "embedding cache costs minutes, not half an hour)")
    parser.add_argument("--reuse", action="store_true",
                        help="benchmark the index already in --out if it was built with the same settings")
    parser.add_argument("--sigma", type=float, help="noise scale; default: calibrated on nearest-neighbour cosines")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--calibration-sample", type=int, default=1000, help="synthetic vectors whose NN cosine is measured")
    parser.add_argument("--ef", default="32,64,128,256,384,512", help="efSearch values to study (default: %(default)s)")
    parser.add_argument("--clients", default="1,8,32", help="client counts, comma separated (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=300, help="searches per client count (default: %(default)s)")
    parser.add_argument("--breakdown-searches", type=int, default=300, help="in-process searches for the stage breakdown")
    parser.add_argument("--short", action="store_true",
                        help="CI mode: 20,000 chunks, clients 1,8, 20 searches each, efSearch 32,128")
    parser.add_argument("--json", type=Path, help="also write the full report as JSON here")
    parser.add_argument("--backend", choices=["embedded", "postgres"], default="embedded",
                        help="postgres: only load the synthetic passages into the PostgreSQL store --url (emptied "
                             "first), for bench/updates.py --backend postgres --pg-url URL; no search study")
    parser.add_argument("--url", help="the PostgreSQL store to load (postgresql://...), with --backend postgres")
    args = parser.parse_args(argv)
    if args.backend == "postgres" and not args.url:
        parser.error("--backend postgres needs --url postgresql://... (the store to load; it is emptied first)")
    if args.backend == "postgres" and args.reuse:
        parser.error("--reuse reads an embedded index; with --backend postgres the store is loaded anew")
    if args.short:
        args.chunks, args.clients, args.requests, args.breakdown_searches = 20_000, "1,8", 20, 20
        args.ef, args.calibration_sample = "32,128", 500
        args.documents = args.documents or 1000
    levels, ef_values = parse_ints(args.clients), parse_ints(args.ef)

    import faiss

    from indexer.embed import Embedder
    from indexer.evaluate.harness import load_beir
    from indexer.store.embedded import EXACT_SEARCH_LIMIT, current_version, read_manifest

    watch = MemoryWatch()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="newsqa-million-") as tmp:
        out = args.out or (Path(tmp) / "index" if args.short else DEFAULT_OUT)
        log(f"SciFact from {args.scifact}")
        data = load_beir(args.scifact, split="test")
        embedder = Embedder()
        corpus = dict(list(data.corpus.items())[: args.documents]) if args.documents else data.corpus
        articles = scifact_documents(corpus)
        doc_vectors, doc_info = document_vectors(articles, embedder)
        log(f"document vectors: {json.dumps(doc_info)}")
        pool = passage_pool(articles)
        log(f"passage pool: {len(pool[0]):,} passages of up to {PASSAGE_SENTENCES} sentences, "
            f"median {int(np.median(pool[2]))} tokens; each reused about {args.chunks / len(pool[0]):.1f} times")
        query_texts = list(data.queries.values())
        query_vectors = embedder.encode(query_texts)

        # Real NN cosine distribution: each document against all others.
        sims = doc_vectors @ doc_vectors.T
        np.fill_diagonal(sims, -np.inf)
        real_nn = sims.max(axis=1)
        del sims
        log(f"real SciFact top-1 NN cosine: {json.dumps(summary(real_nn))}")

        synthetic = Synthetic(doc_vectors, pool[1], args.chunks, args.seed)
        settings = {"source": "beir-scifact", "documents": len(articles), "chunks": args.chunks, "seed": args.seed,
                    "passage_sentences": PASSAGE_SENTENCES, "generator": "bench/million.py"}
        existing = current_version(out)
        reuse = None
        if args.reuse and existing is not None:
            previous = read_manifest(existing).get("synthetic", {})
            if {k: previous.get(k) for k in settings} == settings and (args.sigma is None or previous.get("sigma") == args.sigma):
                reuse = previous
                log(f"reusing {existing}")
            else:
                log(f"{existing} was built with other settings ({previous}): building anew")

        watch.enter("calibration")
        t0 = time.perf_counter()
        if reuse is not None:
            sigma, trials, vectors = reuse["sigma"], reuse.get("calibration_trials", []), None
            synthetic_nn = reuse["synthetic_nn_cosine"]
            sample = reuse.get("calibration_sample")
        else:
            if args.sigma is None:
                log(f"calibrating sigma on {min(args.calibration_sample, args.chunks)} sampled vectors "
                    f"against all {args.chunks:,}")
                sigma, vectors, trials, sample_ids = calibrate(synthetic, float(np.median(real_nn)),
                                                               args.calibration_sample)
            else:
                sigma, trials = args.sigma, []
                vectors = synthetic.all(sigma)
                rng = np.random.default_rng(args.seed + 1)
                sample_ids = np.sort(rng.choice(args.chunks, size=min(args.calibration_sample, args.chunks),
                                                replace=False))
            synthetic_nn = summary(nn_cosines(vectors[sample_ids], sample_ids, vectors))
            sample = len(sample_ids)
        calibration = {"sigma": round(float(sigma), 6), "target": "median top-1 NN cosine of the real SciFact documents",
                       "real_documents": len(doc_vectors), "real_nn_cosine": summary(real_nn),
                       "synthetic_nn_cosine": synthetic_nn, "sample": sample, "trials": trials,
                       "seconds": round(time.perf_counter() - t0, 1)}
        log(f"sigma={calibration['sigma']}: synthetic NN cosine {json.dumps(synthetic_nn)}, "
            f"real {json.dumps(calibration['real_nn_cosine'])}")

        if args.backend == "postgres":
            log(f"loading {args.chunks:,} chunks into the PostgreSQL store")
            assert vectors is not None  # built by the calibration above (--reuse is refused with postgres)
            loaded = build_postgres(args.url, synthetic, vectors, pool, [a.title for a in articles], embedder.name)
            report = {"backend": "postgres", "chunks": args.chunks, "calibration": calibration, "build": loaded,
                      "load_average": os.getloadavg(), "seconds": round(time.perf_counter() - started, 1)}
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(report, indent=2) + "\n")
            print(json.dumps(loaded, indent=2))
            return 0
        if reuse is not None:
            build_info = {"reused": True, **reuse.get("build", {})}
        else:
            log(f"building {args.chunks:,} chunks in {out}")
            titles = [a.title for a in articles]
            extra = {"synthetic": {**settings, "sigma": calibration["sigma"], "synthetic_nn_cosine": synthetic_nn,
                                   "real_nn_cosine": calibration["real_nn_cosine"], "calibration_sample": sample,
                                   "calibration_trials": trials}}
            build_info = build(out, synthetic, vectors, pool, titles, embedder.name, extra, watch)
            del vectors
            peaks = watch.stop()
            watch = MemoryWatch()
            build_info["peak_rss_bytes"] = max(v for k, v in peaks.items() if k.startswith("build"))
            build_info["peak_rss_by_phase"] = peaks
            log(f"built: {json.dumps(build_info)}")
            # Keep the build facts beside the index, for --reuse.
            version_dir = current_version(out)
            manifest = read_manifest(version_dir)
            manifest["synthetic"]["build"] = build_info
            (version_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        version = current_version(out)

        log("vector search study")
        study = vector_study(version, query_vectors, ef_values, watch, source_of=synthetic.source)
        log(f"chosen: {json.dumps(study['chosen'])}")

        watch.enter("serve")
        # The baseline gets the same load with its own news queries (SciFact ones would match no
        # word of the news and take the sentence-vector highlight path, which costs memory of its own).
        log("tiny-index server (baseline memory)")
        tiny_dir = build_news_index(Path(tmp) / "tiny")
        tiny = serve(tiny_dir, DEFAULT_QUERIES, levels, args.requests, Path(tmp) / "tiny.log")
        log(f"serving {version}")
        served = serve(out, query_texts, levels, args.requests, Path(tmp) / "server.log")
        watch.enter("breakdown")
        log("in-process breakdown")
        stages = breakdown(out, query_texts, args.breakdown_searches)
        peaks = watch.stop()

        mem = {"server_idle": served["rss_bytes"]["idle"], "server_after_load": served["rss_bytes"]["after_load"],
               "tiny_idle": tiny["rss_bytes"]["idle"], "tiny_after_load": tiny["rss_bytes"]["after_load"]}
        mem["per_million_idle"] = round((mem["server_idle"] - mem["tiny_idle"]) * 1_000_000 / args.chunks)
        mem["per_million_after_load"] = round((mem["server_after_load"] - mem["tiny_after_load"]) * 1_000_000 / args.chunks)
        report = {
            "chunks": args.chunks, "index": str(out), "version": version.name,
            "manifest_vector_index": read_manifest(version)["vector_index"], "exact_search_limit": EXACT_SEARCH_LIMIT,
            "cpus": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(), "load_average": os.getloadavg(),
            "queries": len(query_texts), "mode": "hybrid", "k": 10,
            "scifact": {**doc_info, "passage_pool": len(pool[0]), "passage_tokens_median": int(np.median(pool[2])),
                        "passage_tokens_mean": round(float(np.mean(pool[2])), 1)},
            "calibration": calibration, "build": build_info,
            "index_disk_bytes": disk_bytes(out), "index_disk_parts": disk_breakdown(version),
            "vector_study": study, "serve": served, "tiny_serve": tiny, "memory": mem, "breakdown_ms": stages,
            "bench_process_peak_rss_by_phase": peaks,
            "bench_process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "seconds": round(time.perf_counter() - started, 1),
        }
    failures = []
    errors = sum(level["errors"] for level in served["levels"])
    if errors:
        failures.append(f"{errors} failed requests")
    if study["chosen"]["recall@10_k10"] < TARGET_RECALL:
        failures.append(f"recall@10 {study['chosen']['recall@10_k10']} < {TARGET_RECALL} at efSearch "
                        f"{study['chosen']['efSearch']}")
    report["failures"] = failures
    if args.json:  # first: a long run's numbers survive any problem in printing them
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
