"""Retrieval on the shipped corpus: modes, per-leg scores, grouping, filters and highlights (real model, FAISS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOKTOGUL, assert_error


LOCOMOTIVES = "Trump and Tokayev Secure a Historic $4.2 Billion Locomotive Deal"


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_ranks_the_right_article_first(searcher, mode):
    result = searcher.search("Toktogul reservoir water shortage", k=5, mode=mode)
    assert result.mode == mode
    assert result.hits[0].citation.title == TOKTOGUL
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_paraphrase_sharing_few_words_finds_its_article(searcher, mode):
    result = searcher.search("Which US manufacturer is supplying trains to Kazakhstan?", k=3, mode=mode)
    assert result.hits[0].citation.title == LOCOMOTIVES


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_hit_has_both_leg_scores_filled_exactly(searcher, news_index, embedder, mode):
    from indexer.embed import passage_input

    query = "locomotives for Kazakhstan's railway"
    result = searcher.search(query, k=8, mode=mode)
    assert result.hits
    vector = embedder.encode([query])[0]
    lexical_only = {h.chunk_id: h.lexical for h in searcher.search(query, k=100, mode="lexical").hits}
    for hit in result.hits:
        assert isinstance(hit.dense, float) and isinstance(hit.lexical, float)
        # The dense leg is the cosine of the stored passage vector and the query vector.
        passage = embedder.encode([passage_input(hit.citation.title, hit.citation.section, hit.text)])[0]
        assert hit.dense == pytest.approx(float(passage @ vector), abs=1e-4)
        # The lexical leg is the passage's BM25 score, whether or not BM25 retrieved it.
        assert hit.lexical == pytest.approx(lexical_only.get(hit.chunk_id, 0.0), abs=1e-5)
    if mode == "dense":
        assert [h.score for h in result.hits] == [h.dense for h in result.hits]
    if mode == "lexical":
        assert [h.score for h in result.hits] == [h.lexical for h in result.hits]


def test_hybrid_fusion_uses_both_legs(searcher):
    result = searcher.search("Wabtec Evolution Series locomotives", k=5, mode="hybrid")
    top = result.hits[0]
    assert top.citation.title == LOCOMOTIVES
    assert 0.0 <= top.score <= 1.0 and top.lexical > 0 and top.dense > 0.3


def test_rrf_fusion_is_available_for_comparison(searcher):
    result = searcher.search("Toktogul reservoir", k=3, fusion="rrf")
    assert result.hits[0].citation.title == TOKTOGUL


def test_group_article_returns_one_result_per_article(searcher):
    result = searcher.search("water", k=4, group="article")
    assert result.group == "article"
    ids = [h.citation.article_id for h in result.hits]
    assert len(ids) == len(set(ids)) == len(result.groups) <= 4
    assert [h.rank for h in result.hits] == list(range(1, len(ids) + 1))
    for group, best in zip(result.groups, result.hits):
        assert group.article_id == best.citation.article_id
        assert group.hits[0] == best
        assert 1 <= len(group.hits) <= 3
        assert {h.citation.article_id for h in group.hits} == {group.article_id}
        assert [h.score for h in group.hits] == sorted((h.score for h in group.hits), reverse=True)
    best_scores = [g.score for g in result.groups]
    assert best_scores == sorted(best_scores, reverse=True)
    assert [h.score for h in result.hits] == best_scores


def test_group_article_scores_each_leg_by_the_articles_best_passage(searcher):
    # With one leg, an article ranks where its best passage ranks.
    dense = searcher.search("water", k=4, mode="dense", group="article")
    flat = searcher.search("water", k=100, mode="dense")
    first_seen = list(dict.fromkeys(h.citation.article_id for h in flat.hits))
    assert [h.citation.article_id for h in dense.hits] == first_seen[:4]
    # Hybrid fuses each leg's best passage of the article, so it is at least each passage's fused score.
    hybrid = searcher.search("water", k=4, group="article")
    for group in hybrid.groups:
        assert all(group.score >= h.score - 1e-9 for h in group.hits)


def test_highlights_are_real_sentences_of_the_article(searcher, news_index):
    from indexer.sentences import split_sentences

    result = searcher.search("How much water had the Toktogul reservoir accumulated?", k=5)
    assert all(h.highlights for h in result.hits)
    for hit in result.hits:
        article = news_index.article(hit.citation.article_id)
        sentences = set(split_sentences(article.text))
        for span in hit.highlights:
            assert (span.start, span.end) in sentences
            assert hit.citation.start <= span.start < span.end <= hit.citation.end
    top = result.hits[0]
    text = news_index.article(top.citation.article_id).text
    assert "10.8 billion cubic meters" in text[top.highlights[0].start : top.highlights[0].end]


def test_a_paraphrase_still_gets_highlights(searcher, news_index):
    # Shares no stemmed term with its best sentence; wordpiece similarity picks it instead.
    result = searcher.search("present for Ashgabat", k=3, mode="dense")
    assert result.hits and all(h.highlights for h in result.hits)


def test_a_paraphrase_highlight_picks_the_related_sentence_without_running_the_model(embedder, monkeypatch):
    from indexer.query.highlight import QueryTerms, Sentences, highlight
    from indexer.types import Citation, Hit

    text = ("The weather stayed cold through the spring. Farmers planted late. "
            "The delegation handed the mayor a gift of carpets. Trains ran on time.")
    citation = Citation(article_id="a", title="Visit", date=None, source="test", url=None, section=None,
                        start=100, end=100 + len(text), paragraph=1)
    hit = Hit(rank=1, score=1.0, text=text, citation=citation, chunk_id=7)
    sentences = Sentences(embedder)
    calls = []
    encode = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda *a, **k: calls.append(a) or encode(*a, **k))
    # No stemmed term of the query is in the passage, so word overlap scores every sentence 0.
    [marked] = highlight([hit], QueryTerms({"present": 1.0, "visitor": 1.0}), "present for visitors", sentences)
    marks = [(s.start, s.end) for s in marked.highlights]
    assert (100 + text.index("The delegation"), 100 + text.index(" Trains")) in marks
    assert (100 + text.index("Trains"), 100 + len(text)) not in marks
    assert calls == []


@pytest.fixture(scope="module")
def dated_index(tmp_path_factory, embedder):
    """Three articles on two dates from two sources, to check filters run before ranking."""
    from indexer.ingest.build import build_index
    from indexer.store.embedded import open_index

    folder = tmp_path_factory.mktemp("dated")
    records = [
        {"id": "old-dam", "title": "Toktogul dam water levels fall", "date": "2024-03-01", "source": "wire",
         "text": "The Toktogul reservoir lost water all winter. Toktogul turbines slowed as the reservoir fell."},
        {"id": "new-dam", "title": "Reservoirs in the region", "date": "2025-06-01", "source": "wire",
         "text": "Several reservoirs, Toktogul among them, were reported half full in June."},
        {"id": "new-rail", "title": "Rail freight grows", "date": "2025-07-01", "source": "daily",
         "text": "Freight on the Middle Corridor grew by a third."},
    ]
    (folder / "news.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    build_index([folder / "news.jsonl"], folder / "index", embedder=embedder, progress=False)
    index = open_index(folder / "index")
    yield index
    index.close()


def test_filters_apply_before_ranking_not_after_truncation(dated_index, embedder):
    from indexer.query.search import Searcher, make_filters

    searcher = Searcher(dated_index, embedder)
    unfiltered = searcher.search("Toktogul reservoir water", k=1)
    assert unfiltered.hits[0].citation.article_id == "old-dam"
    # With k=1, filtering after truncation would return nothing; before ranking it finds the 2025 article.
    for mode in ("dense", "lexical", "hybrid"):
        hits = searcher.search("Toktogul reservoir water", k=1, mode=mode,
                               filters=make_filters(date_from="2025-01-01")).hits
        assert [h.citation.article_id for h in hits] == ["new-dam"], mode
    hits = searcher.search("Toktogul reservoir water", k=10, filters=make_filters(source="daily")).hits
    assert {h.citation.article_id for h in hits} == {"new-rail"}
    hits = searcher.search("Toktogul reservoir water", k=10, filters=make_filters(date_to="2024-12-31"),
                           group="article").hits
    assert [h.citation.article_id for h in hits] == ["old-dam"]
    assert searcher.search("Toktogul", k=5, filters=make_filters(source="nobody")).hits == []


def test_unanswerable_queries_are_low_confidence(searcher):
    for query in ("chocolate cake recipe", "Who won the Champions League final?"):
        result = searcher.search(query, k=5)
        assert result.low_confidence, (query, result.confidence)
    result = searcher.search("Toktogul reservoir water levels", k=5)
    assert not result.low_confidence and result.confidence > 0.5


def test_api_modes_groups_and_scores(client):
    for mode in ("dense", "lexical", "hybrid"):
        body = client.get("/v1/search", params={"q": "Toktogul reservoir", "k": 3, "mode": mode}).json()
        assert body["mode"] == mode and body["hits"][0]["citation"]["title"] == TOKTOGUL
        for hit in body["hits"]:
            assert isinstance(hit["dense"], float) and isinstance(hit["lexical"], float)
            assert all(set(span) == {"start", "end"} for span in hit["highlights"])
        assert body["low_confidence"] is False
    grouped = client.get("/v1/search", params={"q": "water", "k": 3, "group": "article"}).json()
    assert grouped["group"] == "article" and len(grouped["groups"]) == len(grouped["hits"])
    assert len({h["citation"]["article_id"] for h in grouped["hits"]}) == len(grouped["hits"])
    posted = client.post("/v1/search", json={"q": "water", "k": 3, "group": "article"}).json()
    assert [h["citation"] for h in posted["hits"]] == [h["citation"] for h in grouped["hits"]]
    cake = client.get("/v1/search", params={"q": "chocolate cake recipe"}).json()
    assert cake["low_confidence"] is True


def test_api_rejects_unknown_group(client):
    error = assert_error(client.get("/v1/search", params={"q": "water", "group": "site"}), 400, "invalid_group")
    assert "group=article" in error["message"]


def test_sentence_vectors_are_cached(searcher):
    hits = searcher.search("Lake Balkhash water level", k=2).hits
    first = searcher.sentences.vectors(hits)
    again = searcher.sentences.vectors(hits)
    for cid in first:
        assert first[cid][0] == again[cid][0]
        assert np.shares_memory(first[cid][1], again[cid][1])


def test_lexical_tokens_are_exactly_bm25s_tokens():
    # The index was built with bm25s's tokenizer semantics; the fast path must not drift from it.
    from pathlib import Path

    import bm25s
    import Stemmer

    from indexer.store.bm25 import tokenize

    page = (Path(__file__).resolve().parent.parent / "data" / "central-asia-news-2025-12-16.txt").read_text()
    texts = [*page.splitlines(), "", "a I", "Ünïcode naïve café — 10.8 billion m³; AI's O(n) tests", "THE Running runners ran"]
    expected = bm25s.tokenize(texts, lower=True, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                              return_ids=False, show_progress=False)
    assert tokenize(texts) == expected
    assert sum(map(len, expected)) > 1000


def test_bounded_cache_keeps_the_most_recently_used():
    from indexer.query.search import BoundedCache

    cache = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_a_repeated_query_skips_the_model(news_index, embedder):
    from indexer.query.search import Searcher

    class Counting:
        name, dimension = embedder.name, embedder.dimension

        def __init__(self) -> None:
            self.texts = []

        def encode(self, texts, **kwargs):
            self.texts.extend(texts)
            return embedder.encode(texts, **kwargs)

    counting = Counting()
    searcher = Searcher(news_index, counting)
    first = searcher.search("Toktogul reservoir water levels", k=3, mode="dense")
    calls = len(counting.texts)
    again = searcher.search("Toktogul reservoir water levels", k=3, mode="dense")
    assert len(counting.texts) == calls and calls >= 1
    assert [(h.chunk_id, h.score) for h in again.hits] == [(h.chunk_id, h.score) for h in first.hits]
    searcher.search("Toktogul reservoir water level", k=3, mode="dense")  # a different text is embedded
    assert counting.texts[-1] == "Toktogul reservoir water level"
