"""Token-budgeted context for LLMs: ranked passages packed into numbered, cited blocks.

`pack_context(hits, index, max_tokens, encoding)` turns ranked search hits into
one string of blocks

    [1] Title (2025-12-16) — sentence. sentence. sentence.

    [2] Other title (2025-12-15) — sentence.

and the citation of each block. The contract:

- The unit of packing is a whole sentence of the article (sentences are split
  per paragraph with `indexer.sentences.split_sentences`), so no block starts
  or ends mid-sentence.
- Hits are taken in rank order; each hit's sentences are added one by one
  until one does not fit. A hit that overlaps or touches a passage of the same
  article already in the context extends that block instead of repeating it,
  and two blocks of one article that come to touch are merged.
- A block covers one contiguous span `citation.start:citation.end` of the
  article text; its text is that span with white-space runs collapsed to one
  space (blocks are one line each).
- A block reads on its own: the article title first, then the passage. A
  passage that starts inside a paragraph (its first sentence may lean on the
  one before: "He added...") is marked as such with `…` after the header
  (`ContextBlock.gap`), so a model never mistakes it for the start.
- The result is never over `max_tokens`, and `tokens` is the exact tiktoken
  count of `text` in `encoding`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from indexer.errors import InvalidParameter
from indexer.query.search import span_citation
from indexer.sentences import split_sentences
from indexer.tokens import DEFAULT_ENCODING, ENCODINGS, get_encoding
from indexer.types import Article, Citation, Hit

MIN_MAX_TOKENS = 50
MAX_MAX_TOKENS = 8000
DEFAULT_MAX_TOKENS = 2000
BLOCK_SEPARATOR = "\n\n"
# Within this many tokens of the budget the running estimate (a sum of piece
# counts) is replaced by an exact count: joins can shift a count by a token or two.
_EXACT_MARGIN = 8
# Re-anchor the running estimate on an exact count this often, so drift cannot build up.
_RECOUNT_EVERY = 24


class ArticleSource(Protocol):
    """Anything that looks articles up by id (an `indexer.store.embedded.Index`)."""

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]: ...


@dataclass(frozen=True, slots=True)
class ContextBlock:
    """One numbered block: `text` is `article.text[citation.start:citation.end]`, white space collapsed.

    `gap` is True when the block starts inside a paragraph (rendered as `…` before `text`)."""

    n: int
    citation: Citation
    text: str
    gap: bool = False


@dataclass(frozen=True, slots=True)
class PackedContext:
    """The packed context: `tokens` is the exact count of `text` in `encoding`, and `tokens <= max_tokens`.

    `truncated` is True when a sentence of a considered passage was left out for lack of budget.
    """

    text: str
    blocks: tuple[ContextBlock, ...]
    tokens: int
    max_tokens: int
    encoding: str
    truncated: bool


def validate_max_tokens(max_tokens: int) -> int:
    """`max_tokens` if it is in MIN_MAX_TOKENS..MAX_MAX_TOKENS, else InvalidParameter."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        raise InvalidParameter(
            f"max_tokens={max_tokens!r} is out of range: use {MIN_MAX_TOKENS}..{MAX_MAX_TOKENS} "
            f"(default {DEFAULT_MAX_TOKENS})",
            code="invalid_max_tokens",
        )
    return max_tokens


def validate_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise InvalidParameter(
            f"encoding={encoding!r} is not supported: use one of {', '.join(ENCODINGS)} (default {DEFAULT_ENCODING})",
            code="invalid_encoding",
        )
    return encoding


def collapse_space(text: str) -> str:
    """`text` with every run of white space replaced by one space, stripped."""
    return " ".join(text.split())


def sentence_spans(article: Article) -> list[tuple[int, int]]:
    """The (start, end) spans of the article's sentences, in reading order.

    Sentences are split within each paragraph, so a paragraph end always ends a sentence.
    """
    return _sentences(article)[0]


def _sentences(article: Article) -> tuple[list[tuple[int, int]], frozenset[int]]:
    """`sentence_spans(article)` and the indexes of the sentences that open a paragraph."""
    paragraphs = article.paragraphs or ((0, len(article.text)),)
    spans: list[tuple[int, int]] = []
    openers = set()
    for start, end in paragraphs:
        found = split_sentences(article.text, start, end)
        if found:
            openers.add(len(spans))
        spans.extend(found)
    return spans, frozenset(openers)


# Marks a block that starts inside a paragraph.
GAP = "… "


def block_header(n: int, title: str, date: str | None, gap: bool = False) -> str:
    """`[n] Title (date) — ` (without the date part when the article has none), then `… ` when the
    passage starts inside a paragraph."""
    title = collapse_space(title)
    return (f"[{n}] {title} ({date}) — " if date else f"[{n}] {title} — ") + (GAP if gap else "")


# A packing state: blocks in display order, each (article_id, first sentence, last sentence).
_State = tuple[tuple[str, int, int], ...]


def pack_context(
    hits: Sequence[Hit],
    index: ArticleSource | Mapping[str, Article],
    max_tokens: int,
    encoding: str = DEFAULT_ENCODING,
) -> PackedContext:
    """Pack the ranked `hits` into at most `max_tokens` tokens of `encoding` (see the module docstring).

    `index` supplies the articles (an `Index`, or a mapping from article id to Article).
    `max_tokens` is not range-checked here (callers validate user input with
    `validate_max_tokens`); any budget >= 0 is honoured, possibly with an empty context.
    """
    validate_encoding(encoding)
    enc = get_encoding(encoding)

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    ids = list(dict.fromkeys(h.citation.article_id for h in hits))
    articles = {i: index[i] for i in ids if i in index} if isinstance(index, Mapping) else index.articles(ids)
    sentences: dict[str, list[tuple[int, int]]] = {}  # filled as hits reach an article
    openers: dict[str, frozenset[int]] = {}

    def render(state: _State) -> str:
        parts = []
        for n, (aid, first, last) in enumerate(state, start=1):
            article, spans = articles[aid], sentences[aid]
            parts.append(block_header(n, article.title, article.date, first not in openers[aid])
                         + collapse_space(article.text[spans[first][0]:spans[last][1]]))
        return BLOCK_SEPARATOR.join(parts)

    state: _State = ()
    history: list[_State] = []
    estimate = 0  # tokens of render(state), exact right after a recount
    since_recount = 0
    truncated = False
    for hit in hits:
        aid = hit.citation.article_id
        if aid not in articles:
            continue  # deleted since the search ran
        if aid not in sentences:
            sentences[aid], openers[aid] = _sentences(articles[aid])
        spans, text = sentences[aid], articles[aid].text
        wanted = [i for i, (s, e) in enumerate(spans) if s < hit.citation.end and e > hit.citation.start]
        while True:
            i = _next_sentence(state, aid, wanted)
            if i is None:
                break
            if estimate >= max_tokens:  # full: every sentence costs at least a token
                truncated = True
                break
            candidate = _add_sentence(state, aid, i)
            sentence = collapse_space(text[spans[i][0]:spans[i][1]])
            if len(candidate) > len(state):  # a new block: separator, header and sentence
                delta = count((BLOCK_SEPARATOR if state else "") + block_header(
                    len(candidate), articles[aid].title, articles[aid].date, i not in openers[aid]) + sentence)
            else:
                delta = count(" " + sentence)
            guess = estimate + delta
            if guess > max_tokens + _EXACT_MARGIN:
                fits = False
            elif guess <= max_tokens - _EXACT_MARGIN and since_recount < _RECOUNT_EVERY:
                fits, since_recount = True, since_recount + 1
            else:
                guess, since_recount = count(render(candidate)), 0
                fits = guess <= max_tokens
            if not fits:
                truncated = True
                break  # the rest of this passage would follow the sentence that did not fit
            history.append(state)
            state, estimate = candidate, guess
            wanted.remove(i)

    context = render(state)
    tokens = count(context)
    while tokens > max_tokens:  # the estimate let one sentence too many in: undo the latest additions
        state = history.pop()
        context = render(state)
        tokens = count(context)
        truncated = True

    blocks = []
    for n, (aid, first, last) in enumerate(state, start=1):
        article, spans = articles[aid], sentences[aid]
        start, end = spans[first][0], spans[last][1]
        blocks.append(ContextBlock(n=n, citation=span_citation(article, start, end),
                                   text=collapse_space(article.text[start:end]), gap=first not in openers[aid]))
    return PackedContext(text=context, blocks=tuple(blocks), tokens=tokens, max_tokens=max_tokens,
                         encoding=encoding, truncated=truncated)


def _next_sentence(state: _State, aid: str, wanted: list[int]) -> int | None:
    """The next sentence of a passage to add: first one touching a block of its article, else the first one.

    Growing outwards from what is already in the context keeps a trimmed
    passage contiguous with its block instead of opening a second block.
    """
    covered = {i for a, first, last in state if a == aid for i in range(first, last + 1)}
    for i in list(wanted):
        if i in covered:
            wanted.remove(i)
    if not wanted:
        return None
    for i in wanted:
        if i - 1 in covered or i + 1 in covered:
            return i
    return wanted[0]


def _add_sentence(state: _State, aid: str, i: int) -> _State:
    """`state` with sentence `i` of article `aid` added: extends a touching block (merging two), or opens one."""
    blocks = list(state)
    left = next((b for b, (a, _, last) in enumerate(blocks) if a == aid and last == i - 1), None)
    right = next((b for b, (a, first, _) in enumerate(blocks) if a == aid and first == i + 1), None)
    if left is not None and right is not None:
        keep, drop = min(left, right), max(left, right)
        blocks[keep] = (aid, blocks[left][1], blocks[right][2])
        del blocks[drop]
    elif left is not None:
        blocks[left] = (aid, blocks[left][1], i)
    elif right is not None:
        blocks[right] = (aid, i, blocks[right][2])
    else:
        blocks.append((aid, i, i))
    return tuple(blocks)
