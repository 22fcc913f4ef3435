"""Split articles into token-bounded passages on sentence boundaries.

A passage never crosses a section, holds at most `max_tokens` tokens of
`encoding` (tiktoken), and its embedding input (title, section and passage)
stays inside the model's wordpiece window. Consecutive passages of a section
share `overlap` sentences. A single sentence longer than the limits is cut
at word boundaries, the only case where a passage ends mid-sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from indexer.embed import MODEL_MAX_WORDPIECES, passage_input
from indexer.errors import InvalidParameter
from indexer.settings import setting
from indexer.sentences import split_sentences
from indexer.tokens import DEFAULT_ENCODING, get_encoding
from indexer.types import Article, Chunk

CountWordpieces = Callable[[Sequence[str]], list[int]]

MAX_TOKENS_LIMIT = 2000
_WORDS = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkSettings:
    """How passages are cut; recorded in the index manifest."""

    max_tokens: int = setting(200, "passage size limit in tokens")
    overlap: int = setting(1, "sentences shared by consecutive passages")
    encoding: str = DEFAULT_ENCODING
    max_wordpieces: int = MODEL_MAX_WORDPIECES - 2  # room for [CLS] and [SEP]

    def validate(self) -> "ChunkSettings":
        if not 16 <= self.max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidParameter(
                f"max_tokens={self.max_tokens} is out of range: use 16..{MAX_TOKENS_LIMIT} "
                f"(default {ChunkSettings.max_tokens})"
            )
        if not 0 <= self.overlap <= 5:
            raise InvalidParameter(f"overlap={self.overlap} is out of range: use 0..5 sentences "
                                   f"(default {ChunkSettings.overlap})")
        return self


# How a passage longer than the model's window (only with `max_wordpieces` raised, as the BEIR
# evaluation's whole documents are) is cut for embedding: windows that fit, sharing a sentence.
WINDOWS = ChunkSettings(max_tokens=MAX_TOKENS_LIMIT, overlap=1)


def chunk_article(
    article: Article, settings: ChunkSettings, count_wordpieces: CountWordpieces, first_id: int = 0
) -> list[Chunk]:
    """Passages of `article`, numbered from `first_id`, in reading order."""
    encoding = get_encoding(settings.encoding)

    def tokens(start: int, end: int) -> int:
        return len(encoding.encode(article.text[start:end], disallowed_special=()))

    chunks: list[Chunk] = []
    for section in article.sections:
        for start, end in _pack(article, section.title, section.start, section.end, settings, tokens,
                                count_wordpieces):
            chunks.append(
                Chunk(
                    chunk_id=first_id + len(chunks),
                    article_id=article.article_id,
                    ordinal=len(chunks),
                    text=article.text[start:end],
                    start=start,
                    end=end,
                    section=section.title,
                    paragraph=article.paragraph_at(start),
                    tokens=tokens(start, end),
                )
            )
    return chunks


def window_inputs(article: Article, chunk: Chunk, count_wordpieces: CountWordpieces) -> list[str]:
    """The embedding inputs that together stand for `chunk`: its own input when that fits the model's
    wordpiece window (always, with the default settings), else sentence-bounded windows of it that
    each fit, consecutive windows sharing one sentence (`WINDOWS`). The passage's vector is then the
    mean of its windows' vectors (`indexer.ingest.build`), so text past the model's window still counts
    instead of being cut off."""
    whole = passage_input(article.title, chunk.section, chunk.text)
    if count_wordpieces([whole])[0] <= WINDOWS.max_wordpieces:
        return [whole]
    encoding = get_encoding(WINDOWS.encoding)

    def tokens(start: int, end: int) -> int:
        return len(encoding.encode(article.text[start:end], disallowed_special=()))

    return [passage_input(article.title, chunk.section, article.text[start:end])
            for start, end in _pack(article, chunk.section, chunk.start, chunk.end, WINDOWS, tokens, count_wordpieces)]


def _pack(
    article: Article,
    section: str | None,
    start: int,
    end: int,
    settings: ChunkSettings,
    tokens: Callable[[int, int], int],
    count_wordpieces: CountWordpieces,
) -> list[tuple[int, int]]:
    """(start, end) of the passages `settings` cut from article.text[start:end] (one section)."""
    context_pieces = count_wordpieces([passage_input(article.title, section, "")])[0]
    wordpiece_budget = max(settings.max_wordpieces - context_pieces, 32)
    bounded = _bounded_sentences(article.text, start, end, settings.max_tokens, wordpiece_budget, tokens,
                                 count_wordpieces)
    spans = [(s, e) for s, e, _, _ in bounded]
    sentence_tokens = [t for _, _, t, _ in bounded]
    sentence_pieces = [p for _, _, _, p in bounded]
    passages: list[tuple[int, int]] = []
    first = 0
    while first < len(spans):
        last = first
        total_tokens, total_pieces = sentence_tokens[first], sentence_pieces[first]
        while last + 1 < len(spans):
            nxt_tokens = total_tokens + sentence_tokens[last + 1] + 1
            nxt_pieces = total_pieces + sentence_pieces[last + 1]
            if nxt_tokens > settings.max_tokens or nxt_pieces > wordpiece_budget:
                break
            last += 1
            total_tokens, total_pieces = nxt_tokens, nxt_pieces
        # Sums of per-sentence counts can differ from the joined count by a token; check exactly.
        while last > first and (
            tokens(spans[first][0], spans[last][1]) > settings.max_tokens
            or count_wordpieces([article.text[spans[first][0] : spans[last][1]]])[0] > wordpiece_budget
        ):
            last -= 1
        passages.append((spans[first][0], spans[last][1]))
        if last + 1 >= len(spans):
            break
        first = max(last + 1 - settings.overlap, first + 1)
    return passages


def _bounded_sentences(
    text: str,
    start: int,
    end: int,
    max_tokens: int,
    wordpiece_budget: int,
    tokens: Callable[[int, int], int],
    count_wordpieces: CountWordpieces,
) -> list[tuple[int, int, int, int]]:
    """(start, end, tokens, wordpieces) of each sentence of text[start:end].

    Sentences over the limits are cut at word boundaries.
    """
    spans: list[tuple[int, int, int, int]] = []
    sentences = split_sentences(text, start, end)
    pieces = count_wordpieces([text[s:e] for s, e in sentences])
    for (s, e), n_pieces in zip(sentences, pieces):
        n_tokens = tokens(s, e)
        if n_tokens <= max_tokens and n_pieces <= wordpiece_budget:
            spans.append((s, e, n_tokens, n_pieces))
            continue
        words = [(m.start(), m.end()) for m in _WORDS.finditer(text, s, e)]
        piece_start = 0
        while piece_start < len(words):
            piece_end = piece_start
            while piece_end + 1 < len(words):
                candidate = (words[piece_start][0], words[piece_end + 1][1])
                if tokens(*candidate) > max_tokens or count_wordpieces([text[candidate[0] : candidate[1]]])[0] > wordpiece_budget:
                    break
                piece_end += 1
            piece = (words[piece_start][0], words[piece_end][1])
            spans.append((*piece, tokens(*piece), count_wordpieces([text[piece[0] : piece[1]]])[0]))
            piece_start = piece_end + 1
    return spans
