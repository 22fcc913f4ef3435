"""The evaluation harness: a BEIR benchmark and the project's own question set.

`newsqa eval --beir DIR` indexes a BEIR-format corpus (title + text) with the
same pipeline as the news (`build_index`: chunk, embed, store), searches the
test queries in each mode with `group=article` (a document scores as its best
passage) and reports nDCG@10, Recall@10, Recall@100 and MRR@10 computed by
ranx, next to the published figures listed in the dataset's README.

Nothing is written into the dataset folder or the repository: the index and
the embeddings live under the cache directory (`$NEWSQA_CACHE_DIR`, default
`~/.cache/newsqa`). Embeddings are cached by model name and a hash of the
embedded text, so a rerun (or another chunking that repeats passages) embeds
only what it has not seen.

`newsqa eval --qa FILE` runs the hand-written question set over the served
index and reports top-1 article accuracy, answer accuracy and abstention
accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indexer.ingest.chunk import WINDOWS, ChunkSettings
from indexer.errors import InvalidParameter, ResourceMissing
from indexer.query.search import DEFAULT_MODE
from indexer.settings import cache_root

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
METRIC_LABELS = {"ndcg@10": "nDCG@10", "recall@10": "R@10", "recall@100": "R@100", "mrr@10": "MRR@10"}
EVAL_MODES = ("dense", "lexical", "hybrid")
# Documents retrieved per query: Recall@100 needs 100.
RUN_DEPTH = 100
# Queries kept when --limit is given get their judged documents plus this many
# distractors per query from the head of the corpus, so a slice stays a search.
DISTRACTORS_PER_QUERY = 20
# Near-duplicate removal is for news feeds; a benchmark corpus must stay whole.
NO_DEDUPE = 1.01
# BEIR documents are indexed whole by default: one passage per document, which BM25
# scores whole as Anserini's "flat" run does, and whose vector is the mean of its
# sentence-bounded windows' vectors (`chunk.window_inputs`) where the published dense
# runs (MTEB) let the model truncate `title + text` at its 256-wordpiece window. `--max-tokens N` cuts documents into
# passages as the news are cut instead (a document then scores as its best passage).
WHOLE_DOCUMENTS = ChunkSettings(max_tokens=2000, overlap=0, max_wordpieces=1_000_000)


def cache_dir() -> Path:
    """Where indexes and embeddings of evaluation corpora are kept (never the repository)."""
    return cache_root()


# --- embeddings cache ---------------------------------------------------------------


class CachedEmbedder:
    """An `Embedder` whose vectors are cached on disk by model name and text hash.

    Same interface as `indexer.embed.Embedder` (`name`, `dimension`,
    `encode`, `count_wordpieces`), so `build_index` and `Searcher` take it
    unchanged. Each `encode` call that embeds new texts adds one shard file
    (written to a temporary name, then renamed), so an interrupted run keeps
    what it finished and a concurrent reader never sees half a file.
    """

    def __init__(self, embedder, directory: Path) -> None:
        self._embedder = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self.batch_size = embedder.batch_size
        self.directory = Path(directory) / _safe_name(embedder.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._vectors: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        for shard in sorted(self.directory.glob("shard-*.npz")):
            with np.load(shard, allow_pickle=False) as data:
                for key, vector in zip(data["keys"], data["vectors"]):
                    # NumPy's S20 drops trailing NUL bytes: restore the 20-byte SHA-1.
                    self._vectors[bytes(key).ljust(20, b"\0")] = vector

    def count_wordpieces(self, texts: Sequence[str]) -> list[int]:
        return self._embedder.count_wordpieces(texts)

    def wordpiece_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return self._embedder.wordpiece_vectors(text)

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        keys = [hashlib.sha1(f"{self.name}\x1f{t}".encode()).digest() for t in texts]
        missing = list(dict.fromkeys(i for i, k in enumerate(keys) if k not in self._vectors))
        unique_missing = list({keys[i]: i for i in missing}.values())
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if unique_missing:
            fresh = self._embedder.encode([texts[i] for i in unique_missing], batch_size=batch_size)
            new_keys = [keys[i] for i in unique_missing]
            for key, vector in zip(new_keys, fresh):
                self._vectors[key] = vector
            self._save_shard(new_keys, fresh)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.ascontiguousarray(np.stack([self._vectors[k] for k in keys]), dtype=np.float32)

    def _save_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        name = f"shard-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}.npz"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.asarray(keys, dtype="S20"), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.directory / name)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# --- BEIR -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirSet:
    """A BEIR dataset split: corpus id → (title, text), query id → text, judged pairs."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Published:
    """One published figure from the dataset's README."""

    system: str
    ndcg10: float
    recall100: float | None


def load_beir(folder: str | os.PathLike, *, split: str = "test", limit: int | None = None) -> BeirSet:
    """Read a BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`).

    With `limit`, keep the first `limit` judged queries, their judged documents
    and `DISTRACTORS_PER_QUERY * limit` other documents from the head of the
    corpus: a fast slice for tests, not comparable with published figures.
    """
    folder = Path(folder)
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    absent = [str(p) for p in needed if not p.is_file()]
    if absent:
        raise ResourceMissing(
            f"{folder} is not a BEIR dataset folder: missing {', '.join(absent)}; pass the folder that holds "
            "corpus.jsonl, queries.jsonl and qrels/, e.g. --beir ../shared/datasets/beir-scifact"
        )
    if limit is not None and limit < 1:
        raise InvalidParameter(f"limit={limit} is out of range: use a positive number of queries, or leave it out")
    qrels: dict[str, dict[str, int]] = {}
    with open(needed[2], encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            parts = line.rstrip("\n").split("\t")
            if number == 0 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries: dict[str, str] = {}
    with open(needed[1], encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in qrels:
                queries[record["_id"]] = record["text"]
    qrels = {qid: docs for qid, docs in qrels.items() if qid in queries}
    corpus: dict[str, tuple[str, str]] = {}
    with open(needed[0], encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            corpus[str(record["_id"])] = (record.get("title") or "", record.get("text") or "")
    if limit is not None:
        kept = list(queries)[:limit]
        queries = {qid: queries[qid] for qid in kept}
        qrels = {qid: qrels[qid] for qid in kept}
        wanted = {doc for docs in qrels.values() for doc in docs}
        distractors = [doc for doc in corpus if doc not in wanted][: DISTRACTORS_PER_QUERY * len(kept)]
        wanted.update(distractors)
        corpus = {doc: corpus[doc] for doc in corpus if doc in wanted}
    return BeirSet(name=folder.name, corpus=corpus, queries=queries, qrels=qrels)


_PUBLISHED_LINE = re.compile(r"^\s*-\s+(?P<system>.+):\s+(?P<ndcg>0\.\d+)(?:\s*/\s*(?P<recall>0\.\d+))?\s*$")


def published_figures(folder: str | os.PathLike) -> list[Published]:
    """The `- system: nDCG@10 / Recall@100` lines of the dataset README (empty if none)."""
    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return []
    figures = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = _PUBLISHED_LINE.match(line)
        if match:
            recall = match.group("recall")
            figures.append(Published(match.group("system").strip(), float(match.group("ndcg")),
                                     float(recall) if recall else None))
    return figures


def beir_index(
    data: BeirSet, embedder, *, settings: ChunkSettings = WHOLE_DOCUMENTS, cache: Path | None = None,
    progress: bool = False,
) -> Path:
    """Index `data.corpus` under the cache (incremental: a rerun embeds nothing) and return the index dir.

    Each document becomes one article (`id` = the BEIR doc id) whose title and
    text are chunked and embedded exactly as news articles are.
    """
    from indexer.ingest.build import build_index

    cache = cache or cache_dir()
    digest = hashlib.sha1()
    for doc_id in sorted(data.corpus):
        digest.update("\x1f".join((doc_id, *data.corpus[doc_id])).encode())
        digest.update(b"\x1e")
    # WINDOWS: how passages past the model's window are embedded (a change must not reuse old vectors).
    digest.update(json.dumps([embedder.name, asdict(settings), asdict(WINDOWS)], sort_keys=True).encode())
    home = cache / "beir" / f"{_safe_name(data.name)}-{len(data.corpus)}-{digest.hexdigest()[:12]}"
    home.mkdir(parents=True, exist_ok=True)
    corpus_file = home / "corpus.jsonl"
    if not corpus_file.is_file():
        tmp = home / f".corpus.{secrets.token_hex(4)}.jsonl"
        with open(tmp, "w", encoding="utf-8") as handle:
            for doc_id, (title, text) in data.corpus.items():
                # BEIR titles may be empty; the reader needs one, and the text then stands alone.
                handle.write(json.dumps({"id": doc_id, "title": title or doc_id, "text": text}) + "\n")
        os.replace(tmp, corpus_file)
    embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder, cache / "embeddings")
    summary = build_index([corpus_file], home / "index", embedder=embedder, settings=settings,
                          progress=progress, dedupe_threshold=NO_DEDUPE)
    if summary.errors:
        first = summary.errors[0]
        raise ResourceMissing(f"{len(summary.errors)} documents of {data.name} could not be read, first: "
                              f"{first.where()}: {first.message}")
    return home / "index"


@dataclass
class BeirReport:
    """Scores per mode (metric → value), with timings and the published figures."""

    dataset: str
    queries: int
    documents: int
    passages: int
    scores: dict[str, dict[str, float]]
    published: list[Published]
    seconds: dict[str, float] = field(default_factory=dict)
    sliced: bool = False

    def table(self) -> str:
        """A Markdown table: our modes, then the published rows (nDCG@10 and Recall@100 only)."""
        head = "| system | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |"
        rule = "|---|" + "---:|" * len(METRICS)
        rows = [head, rule]
        for mode, scores in self.scores.items():
            rows.append(f"| newsqa {mode} | " + " | ".join(f"{scores[m]:.4f}" for m in METRICS) + " |")
        if not self.sliced:
            for figure in self.published:
                cells = {"ndcg@10": f"{figure.ndcg10:.4f}",
                         "recall@100": f"{figure.recall100:.4f}" if figure.recall100 is not None else "–"}
                rows.append(f"| published: {figure.system} | " + " | ".join(cells.get(m, "–") for m in METRICS) + " |")
        return "\n".join(rows)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["published"] = [asdict(p) for p in self.published]
        return data


def beir_run(
    searcher, data: BeirSet, mode: str, *, depth: int = RUN_DEPTH, fusion: str = "adaptive"
) -> dict[str, dict[str, float]]:
    """Document rankings {query id: {doc id: score}} for every query, via `group=article` search."""
    run: dict[str, dict[str, float]] = {}
    for qid, text in data.queries.items():
        # Highlights are for people; a benchmark run needs only the ranking.
        result = searcher.search(text, k=depth, mode=mode, group="article", fusion=fusion, highlights=False)
        # Rank-derived scores make ranx order documents exactly as we ranked them (ties included).
        ranking = {hit.citation.article_id: float(depth - hit.rank + 1) for hit in result.hits}
        run[qid] = ranking or {"__no_result__": 0.0}
    return run


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 (ranx; trec_eval definitions)."""
    from ranx import Qrels, Run, evaluate

    scores = evaluate(Qrels(qrels), Run(run), list(METRICS), make_comparable=True)
    return {metric: float(scores[metric]) for metric in METRICS}


def evaluate_beir(
    folder: str | os.PathLike,
    embedder,
    *,
    modes: Sequence[str] = EVAL_MODES,
    limit: int | None = None,
    split: str = "test",
    settings: ChunkSettings = WHOLE_DOCUMENTS,
    cache: Path | None = None,
    progress: bool = False,
) -> BeirReport:
    """Index the corpus (cached), search every query in each mode and score the runs."""
    from indexer.query.search import Searcher, validate_mode
    from indexer.store.embedded import open_index

    for mode in modes:
        validate_mode(mode)
    cache = cache or cache_dir()
    data = load_beir(folder, split=split, limit=limit)
    cached = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder, cache / "embeddings")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    index_dir = beir_index(data, cached, settings=settings, cache=cache, progress=progress)
    seconds["index"] = time.perf_counter() - t0
    index = open_index(index_dir, model=cached.name)
    try:
        searcher = Searcher(index, cached)
        # One batch for all queries; the searches then find their vectors in the cache.
        cached.encode(list(data.queries.values()))
        scores = {}
        for mode in modes:
            t0 = time.perf_counter()
            scores[mode] = score_run(data.qrels, beir_run(searcher, data, mode))
            seconds[mode] = time.perf_counter() - t0
        passages = index.counts["chunks"]
    finally:
        index.close()
    return BeirReport(
        dataset=data.name, queries=len(data.queries), documents=len(data.corpus), passages=passages,
        scores=scores, published=published_figures(folder), seconds=seconds, sliced=limit is not None,
    )


# --- the project's own question set ----------------------------------------------------


@dataclass(frozen=True)
class QAItem:
    """A question over the news corpus: the article that answers it and the answer phrase (a verbatim
    substring of the article), or `answerable: false` for questions the corpus cannot answer.

    `qid`, `split` (`fit` or `test`), `article_ids`, `type` and `kind` are optional: the
    BBC set (`bench/bbc-qa.jsonl`) has them, the older `bench/news-qa.jsonl` does not."""

    question: str
    title: str | None
    answer: str | None
    answerable: bool
    qid: str | None = None
    split: str | None = None
    article_ids: tuple[str, ...] = ()
    type: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class QAOutcome:
    item: QAItem
    top_title: str | None
    answer: str | None
    confidence: float
    signals: dict
    reason: str | None
    top_article_id: str | None = None
    answer_article_id: str | None = None
    answer_title: str | None = None
    span: str | None = None
    asked_type: str | None = None

    @property
    def article_ok(self) -> bool:
        """The top passage's article is the one that answers (by id when the set gives ids, else by title)."""
        if not self.item.answerable:
            return False
        return (self.top_article_id in self.item.article_ids if self.item.article_ids
                else self.top_title == self.item.title)

    @property
    def answer_ok(self) -> bool:
        """Sentence accuracy: the expected answer is inside the returned sentence."""
        return (self.item.answerable and self.answer is not None
                and _norm(self.item.answer) in _norm(self.answer))

    @property
    def from_right_article(self) -> bool:
        """The answer (not an abstention) comes from the article that answers (by id, else by title)."""
        if not self.item.answerable or self.answer is None:
            return False
        if self.item.article_ids:
            return self.answer_article_id in self.item.article_ids
        return self.answer_title == self.item.title

    @property
    def span_ok(self) -> bool:
        """Short-answer accuracy: the span equals or contains the expected answer, from the right article."""
        return (self.from_right_article and self.span is not None
                and _norm(self.item.answer) in _norm(self.span))

    @property
    def abstained(self) -> bool:
        return self.answer is None


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").lower().split())


QA_SPLITS = ("fit", "test", "all")


def load_qa(path: str | os.PathLike, *, split: str = "all") -> list[QAItem]:
    """Read a question set (JSON lines: `question`, `title`, `answer`, or `answerable: false`; optionally
    `qid`, `split`, `article_ids`, `type`, `kind`). With `split="fit"` or `"test"`, keep that half
    (questions without a `split` belong to every half)."""
    path = Path(path)
    if split not in QA_SPLITS:
        raise InvalidParameter(f"split={split!r} is not a question-set half: use one of {', '.join(QA_SPLITS)}")
    if not path.is_file():
        raise ResourceMissing(f"no question set at {path}: pass a JSON-lines file, e.g. --qa bench/news-qa.jsonl")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            answerable = bool(record.get("answerable", True))
            question = record["question"].strip()
            if answerable and not ((record.get("title") or record.get("article_ids")) and record.get("answer")):
                raise KeyError("title (or article_ids) and answer")
            article_ids = tuple(str(a) for a in record.get("article_ids") or ())
            item_split = record.get("split")
            if item_split is not None and item_split not in ("fit", "test"):
                raise KeyError(f"split must be fit or test, not {item_split!r}")
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
            raise InvalidParameter(
                f"{path}:{number}: not a question record ({exc}): write "
                '{"question": ..., "title": ..., "answer": ...} or {"question": ..., "answerable": false}'
            ) from None
        if split != "all" and item_split not in (None, split):
            continue
        items.append(QAItem(question, record.get("title"), record.get("answer"), answerable,
                            qid=record.get("qid"), split=item_split, article_ids=article_ids,
                            type=record.get("type"), kind=record.get("kind")))
    if not items:
        raise InvalidParameter(f"{path} holds no questions{'' if split == 'all' else f' in split {split}'}: "
                               "add one JSON object per line")
    return items


@dataclass
class QAReport:
    """Top-1 article, sentence, short-answer and abstention accuracy over a question set."""

    path: str
    mode: str
    outcomes: list[QAOutcome]
    threshold: float
    calibration: dict | None = None
    split: str = "all"
    # Article-level MRR@10 of a plain `group="article"` search (k=10) over the answerable questions
    # that name their articles (`article_ids`): the retrieval figure comparable across modes.
    article_mrr: float | None = None

    @property
    def answerable(self) -> list[QAOutcome]:
        return [o for o in self.outcomes if o.item.answerable]

    @property
    def unanswerable(self) -> list[QAOutcome]:
        return [o for o in self.outcomes if not o.item.answerable]

    def metrics(self) -> dict[str, float]:
        ans, una = self.answerable, self.unanswerable
        share = lambda hits, total: hits / total if total else 0.0  # noqa: E731
        sentence = share(sum(o.answer_ok for o in ans), len(ans))
        return {
            "top1_article_accuracy": share(sum(o.article_ok for o in ans), len(ans)),
            # The answer's own article (the answerer chooses among several articles' candidates, so this is
            # not bounded by the search's top-1 above, and it bounds short-answer accuracy).
            "answer_article_accuracy": share(sum(o.from_right_article for o in ans), len(ans)),
            "answer_accuracy": sentence,
            "sentence_accuracy": sentence,
            "short_answer_accuracy": share(sum(o.span_ok for o in ans), len(ans)),
            "abstention_accuracy": share(sum(o.abstained for o in una), len(una)),
            "false_abstentions": share(sum(o.abstained for o in ans), len(ans)),
        }

    def table(self) -> str:
        m = self.metrics()
        ans, una = len(self.answerable), len(self.unanswerable)
        rows = [
            "| metric | value | over |", "|---|---:|---|",
            f"| right article at rank 1 | {m['top1_article_accuracy']:.3f} | {ans} answerable questions |",
            f"| answer from the right article | {m['answer_article_accuracy']:.3f} | {ans} answerable questions |",
            f"| sentence accuracy | {m['sentence_accuracy']:.3f} | {ans} answerable questions |",
            f"| short-answer accuracy | {m['short_answer_accuracy']:.3f} | {ans} answerable questions |",
            f"| abstention accuracy | {m['abstention_accuracy']:.3f} | {una} unanswerable questions |",
            f"| false abstentions | {m['false_abstentions']:.3f} | {ans} answerable questions |",
        ]
        if self.article_mrr is not None:
            named = sum(1 for o in self.answerable if o.item.article_ids)
            rows.append(f"| article MRR@10 (search, group=article) | {self.article_mrr:.3f} | {named} answerable "
                        "questions with article_ids |")
        return "\n".join(rows)

    def by_type(self) -> dict[str, tuple[int, int, int]]:
        """Per expected answer type: (questions, sentence right, short answer right)."""
        table: dict[str, list[int]] = {}
        for o in self.answerable:
            row = table.setdefault(o.item.type or "?", [0, 0, 0])
            row[0] += 1
            row[1] += o.answer_ok
            row[2] += o.span_ok
        return {k: tuple(v) for k, v in sorted(table.items())}

    def failures(self) -> list[str]:
        lines = []
        for o in self.outcomes:
            if o.item.answerable and not (o.article_ok and o.answer_ok and o.span_ok):
                lines.append(f"MISS  {o.item.question!r}: want {o.item.answer!r} in {o.item.title!r}; got "
                             f"span {o.span!r} in {(o.answer or o.reason or '')[:100]!r} from {o.top_title!r} "
                             f"(confidence {o.confidence:.2f}, asked {o.asked_type})")
            elif not o.item.answerable and not o.abstained:
                lines.append(f"ANSWERED  {o.item.question!r}: {o.answer[:100]!r} (confidence {o.confidence:.2f})")
        return lines

    def as_dict(self) -> dict:
        return {
            "path": self.path, "mode": self.mode, "split": self.split, "threshold": self.threshold,
            "metrics": self.metrics(), "calibration": self.calibration, "article_mrr@10": self.article_mrr,
            "outcomes": [
                {"qid": o.item.qid, "question": o.item.question, "answerable": o.item.answerable,
                 "expected": o.item.answer, "answer": o.answer, "span": o.span, "top_title": o.top_title,
                 "confidence": round(o.confidence, 4), "signals": o.signals, "article_ok": o.article_ok,
                 "answer_ok": o.answer_ok, "span_ok": o.span_ok, "abstained": o.abstained}
                for o in self.outcomes
            ],
        }


def evaluate_qa(searcher, path: str | os.PathLike, *, mode: str = DEFAULT_MODE, split: str = "all",
                weights=None) -> QAReport:
    """Ask every question of the set (or of one half) with the `Answerer` and score the outcomes."""
    from indexer.query.answer import Answerer
    from indexer.query.question import answer_type

    answerer = Answerer(searcher, weights=weights)
    outcomes = []
    for item in load_qa(path, split=split):
        result = answerer.answer(item.question, mode=mode)
        signals = searcher.signals(result.passages, searcher.query_terms(item.question))
        top = result.passages[0].citation if result.passages else None
        found = result.answer
        outcomes.append(QAOutcome(
            item=item,
            top_title=top.title if top else None,
            answer=found.text if found else None,
            confidence=result.confidence,
            signals={k: round(v, 4) for k, v in signals.items()},
            reason=result.reason,
            top_article_id=top.article_id if top else None,
            answer_article_id=found.citation.article_id if found else None,
            answer_title=found.citation.title if found else None,
            span=found.span.text if found and found.span else None,
            asked_type=answer_type(item.question),
        ))
    return QAReport(path=str(path), mode=mode, outcomes=outcomes, threshold=answerer.threshold, split=split,
                    article_mrr=article_mrr(searcher, [o.item for o in outcomes], mode=mode))


def article_mrr(searcher, items: Sequence[QAItem], *, mode: str = "hybrid", depth: int = 10) -> float | None:
    """MRR@`depth` of the first article of `item.article_ids` in a `group="article"` search, over the
    answerable items that list their articles (None when none does)."""
    named = [item for item in items if item.answerable and item.article_ids]
    if not named:
        return None
    total = 0.0
    for item in named:
        hits = searcher.search(item.question, k=depth, mode=mode, group="article", highlights=False).hits
        rank = next((h.rank for h in hits if h.citation.article_id in item.article_ids), None)
        total += 1 / rank if rank else 0.0
    return total / len(named)


# --- fitting the answer weights ---------------------------------------------------------

# The largest share of a fitting set's answerable questions the fitted threshold may abstain on.
MAX_FALSE_ABSTENTIONS = 0.05


def fit_answers(sets: Sequence[tuple[object, Sequence[QAItem]]], *, mode: str = DEFAULT_MODE,
                l2: float = 0.01, embedded: int | None = None,
                max_false_abstentions: float = MAX_FALSE_ABSTENTIONS) -> "AnswerWeights":
    """Fit the `Answerer`'s weights on question sets, each `(searcher, items)`, and return them.

    1. Candidate weights: a conditional logit over each answerable question's eligible candidates
       (`indexer.query.answer.eligible`; a candidate is right when it holds the expected answer and
       comes from an article of the item), i.e. the weights that make the right sentence the most
       likely choice.
    2. Confidence weights: logistic regression of answerable (1) against unanswerable (0) on
       the chosen candidate's confidence features.
    The confidence is fitted for the ranking in use: with `embedded=0` (no sentence embedding
    at query time) the first-pass score is the candidate's score.
    3. Threshold: the one that maximises abstention accuracy plus answered share on these
       sets (balanced), nearest 0.5 among ties, among those that abstain on no more than
       `max_false_abstentions` of any one set's answerable questions (the issue allows 0.10 on
       held-out questions; the fit keeps half of that as a margin).
    """
    from indexer.query.answer import (CANDIDATE_FEATURES, CONFIDENCE_FEATURES, EMBEDDED_CANDIDATES, Answerer,
                                      AnswerWeights, _default_weights, eligible)

    embedded = EMBEDDED_CANDIDATES if embedded is None else embedded

    start_weights = _default_weights()
    groups, considered = [], []
    for number, (searcher, items) in enumerate(sets):
        answerer = Answerer(searcher, weights=start_weights)
        for item in items:
            seen, _ = answerer.consider(item.question, mode=mode, embed_all=True)
            considered.append((answerer, item, seen, number))
            if not item.answerable or not seen.candidates:
                continue
            pool = eligible(seen.candidates)  # the ones `Answerer.rank` chooses from
            x = np.asarray([[c.features[f] for f in CANDIDATE_FEATURES] for c in pool])
            y = np.asarray([_candidate_right(item, c) for c in pool], dtype=float)
            if y.any():
                groups.append((x, y, number))
    # Each question set counts as much as the others, however many questions it holds.
    sizes = {n: sum(1 for g in groups if g[2] == n) for n in range(len(sets))}
    groups = [(x, y, len(groups) / (len(sizes) * sizes[n])) for x, y, n in groups]
    w_candidate = _fit_conditional_logit(groups, l2=l2)
    candidate = {f: round(float(w), 4) for f, w in zip(CANDIDATE_FEATURES, w_candidate)}
    cheap = [i for i, f in enumerate(CANDIDATE_FEATURES) if f != "cosine"]
    w_prefilter = _fit_conditional_logit([(x[:, cheap], y, weight) for x, y, weight in groups], l2=l2)
    prefilter = {CANDIDATE_FEATURES[i]: round(float(w), 4) for i, w in zip(cheap, w_prefilter)}
    interim = AnswerWeights(candidate=candidate, confidence=start_weights.confidence, threshold=0.5,
                            prefilter=prefilter, embedded=embedded)
    rows, labels, origin = [], [], []
    for answerer, item, seen, number in considered:
        origin.append(number)
        answerer.weights = interim
        best = answerer.rank(seen)
        features = answerer.confidence_features(seen, best)
        rows.append([1.0] + [features[f] for f in CONFIDENCE_FEATURES])
        labels.append(1.0 if item.answerable else 0.0)
    x, y = np.asarray(rows), np.asarray(labels)
    w_conf = _fit_logistic(x, y, l2)
    confidence = {"bias": round(float(w_conf[0]), 4)}
    confidence.update({f: round(float(w), 4) for f, w in zip(CONFIDENCE_FEATURES, w_conf[1:])})
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ w_conf, -50, 50)))
    p[x[:, 1 + CONFIDENCE_FEATURES.index("year_miss")] > 0] = 0.0  # the year-miss veto of `Answerer.confidence`
    threshold = _best_threshold(p, y, np.asarray(origin), max_false_abstentions=max_false_abstentions)
    right = sum(int(y[int(np.argmax(x @ w_candidate))] > 0) for x, y, _ in groups)
    fitted_on = {"questions": len(considered), "answerable": int(y.sum()), "unanswerable": int(len(y) - y.sum()),
                 "answerable_with_a_right_candidate": len(groups),
                 "fit_sentence_choice_right": right,
                 "fit_abstention_accuracy": round(float(np.mean(p[y == 0] < threshold)) if (y == 0).any() else 0.0, 4),
                 "fit_false_abstentions": round(float(np.mean(p[y == 1] < threshold)) if (y == 1).any() else 0.0, 4)}
    return AnswerWeights(candidate=candidate, confidence=confidence, threshold=round(threshold, 4),
                         fitted_on=fitted_on, prefilter=prefilter, embedded=embedded)


def _candidate_right(item: QAItem, candidate) -> bool:
    citation = candidate.hit.citation
    article_ok = (citation.article_id in item.article_ids) if item.article_ids else citation.title == item.title
    return article_ok and _norm(item.answer) in _norm(candidate.text)


def _fit_conditional_logit(groups, *, l2: float, steps: int = 3000, rate: float = 0.05) -> np.ndarray:
    """Weights maximising Σ_questions weight · log(Σ_right exp(s) / Σ_all exp(s)), s = x·w (Adam, L2)."""
    dims = groups[0][0].shape[1] if groups else 0
    w = np.zeros(dims)
    m, v = np.zeros(dims), np.zeros(dims)
    for step in range(1, steps + 1):
        gradient = l2 * w * len(groups)
        for x, y, weight in groups:
            s = x @ w
            s -= s.max()
            e = np.exp(s)
            p_all = e / e.sum()
            p_pos = (e * y) / (e * y).sum()
            gradient -= weight * (x.T @ (p_pos - p_all))
        gradient /= max(len(groups), 1)
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient ** 2
        w -= rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return w


def _best_threshold(p: np.ndarray, y: np.ndarray, origin: np.ndarray | None = None, *,
                    max_false_abstentions: float = 1.0) -> float:
    """The threshold maximising abstention accuracy plus answered share, among those that abstain on no
    more than `max_false_abstentions` of the answerable questions of each question set (`origin`
    numbers each row's set); nearest 0.5 among ties."""
    origin = np.zeros(len(p), dtype=int) if origin is None else origin
    best, best_key = 0.5, None
    for t in sorted(set(np.round(p, 4).tolist()) | {0.5}):
        abstain_ok = float(np.mean(p[y == 0] < t)) if (y == 0).any() else 1.0
        answered = float(np.mean(p[y == 1] >= t)) if (y == 1).any() else 1.0
        worst = max((float(np.mean(p[(y == 1) & (origin == n)] < t)) for n in set(origin.tolist())
                     if ((y == 1) & (origin == n)).any()), default=0.0)
        key = (worst <= max_false_abstentions, abstain_ok + answered, -abs(t - 0.5))
        if best_key is None or key > best_key:
            best, best_key = float(t), key
    # Midway to the next probability up, so the threshold does not sit on a fitted point.
    below = p[p < best]
    if len(below):
        best = (best + float(below.max())) / 2
    return best


def calibrate(outcomes: Sequence[QAOutcome], *, l2: float = 0.01) -> dict:
    """Fit confidence = sigmoid(w0 + w_dense·dense + w_cover·coverage) to answerable (1) vs not (0).

    Logistic regression by Newton's method with a small L2 penalty on the
    slopes; also reports leave-one-out accuracy at 0.5, an honest estimate
    on a question set this small.
    """
    x = np.asarray([[1.0, o.signals["dense"], o.signals["coverage"]] for o in outcomes])
    y = np.asarray([1.0 if o.item.answerable else 0.0 for o in outcomes])
    weights = _fit_logistic(x, y, l2)
    loo_correct = 0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        w = _fit_logistic(x[keep], y[keep], l2)
        loo_correct += int((x[i] @ w > 0) == (y[i] > 0.5))
    fitted_correct = int(np.sum((x @ weights > 0) == (y > 0.5)))
    return {"w0": round(float(weights[0]), 3), "w_dense": round(float(weights[1]), 3),
            "w_cover": round(float(weights[2]), 3), "train_accuracy": fitted_correct / len(y),
            "leave_one_out_accuracy": loo_correct / len(y), "questions": len(y)}


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 50) -> np.ndarray:
    w = np.zeros(x.shape[1])
    penalty = np.diag([0.0] + [l2] * (x.shape[1] - 1))
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x + penalty + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w
