"""Which language an article is in: what the page declares, else a guess from common function words.

Cheap on purpose (no model, no download): it tells English from German, French, Spanish and
Russian text well enough to filter by `lang`, and says None when unsure.
"""

from __future__ import annotations

import re

_HTML_LANG = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)
_META_LANG = re.compile(r"<meta\b[^>]*?(?:property|name)\s*=\s*[\"'](?:og:locale|language|content-language)[\"']"
                        r"[^>]*?content\s*=\s*[\"']([A-Za-z]{2,3})", re.I)
# A handful of the commonest function words per language: enough to tell plain text apart when the
# page does not say its language. Not a real detector; None when no language clearly wins.
_STOPWORDS = {
    "en": {"the", "and", "of", "to", "in", "is", "that", "was", "for", "on", "with", "said"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "mit", "den", "von", "sich", "auf", "ein"},
    "fr": {"le", "la", "les", "et", "des", "est", "une", "dans", "que", "pour", "du", "qui"},
    "es": {"el", "la", "los", "las", "y", "que", "del", "en", "por", "con", "una", "para"},
    "ru": {"и", "в", "не", "на", "что", "с", "по", "это", "как", "из", "для", "он"},
}
_WORDS = re.compile(r"\w+", re.UNICODE)


def guess_language(text: str) -> str | None:
    """A two-letter language code by counting common function words, or None when unsure."""
    words = _WORDS.findall(text.casefold()[:20_000])
    if len(words) < 8:
        return None
    counts = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    best = max(counts, key=counts.get)
    ranked = sorted(counts.values(), reverse=True)
    if ranked[0] < 3 or ranked[0] < 2 * ranked[1]:
        return None
    return best


def page_language(html: str, text: str) -> str | None:
    """The language the page declares (`<html lang>`, og:locale), else a guess from its text."""
    head = html[:50_000]
    match = _HTML_LANG.search(head) or _META_LANG.search(head)
    if match:
        return match.group(1).lower()
    return guess_language(text)
