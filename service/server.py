"""Running the app under uvicorn: connection limits, trusted proxies and the one access log.

`run_server(settings)` is what `newsqa serve` runs. On top of the app's own
limits (service/limits.py) it sets what only the server can enforce:

- request headers must arrive within `header_timeout` seconds (else 408 and the
  connection is closed) and stay within `max_header_bytes` (else 431): uvicorn's
  httptools protocol has neither, so a slow-loris client kept sockets open for
  ever and an 8 MB header was read in full;
- idle keep-alive connections close after `keep_alive_timeout`;
- `X-Forwarded-For` / `-Proto` are trusted only from the `forwarded_allow_ips`
  proxies (default none): uvicorn trusts 127.0.0.1 by default, which let any
  local client pick its own address and escape the per-client rate limit;
- one JSON access log line per request on stdout (`AccessLog`), instead of
  uvicorn's text access log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone

from service.settings import LOG_LEVEL

access_log = logging.getLogger("newsqa.access")

# Longest path (and client address) an access log line carries; the rest is cut and flagged.
LOG_PATH_CHARS = 256
LOG_CLIENT_CHARS = 64


def _raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


def guarded_protocol(header_timeout: float, max_header_bytes: int) -> type:
    """uvicorn's httptools protocol with a deadline and a size limit on each request's headers.

    The deadline runs from the connection's start, or from the first byte of a
    later request on a kept-alive connection, to the end of the headers. The size
    counts the raw bytes of the request line and headers. ImportError without httptools.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._in_head = True
            self._head_bytes = 0
            self._head_timer = None
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            if header_timeout > 0 and self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.write(_raw_error(
                    408, "Request Timeout", "request_timeout",
                    f"the request headers did not arrive within {header_timeout:g} s: send the whole request at once"))
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._in_head and max_header_bytes > 0:
                room = max_header_bytes - self._head_bytes
                if len(data) > room:
                    # Feed what fits: if the headers end inside it, the rest is body or the next request.
                    head, data = data[:max(room, 0)], data[max(room, 0):]
                    if head:
                        self._head_bytes += len(head)
                        super().data_received(head)
                    if self._in_head:
                        if not self.transport.is_closing():
                            self._disarm_head_timer()
                            self.transport.write(_raw_error(
                                431, "Request Header Fields Too Large", "headers_too_large",
                                f"the request line and headers exceed {max_header_bytes} bytes: send shorter "
                                "headers (long values belong in the body)"))
                            self.transport.close()
                        return
                    if self.transport.is_closing():
                        return
                else:
                    self._head_bytes += len(data)
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_head_timer()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_response_complete()

        def connection_lost(self, exc) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

    return GuardedHttpToolsProtocol


def bounded(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters, and whether it was cut (JSON encoding escapes the rest)."""
    return (text[:limit], True) if len(text) > limit else (text, False)


class AccessLog:
    """ASGI wrapper: one JSON line per HTTP request on the `newsqa.access` logger.

    Outside Litestar, so requests for unknown routes are logged too. Fields:
    time, method, path (at most 256 characters; `path_truncated` when cut),
    status, ms, bytes, client. Client text is JSON-escaped (`ensure_ascii`), so a
    line never carries raw control characters or a forged second line.
    """

    def __init__(self, app) -> None:
        self.app = app

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what uvicorn sends if the app fails before answering
        sent = 0

        async def logging_send(message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            path, cut = bounded(scope.get("path", ""), LOG_PATH_CHARS)
            client, _ = bounded(str((scope.get("client") or ("-", 0))[0]), LOG_CLIENT_CHARS)
            line = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "method": scope.get("method", "")[:16], "path": path, "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2), "bytes": sent, "client": client}
            if cut:
                line["path_truncated"] = True
            access_log.info(json.dumps(line, ensure_ascii=True))


def configure_access_log(level: str) -> None:
    """Access lines go to stdout bare (parseable by `jq` as they stand); other logs keep their format."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.handlers[:] = [handler]
    access_log.propagate = False
    access_log.setLevel(logging.INFO if logging.getLevelName(level.upper()) in (logging.DEBUG, logging.INFO)
                        else logging.WARNING)


def uvicorn_config(settings, app, *, log_level: str = LOG_LEVEL.default):
    """The uvicorn configuration `newsqa serve` runs `app` with (see the module docstring)."""
    import uvicorn

    proxies = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    try:
        http: type | str = guarded_protocol(settings.header_timeout, settings.max_header_bytes)
        h11_limit = {}
    except ImportError:  # no httptools: h11 enforces the size limit itself, but has no header deadline
        logging.getLogger("newsqa.service").warning(
            "httptools is not installed: --header-timeout is not enforced (pip install httptools)")
        http, h11_limit = "h11", {"h11_max_incomplete_event_size": settings.max_header_bytes or None}
    return uvicorn.Config(
        AccessLog(app), host=settings.host, port=settings.port, log_level=log_level, lifespan="on",
        http=http, **h11_limit,
        timeout_keep_alive=settings.keep_alive_timeout,
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
        limit_concurrency=settings.max_connections or None,
        access_log=False,  # AccessLog writes the one access log
    )


def run_server(settings, app, *, log_level: str = LOG_LEVEL.default) -> None:
    """Serve `app` until interrupted, with the limits of `settings`."""
    import uvicorn

    config = uvicorn_config(settings, app, log_level=log_level)
    configure_access_log(log_level)
    uvicorn.Server(config).run()
