"""HTTP conventions the JSON API and the pages share.

- `reject_unknown_params`: a query parameter a `/v1` route does not take is a
  400 that names it (a typo must not look like a ranking bug).
- `ConditionalGet` and `article_etag`: ETags keyed by the index version, and a
  bodiless 304 when `If-None-Match` names the current one.
- `empty_reason`: which filter excluded every article, when one did.
- `offloaded`: a blocking call on a worker thread, for async handlers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from litestar import Request
from litestar.concurrency import sync_to_thread
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from indexer.errors import InvalidParameter
from indexer.query.search import Searcher, validate_query
from indexer.types import Filters


T = TypeVar("T")


async def offloaded(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` on a worker thread (with this request's context, so its time budget follows).

    For a GET handler that shares its path with a POST: Litestar 2 registers every handler of
    a path again when another method joins it, and wraps a `sync_to_thread=True` handler each
    time, so the GET ran as a thread hop that only made a coroutine, then a second hop for the
    work: CPU and a context switch per request for nothing. An async handler that offloads its
    work here is never wrapped (tests/test_api.py checks that no handler is offloaded twice).
    """
    return await sync_to_thread(call, *args)


# Keyword arguments a handler receives that are not query parameters.
_NOT_QUERY = frozenset({"request", "state", "data", "scope", "headers", "cookies", "body", "query"})


def reject_unknown_params(request: Request) -> None:
    """Before every `/v1` route: a query parameter the route does not take is a 400 that names it,
    and a missing `q` the usual `empty_query` 400 (not the framework's generic message).

    A typo (`dat_from=`) would otherwise be ignored silently and look like a bug in
    the results. Pages (`/`, `/articles/...`) ignore unknown parameters instead:
    shared links often carry tracking parameters.
    """
    if not request.url.path.startswith("/v1/"):
        return
    handler = request.scope["route_handler"]
    known = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies()) - _NOT_QUERY
    known -= set(request.path_params)
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise InvalidParameter(
            f"unknown query parameter {', '.join(repr(u) for u in unknown)} for {request.url.path}: "
            f"it takes {takes}", code="unknown_parameter")
    if "q" in known and "q" not in request.query_params:
        validate_query(None)  # the required query, missing: the domain error says how to write one


def path_article_id(request: Request, matched: str, prefix: str) -> str:
    """The article id a `{article_id:path}` route was called with, exactly as the client encoded it.

    Ids may hold any character, "/" included; links encode them whole
    (`quote(id, safe="")`). The router's `matched` value has lost what path
    normalisation drops (a leading, trailing or doubled "/"), so the id is
    decoded from the raw path when there is one.
    """
    raw = request.scope.get("raw_path")
    if raw:
        path = raw.decode("latin-1").partition("?")[0]  # some servers leave the query string on
        root = request.scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):]
        if path.startswith(prefix):
            return unquote(path[len(prefix):], encoding="utf-8", errors="replace")
    return matched.lstrip("/")


def article_etag(version: str, key: str) -> str:
    """A weak ETag for a response about `key` in index `version` (a new version changes it); weak
    because gzip and identity encodings of the response share it."""
    return 'W/"' + hashlib.sha256(f"{version}\0{key}".encode()).hexdigest()[:32] + '"'


# Clients may keep an article but must revalidate it: a reload can change or remove it.
REVALIDATE = "no-cache"


class ConditionalGet(ASGIMiddleware):
    """Answers a GET whose `If-None-Match` names the response's ETag with a bodiless 304.

    The handler runs as usual (a missing article is still a 404); only a 200 with
    a matching ETag becomes a 304, keeping its ETag and Cache-Control.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        wanted = {_opaque(t) for name, value in scope.get("headers", ()) if name == b"if-none-match"
                  for t in value.decode("latin-1").split(",")}
        if not wanted or scope["method"] not in ("GET", "HEAD"):
            await next_app(scope, receive, send)
            return
        swallowing = False

        async def conditional_send(message: Message) -> None:
            nonlocal swallowing
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = dict(message.get("headers", ()))
                etag = _opaque(headers.get(b"etag", b"").decode("latin-1"))
                if etag and (etag in wanted or "*" in wanted):
                    swallowing = True
                    kept = [(k, v) for k, v in message.get("headers", ()) if k in _KEPT_ON_304]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b""})
                    return
            if swallowing:
                return
            await send(message)

        await next_app(scope, receive, conditional_send)


_KEPT_ON_304 = frozenset({b"etag", b"cache-control", b"vary", b"last-modified"})


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag: If-None-Match compares weakly (RFC 9110, 13.1.2)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def empty_reason(searcher: Searcher, filters: Filters) -> str | None:
    """Why a search with `filters` found nothing when the filters caused it, else None.

    Each filter is tried alone: the ones that match no article are named, with
    what the index holds instead (its sources, its date range, undated articles).
    """
    if filters.empty:
        return None
    index = searcher.index
    if len(index.allowed_chunks(filters)) > 0:
        return None  # passages pass the filters: the query found nothing among them
    stats = index.source_stats()
    dated = [s for s in stats if s["date_from"]]
    first = min((s["date_from"] for s in dated), default=None)
    last = max((s["date_to"] for s in dated), default=None)
    undated = sum(s["undated"] for s in stats)
    parts = []
    if filters.source and not len(index.allowed_chunks(Filters(source=filters.source))):
        names = ", ".join(s["name"] for s in stats[:20]) or "none"
        parts.append(f"source={filters.source!r} matches no article (sources: {names}; GET /v1/sources lists them)")
    for name, value in (("date_from", filters.date_from), ("date_to", filters.date_to)):
        if value and not len(index.allowed_chunks(Filters(**{name: value}))):
            span = f"articles are dated {first} to {last}" if first else "no article has a date"
            parts.append(f"{name}={value} matches no article ({span})")
    if not parts:
        parts.append("no article matches all the filters together (each matches some articles alone)")
    if (filters.date_from or filters.date_to) and undated:
        parts.append(f"date filters exclude the {undated} undated article{'s' if undated != 1 else ''}: "
                     "leave out date_from/date_to to include them")
    return "the filters exclude every article: " + "; ".join(parts)
