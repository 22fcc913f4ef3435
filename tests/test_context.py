"""Token-budgeted context (indexer/query/context.py): budget, exact counts, whole sentences, citations, merging.

Hits come from the real searcher over the shipped news (real model, real
FAISS and BM25); a second corpus of real text (SciFact abstracts, read from
the shared datasets folder) is large enough to overflow the biggest budget.
"""

from __future__ import annotations

import json
import re

import pytest

from indexer.query.context import (
    BLOCK_SEPARATOR,
    MAX_MAX_TOKENS,
    MIN_MAX_TOKENS,
    block_header,
    collapse_space,
    pack_context,
    validate_encoding,
    validate_max_tokens,
)
from indexer.ingest.documents import make_article
from indexer.errors import InvalidParameter
from indexer.sentences import split_sentences
from indexer.tokens import ENCODINGS, get_encoding
from indexer.types import Citation, Hit

from helpers import SCIFACT, TOKTOGUL

BUDGETS = [50, 51, 64, 80, 100, 128, 150, 200, 256, 333, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6000,
           7000, 8000]
QUERIES = ["Toktogul water levels", "locomotive deal", "Kazakhstan energy investment", "religious leaders"]

def tiktoken_count(text: str, encoding: str) -> int:
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def sentence_bounds(article) -> tuple[set[int], set[int]]:
    """Starts and ends of the article's sentences, split paragraph by paragraph with split_sentences."""
    starts, ends = set(), set()
    for p_start, p_end in article.paragraphs or ((0, len(article.text)),):
        for s, e in split_sentences(article.text, p_start, p_end):
            starts.add(s)
            ends.add(e)
    return starts, ends


def paragraph_starts(article) -> set[int]:
    """Offsets where the first sentence of each paragraph starts."""
    paragraphs = article.paragraphs or ((0, len(article.text)),)
    return {split_sentences(article.text, *p)[0][0] for p in paragraphs if split_sentences(article.text, *p)}


def check_packed(packed, articles: dict, encoding: str, budget: int) -> None:
    """Every property the context promises, checked from the outside."""
    # Never over budget; `tokens` is tiktoken's exact count of the text.
    assert packed.tokens == tiktoken_count(packed.text, encoding)
    assert packed.tokens <= budget
    blocks = packed.text.split(BLOCK_SEPARATOR) if packed.text else []
    # Citation numbers in the text are the citations list, in order 1..N.
    assert [int(n) for n in re.findall(r"^\[(\d+)\] ", packed.text, flags=re.M)] == [b.n for b in packed.blocks]
    assert [b.n for b in packed.blocks] == list(range(1, len(packed.blocks) + 1))
    assert len(blocks) == len(packed.blocks)
    seen: dict[str, list[tuple[int, int]]] = {}
    for text, block in zip(blocks, packed.blocks):
        c = block.citation
        article = articles[c.article_id]
        header = block_header(block.n, article.title, article.date, block.gap)
        assert text.startswith(header) and text == header + block.text
        # A block that starts inside a paragraph says so ("…"); one that opens a paragraph does not.
        assert block.gap == (c.start not in paragraph_starts(article)), (c.start, block.gap)
        assert block.gap == text.startswith(block_header(block.n, article.title, article.date) + "… ")
        assert (c.title, c.date, c.url, c.source) == (article.title, article.date, article.url, article.source)
        # No sentence is cut: the block is a run of whole sentences of the article.
        starts, ends = sentence_bounds(article)
        assert c.start in starts and c.end in ends, (c.start, c.end)
        assert block.text == collapse_space(article.text[c.start:c.end])
        seen.setdefault(c.article_id, []).append((c.start, c.end))
    # Adjacent or overlapping passages of one article were merged, not repeated:
    # two blocks of one article have at least one whole sentence between them.
    for article_id, spans in seen.items():
        starts, _ = sentence_bounds(articles[article_id])
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert any(end < s < start for s in starts), (article_id, spans)


@pytest.fixture(scope="module")
def news_hits(searcher):
    return {q: searcher.search(q, k=100, mode="hybrid").hits for q in QUERIES}


@pytest.fixture(scope="module")
def news_articles(news_index):
    return {row["article_id"]: news_index.article(row["article_id"]) for row in news_index.list_articles(limit=1000)}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_news_context_fits_every_budget_with_exact_counts(news_hits, news_index, news_articles, encoding):
    for query, hits in news_hits.items():
        for budget in BUDGETS:
            packed = pack_context(hits, news_index, budget, encoding)
            check_packed(packed, news_articles, encoding, budget)
            assert packed.max_tokens == budget and packed.encoding == encoding
            assert packed.blocks, (query, budget)  # even 50 tokens hold a block of this corpus
            if not packed.truncated:  # then every passage found is in the context
                for hit in hits:
                    assert any(b.citation.article_id == hit.citation.article_id
                               and b.citation.start <= hit.citation.start and hit.citation.end <= b.citation.end
                               for b in packed.blocks), (query, budget, hit.rank)
        # The whole corpus is ~4,000 tokens: the smallest budget truncates, the largest holds everything.
        assert pack_context(hits, news_index, MIN_MAX_TOKENS, encoding).truncated
        assert not pack_context(hits, news_index, MAX_MAX_TOKENS, encoding).truncated


def test_top_hit_comes_first_and_passages_of_one_article_merge(news_hits, news_index, news_articles):
    hits = news_hits["Toktogul water levels"]
    packed = pack_context(hits, news_index, 2000)
    first = packed.blocks[0]
    assert first.citation.title == TOKTOGUL and packed.text.startswith(f"[1] {TOKTOGUL} (2025-12-16) — ")
    # The top two hits are overlapping passages of the Toktogul article: one block covers both.
    toktogul = [h for h in hits if h.citation.title == TOKTOGUL]
    assert len(toktogul) >= 2
    assert first.citation.start <= min(h.citation.start for h in toktogul[:2])
    assert first.citation.end >= max(h.citation.end for h in toktogul[:2])
    assert sum(b.citation.title == TOKTOGUL for b in packed.blocks) == 1
    # No sentence appears twice in the context.
    sentences = [s for b in packed.blocks for s in re.split(r"(?<=[.!?”\"])\s+", b.text)]
    assert len(sentences) == len(set(sentences))


def test_a_tight_budget_keeps_the_leading_whole_sentences(news_hits, news_index, news_articles):
    hits = news_hits["Toktogul water levels"]
    article = news_articles[hits[0].citation.article_id]
    sentences = [s for p in article.paragraphs for s in split_sentences(article.text, *p)]
    header = block_header(1, article.title, article.date)
    text = header + collapse_space(article.text[sentences[0][0]:sentences[1][1]])
    budget = tiktoken_count(text, "cl100k_base")  # exactly two sentences
    packed = pack_context(hits, news_index, budget)
    assert packed.text.startswith(text) and packed.truncated
    assert packed.blocks[0].citation.end == sentences[1][1]
    one_less = pack_context(hits, news_index, budget - 1)
    assert one_less.blocks[0].citation.end == sentences[0][1]


def test_empty_hits_and_zero_budget(news_hits, news_index):
    assert pack_context([], news_index, 100).text == ""
    packed = pack_context(news_hits["locomotive deal"], news_index, 0)
    assert (packed.text, packed.blocks, packed.tokens, packed.truncated) == ("", (), 0, True)


def _scifact(limit: int = 150):
    """Real abstracts as articles, each searched as two passages (first half, second half of its sentences)."""
    articles, hits = {}, []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            article, _ = make_article(title=doc["title"], blocks=[(None, doc["text"])], article_id=doc["_id"],
                                      date="2011-01-01", source="scifact")
            spans = split_sentences(article.text)
            if len(spans) < 2:
                continue
            articles[article.article_id] = article
            half = len(spans) // 2
            for first, last in ((0, half - 1), (half, len(spans) - 1)):
                citation = Citation(article.article_id, article.title, article.date, article.source, None, None,
                                    spans[first][0], spans[last][1], 0)
                hits.append(Hit(rank=0, score=0.0, text=article.text[citation.start:citation.end],
                                citation=citation, chunk_id=len(hits)))
            if len(articles) >= limit:
                break
    # Interleave: the second half of an abstract arrives after the first half of the next one.
    ordered = [hits[0]] + [h for pair in zip(hits[2::2], hits[1::2]) for h in pair]
    return articles, [Hit(rank=i + 1, score=1.0 / (i + 1), text=h.text, citation=h.citation, chunk_id=h.chunk_id)
                      for i, h in enumerate(ordered)]


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="shared SciFact corpus not present")
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_large_corpus_overflows_every_budget_and_still_fits(encoding):
    articles, hits = _scifact()
    for budget in BUDGETS:
        packed = pack_context(hits, articles, budget, encoding)
        check_packed(packed, articles, encoding, budget)
        assert packed.truncated
        # Greedy packing wastes little: what is left is less than one more block would need.
        assert packed.tokens >= budget - 120, (budget, packed.tokens)
        # The two halves of each abstract merged into one block.
        if budget >= 2000:
            assert len({b.citation.article_id for b in packed.blocks}) == len(packed.blocks)
            assert any(b.citation.start == 0 and b.citation.end == len(articles[b.citation.article_id].text)
                       for b in packed.blocks)


@pytest.mark.parametrize("value", [0, 49, 8001, -5, True, "100"])
def test_max_tokens_out_of_range_is_a_domain_error(value):
    with pytest.raises(InvalidParameter) as err:
        validate_max_tokens(value)
    assert err.value.code == "invalid_max_tokens" and f"{MIN_MAX_TOKENS}..{MAX_MAX_TOKENS}" in err.value.message


def test_unknown_encoding_is_a_domain_error():
    with pytest.raises(InvalidParameter) as err:
        validate_encoding("gpt2")
    assert err.value.code == "invalid_encoding" and "o200k_base" in err.value.message
    with pytest.raises(InvalidParameter):
        pack_context([], {}, 100, "p50k_base")
