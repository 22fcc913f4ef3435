"""Followed sources and pushed articles (issue 16).

- `GET /v1/sources/status`: per followed source (keyed by name) when it was last fetched, the last
  successful fetch, how many articles it has in the index and its last error (from the follow
  state `newsqa follow` keeps in the index directory).
- `GET /sources`: the same as a page.
- `POST /v1/articles` (admin key): index one article or a list, `{id?, title, text, date?, source?, url?, lang?}`,
  through the same build path as `newsqa index` (incremental, near duplicates dropped), then serve the
  new version at once. Each bad record is reported by its position; the others are indexed.
- `DELETE /v1/articles/{id}` (admin key): remove one article as `newsqa delete` does (a tombstone), then
  serve the new version at once; a 404 when the index does not hold it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from typing import Annotated
from pathlib import Path

import msgspec
from litestar import Request, delete, get, post
from litestar.params import Parameter
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.response import Template

from indexer.errors import InvalidParameter, NotFound
from indexer.ingest.documents import stable_id
from indexer.ingest.follow import follow_status
from indexer.query.search import Searcher
from service.conventions import offloaded, path_article_id
from service.limits import key_matches, presented_key
from service.schemas import error_responses

MAX_PUSHED_ARTICLES = 1000
ARTICLE_FIELDS = ("id", "title", "text", "date", "source", "url", "section", "lang")


class SourceStatusOut(msgspec.Struct):
    url: str | None
    last_fetched: str | None
    last_success: str | None
    last_error: str | None
    articles: int


class SourcesStatusOut(msgspec.Struct):
    sources: dict[str, SourceStatusOut]


class RecordErrorOut(msgspec.Struct):
    index: int  # 0-based position in the request's list (0 for a single object)
    message: str
    id: str | None = None


class PushOut(msgspec.Struct):
    received: int
    accepted: int
    added: int
    updated: int
    unchanged: int
    duplicates: int
    version: str | None
    errors: list[RecordErrorOut]


def sources_status(state: State) -> dict[str, dict]:
    """Follow status of the served index directory, by source name (empty when it was never followed)."""
    return follow_status(Path(state.resources.settings.index_dir))


@get("/v1/sources/status", sync_to_thread=True, summary="Followed sources: last fetch, articles, last error",
     operation_id="sourcesStatus", responses=error_responses(400))
def sources_status_route(state: State) -> SourcesStatusOut:
    """For each source `newsqa follow` follows into this index: when it was last fetched, the last fetch that
    worked, how many of its articles are indexed and the reason the last fetch failed (null when it did not)."""
    return SourcesStatusOut({name: SourceStatusOut(url=s["url"], last_fetched=s["last_fetched"],
                                                   last_success=s["last_success"], last_error=s["last_error"],
                                                   articles=s["articles"] or 0)
                             for name, s in sources_status(state).items()})


@get("/sources", sync_to_thread=True, include_in_schema=False)
def sources_page(state: State, searcher: Searcher) -> Template:
    """The followed sources as a page: last fetch, articles indexed, last error."""
    from service.web import MODE_LABELS, MODES, SearchParams

    index_sources = searcher.index.sources()  # the leased version: a reload cannot close it meanwhile
    return Template(template_name="sources.html", context={
        "followed": sources_status(state), "params": SearchParams(), "modes": MODES, "mode_labels": MODE_LABELS,
        "sources": index_sources, "page": "sources", "state": "sources"}, headers={"Cache-Control": "no-store"})


def require_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: the admin key (or the API key when no admin key is set), as for /v1/admin routes."""
    settings = connection.app.state.resources.settings
    expected = settings.admin_key or settings.api_key
    if not expected:
        raise PermissionDeniedException(
            f"writing articles is disabled: start the service with --admin-key KEY (or NEWSQA_ADMIN_KEY) and send "
            f"it as 'Authorization: Bearer KEY' to use {connection.url.path}")
    key = presented_key(connection.scope)
    if not key_matches(key, expected):
        problem = "no key was sent" if key is None else "the key sent is not valid"
        raise NotAuthorizedException(f"this route needs the admin key and {problem}: send "
                                     "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                     headers={"WWW-Authenticate": 'Bearer realm="newsqa"'})


def _records(body: bytes) -> list:
    if not body.strip():
        raise InvalidParameter("empty body: send a JSON object {\"title\", \"text\", ...} or a list of them")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"the body is not JSON ({exc}): send an article object or a list of them") from None
    records = data if isinstance(data, list) else [data]
    if not records:
        raise InvalidParameter("the list is empty: send at least one article")
    if len(records) > MAX_PUSHED_ARTICLES:
        raise InvalidParameter(f"{len(records)} articles in one request, the limit is {MAX_PUSHED_ARTICLES}: "
                               "send them in several requests")
    return records


def _prepare(record: object) -> dict:
    """The record with an id (derived from source, date and title when absent); ValueError when unusable
    in a way the JSON-lines reader would not say as clearly."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(ARTICLE_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}: an article has {', '.join(ARTICLE_FIELDS)}")
    for name in ("title", "text"):
        value = record.get(name)
        if isinstance(value, str) and value and not value.strip():
            raise ValueError(f"`{name}` is blank: send the article's {'headline' if name == 'title' else 'body'}")
    lang = record.get("lang")
    if isinstance(lang, str) and lang and not (lang.isascii() and lang.isalpha() and 2 <= len(lang) <= 3):
        raise ValueError(f"`lang` {lang!r} is not a language code: write it like en, de or fr")
    record = dict(record)
    if record.get("id") in (None, ""):
        parts = [record.get(name) for name in ("source", "date", "title")]
        if all(isinstance(p, (str, type(None))) for p in parts) and record.get("title"):
            record["id"] = stable_id(*parts)
    return record


_TEXT = Schema(type=OpenAPIType.STRING)
_ARTICLE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT, required=["title", "text"],
    properties={"id": Schema(one_of=[_TEXT, Schema(type=OpenAPIType.INTEGER)]), "title": _TEXT, "text": _TEXT,
                "date": Schema(type=OpenAPIType.STRING, description="ISO 8601, e.g. 2026-03-08"),
                "source": _TEXT, "url": _TEXT, "section": _TEXT,
                "lang": Schema(type=OpenAPIType.STRING, description="language code, e.g. en or de")})


@dataclass
class _PushOperation(Operation):
    """The OpenAPI operation of POST /v1/articles: the handler reads the raw body (to report each record's
    problems), so the body's shape is declared here."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, description="one article, or a list of them", content={
            "application/json": OpenAPIMediaType(schema=Schema(one_of=[
                _ARTICLE_SCHEMA, Schema(type=OpenAPIType.ARRAY, items=_ARTICLE_SCHEMA,
                                        max_items=MAX_PUSHED_ARTICLES)]))})


@post("/v1/articles", sync_to_thread=True, status_code=200, guards=[require_admin], operation_class=_PushOperation,
      summary="Index articles pushed by HTTP (admin key)", operation_id="pushArticles",
      responses=error_responses(400, 403, 413))
def push_articles(state: State, body: bytes) -> PushOut:
    """Index one article object or a list of them (`id` optional, `title`, `text`, `date` ISO 8601, `source`,
    `url`, `section`, `lang`) like `newsqa index` does, then serve the new version. Bad records are listed in
    `errors` by position and the others are indexed; a 400 `invalid_input` when none is usable."""
    from indexer.ingest.build import BuildSummary
    from indexer.ingest.targets import build_store
    from indexer.store.backends import store_target

    records = _records(body)
    errors: list[RecordErrorOut] = []
    lines: list[tuple[int, dict]] = []
    for position, record in enumerate(records):
        try:
            lines.append((position, _prepare(record)))
        except ValueError as exc:
            errors.append(RecordErrorOut(position, str(exc)))
    summary = BuildSummary()
    resources = state.resources
    settings = resources.settings
    if lines:
        # build_store takes the index's writer lock: a follow round or `newsqa index` at the same time waits.
        with tempfile.TemporaryDirectory(prefix="newsqa-push-") as tmp:
            path = Path(tmp) / "pushed.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for _, r in lines), encoding="utf-8")
            summary = build_store([path], store_target(settings.store or None, settings.index_dir),
                                  embedder=resources.embedder, progress=False)
            if summary.version:
                state.reloader.reload()
                _wrote(state)
        for error in summary.errors:
            if error.line is not None and 0 < error.line <= len(lines):
                position, record = lines[error.line - 1]
                errors.append(RecordErrorOut(position, error.message, str(record.get("id")) if record.get("id")
                                             is not None else None))
            else:
                errors.append(RecordErrorOut(0, error.message))
    errors.sort(key=lambda e: e.index)
    accepted = len(records) - len({e.index for e in errors})
    if accepted == 0:
        detail = "; ".join(f"#{e.index}: {e.message}" for e in errors[:5])
        raise InvalidParameter(f"no article could be indexed: {detail}", code="invalid_input")
    return PushOut(received=len(records), accepted=accepted, added=summary.added, updated=summary.updated,
                   unchanged=summary.unchanged, duplicates=summary.duplicates, version=summary.version,
                   errors=errors)


class DeleteOut(msgspec.Struct):
    deleted: str  # the article id
    version: str | None  # the index version now served (None for a PostgreSQL store, always live)


@delete("/v1/articles/{article_id:path}", status_code=200, guards=[require_admin],
        summary="Delete an article (admin key)", operation_id="deleteArticle",
        responses=error_responses(400, 403, 404))
async def delete_article(request: Request, state: State,
                         article_id: Annotated[str, Parameter(description="The article id, from a citation; encode "
                                                                          "it whole (`/` too, as `%2F`).")]
                         ) -> DeleteOut:
    """Remove the article with this id (encode it whole, `/` as `%2F`) as `newsqa delete` does, then serve the
    new version: searches after the response never return it. A 404 `not_found` when the index does not
    hold it."""
    # Async with an explicit offload (see `service.conventions.offloaded`): GET shares this path.
    return await offloaded(_delete_article, state, path_article_id(request, article_id, "/v1/articles/"))


def _delete_article(state: State, article_id: str) -> DeleteOut:
    from indexer.ingest.targets import delete_from
    from indexer.store.backends import store_target

    settings = state.resources.settings
    # delete_from takes the index's writer lock: a push, a merge or `newsqa index` at the same time waits.
    if not delete_from(store_target(settings.store or None, settings.index_dir), [article_id]):
        raise NotFound(f"no article with id {article_id!r} in the index: nothing was deleted (ids are listed by "
                       "`newsqa list` and in search citations)")
    result = state.reloader.reload()
    _wrote(state)
    return DeleteOut(deleted=article_id, version=None if state.reloader.current.index.live else result.version)


def _wrote(state: State) -> None:
    """A write was committed: the background merger (if any) checks its policy now."""
    merger = getattr(state, "merger", None)
    if merger is not None:
        merger.notify()


ROUTES: list = [sources_status_route, sources_page, push_articles, delete_article]
