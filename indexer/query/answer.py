"""Answers: the best sentence of the top passages, verbatim, with its citation.

`Answerer.answer(query)` searches (hybrid by default), and when the search is
confident enough (`SearchResult.confidence`, calibrated on `bench/news-qa.jsonl`)
picks the sentence of the top passages that best answers the query: cosine
between the query and the sentence (sentence vectors are cached per passage
by the `Searcher`), plus IDF-weighted overlap with the stemmed query terms,
plus a small prior for the passage's own rank. Questions that ask for an
amount ("how much", "how many", "when", ...) prefer sentences with a number.
Below the threshold the answer is None with the reason, never the least bad
sentence.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from indexer.store.bm25 import tokenize
from indexer.query.search import CONFIDENCE_THRESHOLD, Searcher, validate_k
from indexer.types import Citation, Filters, Hit

# Passages whose sentences compete for the answer.
ANSWER_PASSAGES = 3
# Sentence score = W_COSINE * cosine + W_OVERLAP * term overlap + W_RANK / passage rank (+ W_NUMBER).
W_COSINE = 0.6
W_OVERLAP = 0.4
W_RANK = 0.1
W_NUMBER = 0.15
# Bonus for a sentence naming someone or something the question does not already name.
W_NAME = 0.1
# A sentence shorter than this reads as a fragment; the next one is joined to it.
MIN_ANSWER_CHARS = 40
DEFAULT_PASSAGES = 5

_QUANTITY_QUESTION = re.compile(
    r"^\s*(how\s+(much|many|long|big|large|tall|far|old|high|deep)|what\s+(share|percentage|proportion|amount|"
    r"value|size|price|level)|when|in\s+what\s+year|by\s+how\s+much|at\s+what\s+level)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d")
_ENTITY_QUESTION = re.compile(r"^\s*(who|whom|whose|which|what\s+(company|bank|firm|organi[sz]ation|city|country))\b",
                              re.IGNORECASE)
# Two or more capitalised words in a row: a name ("Taalaibek Ibraev", "Power China").
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][\w’'-]+(?:\s+(?:of\s+)?[A-Z][\w’'-]+)+")


@dataclass(frozen=True)
class Answer:
    """A verbatim answer: `text == article.text[citation.start:citation.end]`."""

    text: str
    citation: Citation


@dataclass
class AnswerResult:
    query: str
    answer: Answer | None
    confidence: float
    passages: list[Hit]
    reason: str | None = None
    took_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class Answerer:
    """Answers questions from one `Searcher`'s index."""

    def __init__(self, searcher: Searcher, *, threshold: float = CONFIDENCE_THRESHOLD) -> None:
        self.searcher = searcher
        self.threshold = threshold

    def answer(
        self, query: str, *, k: int = DEFAULT_PASSAGES, mode: str = "hybrid", filters: Filters = Filters()
    ) -> AnswerResult:
        """The best answer sentence for `query` with the passages it was chosen from, or None and why."""
        started = time.perf_counter()
        validate_k(k)
        result = self.searcher.search(query, k=k, mode=mode, filters=filters)
        passages = result.hits
        if not passages:
            return AnswerResult(result.query, None, 0.0, passages,
                                reason="no passage matches the query (or the filters exclude every article)",
                                took_ms=(time.perf_counter() - started) * 1000)
        if result.confidence < self.threshold:
            return AnswerResult(
                result.query, None, result.confidence, passages,
                reason=(f"low confidence ({result.confidence:.2f} < {self.threshold:.2f}): the indexed articles "
                        "do not seem to answer this question"),
                took_ms=(time.perf_counter() - started) * 1000,
            )
        t0 = time.perf_counter()
        answer = self._best_sentence(result.query, passages[:ANSWER_PASSAGES])
        timings = {**result.timings, "answer_ms": (time.perf_counter() - t0) * 1000}
        return AnswerResult(result.query, answer, result.confidence, passages,
                            took_ms=(time.perf_counter() - started) * 1000, timings=timings)

    def _best_sentence(self, query: str, hits: list[Hit]) -> Answer:
        searcher = self.searcher
        vector = searcher.query_vector(query)
        terms = searcher.query_terms(query)
        wants_number = bool(_QUANTITY_QUESTION.match(query))
        wants_name = bool(_ENTITY_QUESTION.match(query))
        asked = query.lower()
        found = searcher.sentences.vectors(hits)
        candidates = []  # (score, hit, sentence index)
        for position, hit in enumerate(hits, start=1):
            spans, vectors = found[hit.chunk_id]
            texts = [_cut(hit, span) for span in spans]
            cosines = vectors @ vector if len(spans) else []
            for i, (text, tokens) in enumerate(zip(texts, tokenize(texts) if texts else [])):
                score = W_COSINE * float(cosines[i]) + W_OVERLAP * terms.overlap(tokens) + W_RANK / position
                if wants_number and _NUMBER.search(text):
                    score += W_NUMBER
                if wants_name and any(name.lower() not in asked for name in _NAME.findall(text)):
                    score += W_NAME
                candidates.append((score, position, i, hit, spans))
        _, _, i, hit, spans = max(candidates, key=lambda c: (c[0], -c[1], -c[2]))
        start, end = spans[i]
        if end - start < MIN_ANSWER_CHARS and i + 1 < len(spans):
            end = spans[i + 1][1]  # two adjacent sentences, still verbatim
        article = searcher.index.article(hit.citation.article_id)
        citation = Citation(
            article_id=article.article_id, title=article.title, date=article.date, source=article.source,
            url=article.url, section=article.section_at(start), start=start, end=end,
            paragraph=article.paragraph_at(start),
        )
        return Answer(text=article.text[start:end], citation=citation)


def _cut(hit: Hit, span: tuple[int, int]) -> str:
    return hit.text[span[0] - hit.citation.start : span[1] - hit.citation.start]
