"""Passages: sentence boundaries, token bounds, exact offsets, overlap."""

from __future__ import annotations

import pytest

from indexer.ingest.chunk import ChunkSettings, chunk_article
from indexer.ingest.documents import make_article
from indexer.embed import passage_input
from indexer.errors import InvalidParameter
from indexer.sentences import split_sentences
from indexer.tokens import count_tokens


def test_sentence_splitter_keeps_abbreviations_together():
    text = ("Washington, D.C. – The U.S. Department of Commerce said so. After Berdimuhamedov Sr.’s visit, "
            "Mr. Aliyev spoke. “Is it real?” he asked. Yes!")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == [
        "Washington, D.C. – The U.S. Department of Commerce said so.",
        "After Berdimuhamedov Sr.’s visit, Mr. Aliyev spoke.",
        "“Is it real?” he asked.",
        "Yes!",
    ]


@pytest.mark.parametrize("max_tokens,overlap", [(200, 1), (60, 0), (40, 2)])
def test_chunks_of_the_news_index_respect_bounds(news_index, embedder, max_tokens, overlap):
    settings = ChunkSettings(max_tokens=max_tokens, overlap=overlap)
    for row in news_index.list_articles(limit=100):
        article = news_index.article(row["article_id"])
        chunks = chunk_article(article, settings, embedder.count_wordpieces)
        assert chunks
        sentences = [span for sec in article.sections for span in split_sentences(article.text, sec.start, sec.end)]
        sentence_starts = {s for s, _ in sentences}
        sentence_ends = {e for _, e in sentences}

        def inside_overlong_sentence(offset: int) -> bool:
            # The one allowed cut: a single sentence longer than the limit is split at words.
            return any(s < offset < e and count_tokens(article.text[s:e]) > max_tokens for s, e in sentences)
        for chunk in chunks:
            assert article.text[chunk.start:chunk.end] == chunk.text
            assert count_tokens(chunk.text) == chunk.tokens <= max_tokens
            model_input = passage_input(article.title, chunk.section, chunk.text)
            assert embedder.count_wordpieces([model_input])[0] + 2 <= 256
            assert chunk.start in sentence_starts or inside_overlong_sentence(chunk.start)
            assert chunk.end in sentence_ends or inside_overlong_sentence(chunk.end)
            assert chunk.section == article.section_at(chunk.start)
        covered = set()
        for chunk in chunks:
            covered.update(range(chunk.start, chunk.end))
        assert all(i in covered for s, e in article.paragraphs for i in range(s, e) if not article.text[i].isspace())
        if overlap:
            for a, b in zip(chunks, chunks[1:]):
                sentences_in_a = [span for span in sentences if a.start <= span[0] and span[1] <= a.end]
                if a.section == b.section and len(sentences_in_a) >= 2:
                    assert b.start < a.end  # consecutive passages share sentences


def test_default_index_chunks_are_at_most_200_tokens(news_index):
    chunks = [c for row in news_index.list_articles() for c in news_index.article_chunks(row["article_id"])]
    assert chunks and max(c.tokens for c in chunks) <= 200


def test_a_sentence_longer_than_the_limit_is_cut_at_words(embedder):
    long_sentence = " ".join(f"word{i}" for i in range(400)) + "."
    article, _ = make_article(title="Long", blocks=[(None, "Short one. " + long_sentence)])
    chunks = chunk_article(article, ChunkSettings(max_tokens=50, overlap=0), embedder.count_wordpieces)
    assert len(chunks) > 5
    assert all(c.tokens <= 50 and article.text[c.start:c.end] == c.text for c in chunks)


def test_bad_settings_are_refused_with_the_limit():
    with pytest.raises(InvalidParameter, match="16..2000"):
        ChunkSettings(max_tokens=5).validate()
    with pytest.raises(InvalidParameter, match="0..5"):
        ChunkSettings(overlap=9).validate()
