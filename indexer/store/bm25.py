"""BM25 over passages (Lucene variant, English Snowball stemming), split into segments.

Each segment of an embedded index keeps its own `Postings`: per term the
passages (positions) and term frequencies, per passage its length. They are
raw counts, not scores, so `Lexical` scores a query with statistics summed over
every live segment (passage count, document frequency, average length): a
passage's score does not depend on how the index happens to be split, and a
deleted passage stops counting as soon as it is tombstoned. Saved as plain
files (NumPy arrays and JSON, no pickle).
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Anserini's BM25 settings, which score best on BEIR-style collections; a grid on the train splits
# (bench/tune_bm25.py, docs/performance.md) found no better global pair for SciFact and the news.
K1 = 0.9
B = 0.4


# bm25s's own token pattern (scikit-learn's): words of two or more characters.
_WORD = re.compile(r"(?u)\b\w\w+\b")


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def _thread_stemmers() -> threading.local:
    return threading.local()


@functools.lru_cache(maxsize=262_144)
def _stem(word: str) -> str:
    # PyStemmer objects must not be shared between threads: one per thread.
    local = _thread_stemmers()
    stemmer = getattr(local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = local.stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


def stem(word: str) -> str:
    """The Snowball English stem of a lower-case `word`, as `tokenize` stems it."""
    return _stem(word)


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens of each text.

    The same tokens as `bm25s.tokenize(texts, stopwords="en", stemmer=<Snowball
    English>)` (a test holds them equal), without its per-call set-up: that
    set-up cost ~3 ms per call, and a search tokenizes four times.
    """
    stop = _stopwords()
    return [[_stem(w) for w in _WORD.findall(text.lower()) if w not in stop] for text in texts]


POSTINGS_FORMAT = "newsqa-postings-1"


class Postings:
    """One segment's BM25 postings (immutable once written).

    `chunk_ids[p]` is the chunk id at position `p` (ascending); `doc_len[p]` its
    token count; the positions holding term `t` are `docs[indptr[t]:indptr[t+1]]`
    (ascending) with their term frequencies in `tfs`.
    """

    FILES = ("chunk_ids", "doc_len", "indptr", "docs", "tfs")

    def __init__(self, chunk_ids: np.ndarray, doc_len: np.ndarray, vocab: list[str], indptr: np.ndarray,
                 docs: np.ndarray, tfs: np.ndarray) -> None:
        self.chunk_ids = chunk_ids
        self.doc_len = doc_len
        self.terms = vocab
        self.vocab = {term: i for i, term in enumerate(vocab)}
        self.indptr = indptr
        self.docs = docs
        self.tfs = tfs

    @classmethod
    def build(cls, chunk_ids: Sequence[int], texts: Sequence[str]) -> "Postings":
        """Postings of `texts` (passages in ascending chunk-id order)."""
        tokens = tokenize(texts)
        vocab = sorted({t for doc in tokens for t in doc})
        ids = {t: i for i, t in enumerate(vocab)}
        doc_len = np.fromiter((len(doc) for doc in tokens), dtype=np.int32, count=len(tokens))
        flat = np.fromiter((ids[t] for doc in tokens for t in doc), dtype=np.int64, count=int(doc_len.sum()))
        owner = np.repeat(np.arange(len(tokens), dtype=np.int64), doc_len)
        # One key per (term, passage): sorted by term, then passage, with its count as the tf.
        keys, tfs = np.unique(flat * max(len(tokens), 1) + owner, return_counts=True)
        term = keys // max(len(tokens), 1)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(vocab)), out=indptr[1:])
        return cls(np.asarray(chunk_ids, dtype=np.int64), doc_len, vocab, indptr,
                   (keys % max(len(tokens), 1)).astype(np.int32), tfs.astype(np.int32))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in self.FILES:
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (directory / "vocab.json").write_text(json.dumps(self.terms, ensure_ascii=False))
        (directory / "postings.json").write_text(json.dumps({
            "format": POSTINGS_FORMAT, "passages": len(self.chunk_ids), "terms": len(self.terms),
            "total_length": int(self.doc_len.sum()),
        }) + "\n")

    @staticmethod
    def saved_in(directory: Path) -> bool:
        """True when `directory` holds postings (a segment written before them holds bm25s arrays)."""
        return (directory / "postings.json").is_file()

    @classmethod
    def load(cls, directory: Path) -> "Postings":
        params = json.loads((directory / "postings.json").read_text())
        if params.get("format") != POSTINGS_FORMAT:
            raise ValueError(f"{directory}: postings format {params.get('format')!r}, expected {POSTINGS_FORMAT!r}")
        arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in cls.FILES}
        vocab = json.loads((directory / "vocab.json").read_text())
        return cls(arrays["chunk_ids"], arrays["doc_len"], vocab, arrays["indptr"], arrays["docs"], arrays["tfs"])

    def term(self, token: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions, term frequencies) of `token`, or None when no passage of the segment has it."""
        tid = self.vocab.get(token)
        if tid is None:
            return None
        start, stop = self.indptr[tid], self.indptr[tid + 1]
        return self.docs[start:stop], self.tfs[start:stop]

    def positions(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of `chunk_ids` this segment holds, as a mask; their positions)."""
        pos = np.searchsorted(self.chunk_ids, chunk_ids)
        pos = np.minimum(pos, max(len(self.chunk_ids) - 1, 0))
        found = (self.chunk_ids[pos] == chunk_ids) if len(self.chunk_ids) else np.zeros(len(chunk_ids), dtype=bool)
        return found, pos


class Lexical:
    """BM25 over several segments' postings with global statistics.

    `parts` pairs each segment's postings with its live mask (False at a
    tombstoned position; None when none is). N, each term's document frequency
    and the average length are sums over live passages of every part, so the
    scores equal those of one index holding only the live passages.
    """

    def __init__(self, parts: Sequence[tuple[Postings, np.ndarray | None]]) -> None:
        self.parts = list(parts)
        self.n = sum(len(p.chunk_ids) if live is None else int(live.sum()) for p, live in self.parts)
        total = sum(int(p.doc_len.sum()) if live is None else int(p.doc_len[live].sum()) for p, live in self.parts)
        self.avg_len = total / self.n if self.n else 1.0

    def _df(self, token: str) -> int:
        df = 0
        for postings, live in self.parts:
            found = postings.term(token)
            if found is not None:
                df += len(found[0]) if live is None else int(np.count_nonzero(live[found[0]]))
        return df

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene BM25 idf of each stemmed token; tokens in no live passage get the largest idf."""
        n = self.n
        ceiling = float(np.log(1 + (n + 0.5) / 0.5)) if n else 1.0
        weights = {}
        for token in tokens:
            df = self._df(token) if n else 0
            weights[token] = float(np.log(1 + (n - df + 0.5) / (df + 0.5))) if df else ceiling
        return weights

    def query_scores(self, query: str) -> list[np.ndarray] | None:
        """BM25 scores of every passage of every part (by position) for `query`; None if no query term
        is in a live passage. A query term counts as often as it occurs in the query."""
        if not self.n:
            return None
        counts = Counter(tokenize([query])[0])
        weights = {t: c * w for t, c in counts.items() if (w := self._live_idf(t)) is not None}
        if not weights:
            return None
        scores = []
        for postings, live in self.parts:
            part = np.zeros(len(postings.chunk_ids), dtype=np.float64)
            for token, weight in weights.items():
                found = postings.term(token)
                if found is None:
                    continue
                docs, tfs = found
                tf = tfs.astype(np.float64)
                norm = K1 * (1 - B + B * postings.doc_len[docs] / self.avg_len)
                part[docs] += weight * tf / (tf + norm)
            if live is not None:
                part[~live] = 0.0
            scores.append(part)
        return scores

    def _live_idf(self, token: str) -> float | None:
        df = self._df(token)
        return float(np.log(1 + (self.n - df + 0.5) / (df + 0.5))) if df else None

    def scores_for(self, chunk_ids: Sequence[int], scores: list[np.ndarray] | None) -> dict[int, float]:
        """The exact BM25 score of each chunk id in `scores` (from `query_scores`); 0.0 when no term matched."""
        result = {int(c): 0.0 for c in chunk_ids}
        if scores is None or not result:
            return result
        ids = np.fromiter(result, dtype=np.int64, count=len(result))
        for (postings, _), part in zip(self.parts, scores):
            found, pos = postings.positions(ids)
            for cid, p in zip(ids[found], pos[found]):
                result[int(cid)] = float(part[p])
        return result

    def search(self, query: str, k: int, allowed: np.ndarray | None = None, *,
               scores: list[np.ndarray] | None = None) -> list[tuple[int, float]]:
        """Top `k` passages by BM25 over every part; `allowed` (chunk ids) restricts them before ranking.

        `scores` may pass in `query_scores(query)`. Ties go to the lower chunk id, as in one index.
        """
        if k <= 0:
            return []
        if scores is None:
            scores = self.query_scores(query)
        if scores is None:
            return []
        ids_parts, score_parts = [], []
        for (postings, _), part in zip(self.parts, scores):
            if allowed is not None:
                found, pos = postings.positions(np.asarray(allowed, dtype=np.int64))
                mask = np.zeros(len(part), dtype=bool)
                mask[pos[found]] = True
                part = np.where(mask, part, 0.0)
            candidates = np.flatnonzero(part > 0)
            if len(candidates) > k:
                candidates = candidates[np.argpartition(-part[candidates], k - 1)[:k]]
            ids_parts.append(postings.chunk_ids[candidates])
            score_parts.append(part[candidates])
        if not ids_parts:
            return []
        ids = np.concatenate(ids_parts)
        values = np.concatenate(score_parts)
        order = np.lexsort((ids, -values))[:k]
        return [(int(ids[i]), float(values[i])) for i in order]
