"""Server-rendered search page (`GET /`) and article pages (`GET /articles/{id}`).

The pages work without JavaScript: the query and filters live in the URL, the
form submits with GET, and results are rendered on the server from the same
`Searcher` the JSON API uses. Jinja autoescapes every value; highlights are
never produced by string replacement on HTML, they are computed as character
offsets and rendered as a list of (text, marked) segments, so article text such
as `<script>` stays inert text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlencode

from litestar import Request, get
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from indexer.errors import InvalidParameter, NewsqaError
from indexer.query.ordering import make_ordering
from indexer.query.search import DEFAULT_K, DEFAULT_MODE, MAX_K, MODES, Searcher, SearchResult, make_filters
from indexer.store.embedded import package_version
from indexer.types import Article, Hit, Span
from service.conventions import REVALIDATE, ConditionalGet, article_etag, empty_reason, path_article_id

log = logging.getLogger("newsqa.web")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MODE_LABELS = {"hybrid": "Hybrid", "dense": "Meaning", "lexical": "Exact words"}
EXAMPLES = ("Toktogul water levels", "locomotive deal with Kazakhstan", "Kyrgyz som exchange rate")
SERVER_ERROR = ("Something went wrong on our side and the search could not run. "
                "It has been logged; please try again in a moment.")


def template_config() -> TemplateConfig:
    """Jinja templates from `service/templates` (autoescaping on), for `Litestar(template_config=...)`."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


# --- page models -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text that is either plain or marked; `anchor` is the id of the first marked run."""

    text: str
    mark: bool = False
    anchor: str | None = None


@dataclass(frozen=True, slots=True)
class SearchParams:
    """What the search form sends; every field is a URL query parameter of `/`."""

    q: str | None = None
    mode: str = DEFAULT_MODE
    date_from: str = ""
    date_to: str = ""
    source: str = ""
    k: str = ""
    # "date" for newest first (the Relevance | Newest toggle); "" is relevance.
    sort: str = ""
    lang: str = ""

    @property
    def advanced(self) -> bool:
        """True when any filter or a non-default mode is set (the advanced corner opens)."""
        return bool(self.date_from or self.date_to or self.source or self.lang or self.mode != DEFAULT_MODE)

    @property
    def filtered(self) -> bool:
        return bool(self.date_from or self.date_to or self.source or self.lang)

    def pairs(self, **override: str) -> list[tuple[str, str]]:
        """Non-empty, non-default parameters, in a stable order (for links back to this search)."""
        values = {"q": self.q or "", "mode": self.mode, "date_from": self.date_from, "date_to": self.date_to,
                  "source": self.source, "k": self.k, "sort": self.sort, "lang": self.lang, **override}
        defaults = {"mode": DEFAULT_MODE}
        return [(name, value) for name, value in values.items() if value and value != defaults.get(name)]

    def url(self, **override: str) -> str:
        query = urlencode(self.pairs(**override))
        return "/?" + query if query else "/"


@dataclass(frozen=True, slots=True)
class Passage:
    rank: int
    section: str | None
    paragraph: int
    start: int
    end: int
    segments: tuple[Segment, ...]
    href: str


@dataclass(frozen=True, slots=True)
class ArticleGroup:
    """The passages of one article, in rank order; the group is placed by its best passage."""

    article_id: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    href: str
    passages: tuple[Passage, ...]
    # Near-duplicate articles (syndicated rewrites) folded under this one.
    similar: tuple[SimilarLink, ...] = ()


@dataclass(frozen=True, slots=True)
class SimilarLink:
    title: str
    date: str | None
    href: str


@dataclass(frozen=True, slots=True)
class AnswerBox:
    """The answer sentence cut around its short answer: `before + span + after == text`."""

    text: str
    title: str
    date: str | None
    href: str
    before: str = ""
    span: str = ""
    after: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """One rendered block of an article page: a section heading or a paragraph."""

    kind: str  # "heading" or "paragraph"
    segments: tuple[Segment, ...]


# --- offsets to segments -------------------------------------------------------------------


def mark_segments(text: str, base: int, spans: Iterable[Span], *, anchor: str | None = None) -> tuple[Segment, ...]:
    """Split `text` (which covers absolute offsets `base .. base+len(text)`) into plain and marked runs.

    `spans` are absolute character offsets (into the article text); parts outside
    `text` are clipped, overlapping spans are merged. The first marked run gets
    `anchor` as its id. The concatenated segment texts always equal `text`.
    """
    end_of_text = base + len(text)
    clipped = sorted((max(s.start, base), min(s.end, end_of_text)) for s in spans)
    merged: list[list[int]] = []
    for start, end in clipped:
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    segments: list[Segment] = []
    cursor = base
    for start, end in merged:
        if start > cursor:
            segments.append(Segment(text[cursor - base:start - base]))
        segments.append(Segment(text[start - base:end - base], mark=True, anchor=anchor))
        anchor = None
        cursor = end
    if cursor < end_of_text or not segments:
        segments.append(Segment(text[cursor - base:]))
    return tuple(segments)


def parse_range(value: str | None, length: int) -> Span | None:
    """`"120-480"` → Span(120, 480) when it lies inside a text of `length` chars, else None."""
    if not value:
        return None
    start, sep, end = value.partition("-")
    if not (sep and start.isdigit() and end.isdigit()):
        return None
    span = Span(int(start), int(end))
    return span if 0 <= span.start < span.end <= length else None


def pretty_date(value: str | None) -> str:
    """`2025-12-16` → `16 December 2025`; anything else is shown as given."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value
    return f"{day.day} {day:%B %Y}"


def safe_url(url: str | None) -> str | None:
    """`url` when it is an http(s) link; None for anything else (a `javascript:` URL is never linked)."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return None


# --- building the page models ---------------------------------------------------------------


def article_href(article_id: str, start: int, end: int, params: SearchParams) -> str:
    """Link to the article page with the passage `start..end` highlighted and scrolled into view."""
    query = urlencode([*params.pairs(), ("hl", f"{start}-{end}")])
    return f"/articles/{quote(article_id, safe='')}?{query}#{start}-{end}"


def group_hits(result: SearchResult, params: SearchParams) -> list[ArticleGroup]:
    """The result's passages grouped by article, groups in rank order.

    Uses the searcher's own article groups when it made them (`group="article"`),
    otherwise groups the flat hits, each group placed by its best-ranked passage.
    """
    order: dict[str, list[Hit]] = {}
    if getattr(result, "groups", None):
        for group in result.groups:
            order[group.article_id] = list(group.hits)
    else:
        for hit in result.hits:
            order.setdefault(hit.citation.article_id, []).append(hit)
    groups = []
    for article_id, article_hits in order.items():
        first = article_hits[0].citation
        passages = tuple(
            Passage(
                rank=hit.rank,
                section=hit.citation.section,
                paragraph=hit.citation.paragraph,
                start=hit.citation.start,
                end=hit.citation.end,
                segments=mark_segments(hit.text, hit.citation.start, hit.highlights),
                href=article_href(article_id, hit.citation.start, hit.citation.end, params),
            )
            for hit in article_hits
        )
        similar = tuple(SimilarLink(c.title, c.date, article_href(c.article_id, c.start, c.end, params))
                        for c in getattr(result, "similar", {}).get(article_hits[0].chunk_id, ()))
        groups.append(ArticleGroup(article_id, first.title, first.date, first.source, first.url,
                                   passages[0].href, passages, similar))
    return groups


def find_answer(searcher: Searcher, result: SearchResult, params: SearchParams) -> AnswerBox | None:
    """The answer sentence for the query, when `indexer.query.answer` is available and confident.

    The answer box is an extra on this page: when the answer module is missing or
    fails, the results are still shown (the failure is logged), never an error page.
    """
    try:
        from indexer.query.answer import Answerer
    except ImportError:
        return None
    try:
        filters = make_filters(params.date_from, params.date_to, params.source, params.lang)
        found = Answerer(searcher).answer(result.query, mode=result.mode, filters=filters).answer
    except NewsqaError:
        return None
    except Exception:  # noqa: BLE001 — the results must render even if the answer fails
        log.exception("answer failed for %r", result.query)
        return None
    if found is None:
        return None
    c = found.citation
    href = article_href(c.article_id, c.start, c.end, params)
    if found.span is None:
        return AnswerBox(found.text, c.title, c.date, href, before=found.text)
    cut, length = found.span.start - c.start, found.span.end - found.span.start
    return AnswerBox(found.text, c.title, c.date, href, before=found.text[:cut],
                     span=found.text[cut:cut + length], after=found.text[cut + length:])


def article_blocks(article: Article, highlight: Span | None) -> list[Block]:
    """The article as headings and paragraphs; `highlight` (absolute offsets) is marked in place."""
    spans = [highlight] if highlight else []
    anchor = f"{highlight.start}-{highlight.end}" if highlight else None
    paragraphs = list(article.paragraphs) or ([(0, len(article.text))] if article.text else [])
    blocks: list[Block] = []
    current: str | None = None
    for start, end in paragraphs:
        title = article.section_at(start)
        if title != current:
            current = title
            if title and title != article.title:  # the lead section often repeats the headline
                blocks.append(Block("heading", (Segment(title),)))
        segments = mark_segments(article.text[start:end], start, spans, anchor=anchor)
        if any(s.anchor for s in segments):
            anchor = None  # the id goes on the first marked run only
        blocks.append(Block("paragraph", segments))
    return blocks


# --- route handlers --------------------------------------------------------------------------


def _render(name: str, status: int, **context) -> Template:
    return Template(template_name=name, context=context, status_code=status,
                    headers={"Cache-Control": "no-store"})


def _sources(searcher: Searcher, params: SearchParams) -> list[str]:
    sources = searcher.index.sources()
    if params.source and params.source not in sources:
        sources = [*sources, params.source]
    return sources


def _parse_k(value: str) -> int:
    if not value:
        return DEFAULT_K
    try:
        return int(value)
    except ValueError:
        raise InvalidParameter(f"k={value!r} is not a number: use 1..100 (default {DEFAULT_K})",
                               code="invalid_k") from None


def provide_params(
    q: str | None = None, mode: str = DEFAULT_MODE, date_from: str = "", date_to: str = "", source: str = "", k: str = "",
    sort: str = "",
    lang: str = "",
) -> SearchParams:
    """The search form's query parameters, shared by the search page and the article page."""
    return SearchParams(q=q, mode=mode or DEFAULT_MODE, date_from=date_from, date_to=date_to, source=source, k=k,
                        sort="" if sort == "relevance" else sort, lang=lang)


_PARAMS = {"params": Provide(provide_params, sync_to_thread=False)}


@get("/", sync_to_thread=True, include_in_schema=False, dependencies=_PARAMS)
def search_page(searcher: Searcher, params: SearchParams) -> Template:
    """The search page: the landing page without `q`, otherwise the results for `q` and the filters."""
    q = params.q
    context = {"params": params, "modes": MODES, "mode_labels": MODE_LABELS, "examples": EXAMPLES,
               "pretty_date": pretty_date, "state": "home", "page": "search"}
    try:
        context["sources"] = _sources(searcher, params)
        if q is None:
            return _render("search.html", 200, **context)
        if not q.strip():
            return _render("search.html", 200, **{**context, "state": "empty"})
        filters = make_filters(params.date_from, params.date_to, params.source, params.lang)
        k = _parse_k(params.k)
        # The page always folds near-duplicate stories: a reader wants one result per story.
        order = make_ordering(sort=params.sort or None, collapse="story")
        result = searcher.search(q, k=k, mode=params.mode, filters=filters, group="article", ordering=order)
        groups = group_hits(result, params)
        state = "results" if result.hits else "no_results"
        # "More results" shows the next articles on the same page (a longer list keeps the context).
        more_url = params.url(k=str(min(k + DEFAULT_K, MAX_K))) if k < MAX_K and result.total > len(groups) else None
        reason = None if result.hits else empty_reason(searcher, filters)
        low_confidence = bool(getattr(result, "low_confidence", False)) and bool(result.hits)
        answer = None if low_confidence else find_answer(searcher, result, params)
        return _render("search.html", 200, **{**context, "state": state, "result": result, "groups": groups,
                                               "passages": sum(len(g.passages) for g in groups),
                                               "low_confidence": low_confidence, "answer": answer,
                                               "more_url": more_url, "reason": reason})
    except NewsqaError as exc:
        return _render("search.html", exc.http_status,
                       **{**context, "sources": context.get("sources", []), "state": "error", "error": exc.message})
    except Exception:  # noqa: BLE001 — a friendly page instead of a traceback; details go to the log
        log.exception("search page failed for q=%r", q)
        return _render("search.html", 500, **{**context, "sources": context.get("sources", []), "state": "error",
                                               "error": SERVER_ERROR, "fault": True})


@get("/articles/{article_id:path}", sync_to_thread=True, include_in_schema=False, dependencies=_PARAMS,
     middleware=[ConditionalGet()])
def article_page(request: Request, searcher: Searcher, article_id: str, params: SearchParams,
                 hl: str | None = None) -> Template:
    """The whole article; `hl=start-end` marks that passage (and `#start-end` scrolls to it)."""
    article_id = path_article_id(request, article_id, "/articles/")
    context = {"params": params, "modes": MODES, "mode_labels": MODE_LABELS, "pretty_date": pretty_date,
               "safe_url": safe_url, "page": "article", "back": params.url() if params.q else None}
    try:
        context["sources"] = _sources(searcher, params)
        article = searcher.index.article(article_id)
        highlight = parse_range(hl, len(article.text))
        page = _render("article.html", 200, **context, article=article, blocks=article_blocks(article, highlight),
                       highlight=highlight, bad_highlight=bool(hl) and highlight is None,
                       paragraph=article.paragraph_at(highlight.start) + 1 if highlight else None)
        # The page depends on the article (index version), its query string and the templates (package).
        key = f"{package_version()}\0{article_id}\0{params.url()}\0{hl or ''}"
        page.headers.update({"ETag": article_etag(searcher.index.version, key), "Cache-Control": REVALIDATE})
        return page
    except NewsqaError as exc:
        return _render("article.html", exc.http_status, **{**context, "sources": context.get("sources", [])},
                       article=None, error=exc.message, not_found=exc.http_status == 404)
    except Exception:  # noqa: BLE001
        log.exception("article page failed for %r", article_id)
        return _render("article.html", 500, **{**context, "sources": context.get("sources", [])},
                       article=None, error=SERVER_ERROR, not_found=False)


ROUTES = [
    search_page,
    article_page,
    # Static files carry an ETag of their size and mtime; clients revalidate after an hour.
    create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False,
                               cache_control=CacheControlHeader(public=True, max_age=3600),
                               middleware=[ConditionalGet()]),
]
