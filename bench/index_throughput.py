"""Indexing throughput: the whole `newsqa index` pipeline against the raw model on the same texts.

    python bench/index_throughput.py                      # all of BEIR SciFact (5,183 abstracts)
    python bench/index_throughput.py --limit 300 --rounds 3
    python bench/index_throughput.py --short              # CI: a small slice, one round

Each round builds a fresh index of the corpus with `build_index` (read, chunk,
dedupe, embed, store: everything `newsqa index` does), then times the bare
`Embedder.encode` on exactly the passage inputs that build embedded, in the
same process, one right after the other. The ratio raw-time / pipeline-time
is the share of the pipeline's time the model itself needs (target >= 0.9).
The dataset is read from ../shared/datasets/beir-scifact, never copied.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.ingest.build import build_index  # noqa: E402
from indexer.embed import Embedder, passage_input  # noqa: E402
from indexer.evaluate.harness import load_beir  # noqa: E402
from indexer.store.embedded import open_index  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "datasets" / "beir-scifact"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--limit", type=int, help="judged queries whose documents (plus distractors) to index")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backend", default=None, help="embedding backend: onnx or torch (default: auto)")
    parser.add_argument("--short", action="store_true", help="CI mode: --limit 20 --rounds 1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.short:
        args.limit, args.rounds = 20, 1

    data = load_beir(args.beir, limit=args.limit)
    embedder = Embedder(backend=args.backend, purpose="passages")  # what `newsqa index` uses
    embedder.encode(["warm up the model and its thread pool"] * 8)
    pipeline_s, raw_s, passages = [], [], 0
    with tempfile.TemporaryDirectory(prefix="newsqa-bench-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        with corpus.open("w", encoding="utf-8") as handle:
            for doc_id, (title, text) in data.corpus.items():
                handle.write(json.dumps({"id": doc_id, "title": title or doc_id, "text": text}) + "\n")
        for round_number in range(args.rounds):
            index_dir = Path(tmp) / f"index-{round_number}"
            started = time.perf_counter()
            summary = build_index([corpus], index_dir, embedder=embedder, progress=False)
            pipeline_s.append(time.perf_counter() - started)
            index = open_index(index_dir)
            rows = index.db().execute(
                "SELECT a.title, c.section, c.text FROM chunks c JOIN articles a USING (article_id) ORDER BY c.chunk_id"
            ).fetchall()
            index.close()
            inputs = [passage_input(title, section, text) for title, section, text in rows]
            passages = len(inputs)
            assert passages == summary.chunks, (passages, summary.chunks)
            started = time.perf_counter()
            embedder.encode(inputs)
            raw_s.append(time.perf_counter() - started)
    result = {
        "documents": len(data.corpus),
        "passages": passages,
        "backend": embedder.backend,
        "rounds": args.rounds,
        "pipeline_seconds_median": round(statistics.median(pipeline_s), 2),
        "raw_encode_seconds_median": round(statistics.median(raw_s), 2),
        "pipeline_passages_per_second": round(passages / statistics.median(pipeline_s), 1),
        "raw_passages_per_second": round(passages / statistics.median(raw_s), 1),
        "ratio_raw_over_pipeline": round(statistics.median(r / p for r, p in zip(raw_s, pipeline_s)), 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['documents']} documents, {passages} passages, backend {result['backend']}, "
              f"{args.rounds} round(s), medians:")
        print(f"  newsqa index pipeline: {result['pipeline_seconds_median']} s "
              f"({result['pipeline_passages_per_second']} passages/s)")
        print(f"  raw model.encode:      {result['raw_encode_seconds_median']} s "
              f"({result['raw_passages_per_second']} passages/s)")
        print(f"  throughput ratio pipeline/raw: {result['ratio_raw_over_pipeline']} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
