"""Embedding backends side by side: ONNX Runtime against sentence-transformers on torch.

    python bench/encoders.py                 # all of BEIR SciFact (embeds 5,183 abstracts per backend once)
    python bench/encoders.py --short         # CI: a 20-query slice, few timing samples

For each backend, on the same texts in the same process:

- passages/s: `Embedder.encode` of SciFact passage inputs (title + abstract, as
  the index embeds them), batch 64, medians over `--rounds`;
- query ms: one short query per call (the search path), median and p90;
- nDCG@10 on the SciFact test split in dense and hybrid mode, each backend
  with its own embedding cache (`$NEWSQA_CACHE_DIR/encoders/<backend>/`), so
  the scores come from that backend's vectors only; a rerun embeds nothing;
- agreement: cosine between the two backends' vectors of the same texts.

The verdict line names the faster backend for queries and for passages: ONNX
may be the default for either only where it is faster and its nDCG@10 is
within 0.002 of torch (`indexer.embed.resolve_backend` encodes the outcome).
The dataset is read from ../shared/datasets/beir-scifact, never copied.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.embed import Embedder, passage_input  # noqa: E402
from indexer.evaluate.harness import cache_dir, evaluate_beir, load_beir  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "datasets" / "beir-scifact"
BACKENDS = ("torch", "onnx")
NDCG_TOLERANCE = 0.002


def time_passages(embedder: Embedder, texts: list[str], rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        embedder.encode(texts)
        seconds.append(time.perf_counter() - started)
    return len(texts) / statistics.median(seconds)


def time_queries(embedder: Embedder, queries: list[str]) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        embedder.encode([query])
        times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    return statistics.median(times), ordered[int(0.9 * (len(ordered) - 1))]


def measure(args) -> None:
    """One backend in a process of its own (torch's and ONNX Runtime's thread pools would
    compete inside one process): timings, and with --evaluate its nDCG@10 and vectors."""
    data = load_beir(args.beir, limit=args.limit)
    passages = [passage_input(title or doc_id, None, text) for doc_id, (title, text) in data.corpus.items()]
    passages = passages[: args.passages]
    queries = list(data.queries.values())[: args.queries]
    embedder = Embedder(backend=args.child)
    embedder.encode(["warm up the model and its thread pool"] * 8)
    if not args.evaluate:
        p50, p90 = time_queries(embedder, queries)
        print(json.dumps({"passages_per_second": time_passages(embedder, passages, 1),
                          "query_ms_p50": p50, "query_ms_p90": p90}))
        return
    np.save(args.evaluate.with_suffix(".npy"), embedder.encode(passages + queries), allow_pickle=False)
    started = time.perf_counter()
    scores = evaluate_beir(args.beir, embedder, modes=("dense", "hybrid"), limit=args.limit,
                           cache=cache_dir() / "encoders" / args.child)
    result = {"ndcg@10_dense": scores.scores["dense"]["ndcg@10"], "ndcg@10_hybrid": scores.scores["hybrid"]["ndcg@10"],
              "eval_seconds": time.perf_counter() - started}
    print(json.dumps(result))


def run_child(args, backend: str, evaluate: Path | None) -> dict:
    command = [sys.executable, __file__, "--child", backend, "--beir", args.beir, "--passages", str(args.passages),
               "--queries", str(args.queries)]
    if args.limit is not None:
        command += ["--limit", str(args.limit)]
    if evaluate is not None:
        command += ["--evaluate", str(evaluate)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring {backend} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--limit", type=int, help="judged queries to evaluate (default: the whole test split)")
    parser.add_argument("--passages", type=int, default=256, help="passages timed per round (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=200, help="queries timed one by one (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per backend, interleaved")
    parser.add_argument("--short", action="store_true", help="CI mode: --limit 20 --passages 32 --queries 20 --rounds 1")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--evaluate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        measure(args)
        return 0
    if args.short:
        args.limit, args.passages, args.queries, args.rounds = 20, 32, 20, 1

    runs: dict[str, list[dict]] = {name: [] for name in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="newsqa-encoders-") as tmp:
        # Interleaved timing rounds, each backend in a fresh process: a noisy neighbour slows
        # both alike. Then the (long) evaluations, whose own timings are not used.
        for round_number in range(args.rounds):
            for name in BACKENDS:
                runs[name].append(run_child(args, name, None))
                print(f"round {round_number + 1} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr)
        scores = {name: run_child(args, name, Path(tmp) / f"{name}.json") for name in BACKENDS}
        vectors = {name: np.load(Path(tmp) / f"{name}.npy") for name in BACKENDS}
    cosines = (vectors["torch"] * vectors["onnx"]).sum(axis=1)
    report: dict = {"beir": args.beir, "limit": args.limit, "rounds": args.rounds, "backends": {},
                    "agreement": {"texts": len(cosines), "min_cosine": round(float(cosines.min()), 6),
                                  "median_cosine": round(float(np.median(cosines)), 6)}}
    for name in BACKENDS:
        first = scores[name]
        report["backends"][name] = {
            "passages_per_second": round(statistics.median(r["passages_per_second"] for r in runs[name]), 1),
            "query_ms_p50": round(statistics.median(r["query_ms_p50"] for r in runs[name]), 2),
            "query_ms_p90": round(statistics.median(r["query_ms_p90"] for r in runs[name]), 2),
            "ndcg@10_dense": round(first["ndcg@10_dense"], 4),
            "ndcg@10_hybrid": round(first["ndcg@10_hybrid"], 4),
            "eval_seconds": round(first["eval_seconds"], 1),
        }
    torch_, onnx_ = report["backends"]["torch"], report["backends"]["onnx"]
    delta = max(abs(onnx_[m] - torch_[m]) for m in ("ndcg@10_dense", "ndcg@10_hybrid"))
    report["ratios_onnx_over_torch"] = {
        "passages_per_second": round(onnx_["passages_per_second"] / torch_["passages_per_second"], 3),
        "query_speedup": round(torch_["query_ms_p50"] / onnx_["query_ms_p50"], 3),
    }
    report["max_ndcg_delta"] = round(delta, 4)
    same_quality = delta <= NDCG_TOLERANCE
    report["faster_backend"] = {
        "queries": "onnx" if same_quality and onnx_["query_ms_p50"] < torch_["query_ms_p50"] else "torch",
        "passages": "onnx" if same_quality and onnx_["passages_per_second"] > torch_["passages_per_second"] else "torch",
    }

    print("| backend | passages/s | query p50 ms | query p90 ms | nDCG@10 dense | nDCG@10 hybrid |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in BACKENDS:
        b = report["backends"][name]
        print(f"| {name} | {b['passages_per_second']} | {b['query_ms_p50']} | {b['query_ms_p90']} | "
              f"{b['ndcg@10_dense']:.4f} | {b['ndcg@10_hybrid']:.4f} |")
    print(f"agreement: min cosine {report['agreement']['min_cosine']} over {report['agreement']['texts']} texts; "
          f"largest nDCG@10 difference {report['max_ndcg_delta']} (tolerance {NDCG_TOLERANCE}); "
          f"ONNX/torch passages/s {report['ratios_onnx_over_torch']['passages_per_second']}, "
          f"query speed-up {report['ratios_onnx_over_torch']['query_speedup']}x")
    print(f"verdict: queries on {report['faster_backend']['queries']}, passages on {report['faster_backend']['passages']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["agreement"]["min_cosine"] > 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
