"""Choose BM25's k1 and b on training splits only: a grid, scored on SciFact train and BBC known-items train.

    python bench/tune_bm25.py --beir ../shared/datasets/beir-scifact \
        --known-items .cache/bbc-known-items.jsonl --index bbc-index --k1 0.6,0.9,1.2 --b 0.4,0.6,0.8

For each (k1, b) (`indexer.store.bm25.K1`/`B`, read at query time, so no index is rebuilt) it captures
each train query's candidates as `bench/fit_fusion.py` does and prints, per set, the lexical leg, fixed
0.5 fusion, the packaged adaptive weights, and the cross-validated adaptive fusion (5-fold, the packaged
features and normalisation refitted per fold: `indexer.evaluate.fusion_fit.cross_validate`). SciFact
train is also scored on its two halves (even and odd positions), so a choice made on one half can be
checked on the other. No test split is read.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.evaluate.fusion_fit import TrainingSet, capture, cross_validate, evaluate_fusion  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, required=True)
    parser.add_argument("--known-items", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True, help="the index the known-item set was made for")
    parser.add_argument("--k1", default="0.9", help="comma-separated k1 values (default: %(default)s)")
    parser.add_argument("--b", default="0.4", help="comma-separated b values (default: %(default)s)")
    args = parser.parse_args(argv)

    from indexer.embed import Embedder
    from indexer.evaluate.harness import CachedEmbedder, beir_index, cache_dir, load_beir
    from indexer.evaluate.known_items import load_known_items
    from indexer.query.fusion import FusionWeights
    from indexer.query.search import Searcher
    from indexer.store import bm25
    from indexer.store.embedded import open_index

    embedder = CachedEmbedder(Embedder(), cache_dir() / "embeddings")
    beir = load_beir(args.beir, split="train")
    items = load_known_items(args.known_items, split="train")
    weights = FusionWeights.load()
    features = list(weights.weights)
    scifact = Searcher(open_index(beir_index(beir, embedder), model=embedder.name), embedder)
    news = Searcher(open_index(args.index, model=embedder.name), embedder)
    beir_queries = [(text, beir.qrels[qid]) for qid, text in beir.queries.items()]
    news_queries = [(item.query, dict.fromkeys(item.article_ids, 1)) for item in items]
    print(f"| k1 | b | SciFact train lexical | fixed 0.5 | packaged adaptive (even / odd half) | BBC train lexical "
          f"MRR | packaged adaptive | cv adaptive ({'+'.join(features)}) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k1 in (float(v) for v in args.k1.split(",")):
        for b in (float(v) for v in args.b.split(",")):
            started = time.perf_counter()
            bm25.K1, bm25.B = k1, b
            sci = TrainingSet("scifact-train", capture(scifact, beir_queries, k=100, normalise=weights.normalise),
                              "ndcg@10")
            bbc = TrainingSet("bbc-train", capture(news, news_queries, k=10, normalise=weights.normalise), "mrr@10")
            s, n = evaluate_fusion(weights, sci.queries, "ndcg@10"), evaluate_fusion(weights, bbc.queries, "mrr@10")
            halves = [evaluate_fusion(weights, sci.queries[i::2], "ndcg@10")["adaptive"] for i in (0, 1)]
            cv = cross_validate([sci, bbc], features)
            print(f"| {k1} | {b} | {s['lexical']:.4f} | {s['fixed_0.5']:.4f} | {s['adaptive']:.4f} "
                  f"({halves[0]:.4f} / {halves[1]:.4f}) | {n['lexical']:.4f} | {n['adaptive']:.4f} | {cv:.4f} |",
                  flush=True)
            print(f"k1={k1} b={b}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
