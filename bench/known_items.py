"""Write a known-item query set over a news corpus, reproducibly, without copying it into the repo.

    python bench/known_items.py --corpus ../shared/datasets/bbc-news/corpus.jsonl \
        --qa bench/bbc-qa.jsonl --out .cache/bbc-known-items.jsonl

From a fixed-seed sample of articles (`--articles`, default 300) it writes, for each:
- `headline`: the article's headline, as a reader pastes it;
- `lead`: 3–6 content words of the first sentence, in order (a keyword query);
and, with `--qa`, every answerable reader question of that set (`reader`, its split kept).
Each article is in `train` or `test` (about half each, seeded), so fusion can be chosen on train and
reported on test. `article_ids` holds the article and its exact-text duplicates. The set is derived
from the corpus on each run: the repository keeps only this script and the seed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.sentences import split_sentences  # noqa: E402
from indexer.store.bm25 import _stopwords  # noqa: E402

BBC = ROOT.parent / "shared" / "datasets" / "bbc-news" / "corpus.jsonl"
SEED = 20261130
_WORD = re.compile(r"[A-Za-z][\w'’-]*")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=BBC, help="JSON lines {id, title, text} (default: %(default)s)")
    parser.add_argument("--qa", type=Path, help="also take the answerable questions of this question set")
    parser.add_argument("--articles", type=int, default=300, help="articles sampled (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, required=True, help="where to write the set (keep it out of the repo)")
    args = parser.parse_args(argv)

    articles = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_text: dict[str, list[str]] = defaultdict(list)
    for article in articles:
        by_text[" ".join(article["text"].split())].append(article["id"])
    duplicates = {i: ids for ids in by_text.values() for i in ids}
    rng = random.Random(args.seed)
    stop = _stopwords()
    records = []
    seen_groups: set[str] = set()
    for article in rng.sample(articles, len(articles)):
        if len(seen_groups) >= args.articles:
            break
        group = duplicates[article["id"]]
        if group[0] in seen_groups:
            continue
        seen_groups.add(group[0])
        ids = [article["id"], *[i for i in group if i != article["id"]]]
        split = "train" if rng.random() < 0.5 else "test"
        start, end = split_sentences(article["text"])[0]
        words = [w for w in _WORD.findall(article["text"][start:end]) if w.lower() not in stop]
        if len(words) < 3:
            continue
        n = rng.randint(3, min(6, len(words)))
        picked = sorted(rng.sample(range(len(words)), n))
        base = {"split": split, "article_ids": ids}
        records.append({"qid": f"headline-{article['id']}", "kind": "headline", "query": article["title"], **base})
        records.append({"qid": f"lead-{article['id']}", "kind": "lead",
                        "query": " ".join(words[i] for i in picked), **base})
    if args.qa:
        for line in args.qa.read_text(encoding="utf-8").splitlines():
            item = json.loads(line) if line.strip() else {}
            if item.get("answerable", True) and item.get("article_ids"):
                records.append({"qid": f"reader-{item['qid']}", "kind": "reader", "query": item["question"],
                                "split": "train" if item.get("split") == "fit" else "test",
                                "article_ids": item["article_ids"]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        counts[(r["kind"], r["split"])] += 1
    print(f"wrote {len(records)} queries to {args.out}: " +
          ", ".join(f"{kind}/{split} {n}" for (kind, split), n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
