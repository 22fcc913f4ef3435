"""Small immutable types shared by the indexer and the service.

Offsets (`start`, `end`) are always character offsets into `Article.text`, so
`article.text[start:end]` is exactly the cited passage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEWS = "news"
MARKET_RATES = "market_rates"


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of an article: `title` is the heading, `start`/`end` span its body."""

    title: str | None
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Article:
    """One article (or one record such as the day's market rates).

    `text` holds the body paragraphs separated by blank lines; section headings
    are not part of `text` but are kept in `sections` with the span they head.
    `paragraphs` are the (start, end) spans of the paragraphs in `text`.
    """

    article_id: str
    title: str
    text: str
    date: str | None = None
    source: str | None = None
    url: str | None = None
    kind: str = NEWS
    sections: tuple[Section, ...] = ()
    paragraphs: tuple[tuple[int, int], ...] = ()
    origin: str | None = None  # file (and line) it was read from, for error reports
    lang: str | None = None  # ISO 639-1 code when known (from the page or the record), else None

    def section_at(self, offset: int) -> str | None:
        """The title of the section that contains `offset`, or None."""
        for section in self.sections:
            if section.start <= offset < section.end:
                return section.title
        return None

    def paragraph_at(self, offset: int) -> int:
        """The 0-based index of the paragraph that contains `offset`."""
        for index, (start, end) in enumerate(self.paragraphs):
            if offset < end:
                return index
        return max(len(self.paragraphs) - 1, 0)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A token-bounded passage: `article.text[start:end] == text`."""

    chunk_id: int
    article_id: str
    ordinal: int
    text: str
    start: int
    end: int
    section: str | None
    paragraph: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Citation:
    """Where a passage comes from: enough to link to the exact paragraph."""

    article_id: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    section: str | None
    start: int
    end: int
    paragraph: int


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked passage with its citation and the scores that placed it."""

    rank: int
    score: float
    text: str
    citation: Citation
    chunk_id: int
    dense: float | None = None
    lexical: float | None = None
    highlights: tuple[Span, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrictions applied before ranking. Dates are ISO `YYYY-MM-DD`, inclusive."""

    date_from: str | None = None
    date_to: str | None = None
    source: str | None = None
    lang: str | None = None

    @property
    def empty(self) -> bool:
        return self.date_from is None and self.date_to is None and self.source is None and self.lang is None

    def sql_where(self, mark: str) -> tuple[str, list[str]]:
        """SQL conditions on an articles table aliased `a`, and their values; `mark` is the
        driver's placeholder (`?` for SQLite, `%s` for psycopg)."""
        clauses, values = [], []
        # Source names match whatever their case: users type "reuters" for "Reuters".
        for value, clause in ((self.date_from, "a.date >= {}"), (self.date_to, "a.date <= {}"),
                              (self.source, "LOWER(a.source) = LOWER({})"), (self.lang, "a.lang = {}")):
            if value:
                clauses.append(clause.format(mark))
                values.append(value)
        return " AND ".join(clauses), values
