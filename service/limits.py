"""Limits and safety as ASGI middleware: API keys, a per-client rate limit, a time budget
(with the cancellation points that stop a timed-out request's work).

All three answer in the common error shape (`{"error": {"code", "message"}}`)
and are off by default except the admin key check: admin routes always need a
key. Order (outermost first): rate limit, then keys, then the time budget, so a
client flooding with wrong keys is slowed down too.

The request body limit is Litestar's `request_max_body_size` (413
`body_too_large`); query length and `k` are checked in indexer/query/search.py.
"""

from __future__ import annotations

import hmac
import inspect
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import anyio
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from indexer.errors import NewsqaError
from service.errors import clip, error_body

# Orchestrator probes answer without a key and are never rate limited.
OPEN_PATHS = frozenset({"/health", "/ready"})
UNLIMITED_PATHS = OPEN_PATHS | {"/metrics"}
ADMIN_PREFIX = "/v1/admin/"
API_KEY_HEADER = "x-api-key"
# Token buckets of this many most recently seen clients are kept; older ones start full again.
MAX_TRACKED_CLIENTS = 10_000


async def send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer with the common JSON error shape straight from a middleware."""
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def presented_key(scope: Scope) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == API_KEY_HEADER.encode():
            return value.decode("latin-1").strip() or None
    return None


def key_matches(presented: str | None, expected: str) -> bool:
    # Constant-time comparison: response time must not reveal how much of a guess was right.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


class ApiKeyAuth(ASGIMiddleware):
    """`api_key` guards every route but the probes; admin routes need `admin_key` (or `api_key`).

    With no key at all the API is open (local use) and admin routes are refused
    with a 403 that says how to enable them.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, api_key: str = "", admin_key: str = "") -> None:
        self.api_key = api_key
        self.admin_key = admin_key or api_key

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path = scope["path"]
        if path in OPEN_PATHS:
            await next_app(scope, receive, send)
            return
        key = presented_key(scope)
        if path.startswith(ADMIN_PREFIX):
            if not self.admin_key:
                await send_error(send, 403, "forbidden",
                                 f"admin routes are disabled: start the service with --admin-key KEY (or "
                                 f"NEWSQA_ADMIN_KEY) and send it as 'Authorization: Bearer KEY' to use {clip(path)}")
                return
            if not key_matches(key, self.admin_key):
                await _unauthorized(send, "admin", key)
                return
        # The admin key opens every route: POST /v1/articles needs it and sits outside /v1/admin/.
        elif self.api_key and not (key_matches(key, self.api_key) or key_matches(key, self.admin_key)):
            await _unauthorized(send, "API", key)
            return
        await next_app(scope, receive, send)


async def _unauthorized(send: Send, which: str, key: str | None) -> None:
    problem = "no key was sent" if key is None else "the key sent is not valid"
    await send_error(send, 401, "unauthorized",
                     f"this route needs the {which} key and {problem}: send 'Authorization: Bearer KEY' "
                     f"or 'X-API-Key: KEY'", headers={"WWW-Authenticate": 'Bearer realm="newsqa"'})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Per-client token buckets: `rate` tokens per second, at most `burst` saved up.

    Only touched from the event loop thread (no awaits inside), so no lock.
    Memory is bounded: the least recently seen clients are forgotten first.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str, now: float | None = None) -> float:
        """0.0 if `client` may go ahead now, else the seconds until its next token."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


class RateLimit(ASGIMiddleware):
    """429 `rate_limited` with `Retry-After` once a client IP has used up its bucket."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, rate: float, burst: int) -> None:
        self.buckets = TokenBuckets(rate, burst)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["path"] in UNLIMITED_PATHS:
            await next_app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.buckets.take(client)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            # The address is not echoed: behind a trusted proxy it comes from a client-set header.
            await send_error(send, 429, "rate_limited",
                             f"too many requests from your address: the limit is {self.buckets.rate:g} per second "
                             f"(bursts of {self.buckets.burst}); retry after {retry} s",
                             headers={"Retry-After": str(retry)})
            return
        await next_app(scope, receive, send)


class RequestTimedOut(NewsqaError):
    """Raised in a worker thread at a checkpoint once its request has had its 503 `timeout`."""

    code = "timeout"
    http_status = 503


# The expiry flag of the request the current context serves (None outside a time budget). A
# context variable, not shared state: each request sets its own, and it follows the request
# into the worker thread that runs its handler (Litestar and anyio copy the context there).
_EXPIRED: ContextVar[threading.Event | None] = ContextVar("newsqa_request_expired", default=None)


@contextmanager
def request_budget() -> Iterator[threading.Event]:
    """The expiry flag of the request this context serves: once it is set, `check_budget()` raises
    in every thread working for the request (`TimeBudget` sets it when the budget runs out)."""
    expired = threading.Event()
    token = _EXPIRED.set(expired)
    try:
        yield expired
    finally:
        _EXPIRED.reset(token)


def check_budget() -> None:
    """A cancellation point for long work: raises RequestTimedOut once the request this thread
    serves is past its time budget, so a timed-out search stops instead of finishing for no one."""
    expired = _EXPIRED.get()
    if expired is not None and expired.is_set():
        raise RequestTimedOut("the request was cancelled: it ran past its time budget and the client "
                              "already has a 503 `timeout`")


class BudgetedEmbedder:
    """The embedder with a cancellation point before each model call, the costly steps of a search
    (query, highlights) and an answer (candidate sentences); everything else passes through."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder

    def encode(self, texts: Sequence[str], **kwargs):
        check_budget()
        return self._embedder.encode(texts, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._embedder, name)


class BudgetedStore:
    """The store with a cancellation point before each method call, so a timed-out search also stops
    between its store stages (filters, dense leg, lexical leg, scoring, passages, articles).
    Attributes and properties (version, counts, manifest) pass through unchecked."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name: str):
        value = getattr(self._store, name)
        if name.startswith("_") or not callable(value):
            return value

        def checked(*args, **kwargs):
            check_budget()
            return value(*args, **kwargs)

        if inspect.ismethod(value):
            setattr(self, name, checked)  # a method stays the same: wrap it once, not on every call
        return checked


class TimeBudget(ASGIMiddleware):
    """A 503 `timeout` when a request has not started its response within `seconds`.

    Work not yet started (waiting for a worker thread) never starts. Work
    running in a worker thread cannot be interrupted mid-step, so it is told to
    stop: its next `check_budget()` (before each model call and each store call,
    see `BudgetedEmbedder` and `BudgetedStore`) raises, which frees the thread
    after at most the step in progress; its late response is dropped. Streaming
    responses that have started are not cut off (the budget is time to first byte).

    Writes (`POST` and `DELETE` under /v1/articles, and /v1/admin/ routes) have no budget: cutting one
    short would throw away its work (embedding a 1,000-article push takes minutes on a small machine)
    and leave the client unsure whether it landed. They run to the end; the client's own timeout applies.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @staticmethod
    def is_write(scope: Scope) -> bool:
        path = scope["path"]
        return path.startswith(ADMIN_PREFIX) or (
            scope["method"] in ("POST", "DELETE") and (path == "/v1/articles" or path.startswith("/v1/articles/")))

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if self.is_write(scope):
            await next_app(scope, receive, send)
            return
        started = False
        # The app runs in this task under a cancel scope whose deadline is lifted once the response
        # starts: no task group and second task per request (measured ~0.25 ms of event-loop CPU each).
        with request_budget() as expired:
            with anyio.CancelScope(deadline=anyio.current_time() + self.seconds) as budget:

                async def guarded_send(message) -> None:
                    nonlocal started
                    if message["type"] == "http.response.start":
                        started = True
                        budget.deadline = math.inf  # the budget is time to first byte
                    await send(message)

                await next_app(scope, receive, guarded_send)
            if budget.cancelled_caught and not started:
                expired.set()
                await send_error(send, 503, "timeout",
                                 f"the request took longer than the {self.seconds:g} s time budget: ask for "
                                 "less (a shorter query, a smaller k, date or source filters) or retry later",
                                 headers={"Retry-After": "1"})


# Every page and API response. The pages load only their own /static files (no inline
# script or style), the API docs only files served from /schema/assets; Swagger UI's
# icons are data: SVGs in its CSS.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: the security headers on every HTTP response, error pages and 404s included."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:
                headers[name] = value


def limit_middleware(settings) -> list[ASGIMiddleware]:
    """The middleware `settings` ask for, outermost first (keys always: admin routes need one)."""
    stack: list[ASGIMiddleware] = []
    if settings.rate_limit > 0:
        stack.append(RateLimit(settings.rate_limit, settings.rate_burst))
    stack.append(ApiKeyAuth(settings.api_key, settings.admin_key))
    if settings.request_timeout > 0:
        stack.append(TimeBudget(settings.request_timeout))
    return stack
