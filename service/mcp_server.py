"""MCP server (Model Context Protocol, official `mcp` SDK, stdio transport): `newsqa mcp --index DIR`.

Its settings (`service.settings.McpSettings`) are the `newsqa mcp` options.

Tools: `search_news`, `answer_question` and `get_article`, with the same
input schemas as the OpenAI definitions of `GET /v1/tools` and the same code
as `POST /v1/tools/{name}` (`service.llm.run_tool`). Every tool result is one
text block holding compact JSON (also sent as `structuredContent`) of at most
`max_tokens` tokens (default 2,000) in `encoding`; bad arguments come back as
an `isError` result with the usual `{"error": {"code", "message"}}` shape, so
the model can read the fix and retry.

Resources: every article as `newsqa://articles/{article_id}` (Markdown: title,
date, source, url, then the sections), listed in pages of `RESOURCE_PAGE`.
Resource reads return the whole article: the client application, not the
model, decides how much of it to show.

Built on the low-level `mcp.server.Server` rather than `MCPServer`, because
the input schemas are the hand-written JSON Schemas shared with `/v1/tools`
(one source of truth), not ones derived from Python signatures.

Like `newsqa serve`, the server follows index rebuilds without a restart
(`service.reload.Reloader`): each call leases the live version.

Every line the client sends gets an answer or is a valid notification: the
SDK's stdio transport drops a line it cannot read without a word, so a client
waiting on that id would hang. `screen_line` answers such lines first, with
JSON-RPC -32700 (not JSON, or a string that is not Unicode) or -32600 (a batch,
a missing `"jsonrpc": "2.0"`, an id that is not a string or integer, or a shape
that is no JSON-RPC message), with the request's id when it can be read, else null.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, unquote

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from indexer.query.context import DEFAULT_MAX_TOKENS, MAX_MAX_TOKENS, MIN_MAX_TOKENS
from indexer.errors import NewsqaError, NotFound
from indexer.query.search import Searcher
from indexer.store.embedded import package_version
from indexer.tokens import DEFAULT_ENCODING, ENCODINGS
from indexer.types import Article
from service.settings import McpSettings
from service.tools import TOOL_NAMES, error_result, result_text, run_tool, tool_definitions

log = logging.getLogger("newsqa.mcp")

SERVER_NAME = "newsqa"
RESOURCE_SCHEME = "newsqa://articles/"
RESOURCE_TEMPLATE = RESOURCE_SCHEME + "{article_id}"
RESOURCE_PAGE = 100
# Cursors are offsets this server gave; anything above SQLite's integer range cannot be one.
MAX_CURSOR = 2**62
INSTRUCTIONS = (
    "Search a news archive and cite it. Use search_news for passages about a topic, answer_question for a "
    "factual question, get_article to read a cited article. Results are JSON within max_tokens (default "
    f"{DEFAULT_MAX_TOKENS}); cite passages as [n] using `citations`."
)


def _rpc_error(code: int, message: str, request_id: int | str | None = None) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


def screen_line(line: str) -> types.JSONRPCError | None:
    """The JSON-RPC error answering `line`, or None when the SDK can take it (blank lines too)."""
    text = line.strip()
    if not text:
        return None
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        return _rpc_error(types.PARSE_ERROR, f"parse error: the line is not valid JSON{where}: send one complete "
                                             "JSON-RPC message per line")
    if isinstance(message, list):
        return _rpc_error(types.INVALID_REQUEST, "invalid request: batches (JSON arrays) are not supported: send "
                                                 "each JSON-RPC message on its own line")
    if not isinstance(message, dict):
        return _rpc_error(types.INVALID_REQUEST, f"invalid request: a JSON {type(message).__name__} is not a "
                                                 "JSON-RPC message: send an object with jsonrpc, id and method")
    request_id = message.get("id")
    if "id" in message and not (isinstance(request_id, str) or
                                (isinstance(request_id, int) and not isinstance(request_id, bool))):
        return _rpc_error(types.INVALID_REQUEST, f"invalid request: id must be a string or an integer, not "
                                                 f"{_json_type(request_id)}")
    if message.get("jsonrpc") != "2.0":
        return _rpc_error(types.INVALID_REQUEST, 'invalid request: every message needs "jsonrpc": "2.0"', request_id)
    try:
        types.jsonrpc_message_adapter.validate_json(text, by_name=False)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            return _rpc_error(types.PARSE_ERROR, "parse error: a string in the message is not valid Unicode (a lone "
                                                 "surrogate escape such as \\ud800?): send text as UTF-8",
                              request_id)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "message"
        return _rpc_error(types.INVALID_REQUEST, f"invalid request: {where}: {first['msg']}", request_id)
    return None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", float: "a number", type(None): "null"}.get(
        type(value), type(value).__name__)


async def screened_lines(lines: AsyncIterable[str], rejected) -> AsyncIterator[str]:
    """The lines the SDK can read; each other line's error goes to the `rejected` stream to be answered."""
    async for line in lines:
        error = screen_line(line)
        if error is None:
            if line.strip():
                yield line
        else:
            log.info("answered an unreadable message with JSON-RPC error %s", error.error.code)
            await rejected.send(error)


def article_uri(article_id: str) -> str:
    return RESOURCE_SCHEME + quote(article_id, safe="")


def article_markdown(article: Article) -> str:
    """The whole article as Markdown: title, a facts line, then each section under its heading."""
    facts = " · ".join(filter(None, [article.date, article.source, article.url]))
    parts = [f"# {article.title}"] + ([facts] if facts else [])
    sections = article.sections or ()
    if not sections:
        parts.append(article.text)
    for section in sections:
        if section.title:
            parts.append(f"## {section.title}")
        body = article.text[section.start:section.end].strip()
        if body:
            parts.append(body)
    return "\n\n".join(parts) + "\n"


def _error_budget(arguments: dict[str, Any]) -> tuple[int, str]:
    """The budget an error result must fit: the caller's, when it is a valid one."""
    max_tokens = arguments.get("max_tokens")
    encoding = arguments.get("encoding")
    if not (isinstance(max_tokens, int) and MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS):
        max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else MIN_MAX_TOKENS
    return max_tokens, encoding if encoding in ENCODINGS else DEFAULT_ENCODING


Lease = Callable[[], AbstractContextManager[Searcher]]


def create_server(lease: Lease) -> Server:
    """An MCP server answering from the searcher `lease()` lends for each request (`Reloader.lease`)."""

    def leased(work: Callable[[Searcher], Any]) -> Any:
        with lease() as searcher:
            return work(searcher)

    async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools = []
        for definition in tool_definitions():
            function = definition["function"]
            tools.append(types.Tool(
                name=function["name"],
                title=function["name"].replace("_", " ").capitalize(),
                description=function["description"],
                input_schema=function["parameters"],
                annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                                  idempotent_hint=True, open_world_hint=False),
            ))
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in TOOL_NAMES:
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"no tool named {params.name!r}: use one of {', '.join(TOOL_NAMES)}")
        arguments = params.arguments or {}
        try:
            # Search and packing are CPU-bound and blocking: keep them off the event loop.
            result = await anyio.to_thread.run_sync(leased, lambda s: run_tool(s, params.name, arguments))
            failed = False
        except NewsqaError as exc:
            log.info("tool %s refused its arguments: %s", params.name, exc.code)
            result = error_result(exc, *_error_budget(arguments))
            failed = True
        return types.CallToolResult(content=[types.TextContent(text=result_text(result))],
                                    structured_content=result, is_error=failed)

    async def list_resources(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        cursor = params.cursor if params is not None else None
        try:
            offset = int(cursor) if cursor else 0
        except ValueError:
            offset = -1
        if not 0 <= offset <= MAX_CURSOR:
            raise MCPError(code=types.INVALID_PARAMS,
                           message=f"invalid params: cursor {cursor[:40]!r} is not one this server gave: pass the "
                                   "nextCursor of the previous page, or no cursor for the first page") from None
        rows = await anyio.to_thread.run_sync(
            leased, lambda s: s.index.list_articles(limit=RESOURCE_PAGE + 1, offset=offset))
        resources = [
            types.Resource(
                uri=article_uri(row["article_id"]),
                name=row["article_id"],
                title=row["title"],
                description=" · ".join(filter(None, [row["date"], row["source"], row["kind"]])),
                mime_type="text/markdown",
            )
            for row in rows[:RESOURCE_PAGE]
        ]
        next_cursor = str(offset + RESOURCE_PAGE) if len(rows) > RESOURCE_PAGE else None
        return types.ListResourcesResult(resources=resources, next_cursor=next_cursor)

    async def list_templates(ctx, params: types.PaginatedRequestParams | None) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[types.ResourceTemplate(
            uri_template=RESOURCE_TEMPLATE, name="article", title="News article",
            description="One article by id (the article_id of a citation), as Markdown.",
            mime_type="text/markdown",
        )])

    async def read_resource(ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not uri.startswith(RESOURCE_SCHEME) or len(uri) == len(RESOURCE_SCHEME):
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown resource {uri!r}: use {RESOURCE_TEMPLATE}",
                           data={"uri": uri})
        article_id = unquote(uri[len(RESOURCE_SCHEME):])
        try:
            article = await anyio.to_thread.run_sync(leased, lambda s: s.index.article(article_id))
        except NotFound as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=exc.message, data={"uri": uri}) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, text=article_markdown(article), mime_type="text/markdown")])

    return Server(
        SERVER_NAME,
        version=package_version(),
        title="newsqa news archive",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


def serve_stdio(settings: McpSettings) -> None:
    """Serve the index over stdin/stdout until the client closes the connection.

    Loads the model and the live index version first (domain errors if the
    index is missing or built with another model), then checks `CURRENT`
    every `settings.reload_interval` seconds for a new version (0: never).
    `settings.store`, a PostgreSQL URL, is served instead of `settings.index_dir`.
    """
    from service.app import Resources

    store, reload_interval = settings.store, settings.reload_interval
    # stdout is the protocol channel: anything a library prints while loading goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        resources = Resources(settings.service())
    reloader = resources.reloader
    server = create_server(reloader.lease)

    async def run() -> None:
        rejected_in, rejected_out = anyio.create_memory_object_stream[types.JSONRPCError](100)
        stdin = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
        # A PostgreSQL store is live: no versions to poll.
        async with reloader.polling(0 if store else reload_interval):
            async with stdio_server(stdin=screened_lines(stdin, rejected_in)) as (read_stream, write_stream):
                async with anyio.create_task_group() as group:

                    async def answer_rejected() -> None:
                        async for error in rejected_out:
                            await write_stream.send(SessionMessage(error))

                    group.start_soon(answer_rejected)
                    await server.run(read_stream, write_stream, server.create_initialization_options())
                    group.cancel_scope.cancel()

    log.info("MCP server on stdio: index %s (%s passages)", resources.index.version, resources.index.counts["chunks"])
    try:
        anyio.run(run)
    finally:
        resources.close()
