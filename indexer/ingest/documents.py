"""Assemble `Article` values from titled paragraphs, with stable ids and exact offsets.

Every reader ends here, so paragraph clean-up (white space, repeated
paragraphs) and id rules are the same for every input format.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from indexer.types import NEWS, Article, Section

_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
# C0/C1 control characters other than tab and line breaks: invisible, and they break terminals and XML.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_space(text: str) -> str:
    """Collapse runs of spaces inside lines, trim each line, and drop control characters."""
    return "\n".join(_SPACE.sub(" ", line).strip() for line in _CONTROL.sub("", text).splitlines()).strip()


def fingerprint(text: str) -> str:
    """A key that is equal for texts differing only in case, punctuation and spacing."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return hashlib.sha1(" ".join(words).encode()).hexdigest()


def stable_id(*parts: str | None) -> str:
    """A 16-hex-digit id derived from `parts`, the same on every rebuild."""
    key = "\x1f".join(fingerprint(part) if part else "" for part in parts)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def make_article(
    *,
    title: str,
    blocks: Iterable[tuple[str | None, str]],
    article_id: str | None = None,
    date: str | None = None,
    source: str | None = None,
    url: str | None = None,
    kind: str = NEWS,
    origin: str | None = None,
    lang: str | None = None,
) -> tuple[Article, int]:
    """Build an article from `(section_title, paragraph)` blocks in reading order.

    Paragraphs repeated within the article (same words, ignoring case and
    punctuation) are kept once. Returns the article and the number of
    paragraphs dropped as repeats. Without `article_id`, the id is derived
    from source, date and title, so it is stable across rebuilds.
    """
    title = normalize_space(title).replace("\n", " ")
    pieces: list[str] = []
    paragraphs: list[tuple[int, int]] = []
    sections: list[Section] = []
    seen: set[str] = set()
    dropped = 0
    offset = 0
    current: str | None = None
    section_start = 0
    for section_title, paragraph in blocks:
        paragraph = normalize_space(paragraph)
        if not paragraph:
            continue
        key = fingerprint(paragraph)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        if pieces and section_title != current:
            sections.append(Section(current, section_start, offset - 2))
            section_start = offset
        elif not pieces:
            section_start = 0
        current = section_title
        pieces.append(paragraph)
        paragraphs.append((offset, offset + len(paragraph)))
        offset += len(paragraph) + 2
    text = "\n\n".join(pieces)
    if pieces:
        sections.append(Section(current, section_start, len(text)))
    article = Article(
        article_id=article_id or stable_id(source, date, title),
        title=title,
        text=text,
        date=date,
        source=source,
        url=url,
        kind=kind,
        sections=tuple(sections),
        paragraphs=tuple(paragraphs),
        origin=origin,
        lang=lang,
    )
    return article, dropped
