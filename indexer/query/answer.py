"""Answers: the sentence of the top passages that answers the question, its short answer, and abstention.

`Answerer.answer(query)` searches (hybrid by default), then:

1. analyses the question (`indexer.query.question.analyse`): the expected answer
   type, the focus words, and the years and names it asks about;
2. takes as candidates the sentences, and adjacent sentence pairs, of the top
   passages of several articles (`ANSWER_PASSAGES`), and of the two best articles' text
   that none of them holds (`WHOLE_ARTICLES`; the next articles' too, `DEEPER_ARTICLES`,
   when no candidate holds a span that fits the question well);
3. scores each candidate with the fitted linear combination of `CANDIDATE_FEATURES`:
   coverage of the question's terms (in the sentence and in its
   passage), the best span of the expected type that the question does not already hold
   (`indexer.query.spans`) and how near it sits to the focus words, the passage's
   retrieval score and rank, whether its article misses a year or name the question
   asks about, and the similarity of the span's sentence to the question by wordpiece
   (input) embeddings, a table look-up (`words`). The answer is chosen among the
   candidates that hold a span of a kind the question accepts, when any does
   (`eligible`): a sentence that restates the question without one loses to one that
   has it. The sentence's cosine to the
   question (the packaged model is trained on question-answer pairs) is added for the
   `AnswerWeights.embedded` best candidates, embedded in one batch: it costs about 12 ms a
   sentence on 2 cores and moved the BBC held-out accuracy by one question in 92, so the
   shipped weights embed none (see `EMBEDDED_CANDIDATES`). Stored at indexing time it would cost
   nothing per query, but on every candidate it answered fewer questions, not more (README);
4. picks the short answer (`Answer.span`): the best typed span in the chosen sentence;
5. computes the confidence: a logistic model of the search's signals, the best
   candidate's score, its type match and the constraint misses (a question's year that
   appears nowhere in the article is the strongest sign that the archive does not cover
   the event: it vetoes the answer, confidence 0). Below the fitted threshold the answer is
   None with the reason.

Every weight and the threshold come from `answer_weights.json` (package data),
written by `newsqa eval --qa ... --fit-answers FILE` (`indexer.evaluate.harness.fit_answers`);
nothing is tuned by hand in this module.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.query.highlight import QUESTION_WORDS, QueryTerms, word_similarity
from indexer.query.question import LOWER_WORD, ORG_NOUNS, Question, analyse
from indexer.query.search import DEFAULT_MODE, Searcher, span_citation, validate_k
from indexer.query.spans import (LOCATED_BEFORE, MONTHS, NATIONALITIES, TITLE_INSIDE, TypedSpan, bare, same_nation,
                                 typed_spans, unit_measure)
from indexer.query.weights import read_weights
from indexer.sentences import split_sentences
from indexer.store.bm25 import stem, tokenize
from indexer.types import Citation, Filters, Hit

WEIGHTS_FILE = Path(__file__).with_name("answer_weights.json")
# Passages whose sentences compete for the answer (from several articles).
ANSWER_PASSAGES = 5
DEFAULT_PASSAGES = 5
# A sentence shorter than this reads as a fragment; only its pair with the next one is a candidate.
MIN_ANSWER_CHARS = 40
# Pairs longer than this are not candidates: an answer is a sentence or two, not a paragraph.
MAX_PAIR_CHARS = 400
CANDIDATE_FEATURES = ("cosine", "cover", "span_cover", "words", "head", "context", "type", "near", "typed_near", "apposition", "retrieval", "rank",
                      "year_miss", "entity_miss", "pair", "lead", "unretrieved")
# The best-ranked articles whose text outside the retrieved passages also gives candidates: an article
# that search ranks first often answers in a paragraph that no top passage holds ("Mr X, 57, ..." three
# paragraphs after the one that matches the question's words). Those candidates carry the article's
# best passage's retrieval score and rank, and the `unretrieved` feature. With the first article only,
# the BBC fitting half and news-qa once scored as with the first two, for 13 ms of the answer's own work
# at the median instead of 19 (load 2.5). With the sixth pass's rules the first two answer one more
# question of CHECK (the second article's rest names Gazprom's boss) and lose none on DEV, news-qa or
# seven rewordings of DEV; the first three lose two rewordings. Reading the second article costs ~4 ms.
WHOLE_ARTICLES = 2
# When no candidate holds a span that fits the question well (`STRONG_FIT`), the unretrieved text of this
# many more articles also gives candidates.
DEEPER_ARTICLES = 2
# The type fit from which a span answers as a kind the question asks for (`eligible`): a name of unsure
# kind (0.6) for a person, an amount with a unit (0.4) for a duration; not a count for an age or an
# amount for a count (0.3). On the BBC fitting half, 0.6 lost three right candidates (a duration asked,
# "three series" answered) and scored lower.
STRONG_FIT = 0.4
CONFIDENCE_FEATURES = ("dense", "coverage", "best", "type", "year_miss", "entity_miss", "margin")
# Embedding sentences is most of an answer's cost (about 12 ms a sentence on 2 quiet cores): a first
# score without the cosine (`AnswerWeights.prefilter`) keeps `AnswerWeights.embedded` candidates, and
# only their sentences are embedded; with 0, the first score decides and nothing is embedded. On the
# BBC held-out half, 6 embedded candidates answered one question more in 92 than 0, for some 50 ms a
# query: the shipped weights use 0 (`newsqa eval --fit-answers ... --embedded-candidates N` refits).
EMBEDDED_CANDIDATES = 0
# The fusion the passages are ranked with. The candidate and confidence weights were fitted on passages
# ranked (and scored: `retrieval`, `best`, `margin`) by fixed 50/50 fusion; the adaptive fusion moves
# those scores, and on bench/news-qa.jsonl it made one answerable question abstain. Until the weights
# are refitted on it (`newsqa eval --fit-answers`), answers keep the fusion they were fitted with.
ANSWER_FUSION = "score"


@dataclass(frozen=True)
class AnswerWeights:
    """The fitted weights: candidate score = Σ w·feature; confidence = sigmoid(bias + Σ w·feature)."""

    candidate: dict[str, float]
    confidence: dict[str, float]
    threshold: float
    fitted_on: dict = field(default_factory=dict)
    # The candidate weights fitted without the cosine: the cheap first pass.
    prefilter: dict[str, float] = field(default_factory=dict)
    # Candidates the first pass keeps for embedding and the full score (0: the first pass decides).
    embedded: int = EMBEDDED_CANDIDATES

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_FILE) -> "AnswerWeights":
        def parse(data: dict) -> "AnswerWeights":
            candidate = {k: float(data["candidate"].get(k, 0.0)) for k in CANDIDATE_FEATURES}
            prefilter = data.get("prefilter") or {k: v for k, v in candidate.items() if k != "cosine"}
            return cls(candidate=candidate,
                       confidence={k: float(data["confidence"].get(k, 0.0)) for k in ("bias", *CONFIDENCE_FEATURES)},
                       threshold=float(data["threshold"]), fitted_on=data.get("fitted_on", {}),
                       prefilter={k: float(prefilter.get(k, 0.0)) for k in CANDIDATE_FEATURES if k != "cosine"},
                       embedded=int(data.get("embedded", EMBEDDED_CANDIDATES)))

        return read_weights(path, "answer weights",
                            "`newsqa eval --qa bench/bbc-qa.jsonl --index DIR --fit-answers FILE`", parse)

    def as_dict(self) -> dict:
        return {"candidate": self.candidate, "prefilter": self.prefilter, "embedded": self.embedded,
                "confidence": self.confidence, "threshold": self.threshold, "fitted_on": self.fitted_on}


@dataclass(frozen=True)
class ShortAnswer:
    """The answer phrase: `article.text[start:end] == text`, inside the answer sentence."""

    text: str
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Answer:
    """A verbatim answer: `text == article.text[citation.start:citation.end]`; `span` (or None) lies inside it."""

    text: str
    citation: Citation
    span: ShortAnswer | None = None


@dataclass
class AnswerResult:
    query: str
    answer: Answer | None
    confidence: float
    passages: list[Hit]
    reason: str | None = None
    took_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Candidate:
    """One sentence (or adjacent pair) with its features; offsets are article offsets."""

    hit: Hit
    start: int
    end: int
    text: str
    features: dict[str, float]  # "cosine" only once its sentences are embedded
    span: TypedSpan | None  # best typed span, offsets relative to `text`
    sentences: tuple[str, ...] = ()  # the one or two sentences, to embed
    score: float = 0.0


@dataclass
class Considered:
    """Everything the answerer looked at for one query (for fitting and for the answer)."""

    question: Question
    passages: list[Hit]
    candidates: list[Candidate]
    signals: dict[str, float]
    search_confidence: float
    vector: np.ndarray | None = None  # the query's
    shortlist: list[Candidate] = field(default_factory=list)  # the embedded and fully scored, set by `rank`


class Answerer:
    """Answers questions from one `Searcher`'s index with the fitted `AnswerWeights`."""

    def __init__(self, searcher: Searcher, *, weights: AnswerWeights | None = None,
                 threshold: float | None = None) -> None:
        self.searcher = searcher
        self.weights = weights or _default_weights()
        self.threshold = self.weights.threshold if threshold is None else threshold

    def answer(
        self, query: str, *, k: int = DEFAULT_PASSAGES, mode: str = DEFAULT_MODE, filters: Filters = Filters()
    ) -> AnswerResult:
        """The best answer sentence for `query`, its short answer, and the passages; or None and why."""
        started = time.perf_counter()
        validate_k(k)
        considered, timings = self.consider(query, k=k, mode=mode, filters=filters)
        passages = considered.passages
        took = lambda: (time.perf_counter() - started) * 1000  # noqa: E731
        if not passages:
            return AnswerResult(query.strip(), None, 0.0, passages, took_ms=took(), timings=timings,
                                reason="no passage matches the query (or the filters exclude every article)")
        best = self.rank(considered)
        confidence = self.confidence(considered, best)
        if best is None or confidence < self.threshold:
            return AnswerResult(
                query.strip(), None, confidence, passages, took_ms=took(), timings=timings,
                reason=(f"low confidence ({confidence:.2f} < {self.threshold:.2f}): the indexed articles "
                        "do not seem to answer this question" + _miss_note(best)),
            )
        return AnswerResult(query.strip(), self._answer(best), confidence, passages, took_ms=took(),
                            timings=timings)

    # --- candidates ----------------------------------------------------------------------

    def consider(self, query: str, *, k: int = DEFAULT_PASSAGES, mode: str = DEFAULT_MODE,
                 filters: Filters = Filters(), embed_all: bool = False) -> tuple[Considered, dict[str, float]]:
        """Search, analyse the question and build every candidate with its features (unscored; the
        cosine only with `embed_all`, for fitting: `rank` embeds the few candidates it needs)."""
        searcher = self.searcher
        result = searcher.search(query, k=k, mode=mode, filters=filters, fusion=ANSWER_FUSION)
        timings = dict(result.timings)
        t0 = time.perf_counter()
        question = analyse(result.query)
        hits = result.hits[:ANSWER_PASSAGES]
        candidates: list[Candidate] = []
        vector = searcher.query_vector(result.query) if hits else None
        if hits:
            candidates = self._candidates(result.query, result.terms, question, hits)
        considered = Considered(question, result.hits, candidates, result.signals, result.confidence, vector)
        if embed_all:
            self._embed(considered, candidates)
        timings["answer_ms"] = (time.perf_counter() - t0) * 1000
        return considered, timings

    def _candidates(self, query: str, terms: QueryTerms, question: Question, hits: list[Hit]) -> list[Candidate]:
        searcher = self.searcher
        articles = searcher.articles({h.citation.article_id for h in hits})
        misses = {aid: _constraint_misses(question, a.title, a.text) for aid, a in articles.items()}
        lowercase = {aid: lower_words(a.text) for aid, a in articles.items()}
        top_score = max(h.score for h in hits) or 1.0
        asked = _norm(query)
        focus = terms.weights
        asked_words = {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}
        candidates: list[Candidate] = []
        # The question's content wordpieces: a sentence that says "shortfall" for "deficit" or "gift" for
        # "present" matches them by the model's input embeddings, a table look-up (no model call).
        wanted = searcher.embedder.wordpiece_vectors(QUESTION_WORDS.sub(" ", query))[0]
        sources = [(position, hit, 0.0) for position, hit in enumerate(hits, start=1)]
        sources += [(position, hit, 1.0) for position, hit in _unretrieved(hits, articles, WHOLE_ARTICLES)]
        self._add_candidates(candidates, sources, terms, question, asked, asked_words, focus, wanted, misses, lowercase,
                             top_score)
        if max((c.features["type"] for c in candidates), default=0.0) < STRONG_FIT:
            # No candidate holds a span of the kind asked for: the answer may sit in the unretrieved text of
            # the next articles ("How old is X?" asked of an article that gives no age, when the second
            # one says "X, 57, ...").
            deeper = _unretrieved(hits, articles, WHOLE_ARTICLES + DEEPER_ARTICLES, skip=WHOLE_ARTICLES)
            self._add_candidates(candidates, [(position, hit, 1.0) for position, hit in deeper], terms, question,
                                 asked, asked_words, focus, wanted, misses, lowercase, top_score)
        return candidates

    def _add_candidates(self, candidates: list[Candidate], sources: list[tuple[int, Hit, float]], terms: QueryTerms,
                        question: Question, asked: str, asked_words: set[str], focus: dict[str, float],
                        wanted: np.ndarray, misses: dict[str, tuple[float, float]],
                        lowercase: dict[str, frozenset[str]], top_score: float) -> None:
        """Append to `candidates` the sentences and adjacent pairs of each source: (position of its article's
        best hit, the passage or unretrieved stretch, 1.0 if unretrieved)."""
        for position, hit, unretrieved in sources:
            base = hit.citation.start
            spans = [(base + s, base + e) for s, e in split_sentences(hit.text)]
            if not spans:
                continue
            texts = [hit.text[s - base: e - base] for s, e in spans]
            tokens = tokenize(texts)
            typed = [_typed(question, t, asked, asked_words, focus, hit.citation.date, lowercase[hit.citation.article_id])
                     for t in texts]
            words = word_similarity(wanted, *self._wordpieces(hit, spans), len(spans))
            context = terms.overlap(tokenize([f"{hit.citation.title} {hit.text}"])[0])
            year_miss, entity_miss = misses[hit.citation.article_id]
            common = {"context": context, "retrieval": max(hit.score, 0.0) / top_score, "rank": 1.0 / position,
                      "year_miss": year_miss, "entity_miss": entity_miss, "unretrieved": unretrieved}
            units = [(i, i) for i in range(len(spans))]
            units += [(i, i + 1) for i in range(len(spans) - 1) if spans[i + 1][1] - spans[i][0] <= MAX_PAIR_CHARS]
            for i, j in units:
                start, end = spans[i][0], spans[j][1]
                if i == j and end - start < MIN_ANSWER_CHARS and j + 1 < len(spans):
                    continue  # a fragment: its pair with the next sentence stands for it
                text = hit.text[start - base: end - base]
                cover = terms.overlap(tokens[i] if i == j else tokens[i] + tokens[j])
                found = typed[i] if i == j else typed[i] + typed[j].shifted(spans[j][0] - start)
                span, type_score, near, bonus = _best_span(found)
                # The coverage of the one sentence that holds the answer span: a pair whose first
                # sentence restates the question and whose second holds a stray span does not get it.
                in_second = span is not None and i != j and span.start >= spans[j][0] - start
                span_cover = 0.0 if span is None else terms.overlap(tokens[j] if in_second else tokens[i])
                lower = text.lower()
                # The word similarity of the sentence that holds the span, as for `span_cover`.
                features = {"cover": cover, "span_cover": span_cover,
                            "words": words[j] if in_second else words[i] if span is not None else max(words[i], words[j]),
                            "head": float(question.head is not None and question.head in lower),
                            "type": type_score, "near": near,
                            "typed_near": type_score * near, "apposition": float(bonus > 0), "pair": float(i != j),
                            "lead": float(start == hit.citation.start and position == 1 and not unretrieved),
                            **common}
                candidates.append(Candidate(hit, start, end, text, features, _fuller_name(span, found),
                                            sentences=tuple(texts[i:j + 1])))

    def _wordpieces(self, hit: Hit, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """The passage's content wordpiece vectors and the index in `spans` (its sentences, article
        offsets) of the sentence each falls in; a retrieved passage's come from the search's cache."""
        if hit.chunk_id >= 0:
            return self.searcher.sentences.wordpieces(hit)
        vectors, offsets = self.searcher.embedder.wordpiece_vectors(hit.text)
        ends = np.array([e - hit.citation.start for _, e in spans], dtype=np.int64)
        which = np.searchsorted(ends, offsets, side="right")
        inside = which < len(spans)
        return vectors[inside], which[inside]

    def _embed(self, considered: Considered, candidates: list[Candidate]) -> None:
        """Set the `cosine` feature of `candidates` (one batch for their distinct sentences; a pair's
        vector is the normalised sum of its two)."""
        todo = [c for c in candidates if "cosine" not in c.features]
        texts = list(dict.fromkeys(t for c in todo for t in c.sentences))
        if not texts:
            return
        vectors = dict(zip(texts, self.searcher.embedder.encode(texts)))
        for c in todo:
            total = sum(vectors[t] for t in c.sentences)
            c.features["cosine"] = float(total @ considered.vector / (np.linalg.norm(total) or 1.0))

    # --- choice and confidence -----------------------------------------------------------

    def rank(self, considered: Considered) -> Candidate | None:
        """The best candidate (None if there is none) of `eligible(candidates)`: the prefilter's
        `weights.embedded` best are embedded and scored with the full weights; the rest keep their
        prefilter score. A best candidate whose short answer is a surname alone gives way to the best of its
        article that names the person in full (`_in_full`)."""
        if not considered.candidates:
            return None
        order = lambda c: (c.score, -c.hit.rank, -c.start)  # noqa: E731
        pre = self.weights.prefilter
        for c in considered.candidates:
            c.score = sum(w * c.features[name] for name, w in pre.items())
        pool = eligible(considered.candidates)
        if self.weights.embedded <= 0:
            considered.shortlist = considered.candidates
            return _in_full(max(pool, key=order), pool, order)
        shortlist = sorted(pool, key=order, reverse=True)[:self.weights.embedded]
        self._embed(considered, shortlist)
        considered.shortlist = shortlist
        w = self.weights.candidate
        for c in shortlist:
            c.score = sum(w[name] * c.features[name] for name in CANDIDATE_FEATURES)
        return max(shortlist, key=order)

    def confidence_features(self, considered: Considered, best: Candidate | None) -> dict[str, float]:
        """The features of the confidence model for the chosen candidate."""
        if best is None:
            return dict.fromkeys(CONFIDENCE_FEATURES, 0.0)
        others = [c.score for c in considered.shortlist
                  if c.hit.citation.article_id != best.hit.citation.article_id]
        return {"dense": considered.signals.get("dense", 0.0), "coverage": considered.signals.get("coverage", 0.0),
                "best": best.score, "type": best.features["type"], "year_miss": best.features["year_miss"],
                "entity_miss": best.features["entity_miss"],
                "margin": best.score - max(others) if others else 1.0}

    def confidence(self, considered: Considered, best: Candidate | None) -> float:
        """Calibrated probability that `best` answers the question."""
        if best is None:
            return 0.0
        if best.features["year_miss"]:
            # A veto, not a weight: on every fitting question a year that the chosen article does not
            # carry meant a question the archive cannot answer (perfect separation, where the fitted
            # logistic weight only stops growing because of its L2 penalty).
            return 0.0
        w = self.weights.confidence
        x = self.confidence_features(considered, best)
        z = w["bias"] + sum(w[name] * x[name] for name in CONFIDENCE_FEATURES)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def _answer(self, best: Candidate) -> Answer:
        article = self.searcher.index.article(best.hit.citation.article_id)
        citation = span_citation(article, best.start, best.end)
        span = None
        if best.span is not None:
            start = best.start + best.span.start
            span = ShortAnswer(article.text[start:start + len(best.span.text)], start,
                               start + len(best.span.text), best.span.kind)
        return Answer(text=article.text[best.start:best.end], citation=citation, span=span)


def _in_full(best: Candidate, pool: list[Candidate], order) -> Candidate:
    """`best`, or when its short answer is a surname alone ("Mr Varley declined ..."), the best candidate of the
    same article whose short answer is the full name ("Barclays' chief John Varley said ...")."""
    span = best.span
    if span is None or span.kind not in ("person", "name") or " " in span.text:
        return best
    fuller = [c for c in pool if c.span is not None and c.span.kind == "person"
              and c.span.text.endswith(" " + span.text) and c.hit.citation.article_id == best.hit.citation.article_id]
    return max(fuller, key=order) if fuller else best


def eligible(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates the answer is chosen from: those holding a span of a kind the question accepts,
    if any does, else all; and when some hold one of a kind that fits well (`STRONG_FIT`: the kind
    asked for, a name of unsure kind), only those. A candidate without one only restates the question;
    the linear score alone let a lead that repeats every word of the question beat the sentence that
    answers it, and a count ("10 nominations") beat the age asked for ("West, 26,")."""
    typed = [c for c in candidates if c.features["type"] > 0]
    if not typed:
        return candidates
    floor = min(STRONG_FIT, max(c.features["type"] for c in typed))
    return [c for c in typed if c.features["type"] >= floor]


def _unretrieved(hits: list[Hit], articles: dict, count: int, skip: int = 0) -> list[tuple[int, Hit]]:
    """For the first `count` articles of `hits` but the first `skip`, each stretch of the article's text that
    none of `hits` holds, as a pseudo-passage: (the position of the article's best hit, a `Hit` copy of that
    hit with the stretch's text and offsets)."""
    found = []
    seen: list[str] = []
    for position, hit in enumerate(hits, start=1):
        article_id = hit.citation.article_id
        if article_id in seen or article_id not in articles:
            continue
        seen.append(article_id)
        if len(seen) > count:
            break
        if len(seen) <= skip:
            continue
        text = articles[article_id].text
        held = sorted((h.citation.start, h.citation.end) for h in hits if h.citation.article_id == article_id)
        at = 0
        for start, end in held + [(len(text), len(text))]:
            stretch = text[at:start]
            # Trim to whole content: the stretch starts after leading blank space.
            lead = len(stretch) - len(stretch.lstrip())
            if stretch.strip():
                s0, s1 = at + lead, at + len(stretch.rstrip())
                found.append((position, replace(hit, text=text[s0:s1], chunk_id=-1, highlights=(),
                                                 citation=replace(hit.citation, start=s0, end=s1))))
            at = max(at, end)
    return found


def _default_weights() -> AnswerWeights:
    return AnswerWeights.load(WEIGHTS_FILE)


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").lower().split())


# The words the index's tokenizer stems (`indexer.store.bm25.tokenize`).
_TERM = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True)
class _Typed:
    """A sentence's answer spans for one question (accepted kind, not already in the question) with
    their fit, and where the question's focus words occur; offsets relative to the sentence."""

    spans: tuple[tuple[TypedSpan, float, float], ...]  # (span, type fit, bonus)
    focus_at: tuple[tuple[int, str, float], ...]  # (offset, stemmed question term, its idf)

    def shifted(self, shift: int) -> "_Typed":
        return _Typed(tuple((TypedSpan(t.kind, t.start + shift, t.end + shift, t.text), f, b)
                            for t, f, b in self.spans),
                      tuple((at + shift, term, w) for at, term, w in self.focus_at))

    def __add__(self, other: "_Typed") -> "_Typed":
        return _Typed(self.spans + other.spans, self.focus_at + other.focus_at)


def _typed(question: Question, text: str, asked: str, asked_words: set[str], focus: dict[str, float],
           published: str | None = None, common: frozenset[str] = frozenset()) -> _Typed:
    """`focus`: the question's stemmed terms with their idf weights; `published`: the article's date
    (YYYY-MM-DD), if known; `common`: the words the article writes in lower case (`lower_words`)."""
    kept = []
    lower = text.lower()
    counted = stem(question.counted) if question.counted else None
    spans = typed_spans(text, common)
    ends = {(t.kind, t.end) for t in spans}
    asks_source = bool(_ASKS_SOURCE.search(question.text))
    for span in spans:
        fit = question.accepts(span.kind)
        if fit <= 0 or not _is_new(span, asked, asked_words):
            continue
        if question.head in _COMPANY_HEADS and span.kind in _NAMES and _PUBLIC_BODY.search(span.text):
            continue  # "Which company signed ...": a ministry or a department is no company
        bonus = 0.0
        if span.kind == "date" and question.date_unit and not _HAS_UNIT[question.date_unit].search(span.text):
            fit *= _NOT_THE_FACILITY  # "In what month ...": "2005" names none; "In what year ...": "February" none
        if span.kind == "date" and question.tense and published:
            # "When will the next congress be held?": a date before the article's is over, one after it is
            # what is planned ("agreed to hold the next in 2028"); the reverse for "When did ...".
            when = _date_range(span.text)
            if when and (when[1] < published if question.tense == "future" else when[0] > published):
                continue
            if when and (when[0] > published if question.tense == "future" else when[1] < published):
                bonus = _TENSE_BONUS
        if span.kind == "quantity" and question.measures and question.answer_type == "quantity":
            measure = unit_measure(span.text)
            if measure in question.measures:
                bonus = _APPOSITION  # "How big was the electricity deficit?": "2.4 billion kWh"
            elif measure is not None:
                fit *= _OTHER_MEASURE  # ... not "1.5 billion cubic metres" of water
        if question.head and span.kind in _NAMES and question.head in lower[max(0, span.start - 20):span.end + 20] \
                and not _OWNER.match(text, span.end) \
                and not (question.answer_type == "person" and question.head in span.text.lower()):
            # ("Ivo Brandt's film" is his film, he is no film; "I'm A Celebrity" is no celebrity.)
            fit = 1.0  # "Which river ..." and "the Ili River": the name of the kind asked for
            # In apposition to the noun asked for ("Gartner analyst Carolina Milanesi", "Solidere, the
            # company"): the strongest sign that this name is the one asked for.
            # The noun in lower case: "River" in "the Ili River enabled the Kapchagay Reservoir" belongs to
            # another name.
            # A capitalised noun only as a title right before the name ("Energy Minister Taalaibek Ibraev").
            before = text[max(0, span.start - 25):span.start]
            if re.search(rf"\b{re.escape(question.head)}s?\b", before) or \
                    re.search(rf"\b{re.escape(question.head)}[^\S\n]+$", before, re.IGNORECASE) or \
                    re.match(rf"[^\S\n]*[,(–—-]\W{{0,2}}(?:the\s+|a\s+|an\s+)?(?:\w+\s+)?{re.escape(question.head)}\b",
                             text[span.end:span.end + 30]):
                # (After the name, only set off by a comma or a bracket: "Oliver Stone's film" is his, not him,
                # and "a Home Office minister" is no office.)
                bonus = _APPOSITION
        if question.head and span.kind in _NAMES and re.match(
                rf",[^\S\n]+(?:(?:the|a|an|his|her|its|their)[^\S\n]+)?(?:[\w'’-]+[^\S\n]+){{0,3}}"
                rf"{re.escape(question.head)}\b", text[span.end:span.end + 60], re.IGNORECASE):
            # An appositive after the name: "Mr Yeo, his transport and environment spokesman".
            fit, bonus = 1.0, max(bonus, _APPOSITION)
        if question.answer_type == "person" and question.head and span.kind in ("person", "name"):
            # "Which senior police officer ...": "Metropolitan Police Commissioner Sir Ian Blair", a title
            # that shares the question's words (only when a kind of person is asked for: "Who scored
            # Arsenal's goal?" does not ask for "Arsenal manager Arsene Wenger").
            titled = _TITLED.search(text[max(0, span.start - 50):span.start])
            if titled and set(_ASKED_WORD.findall(titled.group(1).lower())) & set(question.focus):
                bonus = max(bonus, _APPOSITION)
        if question.head and span.kind in _NAMES and " " in span.text and (
                re.search(rf"\b{re.escape(question.head)}s?$", span.text, re.IGNORECASE)
                and question.answer_type != "person"
                or re.match(rf"{re.escape(question.head)}\b", span.text, re.IGNORECASE)):
            # "Which river ...": "the Ili River" is a river by its own name; "Which pope ...": "Pope Francis"
            # by the title it starts with. A person is not named after the kind of person asked for: "I'm A
            # Celebrity" is a show.
            bonus = _APPOSITION
        if question.relation and question.answer_type in ("person", "organisation", "work") and span.kind in _NAMES \
                and any(stem(w.lower()) in question.relation
                        for w in _ASKED_WORD.findall(text[max(0, span.start - 25):span.start])[-3:]):
            # "Who will Taylor Dent meet?": "Dent will meet Swede Joachim Johansson" - the name right after a
            # word of the question that is no name (the relation asked about) is its object.
            bonus = max(bonus, _LOCATIVE_BONUS)
        if question.answer_type == "person" and span.kind in ("person", "name"):
            owned = _OWNS.match(text, span.end)
            if owned and any(stem(w.lower()) in focus for w in owned.group(1).split()):
                # "Who scored Arsenal's late goal?": "Kolo Toure's late goal" - whose the thing asked about is.
                bonus = max(bonus, _LOCATIVE_BONUS)
        if question.answer_type == "organisation" and span.kind in _NAMES and \
                LOCATED_BEFORE.search(text[max(0, span.start - 40):span.start]):
            # "Which US manufacturer ...": "Pennsylvania-based Wabtec", a company introduced by where it sits.
            bonus = max(bonus, _APPOSITION)
        if question.answer_type == "place" and span.kind in ("place", "name") and \
                _LOCATIVE.search(_POSSESSOR.sub("", text[max(0, span.start - 40):span.start])) and \
                not _POSSESSED.match(text, span.end):
            # "Where did they meet?": "met in the town of Cholpon-Ata"; "at London's Earls Court": the place
            # the possessive belongs to is no answer, what it owns is.
            bonus = max(bonus, _LOCATIVE_BONUS)
        if question.answer_type != "place" and span.kind in ("place", "name") and _ATTRIBUTIVE.match(text, span.end) \
                or question.answer_type not in ("place", "organisation") and span.kind in _NAMES \
                and _TITLE_AFTER.match(text, span.end):
            # "the London side from Northampton", "US magazine Mobile PC": a place before the noun for an
            # organisation says where that organisation is, it is not its name (nor anything but a place);
            # "Tory leader Michael Howard", "a Home Office minister": a name before a person's title says
            # whose, it is no person (nor a work).
            fit *= _NOT_THE_FACILITY
        if question.head in _FACILITIES and span.kind in _NAMES and question.head not in span.text.lower():
            fit *= _NOT_THE_FACILITY  # "Which theatre ...": "Prince Edward Theatre", not "London"
        if question.head in _SETTLEMENTS and span.kind in ("place", "name") and (
                span.text in _COUNTRY_ABBREVIATIONS or any(same_nation(n, span.text.lower()) for n in NATIONALITIES)):
            fit *= _NOT_THE_FACILITY  # "Which Scottish city ...": "Glasgow", not "the UK" or "Scotland"
        if question.nations and span.kind in _NAMES:
            # "Which Turkish firm ...": "Turkey's Everasia", not "Irish oil company Petrel Resources".
            near = [bare(w) for w in re.split(r"[^\w'’-]+", text[max(0, span.start - 30):span.end].split(",")[-1])]
            if any(same_nation(n, w) for n in question.nations for w in near):
                bonus = max(bonus, _LOCATIVE_BONUS)
            elif any(w in NATIONALITIES for w in near):
                bonus -= _ATTRIBUTION_PENALTY
        if counted and span.kind in _COUNTS and counted in {stem(w) for w in _TERM.findall(
                lower[span.start:span.end + 25])[:span.text.count(" ") + 4]}:
            bonus = _APPOSITION  # "How many countries ...": "60 countries", not "two days"
        if _CONVERSION.search(text[max(0, span.start - 2):span.start]) and (
                span.kind == "money" or any((span.kind, e) in ends for e in range(span.start - 3, span.start))):
            # "£280.2m ($532m)", "United Parcel Services (UPS)": the bracketed span restates the one before.
            bonus -= _CONVERSION_PENALTY
        if span.kind in _NAMES and not asks_source and (
                _ATTRIBUTION_BEFORE.search(text[max(0, span.start - 20):span.start])
                or _ATTRIBUTION_AFTER.match(text, span.end)):
            # "..., according to the Financial Times", "she told the BBC": the news source, not the answer,
            # unless the question asks who said or reported it.
            bonus -= _ATTRIBUTION_PENALTY
        kept.append((span, fit, bonus))
    focus_at = tuple((m.start(), term, focus[term]) for m in _TERM.finditer(text.lower())
                     if (term := stem(m.group(0))) in focus)
    return _Typed(tuple(kept), focus_at)


# Span choice: a name in apposition to the question's head noun (or a count of the noun a "how many"
# question counts) gets this bonus; a bracketed amount
# after another one (a currency conversion) this penalty (on the 0..1 scale of type fit × nearness).
_APPOSITION = 0.5
_CONVERSION_PENALTY = 0.3
_CONVERSION = re.compile(r"[(;]\s?$")
# A name that a sentence cites as its source ("according to the Financial Times", "told the BBC", "the
# Times reported") answers a question only when the question asks about the source.
_ATTRIBUTION_BEFORE = re.compile(r"\b(?:according\s+to|told|quoted\s+by|reported\s+by|interview\s+with)\s+"
                                 r"(?:the\s+)?$", re.IGNORECASE)
_ATTRIBUTION_AFTER = re.compile(r"[^\S\n]+(?:has\s+|had\s+)?(?:reported|reports|quoted)\b")
_ASKS_SOURCE = re.compile(r"\b(?:report|reported|reports|told|according|quoted?|source|"
                          r"newspaper|paper|magazine|broadcaster|channel|interview)\b", re.IGNORECASE)
_ATTRIBUTION_PENALTY = 0.3
# A place after a locative preposition answers "where" more likely than a place named as a modifier.
_LOCATIVE = re.compile(r"(?<!from )\b(?:in|at|near|outside|inside)\s+(?:the\s+(?:\w+\s+of\s+)?)?$")
_LOCATIVE_BONUS = 0.25
# Up to three words, then a title, right before a name ("Metropolitan Police Commissioner Sir Ian Blair").
_TITLED = re.compile(r"((?:[\w'’-]+[^\S\n]+){1,3})" + TITLE_INSIDE.pattern + r"(?:(?:Sir|Dr|Dame|Lord|Lady)[^\S\n]+)?$",
                     re.IGNORECASE)
# A possessor right before a span ("London's Earls Court"), and one right after it.
_POSSESSOR = re.compile(r"[A-Z][\w-]*(?:[^\S\n]+[A-Z][\w-]*)*['’]s[^\S\n]+$")
_POSSESSED = re.compile(r"['’]s[^\S\n]+[A-Z]")
_OWNER = re.compile(r"['’]s?[^\S\n]")
# What a possessive right after a name owns: its next three words ("Kolo Toure's late goal").
_OWNS = re.compile(r"['’]s[^\S\n]+((?:[\w-]+[^\S\n]+){0,2}[\w-]+)")
# Head nouns of places whose names carry them ("Prince Edward Theatre", "Ili River"): a name without the
# noun keeps this share of its fit, below `STRONG_FIT`.
_FACILITIES = {"theatre", "theater", "stadium", "arena", "hotel", "hospital", "prison", "airport", "hall", "street",
               "river", "lake", "reservoir", "dam", "bridge", "court", "palace", "centre", "center"}
_NOT_THE_FACILITY = 0.35
# A lower-case noun for an organisation right after a place's name ("the London side", "a Tarnside firm").
_ATTRIBUTIVE = re.compile(rf"[^\S\n]+{ORG_NOUNS}\b")
# A lower-case title right after a name ("Tory leader", "Barclays chief"): nouns that are seldom verbs.
_TITLE_AFTER = re.compile(r"[^\S\n]+(?:leader|chief|boss|manager|minister|secretary|spokesman|spokeswoman|analyst|"
                          r"economist|executive|chairman|chairwoman|president|director|striker|midfielder|defender|"
                          r"goalkeeper|keeper|player|actor|actress|singer|rapper|presenter|editor|founder|owner|"
                          r"official|chancellor|MP|MEP)s?\b")
# Heads that ask for a town, which a country's name does not answer.
_SETTLEMENTS = {"city", "town", "village", "capital"}
_COUNTRY_ABBREVIATIONS = {"UK", "US", "USA", "UAE", "EU", "U.S", "U.K"}
# A date on the side of the article's date that the question's tense asks for ("When will ..." and a
# later year) gets this bonus.
_TENSE_BONUS = 0.25
# A quantity whose unit measures something other than what the question names keeps this share of its fit.
_OTHER_MEASURE = 0.4
# Heads that ask for a company, and the words that make a name a public body instead.
_COMPANY_HEADS = {"company", "firm", "business", "manufacturer", "maker", "carmaker", "retailer", "supplier",
                  "airline", "carrier", "insurer", "operator", "conglomerate", "giant", "chain", "supermarket",
                  "developer", "publisher", "bidder", "buyer", "brand"}
_PUBLIC_BODY = re.compile(r"\b(?:Ministry|Department|Government|Council|Commission|Parliament|Congress|Police|"
                          r"Court)\b")
_MONTH_NUMBER = {m.lower()[:3]: f"{i:02d}" for i, m in enumerate(MONTHS, start=1)}
# What a date span must hold to answer a question about its year, month or day.
_HAS_UNIT = {"year": re.compile(r"\b(?:1[5-9]|20)\d{2}s?\b"),
             "month": re.compile(r"\b(?:" + "|".join(m[:3] for m in MONTHS) + r")"),
             "day": re.compile(r"\b\d{1,2}(?:st|nd|rd|th)?\b(?!\d)(?:(?!\b(?:1[5-9]|20)\d{2}\b).)*\b(?:"
                               + "|".join(m[:3] for m in MONTHS) + r")|\b(?:" + "|".join(m[:3] for m in MONTHS)
                               + r")[a-z]*\.?\s\d{1,2}\b")}
# Character distance at which a focus word counts half as near as one next to the span.
_NEAR_CHARS = 30.0


def _best_span(typed: _Typed) -> tuple[TypedSpan | None, float, float, float]:
    """The span that best answers the question: (span, type score (its fit less any penalty), nearness to the
    focus words, bonus).

    Nearness is the idf-weighted share of the question's terms that occur near the span (each term
    counts 1/(1 + distance/30 chars) at its nearest occurrence outside the span), so a span among
    several of the question's words beats one beside a single word."""
    best, best_key, best_fit, best_near, best_bonus = None, (-1.0, 0.0), 0.0, 0.0, 0.0
    weights = {term: w for _, term, w in typed.focus_at}
    total = sum(weights.values())
    for span, fit, bonus in typed.spans:
        nearest: dict[str, float] = {}
        for at, term, _ in typed.focus_at:
            if span.start <= at < span.end:
                continue
            distance = min(abs(span.start - at), abs(span.end - at))
            nearest[term] = max(nearest.get(term, 0.0), 1.0 / (1.0 + distance / _NEAR_CHARS))
        near = sum(p * weights[t] for t, p in nearest.items()) / total if total else 0.0
        # Longer spans of the same kind and fit carry the unit or the full name: prefer them.
        key = (fit * (0.5 + 0.5 * near) + bonus, len(span.text))
        if key > best_key:
            best, best_key, best_fit, best_near, best_bonus = span, key, fit, near, bonus
    # A penalised span (a bracketed restatement, a cited source) fits the question less: so does the
    # candidate whose best span it is.
    return best, max(0.0, best_fit + min(best_bonus, 0.0)), best_near, best_bonus


def _date_range(text: str) -> tuple[str, str] | None:
    """The first and last day (YYYY-MM-DD) a date span with a year can mean ("2028": 2028-01-01..2028-12-31,
    "September 17-18, 2025": 2025-09-17..2025-09-18), or None without a year."""
    year = re.search(r"\b(?:1[5-9]|20)\d{2}\b", text)
    if not year:
        return None
    month = re.search(r"\b(" + "|".join(_MONTH_NUMBER) + r")[a-z]*\.?", text, re.IGNORECASE)
    if not month:
        return f"{year.group(0)}-01-01", f"{year.group(0)}-12-31"
    at = f"{year.group(0)}-{_MONTH_NUMBER[month.group(1).lower()]}"
    days = [int(d) for d in re.findall(r"\b(\d{1,2})(?:st|nd|rd|th)?\b", text[:year.start()] + text[year.end():])
            if 1 <= int(d) <= 31]
    return (f"{at}-{min(days):02d}", f"{at}-{max(days):02d}") if days else (f"{at}-01", f"{at}-31")


def _fuller_name(span: TypedSpan | None, typed: _Typed) -> TypedSpan | None:
    """The short answer for `span`: the nearest person's name of the candidate that ends with it ("Mr Yeo"
    near the question's words, "Tim Yeo" earlier: the full name), else `span` itself."""
    if span is None or span.kind != "person":
        return span
    fuller = [t for t, _, _ in typed.spans if t.kind == "person" and t.text.endswith(" " + span.text)]
    return min(fuller, key=lambda t: abs(t.start - span.start)) if fuller else span


_NAMES = ("person", "organisation", "place", "work", "name")
_COUNTS = ("number", "quantity", "duration")
_ASKED_WORD = re.compile(r"[\w'-]+")


def _is_new(span: TypedSpan, asked: str, asked_words: set[str]) -> bool:
    """Whether the span says something the question does not already say."""
    phrase = _norm(span.text)
    if phrase in asked:
        return False
    if span.kind in _NAMES:
        # A possessive run says what its last part says: "France's Suez" is news only if "Suez" is.
        phrase = re.split(r"'s\s+", phrase)[-1]
        words = [w.removesuffix("'s") for w in _ASKED_WORD.findall(phrase) if len(w) > 2]
        # New when most of its words are new: "Kazakhstan's Ministry of Water" is not news to a
        # question about Kazakhstan's water, "Taalaibek Ibraev" is; nor is a word that only adds an ending to
        # an asked one ("Gibraltarians" to a question about Gibraltar).
        # The parts of a hyphenated question word are asked too ("Suez-owned").
        asked_parts = asked_words | {p for a in asked_words if "-" in a for p in a.split("-")}
        old = [w in asked_parts or any(len(a) >= 5 and w.startswith(a) for a in asked_parts) for w in words]
        return not words or sum(not o for o in old) * 2 >= len(words)
    return True


def _constraint_misses(question: Question, title: str, text: str) -> tuple[float, float]:
    """(1 if a year the question names is absent from the article, share of its names absent)."""
    haystack = f"{title}\n{text}"
    year_miss = float(any(year not in haystack for year in question.years))
    if not question.entities:
        return year_miss, 0.0
    lower = _norm(_undot(haystack))
    # Whole words: "US" is not found in "because".
    absent = sum(1 for e in question.entities
                 if not re.search(rf"(?<!\w){re.escape(_norm(_undot(e)).removesuffix(chr(39) + 's'))}(?!\w)", lower))
    return year_miss, absent / len(question.entities)


_DOTTED = re.compile(r"\b(?:[A-Z]\.){2,}")


def lower_words(text: str) -> frozenset[str]:
    """The words `text` writes in lower case: one of them that opens a sentence capitalised is no name."""
    return frozenset(LOWER_WORD.findall(text))


def _undot(text: str) -> str:
    """`text` with dotted abbreviations written without dots ("U.S." as "US"), as a question may write them."""
    return _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)


def _miss_note(best: Candidate | None) -> str:
    if best is None:
        return ""
    notes = []
    if best.features["year_miss"]:
        notes.append("the best article does not mention the year asked about")
    if best.features["entity_miss"]:
        notes.append("the best article does not name everyone or everything asked about")
    return f" ({'; '.join(notes)})" if notes else ""
