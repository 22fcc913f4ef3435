"""Latency of /v1/answer against /v1/search for the same queries, in one run.

    python bench/answer_latency.py --index /work/bbc-index --qa bench/bbc-qa.jsonl --limit 40
    python bench/answer_latency.py --index IDX --limit 5          # a smoke run

Serves the real app in-process (Litestar's TestClient: routing, validation,
the real model and index, JSON encoding; no network) and, for each question,
requests `/v1/search?q=...` and then `/v1/answer?q=...` with the same query, as
the search page does. The answer therefore finds the query vector cached by the
search, as it does in production; it still embeds the candidate sentences it has
not seen. Prints p50/p90 of both, the p50 difference (target: at most 15 ms),
the answer's own stage (`answer_ms`: question analysis, sentence vectors,
scoring) and the machine's `uptime` load before and after, because a shared
machine's load moves every number.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--qa", type=Path, default=ROOT / "bench" / "news-qa.jsonl")
    parser.add_argument("--limit", type=int, default=20, help="questions to ask (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first (default: %(default)s)")
    args = parser.parse_args(argv)

    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    questions = [json.loads(line)["question"] for line in args.qa.read_text().splitlines() if line.strip()]
    questions = questions[: args.limit + args.warmup]
    print(f"load before: {uptime()}")
    search_ms, answer_ms, stage_ms = [], [], []
    with TestClient(app=create_app(ServiceSettings(index_dir=args.index))) as client:
        for number, question in enumerate(questions):
            t0 = time.perf_counter()
            response = client.get("/v1/search", params={"q": question, "k": 10})
            t1 = time.perf_counter()
            answered = client.get("/v1/answer", params={"q": question})
            t2 = time.perf_counter()
            if response.status_code != 200 or answered.status_code != 200:
                print(f"error on {question!r}: {response.status_code} {answered.status_code}", file=sys.stderr)
                return 1
            if number < args.warmup:
                continue
            search_ms.append((t1 - t0) * 1000)
            answer_ms.append((t2 - t1) * 1000)
            stage_ms.append(answered.json().get("took_ms", 0.0))
    print(f"load after:  {uptime()}")
    print(f"{len(search_ms)} queries from {args.qa.name} over {args.index}")
    print(f"/v1/search p50 {percentile(search_ms, 50):7.1f} ms  p90 {percentile(search_ms, 90):7.1f} ms")
    print(f"/v1/answer p50 {percentile(answer_ms, 50):7.1f} ms  p90 {percentile(answer_ms, 90):7.1f} ms "
          f"(server took_ms p50 {percentile(stage_ms, 50):.1f})")
    print(f"answer - search, p50: {percentile(answer_ms, 50) - percentile(search_ms, 50):+.1f} ms (target <= +15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
