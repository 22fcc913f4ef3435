"""Retrieval backend for LLM tools: token-budgeted context, tool schemas and tool calls.

HTTP routes:

- `GET|POST /v1/context` — the best passages for `q` as numbered, cited blocks
  that fit `max_tokens` (see `indexer.query.context`).
- `GET /v1/tools?format=openai|anthropic` — function-calling definitions of
  `search_news`, `answer_question`, `get_article` and `list_sources`, ready to
  pass as `tools=` to OpenAI's or Anthropic's API (one declaration, two shapes).
- `POST /v1/tools/{name}` — run one tool with the JSON arguments a model
  produced (`tool_call.function.arguments`); the same code serves the MCP
  server (`service/mcp_server.py`).

Every tool result is a JSON object whose compact serialisation
(`result_text`) is at most `max_tokens` tokens of `encoding`; that text is what
a model reads, so that is what the budget bounds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Response, get, post
from litestar.params import Parameter

from indexer.query.answer import DEFAULT_PASSAGES, Answerer
from indexer.query.context import (
    DEFAULT_MAX_TOKENS,
    MAX_MAX_TOKENS,
    MIN_MAX_TOKENS,
    PackedContext,
    pack_context,
    sentence_spans,
    validate_encoding,
    validate_max_tokens,
)
from indexer.errors import InvalidParameter, NewsqaError, NotFound
from indexer.query.search import (
    MAX_K,
    MAX_QUERY_CHARS,
    MODES,
    Searcher,
    SearchResult,
    make_filters,
    validate_k,
    validate_mode,
    validate_query,
)
from indexer.tokens import DEFAULT_ENCODING, ENCODINGS, count_tokens
from indexer.types import Article, Hit
from indexer.query.ordering import COLLAPSES, MAX_HALF_LIFE_DAYS, QUERY_DATE_MODES, SORTS, make_ordering
from service.api import (CollapseParam, DateFromParam, DatesParam, DateToParam, LangParam, ModeParam, QueryParam,
                         RecencyParam, SortParam, SourceParam)
from service.conventions import offloaded
from service.schemas import DATE, CitationOut, doc, error_responses

TOOL_NAMES = ("search_news", "answer_question", "get_article", "list_sources")
TOOL_FORMATS = ("openai", "anthropic")
MAX_ARTICLE_ID_CHARS = 200
# Passages considered when `k` is not given: enough to fill the budget with ~50-token
# fragments after merging, never fewer than 10.
_TOKENS_PER_PASSAGE = 50
_MIN_AUTO_K = 10


# --- parameters ----------------------------------------------------------------------------


class ContextArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of `/v1/context` (query string or JSON body) and the `search_news` tool;
    `context_args` checks them."""

    q: Annotated[str, doc("What to look for, in plain words; 1..1000 characters.", min_length=1,
                          max_length=MAX_QUERY_CHARS)]
    max_tokens: Annotated[int, doc(f"Token budget of `context`, {MIN_MAX_TOKENS}..{MAX_MAX_TOKENS}.",
                                   minimum=MIN_MAX_TOKENS, maximum=MAX_MAX_TOKENS)] = DEFAULT_MAX_TOKENS
    encoding: Annotated[str, doc("tiktoken encoding the budget is counted in.",
                                 enum=list(ENCODINGS))] = DEFAULT_ENCODING
    k: Annotated[int | None, doc(f"Passages to consider, 1..{MAX_K} (default: enough to fill max_tokens).",
                                 minimum=1, maximum=MAX_K)] = None
    mode: Annotated[str, doc("Ranking: hybrid (default), dense (meaning) or lexical (exact words).",
                             enum=list(MODES))] = "hybrid"
    date_from: Annotated[str | None, doc("Only articles dated on or after this day (YYYY-MM-DD).", **DATE)] = None
    date_to: Annotated[str | None, doc("Only articles dated on or before this day (YYYY-MM-DD).", **DATE)] = None
    source: Annotated[str | None, doc("Only articles from this source (any case); see GET /v1/sources.")] = None
    lang: Annotated[str | None, doc("Only articles in this language (ISO 639-1 code, e.g. en).")] = None
    sort: Annotated[str | None, doc("relevance (default) or date: the relevant passages newest first.",
                                    enum=[*SORTS, None])] = None
    recency: Annotated[str | None, doc(f"Half-life in days (e.g. 30d, up to {MAX_HALF_LIFE_DAYS}) favouring "
                                       "newer articles.")] = None
    dates: Annotated[str | None, doc("auto: favour articles of a year or month named in q; off (default).",
                                     enum=[*QUERY_DATE_MODES, None])] = None
    collapse: Annotated[str | None, doc("story: fold near-duplicate articles into one passage.",
                                        enum=[*COLLAPSES, None])] = None

    @property
    def ordering(self):
        return make_ordering(self.sort, self.recency, self.dates, self.collapse)

    @property
    def passages(self) -> int:
        """`k`, or enough passages to fill `max_tokens`."""
        if self.k is not None:
            return self.k
        return min(MAX_K, max(_MIN_AUTO_K, self.max_tokens // _TOKENS_PER_PASSAGE))


def context_args(**values: Any) -> ContextArgs:
    """`ContextArgs` with every value checked; domain errors name the value, the limit and the fix."""
    args = ContextArgs(**{k: v for k, v in values.items() if v is not None})
    validate_query(args.q)
    validate_max_tokens(args.max_tokens)
    validate_encoding(args.encoding)
    if args.k is not None:
        validate_k(args.k)
    validate_mode(args.mode)
    make_filters(args.date_from, args.date_to, args.source, args.lang)
    args.ordering  # noqa: B018 - validates sort, recency, dates and collapse
    return args


def _budget_properties() -> dict:
    return {
        "max_tokens": {
            "type": "integer", "minimum": MIN_MAX_TOKENS, "maximum": MAX_MAX_TOKENS, "default": DEFAULT_MAX_TOKENS,
            "description": "Token budget of the whole result, counted with `encoding`; it is never exceeded.",
        },
        "encoding": {
            "type": "string", "enum": list(ENCODINGS), "default": DEFAULT_ENCODING,
            "description": "tiktoken encoding the budget is counted in (o200k_base for GPT-4o-class models).",
        },
    }


def _search_properties() -> dict:
    date = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    return {
        "q": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
              "description": "What to look for, in plain words (a question or keywords)."},
        **_budget_properties(),
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K,
              "description": "Passages to consider (default: enough to fill max_tokens)."},
        "mode": {"type": "string", "enum": list(MODES), "default": "hybrid",
                 "description": "Ranking: hybrid (default), dense (meaning) or lexical (exact words)."},
        "date_from": {**date, "description": "Only articles dated on or after this day (YYYY-MM-DD)."},
        "date_to": {**date, "description": "Only articles dated on or before this day (YYYY-MM-DD)."},
        "source": {"type": "string", "description": "Only articles from this source (exact name)."},
        **_ORDERING_PROPERTIES,
        "lang": {"type": "string", "pattern": "^[A-Za-z]{2,3}$",
                 "description": "Only articles in this language (ISO 639-1 code, e.g. en, de); the model is "
                                "English-only, so other languages match by exact words."},
    }


_ORDERING_PROPERTIES = {
    "sort": {"type": "string", "enum": list(SORTS), "default": "relevance",
             "description": "relevance, or date: the relevant passages newest first (undated last)."},
    "recency": {"type": "string", "pattern": r"^\d+(\.\d+)?d?$",
                "description": "Half-life in days, e.g. \"30d\": favours articles newer in the archive "
                               "(score × 0.5^(age/half-life), age from the archive's newest article)."},
    "dates": {"type": "string", "enum": list(QUERY_DATE_MODES), "default": "off",
              "description": "auto: favour articles of a year or month named in q (\"December 2025 blackouts\")."},
    "collapse": {"type": "string", "enum": list(COLLAPSES),
                 "description": "story: near-duplicate articles fold into one result; its citation lists them "
                                "as `similar`."},
}


def tool_parameters(name: str) -> dict:
    """The JSON Schema (2020-12) of a tool's arguments; the HTTP route named in its description takes the same."""
    if name == "search_news":
        return {"type": "object", "properties": _search_properties(), "required": ["q"],
                "additionalProperties": False}
    if name == "answer_question":
        properties = _search_properties()
        properties["q"] = {**properties["q"], "description": "The question, in plain words."}
        for key in _ORDERING_PROPERTIES:  # the answer is the best sentence, whatever the order
            del properties[key]
        properties["k"] = {**properties["k"], "default": DEFAULT_PASSAGES,
                           "description": f"Passages the answer is chosen from (default {DEFAULT_PASSAGES})."}
        return {"type": "object", "properties": properties, "required": ["q"], "additionalProperties": False}
    if name == "get_article":
        return {
            "type": "object",
            "properties": {
                "article_id": {"type": "string", "minLength": 1, "maxLength": MAX_ARTICLE_ID_CHARS,
                               "description": "The article id, from a citation (`article_id`)."},
                "start": {"type": "integer", "minimum": 0, "default": 0,
                          "description": "Character offset to read from (a citation's `start`, or the "
                                         "`next_start` of a previous call); snapped back to its sentence start."},
                **_budget_properties(),
            },
            "required": ["article_id"],
            "additionalProperties": False,
        }
    if name == "list_sources":
        return {"type": "object", "properties": _budget_properties(), "required": [], "additionalProperties": False}
    raise NotFound(f"no tool named {name!r}: use one of {', '.join(TOOL_NAMES)}", code="unknown_tool")


_DESCRIPTIONS = {
    "search_news": (
        "Search the news archive. Returns `context`: the most relevant passages as numbered blocks "
        "`[n] Title (date) — text`, whole sentences only, and `citations` (n, article_id, title, date, source, "
        "url, section, start, end) to cite as [n]. HTTP: GET|POST /v1/context or POST /v1/tools/search_news."
    ),
    "answer_question": (
        "Answer a factual question from the news archive. Returns `answer` (a sentence quoted verbatim from an "
        "article, or null with a `reason` when the archive does not answer it), `span` (the exact answer phrase "
        "inside it with its article offsets, or null), its `citation` (with `n`: the context block [n] that holds "
        "the answer), `confidence`, and the passages it was chosen from as `context` blocks with `citations`. "
        "HTTP: /v1/answer takes the "
        "same search parameters; POST /v1/tools/answer_question takes these exactly."
    ),
    "get_article": (
        "Read one article by id (from a citation): title, date, source, url and the text from `start`, "
        "cut at a sentence end to fit max_tokens; continue with `next_start` when `truncated`. "
        "HTTP: GET /v1/articles/{article_id} (whole article) or POST /v1/tools/get_article."
    ),
    "list_sources": (
        "List the archive's sources: `sources` of {name, articles, undated, date_from, date_to}, to pick a "
        "`source` filter (matched in any case) or date range for search_news; date filters exclude undated "
        "articles. `truncated` when the list was cut to fit max_tokens. HTTP: GET /v1/sources."
    ),
}


def tool_definitions(format: str = "openai") -> list[dict]:
    """The tools as function-calling definitions (`tools=` of a request) in `format`:

    - `openai`: `{"type": "function", "function": {name, description, parameters}}` (chat completions);
    - `anthropic`: `{name, description, input_schema}` (Messages API).

    Both carry the same name, description and JSON Schema.
    """
    if format not in TOOL_FORMATS:
        raise InvalidParameter(f"format={format!r} is not known: use one of {', '.join(TOOL_FORMATS)} "
                               "(default openai)", code="invalid_format")
    if format == "anthropic":
        return [{"name": name, "description": _DESCRIPTIONS[name], "input_schema": tool_parameters(name)}
                for name in TOOL_NAMES]
    return [
        {"type": "function",
         "function": {"name": name, "description": _DESCRIPTIONS[name], "parameters": tool_parameters(name)}}
        for name in TOOL_NAMES
    ]


def check_arguments(name: str, arguments: Any) -> dict:
    """Type-check tool arguments against the tool's schema (unknown names, wrong JSON types).

    Ranges and formats are left to the domain validators, whose messages say how to fix a value.
    """
    schema = tool_parameters(name)
    if not isinstance(arguments, dict):
        raise InvalidParameter(f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}",
                               code="invalid_arguments")
    properties = schema["properties"]
    for key, value in arguments.items():
        if key not in properties:
            raise InvalidParameter(f"{name} has no argument {key!r}: use {', '.join(properties)}",
                                   code="invalid_arguments")
        if value is None:
            continue
        kind = properties[key]["type"]
        ok = isinstance(value, str) if kind == "string" else isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            raise InvalidParameter(f"{key}={value!r} must be a JSON {kind}", code="invalid_arguments")
    for key in schema["required"]:
        if arguments.get(key) is None:
            raise InvalidParameter(f"{name} needs the argument {key!r}", code="invalid_arguments")
    return arguments


# --- tool results ----------------------------------------------------------------------------


def result_text(result: dict) -> str:
    """The compact JSON a model reads for a tool result (what `max_tokens` bounds)."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


def result_tokens(result: dict, encoding: str) -> int:
    return count_tokens(result_text(result), encoding)


def citations_out(packed: PackedContext) -> list[dict]:
    out = []
    for block in packed.blocks:
        c = block.citation
        out.append({"n": block.n, "article_id": c.article_id, "title": c.title, "date": c.date, "source": c.source,
                    "url": c.url, "section": c.section, "start": c.start, "end": c.end, "paragraph": c.paragraph})
    return out


def context_body(packed: PackedContext) -> dict:
    return {"context": packed.text, "citations": citations_out(packed), "tokens": packed.tokens,
            "max_tokens": packed.max_tokens, "truncated": packed.truncated}


def search_result(searcher: Searcher, args: ContextArgs) -> SearchResult:
    filters = make_filters(args.date_from, args.date_to, args.source, args.lang)
    return searcher.search(args.q, k=args.passages, mode=args.mode, filters=filters, highlights=False,
                           ordering=args.ordering)


def search_hits(searcher: Searcher, args: ContextArgs) -> list[Hit]:
    return search_result(searcher, args).hits


def with_similar(body: dict, hits: list[Hit], similar: dict) -> dict:
    """`body` whose citations list the near-duplicate articles folded under their passage (collapse=story)."""
    folded = {h.citation.article_id: similar[h.chunk_id] for h in hits if h.chunk_id in similar}
    if not folded:
        return body
    citations = [{**c, "similar": [{"article_id": o.article_id, "title": o.title, "date": o.date}
                                   for o in folded[c["article_id"]]]} if c["article_id"] in folded else c
                 for c in body["citations"]]
    return {**body, "citations": citations}


def build_context(searcher: Searcher, args: ContextArgs) -> PackedContext:
    """The `/v1/context` result: the packed passages of the search for `args.q`."""
    return pack_context(search_hits(searcher, args), searcher.index, args.max_tokens, args.encoding)


def fit_result(make: Callable[[int], tuple[dict, int]], max_tokens: int, encoding: str) -> dict:
    """The result `make(budget)` with the largest context budget whose serialisation fits `max_tokens`.

    `make(budget)` packs its context into `budget` tokens and returns (result,
    context tokens). The JSON around the context (citations, field names,
    escapes) costs tokens too: the budget first shrinks by the overflow until
    the whole result fits, then a bisection between the last budget that did
    not fit and the first that did takes back what the shrinking overshot.
    `make(0)` (an empty context) must fit, else the budget is too small.
    """
    fitting: tuple[int, dict] | None = None
    failing = max_tokens + 1
    budget = max_tokens
    while fitting is None:
        result, used = make(budget)
        over = result_tokens(result, encoding) - max_tokens
        if over <= 0:
            fitting = (budget, result)
        elif budget == 0:
            raise InvalidParameter(
                f"max_tokens={max_tokens} cannot hold even an empty result: raise it (up to {MAX_MAX_TOKENS})",
                code="invalid_max_tokens")
        else:
            failing = budget
            budget = max(0, min(budget - 1, used - over))
    while failing - fitting[0] > 1:
        budget = (failing + fitting[0]) // 2
        result, _ = make(budget)
        if result_tokens(result, encoding) <= max_tokens:
            fitting = (budget, result)
        else:
            failing = budget
    return fitting[1]


def search_news(searcher: Searcher, arguments: dict) -> dict:
    """Tool `search_news`: `/v1/context` without the query echo, the whole JSON within max_tokens."""
    args = context_args(**arguments)
    result = search_result(searcher, args)
    hits = result.hits

    def make(budget: int) -> tuple[dict, int]:
        packed = pack_context(hits, searcher.index, budget, args.encoding)
        body = with_similar(context_body(packed), hits, result.similar)
        return {**body, "max_tokens": args.max_tokens}, packed.tokens

    return fit_result(make, args.max_tokens, args.encoding)


def answer_question(searcher: Searcher, arguments: dict) -> dict:
    """Tool `answer_question`: `indexer.query.answer.Answerer`'s verbatim answer sentence and its citation (or
    null and the reason), plus the passages it was chosen from as budgeted context.

    The answer always lies inside the context: its sentences are packed first, whatever the budget, and
    its citation carries `n`, the number of the block that holds it, so the model can cite it as [n].
    """
    args = context_args(**{"k": DEFAULT_PASSAGES, **{k: v for k, v in arguments.items() if v is not None}})
    filters = make_filters(args.date_from, args.date_to, args.source, args.lang)
    found = Answerer(searcher).answer(args.q, k=args.passages, mode=args.mode, filters=filters)
    head = {"answer": None, "span": None, "citation": None, "confidence": round(found.confidence, 4),
            "reason": found.reason}
    hits, floor = list(found.passages), 0
    if found.answer is not None:
        c = found.answer.citation
        head["answer"] = found.answer.text
        s = found.answer.span
        head["span"] = {"text": s.text, "start": s.start, "end": s.end} if s is not None else None
        head["citation"] = {"n": None, "article_id": c.article_id, "title": c.title, "date": c.date,
                            "source": c.source, "url": c.url, "section": c.section, "start": c.start, "end": c.end,
                            "paragraph": c.paragraph}
        answer_hit = Hit(rank=0, score=1.0, text=found.answer.text, citation=c, chunk_id=-1)
        hits.insert(0, answer_hit)
        # The smallest context that holds the answer: its own block.
        floor = pack_context([answer_hit], searcher.index, MAX_MAX_TOKENS, args.encoding).tokens

    def make(budget: int) -> tuple[dict, int]:
        packed = pack_context(hits, searcher.index, max(budget, floor), args.encoding)
        result = {**head, **context_body(packed), "max_tokens": args.max_tokens}
        if found.answer is not None:
            result["citation"] = {**head["citation"], "n": block_holding(packed, found.answer.citation)}
        return result, packed.tokens

    try:
        return fit_result(make, args.max_tokens, args.encoding)
    except InvalidParameter:
        needed = result_tokens(make(0)[0], args.encoding)
        raise InvalidParameter(f"the answer with its citation needs {needed} tokens, max_tokens={args.max_tokens}: "
                               f"raise max_tokens to at least {needed}", code="invalid_max_tokens") from None


def block_holding(packed: PackedContext, citation) -> int | None:
    """The number `n` of the context block that contains the cited span, or None."""
    for block in packed.blocks:
        c = block.citation
        if c.article_id == citation.article_id and c.start <= citation.start and citation.end <= c.end:
            return block.n
    return None


def get_article(searcher: Searcher, arguments: dict) -> dict:
    """Tool `get_article`: the article from `start`, cut at a sentence end so the JSON fits max_tokens."""
    article_id = arguments["article_id"]
    if len(article_id) > MAX_ARTICLE_ID_CHARS:
        raise InvalidParameter(f"article_id is {len(article_id)} characters long, the limit is "
                               f"{MAX_ARTICLE_ID_CHARS}: pass an article_id from a citation", code="invalid_article_id")
    start = arguments.get("start")
    start = 0 if start is None else start
    if start < 0:
        raise InvalidParameter(f"start={start} is negative: use a character offset >= 0 (default 0)",
                               code="invalid_start")
    max_tokens = validate_max_tokens(_given(arguments, "max_tokens", DEFAULT_MAX_TOKENS))
    encoding = validate_encoding(_given(arguments, "encoding", DEFAULT_ENCODING))
    article = searcher.index.article(article_id)
    spans = [s for s in sentence_spans(article) if s[1] > start]
    if start >= len(article.text) or not spans:
        raise InvalidParameter(f"start={start} is past the end of the article ({len(article.text)} characters): "
                               "use a smaller offset", code="invalid_start")

    # Section titles help reading but are the first thing dropped when the budget is tight.
    with_sections = True

    def body(m: int) -> dict:
        """The result holding the first `m` sentences from `start`."""
        begin = spans[0][0]
        end = spans[m - 1][1] if m else begin
        return article_window(article, begin, end, max_tokens, truncated=m < len(spans),
                              next_start=spans[m][0] if m < len(spans) else None, sections=with_sections)

    if result_tokens(body(0), encoding) > max_tokens:
        with_sections = False
        needed = result_tokens(body(0), encoding)
        if needed > max_tokens:
            raise InvalidParameter(f"the article's title and source alone need {needed} tokens, "
                                   f"max_tokens={max_tokens}: raise max_tokens to at least {needed + 50}",
                                   code="invalid_max_tokens")
    return largest_fitting(body, len(spans), encoding, max_tokens)


def largest_fitting(body: Callable[[int], dict], most: int, encoding: str, max_tokens: int) -> dict:
    """`body(m)` for the largest m in 0..`most` whose result fits in `max_tokens` tokens of `encoding`
    (`body(0)` when none does). Bodies grow with m, so a binary search finds it; the body returned was
    measured to fit."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if result_tokens(body(mid), encoding) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return body(lo)


def _given(arguments: dict, key: str, default: Any) -> Any:
    value = arguments.get(key)
    return default if value is None else value


def article_window(article: Article, start: int, end: int, max_tokens: int, *, truncated: bool,
                   next_start: int | None, sections: bool = True) -> dict:
    """An article result: `text` is exactly `article.text[start:end]`, so citation offsets apply to it.

    `sections` lists the titled sections that overlap the window (empty when `sections` is False).
    """
    titled = [{"title": s.title, "start": s.start, "end": s.end} for s in article.sections
              if sections and s.title and s.start < max(end, start + 1) and s.end > start]
    return {"article_id": article.article_id, "title": article.title, "date": article.date,
            "source": article.source, "url": article.url, "sections": titled, "start": start, "end": end,
            "text": article.text[start:end], "truncated": truncated, "next_start": next_start,
            "max_tokens": max_tokens}


def list_sources(searcher: Searcher, arguments: dict) -> dict:
    """Tool `list_sources`: `GET /v1/sources` as a tool result, the most articles first when cut to fit."""
    max_tokens = validate_max_tokens(_given(arguments, "max_tokens", DEFAULT_MAX_TOKENS))
    encoding = validate_encoding(_given(arguments, "encoding", DEFAULT_ENCODING))
    stats = sorted(searcher.index.source_stats(), key=lambda s: (-s["articles"], s["name"]))

    def body(m: int) -> dict:
        return {"sources": stats[:m], "truncated": m < len(stats), "max_tokens": max_tokens}

    # Zero sources always fit (MIN_MAX_TOKENS exceeds that body's size).
    return largest_fitting(body, len(stats), encoding, max_tokens)


_TOOLS: dict[str, Callable[[Searcher, dict], dict]] = {
    "search_news": search_news,
    "answer_question": answer_question,
    "get_article": get_article,
    "list_sources": list_sources,
}


def run_tool(searcher: Searcher, name: str, arguments: Any) -> dict:
    """Run tool `name` with a model's `arguments`; raises domain errors (NewsqaError) for bad input."""
    if name not in _TOOLS:
        raise NotFound(f"no tool named {name!r}: use one of {', '.join(TOOL_NAMES)}", code="unknown_tool")
    return _TOOLS[name](searcher, check_arguments(name, arguments if arguments is not None else {}))


def error_result(exc: NewsqaError, max_tokens: int = MIN_MAX_TOKENS, encoding: str = DEFAULT_ENCODING) -> dict:
    """The error shape as a tool result; a message too long for `max_tokens` is shortened, marked with `…`."""
    message = exc.message
    while True:
        result = {"error": {"code": exc.code, "message": message}}
        if not message or result_tokens(result, encoding) <= max_tokens:
            return result
        message = message[: len(message) * 3 // 4 - 1].rstrip() + "…" if len(message) > 4 else ""


# --- HTTP ------------------------------------------------------------------------------------------


class ContextCitationOut(CitationOut):
    """A hit's citation plus `n`, the number of its block in the context (`[n]`)."""

    n: int


class ContextOut(msgspec.Struct):
    query: str
    context: str
    citations: list[ContextCitationOut]
    tokens: int
    max_tokens: int
    encoding: str
    truncated: bool


def context_out(searcher: Searcher, args: ContextArgs) -> ContextOut:
    packed = build_context(searcher, args)
    return ContextOut(query=validate_query(args.q), context=packed.text,
                      citations=[ContextCitationOut(**c) for c in citations_out(packed)], tokens=packed.tokens,
                      max_tokens=packed.max_tokens, encoding=packed.encoding, truncated=packed.truncated)


@get("/v1/context", summary="Token-budgeted context for an LLM", operation_id="context",
     responses=error_responses(400))
async def context_get(
    searcher: Searcher,
    q: QueryParam,
    max_tokens: Annotated[int, Parameter(
        description=f"Token budget of `context`, {MIN_MAX_TOKENS}..{MAX_MAX_TOKENS}, counted with `encoding`.",
        schema_extra={"minimum": MIN_MAX_TOKENS, "maximum": MAX_MAX_TOKENS})] = DEFAULT_MAX_TOKENS,
    encoding: Annotated[str, Parameter(
        description="tiktoken encoding the budget is counted in (o200k_base for GPT-4o-class models).",
        schema_extra={"enum": list(ENCODINGS)})] = DEFAULT_ENCODING,
    k: Annotated[int | None, Parameter(
        description=f"Passages to consider, 1..{MAX_K} (default: enough to fill max_tokens).",
        schema_extra={"minimum": 1, "maximum": MAX_K})] = None,
    mode: ModeParam = "hybrid",
    date_from: DateFromParam = None,
    date_to: DateToParam = None,
    source: SourceParam = None,
    lang: LangParam = None,
    sort: SortParam = None,
    recency: RecencyParam = None,
    dates: DatesParam = None,
    collapse: CollapseParam = None,
) -> ContextOut:
    """The best passages for `q` as numbered blocks `[n] Title (date) — text` with their citations.

    Packed greedily by relevance into `max_tokens` (50..8000) tokens of `encoding`, whole sentences only,
    adjacent passages of one article merged; `tokens` is the exact count of `context`.
    """
    # Async with an explicit offload (see `offloaded`): the packing runs on one worker thread.
    return await offloaded(lambda: context_out(searcher, context_args(
        q=q, max_tokens=max_tokens, encoding=encoding, k=k, mode=mode, date_from=date_from, date_to=date_to,
        source=source, lang=lang, sort=sort, recency=recency, dates=dates, collapse=collapse)))


@post("/v1/context", sync_to_thread=True, status_code=200, summary="Token-budgeted context (JSON body)",
      operation_id="contextPost", responses=error_responses(400, 413))
def context_post(searcher: Searcher, data: ContextArgs) -> ContextOut:
    """The same as `GET /v1/context`, with the parameters in a JSON body."""
    return context_out(searcher, context_args(**msgspec.structs.asdict(data)))


@get("/v1/tools", sync_to_thread=False, summary="Tool definitions for OpenAI or Anthropic function calling",
     operation_id="listTools", responses=error_responses(400))
def tools_list(
    format: Annotated[str, Parameter(
        description="openai (default): `{type: function, function: {name, description, parameters}}`; "
                    "anthropic: `{name, description, input_schema}`.",
        schema_extra={"enum": list(TOOL_FORMATS)})] = "openai",
) -> list[dict]:
    """Function-calling definitions of search_news, answer_question, get_article and list_sources
    (pass as `tools=`), from one declaration in either API's shape."""
    return tool_definitions(format)


@post("/v1/tools/{name:str}", sync_to_thread=True, status_code=200, summary="Run a tool call",
      operation_id="callTool", responses=error_responses(400, 404, 413))
def tools_call(searcher: Searcher, name: Annotated[str, Parameter(
        description="The tool to run: " + ", ".join(TOOL_NAMES) + ".", schema_extra={"enum": list(TOOL_NAMES)})],
               data: dict[str, Any] | None = None) -> Response[dict[str, Any]]:
    """Run tool `name` with the model's arguments (the JSON object in `tool_call.function.arguments`).

    The body is the tool result: its compact JSON is at most `max_tokens` tokens. No body means no arguments.
    """
    return Response(result_text(run_tool(searcher, name, data)), media_type=MediaType.JSON)


ROUTES = [context_get, context_post, tools_list, tools_call]
