"""One JSON error shape for every failure: `{"error": {"code": str, "message": str}}`.

Domain errors keep their code and status; framework errors (bad parameter
types, unknown routes, wrong methods) are mapped onto the same shape; anything
unexpected is a 500 with a generic message and the details in the log.
"""

from __future__ import annotations

import logging

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from indexer.errors import NewsqaError

log = logging.getLogger("newsqa.service")


def clip(text: str, limit: int = 100) -> str:
    """Client-sent `text` to quote in a message: at most `limit` characters, control characters escaped."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(error_body(code, message), status_code=status, media_type=MediaType.JSON, headers=headers)


class BadBody(NewsqaError):
    """A request body the JSON decoder cannot take at all (not UTF-8, nested too deep)."""

    code = "invalid_request"


async def check_json_body(request: Request) -> None:
    """Refuse, with a 400, a body that would crash the JSON decoder of a route taking `data`.

    msgspec raises `UnicodeDecodeError` for bytes that are not UTF-8 and
    `RecursionError` for nesting near 1,000 levels; neither is a decode error
    Litestar maps to 400, so both used to end as a 500 with a logged traceback.
    Decoding once here is cheap next to a search and leaves the cached body for
    the handler. Other malformed JSON is left to Litestar's own 400.
    """
    if "data" not in request.route_handler.parsed_fn_signature.parameters:
        return
    body = await request.body()
    if not body:
        return
    try:
        msgspec.json.decode(body)
    except UnicodeDecodeError as exc:
        raise BadBody(f"the request body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}): "
                      "send JSON encoded as UTF-8") from None
    except RecursionError:
        raise BadBody("the request body's JSON is nested too deeply to read: send a flat object such as "
                      '{"q": "your query"}') from None
    except msgspec.DecodeError:
        return  # Litestar answers with its own 400 for plain syntax errors


def _domain(_: Request, exc: NewsqaError) -> Response:
    return error_response(exc.http_status, exc.code, exc.message)


def _validation(_: Request, exc: ValidationException) -> Response:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in details:
        if isinstance(item, dict):
            key = item.get("key") or item.get("source") or "request"
            parts.append(f"{key}: {item.get('message', 'invalid value')}")
    message = "; ".join(parts) or exc.detail
    return error_response(400, "invalid_parameter", f"invalid request: {message}")


def _http(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        return error_response(404, "not_found", f"no route for {request.method} {clip(request.url.path)}: see /schema")
    code = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 405: "method_not_allowed", 413: "body_too_large",
            429: "rate_limited"}.get(status, "http_error")
    headers = getattr(exc, "headers", None)
    return error_response(status, code, exc.detail, headers=headers)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, clip(request.url.path, 256))
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error",
        "the server failed to answer this request; it has been logged — retry, or report it with the time",
    )


EXCEPTION_HANDLERS = {
    NewsqaError: _domain,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
