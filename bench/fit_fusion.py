"""Fit the adaptive fusion weights on training data only, write them, and report held-out figures.

    python bench/fit_fusion.py --beir ../shared/datasets/beir-scifact \
        --known-items .cache/bbc-known-items.jsonl --index /path/to/bbc-index \
        --out indexer/query/fusion_weights.json [--select]

`--select` also chooses the features and the normalisation from training data alone: forward
selection by 5-fold cross-validation over the training splits (`indexer.evaluate.fusion_fit.
select_features`), for each normalisation, keeping the one with fewer features when their
cross-validated figures are within `MIN_GAIN`; the held-out splits play no part.

Fits on the SciFact `train` qrels (nDCG@10) and the known-item `train` split (MRR@10), each set
counting as much as the other (`indexer.evaluate.fusion_fit`). Then, with the weights it wrote, it
prints train and held-out (`test`) figures of each leg, fixed 0.5 fusion and the adaptive fusion,
computed from each query's captured candidates (the same ranking `newsqa eval` measures; run it
for the official figures). The SciFact index is the cached one `newsqa eval --beir` builds (it is
built first if missing); embeddings come from the same cache (`$NEWSQA_CACHE_DIR`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.evaluate.fusion_fit import MIN_GAIN, TrainingSet, capture, evaluate_fusion, fit_fusion  # noqa: E402
from indexer.query.fusion import QUERY_FEATURES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, required=True, help="BEIR folder with qrels/train.tsv and test.tsv")
    parser.add_argument("--known-items", type=Path, required=True, help="known-item set (bench/known_items.py)")
    parser.add_argument("--index", type=Path, required=True, help="the index the known-item set was made for")
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (JSON)")
    parser.add_argument("--features", default=",".join(QUERY_FEATURES),
                        help="comma-separated query features to use (default: all: %(default)s)")
    parser.add_argument("--normalise", choices=["minmax", "std"], default="std",
                        help="how the legs are put on one scale (default: %(default)s)")
    parser.add_argument("--l2", type=float, default=1e-4, help="L2 penalty on the weights (default: %(default)s)")
    parser.add_argument("--no-test", action="store_true", help="do not report the held-out splits")
    parser.add_argument("--select", action="store_true",
                        help="choose features and normalisation by cross-validation on the training splits")
    args = parser.parse_args(argv)

    from indexer.embed import Embedder
    from indexer.evaluate.harness import CachedEmbedder, beir_index, cache_dir, load_beir
    from indexer.evaluate.fusion_fit import select_features
    from indexer.evaluate.known_items import load_known_items
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    started = time.perf_counter()
    embedder = CachedEmbedder(Embedder(), cache_dir() / "embeddings")
    splits = ("train",) if args.no_test else ("train", "test")

    beir = {split: load_beir(args.beir, split=split) for split in splits}
    known = {split: load_known_items(args.known_items, split=split) for split in splits}

    def capture_all(normalise: str) -> dict[tuple[str, str], TrainingSet]:
        captured: dict[tuple[str, str], TrainingSet] = {}
        index = open_index(beir_index(beir["train"], embedder), model=embedder.name)
        searcher = Searcher(index, embedder)
        for split, data in beir.items():
            embedder.encode(list(data.queries.values()))
            # k=100: the depth `newsqa eval --beir` ranks at, so the candidate sets match.
            queries = capture(searcher, [(text, data.qrels[qid]) for qid, text in data.queries.items()], k=100,
                              normalise=normalise)
            captured[("beir", split)] = TrainingSet(f"{data.name}-{split}", queries, "ndcg@10")
        index.close()

        index = open_index(args.index, model=embedder.name)
        searcher = Searcher(index, embedder)
        for split, items in known.items():
            embedder.encode([item.query for item in items])
            queries = capture(searcher, [(item.query, dict.fromkeys(item.article_ids, 1)) for item in items], k=10,
                              normalise=normalise)
            captured[("known", split)] = TrainingSet(f"{args.known_items.stem}-{split}", queries, "mrr@10")
        index.close()
        print(f"captured {sum(len(s.queries) for s in captured.values())} queries ({normalise}) in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        return captured

    if args.select:
        results = []
        for normalise in ("minmax", "std"):
            sets = capture_all(normalise)
            train = [sets[("beir", "train")], sets[("known", "train")]]
            chosen, value = select_features(train, l2=args.l2, log=lambda line: print(f"{normalise}: {line}",
                                                                                       file=sys.stderr))
            print(f"selected ({normalise}, 5-fold cv on train): {chosen or 'no feature'} cv {value:.4f}")
            results.append((value, normalise, chosen, sets))
        # The simplest choice within the selection's own noise level of the best (fewest features).
        top = max(value for value, *_ in results)
        _, args.normalise, selected, captured = min((r for r in results if r[0] >= top - MIN_GAIN),
                                                    key=lambda r: (len(r[2]), -r[0]))
        print(f"kept: {args.normalise} {selected}")
        args.features = ",".join(selected)
        selection = {"by": "5-fold cross-validation on the train splits (bench/fit_fusion.py --select)",
                     "cv": {normalise: {"features": chosen, "cv": round(value, 4)}
                            for value, normalise, chosen, _ in results}}
    else:
        captured = capture_all(args.normalise)
        selection = {}

    features = [f.strip() for f in args.features.split(",") if f.strip()]
    weights = fit_fusion([captured[("beir", "train")], captured[("known", "train")]], features=features, l2=args.l2,
                          normalise=args.normalise)
    if selection:
        weights.fitted_on["selection"] = selection
    args.out.write_text(json.dumps(weights.as_dict(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: bias {weights.bias}, weights {json.dumps(weights.weights)}")
    print("| set | metric | queries | dense | lexical | fixed 0.5 | adaptive |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for training_set in captured.values():
        scores = evaluate_fusion(weights, training_set.queries, training_set.metric)
        print(f"| {training_set.name} | {training_set.metric} | {len(training_set.queries)} | " +
              " | ".join(f"{scores[k]:.4f}" for k in ("dense", "lexical", "fixed_0.5", "adaptive")) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
