"""Result ordering beyond relevance: newest first, recency, dates named in the query, story collapse.

`Searcher.search` ranks by relevance; an `Ordering` (all off by default, so the
default relevance order is untouched) changes what it returns:

- `sort="date"`: the *relevant* results, newest first; ties (same day) by
  relevance; undated articles last. "Relevant" is the retrieved candidate set
  cut at `DATE_SORT_FLOOR` of the best score, so a date sort never surfaces
  a barely matching newest article from the deep tail of the candidates.
- `recency_days` (a half-life): every candidate's fused score is multiplied
  by ``0.5 ** (age / half_life)``. The age is counted from the newest article
  date *in the index*, not from today's date, so an archive of 2005 still
  favours its own latest stories (and results do not drift with the clock).
  Undated articles get the factor of the oldest dated candidate.
- `query_dates`: a year or a month-and-year named in the query ("Toktogul
  2025", "December 2025 blackouts") favours articles of that period: the
  others (and undated ones) have their score multiplied by
  `QUERY_DATE_PENALTY`. An option, off by default: it has not been measured
  on a held-out set (issue 14 asks for automatic use only after that).
- `collapse="story"`: near-duplicate articles that survived ingest dedupe
  (estimated Jaccard of the MinHash signatures of `indexer.ingest.dedupe`
  at least `STORY_SIMILARITY`, below dedupe's `DEDUPE_THRESHOLD`) fold under the best
  ranked one, which lists them as `similar`.

Scores are scaled per article (the same factor for each of its passages), so
a `group="article"` ranking, which sums each leg's best passage, is scaled by
the same factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from indexer.errors import InvalidParameter
from indexer.minhash import similarity
from indexer.types import Citation

SORTS = ("relevance", "date")
COLLAPSES = ("story",)
QUERY_DATE_MODES = ("off", "auto")
# Results whose score is at least this share of the best result's count as relevant for sort=date.
DATE_SORT_FLOOR = 0.5
# Longest accepted half-life: a century (beyond that recency changes nothing).
MAX_HALF_LIFE_DAYS = 36500
# Score factor of the articles outside the dates a query names (with query_dates on).
QUERY_DATE_PENALTY = 0.5
# Estimated Jaccard similarity of 5-word shingles from which two articles are one story.
STORY_SIMILARITY = 0.5
# Results ranked before a date sort or a collapse of article groups (the deepest rank served).
ORDERING_DEPTH = 100
# Results ranked before a collapse: COLLAPSE_DEPTH × k, at least COLLAPSE_MIN. A story's leader never
# changes with the depth (it is the best ranked article of the story); only its `similar` list may grow.
COLLAPSE_DEPTH = 3
COLLAPSE_MIN = 30

_HALF_LIFE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d?\s*$", re.IGNORECASE)
_MONTHS = {name: i + 1 for i, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({name[:3]: number for name, number in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_YEAR = r"(1[89]\d\d|20\d\d)"
_MONTH_YEAR = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?\s+" + _YEAR + r"\b",
                         re.IGNORECASE)
_YEAR_ALONE = re.compile(r"\b" + _YEAR + r"\b")


@dataclass(frozen=True)
class Ordering:
    """How to order a search's results; the default is plain relevance."""

    sort: str = "relevance"
    recency_days: float | None = None
    query_dates: bool = False
    collapse: bool = False

    @property
    def rescores(self) -> bool:
        return self.recency_days is not None or self.query_dates


def validate_sort(sort: str | None) -> str:
    if sort in (None, ""):
        return "relevance"
    if sort not in SORTS:
        raise InvalidParameter(f"sort={sort!r} is not known: use sort=date for newest first, or sort=relevance "
                               "(default)", code="invalid_sort")
    return sort


def parse_half_life(value: str | float | int | None) -> float | None:
    """A recency half-life in days from `30`, `30d` or `7.5`; None when not given."""
    if value is None or value == "":
        return None
    match = _HALF_LIFE.match(str(value)) if not isinstance(value, bool) else None
    days = float(match.group(1)) if match else None
    if days is None or not 0 < days <= MAX_HALF_LIFE_DAYS:
        raise InvalidParameter(
            f"recency={value!r} is not a half-life: give days as a number or with d, between 1 and "
            f"{MAX_HALF_LIFE_DAYS}, e.g. recency=30d (an article 30 days older than the newest counts half)",
            code="invalid_recency")
    return days


def validate_collapse(collapse: str | None) -> bool:
    if collapse in (None, ""):
        return False
    if collapse not in COLLAPSES:
        raise InvalidParameter(f"collapse={collapse!r} is not known: use collapse=story to fold near-duplicate "
                               "articles into one result, or leave it out", code="invalid_collapse")
    return True


def validate_query_dates(dates: str | bool | None) -> bool:
    if dates in (None, "", False, "off"):
        return False
    if dates in (True, "auto"):
        return True
    raise InvalidParameter(f"dates={dates!r} is not known: use dates=auto to favour articles of a year or month "
                           "named in the query, or dates=off (default)", code="invalid_dates")


def make_ordering(sort: str | None = None, recency: str | float | None = None, dates: str | bool | None = None,
                  collapse: str | None = None) -> Ordering:
    """A validated `Ordering` from request parameters (each None/"" means its default)."""
    return Ordering(sort=validate_sort(sort), recency_days=parse_half_life(recency),
                    query_dates=validate_query_dates(dates), collapse=validate_collapse(collapse))


# --- pure functions -----------------------------------------------------------------------


def parse_day(value: str | None) -> date | None:
    """The day of an article date (`YYYY-MM-DD`, optionally with a time), or None."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def recency_factor(age_days: float, half_life_days: float) -> float:
    """0.5 ** (age / half-life): 1 for the newest article, 0.5 one half-life older."""
    return 0.5 ** (max(age_days, 0.0) / half_life_days)


def named_dates(query: str) -> list[tuple[int, int | None]]:
    """(year, month or None) of each month-and-year or lone year the query names."""
    found: list[tuple[int, int | None]] = []
    taken: list[tuple[int, int]] = []
    for m in _MONTH_YEAR.finditer(query):
        found.append((int(m.group(2)), _MONTHS[m.group(1).lower()]))
        taken.append(m.span())
    for m in _YEAR_ALONE.finditer(query):
        if not any(s <= m.start() < e for s, e in taken):
            found.append((int(m.group(1)), None))
    return list(dict.fromkeys(found))


def matches_dates(day: date | None, wanted: list[tuple[int, int | None]]) -> bool:
    return day is not None and any(day.year == y and (m is None or day.month == m) for y, m in wanted)


def date_factors(days: dict[str, date | None], ordering: Ordering, newest: date | None,
                 query: str) -> dict[str, float]:
    """The score factor of each article (id -> factor) for `ordering`'s recency and query dates."""
    factors = dict.fromkeys(days, 1.0)
    if ordering.recency_days is not None and newest is not None:
        ages = {a: (newest - d).days for a, d in days.items() if d is not None}
        oldest = max(ages.values(), default=0)
        for article_id in days:
            factors[article_id] *= recency_factor(ages.get(article_id, oldest), ordering.recency_days)
    wanted = named_dates(query) if ordering.query_dates else []
    if wanted:
        for article_id, day in days.items():
            if not matches_dates(day, wanted):
                factors[article_id] *= QUERY_DATE_PENALTY
    return factors


def _scaled(value: float, factor: float) -> float:
    # A negative score (dense cosine) must go down too, not up towards zero.
    return value * factor if value >= 0 else value / factor


def rescale(ranked: list[tuple[int, float]], parts: tuple[dict, dict], owner: dict[int, str],
            factors: dict[str, float]) -> tuple[list[tuple[int, float]], tuple[dict, dict]]:
    """`ranked` and the two score parts with each passage's parts scaled by its article's factor."""
    dense, lexical = ({c: _scaled(v, factors.get(owner.get(c, ""), 1.0)) for c, v in part.items()} for part in parts)
    rescored = sorted(((c, dense[c] + lexical[c]) for c, _ in ranked), key=lambda i: (-i[1], i[0]))
    return rescored, (dense, lexical)


def relevant(items: list, score_of) -> list:
    """The items scoring at least `DATE_SORT_FLOOR` of the best (all of them when the best is <= 0)."""
    if not items:
        return items
    best = max(score_of(i) for i in items)
    if best <= 0:
        return list(items)
    return [i for i in items if score_of(i) >= DATE_SORT_FLOOR * best]


def newest_first(items: list, day_of, score_of) -> list:
    """Items by day, newest first; the same day by score; undated last (by score)."""
    return sorted(items, key=lambda i: (day_of(i) is None, -(day_of(i) or date.min).toordinal(), -score_of(i)))


def stories(article_ids: list[str], signatures: dict[str, np.ndarray],
            threshold: float = STORY_SIMILARITY) -> dict[str, str]:
    """Each article's story leader: the first article (in the given rank order) it is similar to.

    An article is compared with the leaders so far only, so a story is the best
    ranked article and the ones that resemble it, never a chain of rewrites.
    """
    leaders: list[str] = []
    leader_of: dict[str, str] = {}
    for article_id in article_ids:
        if article_id in leader_of:
            continue
        sig = signatures.get(article_id)
        found = None
        if sig is not None:
            found = next((lead for lead in leaders if lead in signatures
                          and similarity(signatures[lead], sig) >= threshold), None)
        leader_of[article_id] = found or article_id
        if found is None:
            leaders.append(article_id)
    return leader_of


# --- the hooks Searcher.search calls ---------------------------------------------------------


def rescore(index, query: str, ranked: list[tuple[int, float]], parts: tuple[dict, dict], ordering: Ordering,
            group: str) -> tuple[list[tuple[int, float]], tuple[dict, dict]]:
    """Candidates after recency and query-date factors; for passages with sort=date, the relevant
    ones newest first (article groups are date sorted by `arrange`, after grouping)."""
    date_sorted = ordering.sort == "date" and group != "article"
    if not ranked or not (ordering.rescores or date_sorted):
        return ranked, parts
    owner, days = candidate_dates(index, [c for c, _ in ranked])
    if ordering.rescores:
        newest = parse_day(index.newest_date())
        ranked, parts = rescale(ranked, parts, owner, date_factors(days, ordering, newest, query))
    if date_sorted:
        ranked = newest_first(relevant(ranked, lambda i: i[1]), lambda i: days.get(owner.get(i[0], "")),
                              lambda i: i[1])
    return ranked, parts


def depth(k: int, group: str, ordering: Ordering) -> int:
    """How many results to build before `arrange` cuts them to `k`: every relevant article for a date
    sort of articles; for a collapse, `COLLAPSE_DEPTH` times `k` (at least `COLLAPSE_MIN`), enough to
    fill `k` after folding without building (and highlighting) a hundred groups for each page."""
    if ordering.sort == "date" and group == "article":
        return max(k, ORDERING_DEPTH)
    if ordering.collapse:
        return max(k * COLLAPSE_DEPTH, COLLAPSE_MIN)
    return k


def arrange(index, hits: list, groups: list, total: int, k: int, ordering: Ordering, group: str):
    """(hits, groups, total, similar) after an article date sort and a story collapse, cut to `k`.

    `similar` maps the chunk id of each kept hit to the citations of the
    near-duplicate articles folded under it (best passage of each).
    """
    similar: dict[int, tuple[Citation, ...]] = {}
    if not ordering.collapse and ordering.sort != "date":
        return hits[:k], groups[:k], total, similar
    if group == "article" and ordering.sort == "date":
        groups = newest_first(relevant(groups, lambda g: g.score), lambda g: parse_day(g.hits[0].citation.date),
                              lambda g: g.score)
        hits = [g.hits[0] for g in groups]
        total = len(groups)
    if ordering.collapse:
        ids = list(dict.fromkeys(h.citation.article_id for h in hits))
        leader_of = stories(ids, dict(index.signatures(ids)))
        kept: list[int] = []
        folded: dict[int, list[Citation]] = {}
        seen: dict[str, int] = {}
        for i, hit in enumerate(hits):
            lead = leader_of[hit.citation.article_id]
            if lead not in seen:
                seen[lead] = i
                kept.append(i)
                folded[i] = []
            elif hit.citation.article_id != lead and all(
                    c.article_id != hit.citation.article_id for c in folded[seen[lead]]):
                folded[seen[lead]].append(hit.citation)
        similar = {hits[i].chunk_id: tuple(folded[i]) for i in kept if folded[i]}
        total -= len(hits) - len(kept)  # the folded ones among those built; deeper ones are not known
        hits = [hits[i] for i in kept]
        groups = [groups[i] for i in kept] if groups else groups
    hits, groups = hits[:k], groups[:k]
    hits = [replace(h, rank=r) for r, h in enumerate(hits, start=1)]
    groups = [replace(g, rank=r, hits=(hits[r - 1], *g.hits[1:])) for r, g in enumerate(groups, start=1)]
    return hits, groups, total, similar


def candidate_dates(index, chunk_ids: list[int]) -> tuple[dict[int, str], dict[str, date | None]]:
    """(chunk id -> article id, article id -> its day) for the candidates."""
    owner = index.owners(chunk_ids)
    return owner, {a: parse_day(d) for a, d in index.article_dates(owner.values()).items()}
