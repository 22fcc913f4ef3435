"""Known-item retrieval: does the one article a query was made from come first?

A known-item set is JSON lines, one query each:
`{"qid", "split": "train"|"test", "kind", "query", "article_ids": [...]}`. `article_ids` lists the
source article and its exact duplicates: whichever of them the index kept is the target.
`bench/known_items.py` writes such sets from a corpus with a fixed seed, so no article text is
kept in the repository.

Scores per mode and per kind: hit@1, MRR@10 and recall@10 of the target article
(`group="article"`). A query none of whose articles the index holds (dropped as a near duplicate)
is counted in `skipped`, not scored.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import InvalidParameter, NotFound, ResourceMissing

DEPTH = 10


@dataclass(frozen=True)
class KnownItem:
    qid: str
    split: str
    kind: str
    query: str
    article_ids: tuple[str, ...]


@dataclass
class KnownItemReport:
    """Per mode, per kind (and `all`): hit@1, MRR@10, recall@10 over the scored queries."""

    path: str
    split: str | None
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    queries: int = 0
    skipped: int = 0

    def table(self) -> str:
        lines = [f"known items: {self.path} (split {self.split or 'all'}; {self.queries} queries, "
                 f"{self.skipped} skipped: target not in the index)",
                 "| mode | kind | queries | hit@1 | MRR@10 | R@10 |", "|---|---|---:|---:|---:|---:|"]
        for mode, kinds in self.scores.items():
            for kind, s in kinds.items():
                lines.append(f"| {mode} | {kind} | {int(s['queries'])} | {s['hit@1']:.3f} | {s['mrr@10']:.3f} | "
                             f"{s['recall@10']:.3f} |")
        return "\n".join(lines)


def load_known_items(path: str | os.PathLike, *, split: str | None = None) -> list[KnownItem]:
    """Read a known-item set; `split` keeps only that split's queries."""
    path = Path(path)
    if not path.is_file():
        raise ResourceMissing(f"no known-item set at {path}: write one with `python bench/known_items.py --out {path}`")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item = KnownItem(str(record["qid"]), str(record.get("split", "test")), str(record.get("kind", "query")),
                             str(record["query"]), tuple(str(i) for i in record["article_ids"]))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidParameter(f"{path}:{number}: not a known-item record ({exc}): write "
                                   '{"qid": ..., "query": ..., "article_ids": [...]}') from None
        if not item.article_ids:
            raise InvalidParameter(f"{path}:{number}: `article_ids` is empty: list the article the query was made from")
        if split is None or item.split == split:
            items.append(item)
    if not items:
        raise InvalidParameter(f"{path} holds no known items{f' in split {split!r}' if split else ''}")
    return items


def evaluate_known_items(searcher, path: str | os.PathLike, *, modes: Sequence[str],
                         split: str | None = None) -> KnownItemReport:
    """Search every query in each mode (`group="article"`, k=10) and score where its article ranks."""
    items = load_known_items(path, split=split)
    present = {}
    for item in items:
        present[item.qid] = {i for i in item.article_ids if _has_article(searcher.index, i)}
    scored = [item for item in items if present[item.qid]]
    report = KnownItemReport(path=str(path), split=split, queries=len(scored), skipped=len(items) - len(scored))
    for mode in modes:
        sums: dict[str, dict[str, float]] = defaultdict(lambda: {"queries": 0.0, "hit@1": 0.0, "mrr@10": 0.0,
                                                                  "recall@10": 0.0})
        for item in scored:
            hits = searcher.search(item.query, k=DEPTH, mode=mode, group="article", highlights=False).hits
            ranks = [h.rank for h in hits if h.citation.article_id in present[item.qid]]
            rank = min(ranks) if ranks else None
            for kind in (item.kind, "all"):
                s = sums[kind]
                s["queries"] += 1
                s["hit@1"] += rank == 1
                s["mrr@10"] += 1 / rank if rank else 0.0
                s["recall@10"] += rank is not None
        report.scores[mode] = {kind: {"queries": s["queries"], **{m: s[m] / s["queries"] for m in
                                                                  ("hit@1", "mrr@10", "recall@10")}}
                               for kind, s in sorted(sums.items(), key=lambda kv: (kv[0] == "all", kv[0]))}
    return report


def _has_article(index, article_id: str) -> bool:
    try:
        index.article(article_id)
    except NotFound:
        return False
    return True
