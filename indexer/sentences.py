"""Sentence boundaries as character spans.

A rule-based splitter: a sentence ends at `.`, `!` or `?` (plus closing quotes
or brackets) followed by white space and a plausible sentence start, unless
the word before the stop is a known abbreviation or an initial. Spans rather
than strings, so every stage can keep exact offsets into the article text.
"""

from __future__ import annotations

import re

# Words that end with a period without ending the sentence.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm gov sen rep pres
    rev hon messrs mme mlle
    inc ltd co corp llc plc bros dept univ assn est approx
    no nos vol vols fig figs eq eqs ch sec art para pp p ed eds al cf vs etc ie eg
    jan feb mar apr jun jul aug sep sept oct nov dec
    u.s u.k u.n e.u d.c u.s.a p.m a.m e.g i.e ph.d
    """.split()
)

_STOP = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s+|$)")
_START = re.compile(r"[\"'“‘«(\[]?[A-Z0-9À-ÖØ-Þ]")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Return (start, end) spans of the sentences in `text[start:end]`.

    Spans are stripped of surrounding white space and cover all non-space text
    of the range, in order.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _STOP.finditer(text, start, end):
        stop = match.end()
        nxt = _next_non_space(text, stop, end)
        if nxt < end and not _START.match(text, nxt):
            continue
        if match.group().startswith(".") and _is_abbreviation(text, cursor, match.start()):
            continue
        _append(text, cursor, stop, spans)
        cursor = stop
    _append(text, cursor, end, spans)
    return spans


def _next_non_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _is_abbreviation(text: str, floor: int, dot: int) -> bool:
    word_start = dot
    while word_start > floor and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lstrip("\"'“‘«([").lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "John F. Kennedy"
    return word in _ABBREVIATIONS


def _append(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))
