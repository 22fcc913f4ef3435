"""Split a plain-text news dump (a scraped page, a .txt or .md file) into articles.

The method uses layout and text cues, not known titles:

1. Boilerplate: a line that recurs three or more times in one file (a ticker,
   a menu, a footer) is not article text. Currency-rate lines among them are
   kept once, as a dated "market rates" record.
2. Date lines ("16 December 2025", "2025-12-16", ...) set the date of the
   articles below them.
3. Heading candidates are short one-line paragraphs without closing
   punctuation that are followed by body text (Markdown `#` lines always are).
4. Article title or section heading? A headline summarises the story that
   follows it; a section heading continues the story above it. So a heading
   starts a new article when it describes the text under it clearly better
   than the current article does:
   `sim(heading, block) - sim(block, article so far) > margin`
   (sentence-embedding cosine). Markdown levels and date lines override this.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date as Date

import numpy as np

from indexer.ingest.documents import make_article, normalize_space
from indexer.types import MARKET_RATES, Article

Embed = Callable[[Sequence[str]], np.ndarray]

# Measured on the sample page: new articles score 0.30..0.56, sections -0.62..0.00.
NEW_ARTICLE_MARGIN = 0.15
BOILERPLATE_REPEATS = 3
MAX_HEADING_WORDS = 20
MAX_HEADING_CHARS = 160

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_WEEKDAY = r"(?:(?:mon|tues|wednes|thurs|fri|satur|sun)day,?\s+)?"
_DMY = re.compile(_WEEKDAY + r"(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})$", re.I)
_MDY = re.compile(_WEEKDAY + r"([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$", re.I)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})$")
_RATE = re.compile(
    r"^[\s•·*\-–]*([A-Z]{3})\s*/\s*([A-Z]{3})\s*[=:]\s*([0-9][0-9.,]*)\s*([+\-−]?[0-9.,]*\s*%)?\s*$"
)
_BULLET = re.compile(r"^[\s•·*\-–]+")
_CLOSING_PUNCTUATION = re.compile(r"[.,;:!\"”’'»)\]]$")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")


@dataclass
class Segmented:
    """What one dump yielded: articles (news first, then records) and what was dropped."""

    articles: list[Article] = field(default_factory=list)
    boilerplate_lines: int = 0
    duplicate_paragraphs: int = 0


@dataclass
class _Paragraph:
    text: str
    line: int  # 1-based line number in the file
    heading_level: int | None = None  # Markdown level, when the file says so


def parse_date(text: str) -> str | None:
    """The ISO date of a line that is only a date, else None."""
    text = text.strip().strip(".*_ ")  # Markdown writes dates as *16 December 2025* too
    if len(text) > 40:
        return None
    try:
        if match := _ISO.match(text):
            year, month, day = (int(g) for g in match.groups())
        elif match := _DMY.match(text):
            day, month, year = int(match[1]), _MONTHS.get(match[2].lower()), int(match[3])
        elif match := _MDY.match(text):
            month, day, year = _MONTHS.get(match[1].lower()), int(match[2]), int(match[3])
        else:
            return None
        if month is None:
            return None
        return Date(year, month, day).isoformat()
    except ValueError:
        return None


def segment_dump(text: str, *, origin: str, source: str | None, embed: Embed) -> Segmented:
    """Split one news dump into dated articles with sections, plus a market-rates record."""
    result = Segmented()
    lines = text.splitlines()
    counts = Counter(_line_key(line) for line in lines if line.strip())
    boilerplate = {key for key, n in counts.items() if n >= BOILERPLATE_REPEATS}

    rates: dict[str, str] = {}
    rates_date: str | None = None
    paragraphs: list[_Paragraph] = []
    current: list[str] = []
    start_line = 0
    current_date: str | None = None

    def flush() -> None:
        if current:
            paragraphs.append(_Paragraph(" ".join(current), start_line))
            current.clear()

    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            flush()
            continue
        rate = _RATE.match(line)
        if _line_key(line) in boilerplate or rate:
            if rate:
                rates.setdefault(rate[1] + "/" + rate[2], _BULLET.sub("", line))
                rates_date = rates_date or current_date
            result.boilerplate_lines += 1
            flush()
            continue
        if (found := parse_date(line)) is not None:
            flush()
            current_date = current_date or found
            if rates and rates_date is None:
                rates_date = found
            paragraphs.append(_Paragraph(line, number))
            continue
        md = _MD_HEADING.match(line)
        if md:
            flush()
            paragraphs.append(_Paragraph(md[2], number, heading_level=len(md[1])))
            continue
        if not current:
            start_line = number
        current.append(line)
    flush()

    articles = _split_articles(paragraphs, origin=origin, source=source, embed=embed, result=result)
    result.articles.extend(articles)
    if rates:
        date = rates_date or current_date
        pairs = ", ".join(rates)
        title = f"Market rates ({pairs})" + (f", {date}" if date else "")
        record, _ = make_article(
            title=title,
            blocks=[(None, "\n".join(rates.values()))],
            date=date,
            source=source,
            kind=MARKET_RATES,
            origin=origin,
        )
        result.articles.append(record)
    return result


def _line_key(line: str) -> str:
    return " ".join(line.split()).casefold()


def _heading_like(para: _Paragraph) -> bool:
    """Short, capitalised, no closing punctuation (or a Markdown heading)."""
    if para.heading_level is not None:
        return True
    text = para.text
    return not (
        len(text) > MAX_HEADING_CHARS
        or len(text.split()) > MAX_HEADING_WORDS
        or _CLOSING_PUNCTUATION.search(text)
        or not text[:1].isupper() and not text[:1].isdigit()
    )


def _is_prose(para: _Paragraph | None) -> bool:
    return para is not None and para.heading_level is None and parse_date(para.text) is None and bool(
        len(para.text.split()) > MAX_HEADING_WORDS or _CLOSING_PUNCTUATION.search(para.text)
    )


def _is_heading(paragraphs: list[_Paragraph], index: int) -> bool:
    if paragraphs[index].heading_level is not None:
        return True
    # A heading introduces body text: the next paragraph must be prose, not another heading.
    following = paragraphs[index + 1] if index + 1 < len(paragraphs) else None
    return _heading_like(paragraphs[index]) and _is_prose(following)


def _dated_headline(paragraphs: list[_Paragraph], index: int) -> str | None:
    """The date of a headline written as headline line, date line, prose (one article's usual layout)."""
    if index + 2 >= len(paragraphs) or not _heading_like(paragraphs[index]):
        return None
    if parse_date(paragraphs[index].text) is not None or paragraphs[index + 1].heading_level is not None:
        return None
    found = parse_date(paragraphs[index + 1].text)
    return found if found is not None and _is_prose(paragraphs[index + 2]) else None


@dataclass
class _Draft:
    title: str
    date: str | None
    line: int
    blocks: list[tuple[str | None, str]] = field(default_factory=list)


def _split_articles(
    paragraphs: list[_Paragraph], *, origin: str, source: str | None, embed: Embed, result: Segmented
) -> list[Article]:
    # Group paragraphs into units: (heading, body paragraphs, date in force, dated-here flag).
    units: list[tuple[_Paragraph | None, list[str], str | None, bool]] = []
    date: str | None = None
    date_changed = False
    body: list[str] = []
    heading: _Paragraph | None = None
    date_line_used: int | None = None
    for index, para in enumerate(paragraphs):
        if index == date_line_used:
            continue  # the date line of a dated headline, already applied
        if (headline_date := _dated_headline(paragraphs, index)) is not None:
            if heading is not None or body:
                units.append((heading, body, date, date_changed))
            date, date_changed = headline_date, True
            heading, body, date_line_used = para, [], index + 1
            continue
        found = parse_date(para.text) if para.heading_level is None else None
        if found is not None:
            if heading is not None or body:
                units.append((heading, body, date, date_changed))
                heading, body, date_changed = None, [], False
            date, date_changed = found, True
            continue
        if _is_heading(paragraphs, index):
            if heading is not None or body:
                units.append((heading, body, date, date_changed))
                date_changed = False
            heading, body = para, []
        else:
            body.append(para.text)
    if heading is not None or body:
        units.append((heading, body, date, date_changed))

    drafts: list[_Draft] = []
    article_text: list[str] = []
    for heading, body, unit_date, dated_here in units:
        if heading is None:
            if not body:
                continue
            if drafts and not dated_here:
                drafts[-1].blocks.extend((drafts[-1].blocks[-1][0] if drafts[-1].blocks else None, p) for p in body)
                article_text.extend(body)
                continue
            # Text with no headline: title it by its first sentence.
            title = body[0].split(". ")[0][:120]
            drafts.append(_Draft(title, unit_date, 0, [(None, p) for p in body]))
            article_text = list(body)
            continue
        if not body:
            continue  # a heading with nothing under it (e.g. a kicker)
        if not drafts or dated_here or _starts_article(heading, body, drafts[-1], article_text, embed):
            drafts.append(_Draft(heading.text, unit_date, heading.line, [(None, p) for p in body]))
            article_text = [heading.text, *body]
        else:
            drafts[-1].blocks.extend((heading.text, p) for p in body)
            article_text.extend(body)

    articles = []
    for draft in drafts:
        article, dropped = make_article(
            title=draft.title,
            blocks=draft.blocks,
            date=draft.date,
            source=source,
            origin=f"{origin}:{draft.line}" if draft.line else origin,
        )
        result.duplicate_paragraphs += dropped
        if article.text:
            articles.append(article)
    return articles


def _starts_article(
    heading: _Paragraph, body: list[str], draft: _Draft, article_text: list[str], embed: Embed
) -> bool:
    if heading.heading_level is not None:
        return heading.heading_level <= 1
    vectors = embed([heading.text, normalize_space(" ".join(body)), " ".join(article_text)])
    heading_vec, block_vec, article_vec = vectors
    describes_block = float(heading_vec @ block_vec)
    continues_article = float(block_vec @ article_vec)
    return describes_block - continues_article > NEW_ARTICLE_MARGIN
