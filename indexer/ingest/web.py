"""Fetch web pages politely and within bounds, and extract articles from them.

`Fetcher.get(url)` is the only way the indexer talks to the network:

- every response is bounded: a deadline for the whole exchange (connect,
  headers and body), a maximum number of redirects and a maximum body size,
  so a slow, looping or huge source costs at most `FetchSettings.timeout`
  seconds and `max_bytes` bytes;
- it honours robots.txt (RFC 9309: a missing robots.txt allows everything, an
  unreachable one forbids everything) for its user agent, and spaces the
  requests it starts to one host by `host_delay` seconds;
- it sends conditional requests (`If-None-Match`, `If-Modified-Since`) when
  given the validators of a previous response; a 304 comes back as a
  `Response` with `status == 304` and no body.

Failures raise `FetchError`, whose message is the reason to report.
`extract_article(html, url)` turns an article page into title, body
paragraphs, date, author, canonical URL and language with trafilatura.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
import urllib.robotparser
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from indexer.errors import NewsqaError
from indexer.ingest.lang import page_language
from indexer.ingest.read import extracted_blocks
from indexer.settings import setting

DEFAULT_USER_AGENT = "newsqa-follow/0.1 (+self-hosted news search; honours robots.txt)"
READ_CHUNK = 65_536
# Query parameters that only track the click, never select the content.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "ocid", "cmpid", "ncid", "sr_share", "at_medium", "at_campaign",
})


class FetchError(NewsqaError):
    """A URL that could not be fetched; the message is the reason (what, the limit, the fix)."""

    code = "fetch_failed"


@dataclass(frozen=True)
class FetchSettings:
    """Bounds and manners of every request (each is a `newsqa follow` / `newsqa index` option)."""

    user_agent: str = setting(DEFAULT_USER_AGENT, "User-Agent sent with every request and matched against robots.txt")
    timeout: float = setting(20.0, "seconds one request may take in all (connect, headers and body)")
    max_bytes: int = setting(5_000_000, "largest response body accepted, in bytes")
    max_redirects: int = setting(5, "redirects followed per request")
    host_delay: float = setting(1.0, "seconds between two requests to the same host")
    robots: bool = setting(True, "honour robots.txt (turn off only for your own sites)")

    def validate(self) -> FetchSettings:
        from indexer.errors import InvalidParameter

        for name, low in (("timeout", 0.01), ("max_bytes", 1), ("max_redirects", 0), ("host_delay", 0)):
            value = getattr(self, name)
            if value < low:
                flag = "--" + name.replace("_", "-")
                raise InvalidParameter(f"{flag} is {value}, it must be at least {low}")
        if not self.user_agent.strip():
            raise InvalidParameter("--user-agent is empty: name your crawler so site owners can recognise it")
        return self


@dataclass(frozen=True)
class Response:
    """A finished response: `url` is the final URL after redirects."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        match = re.search(r"charset=([\w.-]+)", self.headers.get("content-type", ""), re.I)
        encoding = match.group(1) if match else "utf-8"
        try:
            return self.body.decode(encoding, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def normalize_url(url: str) -> str:
    """`url` without tracking parameters (utm_*, fbclid, gclid, ...) and fragment, scheme and host lower-cased:
    the key under which a page is known, so the same story reached by two links is fetched once."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
    netloc = parts.netloc.lower()
    scheme = parts.scheme.lower()
    if (scheme, netloc.rsplit(":", 1)[-1]) in (("http", "80"), ("https", "443")):
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query, doseq=True), ""))


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class _Host:
    __slots__ = ("next_start", "robots")

    def __init__(self) -> None:
        self.next_start = 0.0
        self.robots: urllib.robotparser.RobotFileParser | None | str = None


class Fetcher:
    """Bounded, polite HTTP GETs (see the module docstring). Thread-safe; counts what it fetched.

    `requests` counts every request sent (robots.txt included) per URL path, for
    reports and tests.
    """

    def __init__(self, settings: FetchSettings = FetchSettings()) -> None:
        self.settings = settings.validate()
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self.requests = 0

    def _host(self, origin: str) -> _Host:
        with self._lock:
            return self._hosts.setdefault(origin, _Host())

    def _wait_turn(self, origin: str) -> None:
        # Reserve the next start slot for this host, then sleep outside the lock: a slow response
        # from one host never holds up requests to another, and starts to one host stay spaced.
        host = self._host(origin)
        with self._lock:
            now = time.monotonic()
            start = max(now, host.next_start)
            host.next_start = start + self.settings.host_delay
            self.requests += 1
        if start > now:
            time.sleep(start - now)

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of `url`'s host lets our user agent fetch it (True when robots are off)."""
        if not self.settings.robots:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        host = self._host(origin)
        with self._lock:
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one robots.txt fetch per host, the other threads wait for it
            if host.robots is None:
                host.robots = self._load_robots(origin)
        if host.robots == "allow":
            return True
        if host.robots == "deny":
            return False
        return host.robots.can_fetch(self.settings.user_agent, url)

    def _load_robots(self, origin: str):
        try:
            response = self.get(origin + "/robots.txt", check_robots=False)
        except FetchError:
            return "deny"  # RFC 9309 2.3.1.4: unreachable robots.txt means complete disallow
        if 400 <= response.status < 500:
            return "allow"  # RFC 9309 2.3.1.3: unavailable robots.txt means no restriction
        if response.status >= 500:
            return "deny"
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(response.text().splitlines())
        return parser

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None,
            check_robots: bool = True) -> Response:
        """GET `url`, following redirects; returns 2xx and 304 responses (and 4xx/5xx of robots.txt),
        raises `FetchError` with the reason otherwise."""
        settings = self.settings
        deadline = time.monotonic() + settings.timeout
        seen: list[str] = []
        current = url
        while True:
            if check_robots and not self.allowed(current):
                raise FetchError(f"robots.txt of {urlsplit(current).netloc} forbids {current} for user agent "
                                 f"{settings.user_agent!r}")
            status, headers, body = self._request(current, etag, last_modified, deadline)
            if status in (301, 302, 303, 307, 308):
                location = headers.get("location")
                if not location:
                    raise FetchError(f"{current} answered {status} without a Location header")
                seen.append(current)
                if len(seen) > settings.max_redirects:
                    raise FetchError(f"more than {settings.max_redirects} redirects from {url} "
                                     f"(last to {location}): a redirect loop? raise --max-redirects if not")
                current = urljoin(current, location)
                continue
            if status == 304 or 200 <= status < 300:
                return Response(current, status, headers, body)
            if not check_robots and status < 600:  # robots.txt: the caller decides what 4xx/5xx mean
                return Response(current, status, headers, b"")
            raise FetchError(f"{current} answered HTTP {status}")

    def _request(self, url: str, etag: str | None, last_modified: str | None,
                 deadline: float) -> tuple[int, dict[str, str], bytes]:
        settings = self.settings
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{url!r} is not an http(s) URL")
        self._wait_turn(f"{parts.scheme}://{parts.netloc}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"timed out: {url} took more than {settings.timeout:g} s (--timeout)")
        conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        kwargs = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
        conn = conn_class(parts.hostname, parts.port, timeout=remaining, **kwargs)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "identity",
                   "Accept": "application/rss+xml, application/atom+xml, application/xml, text/xml, text/html;q=0.9, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            length = response_headers.get("content-length", "")
            if length.isdigit() and int(length) > settings.max_bytes:
                raise FetchError(f"{url} is {int(length)} bytes, more than the {settings.max_bytes}-byte limit "
                                 f"(--max-bytes)")
            chunks, size = [], 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout()
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                chunk = response.read(READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > settings.max_bytes:
                    raise FetchError(f"{url} sent more than the {settings.max_bytes}-byte limit (--max-bytes)")
                chunks.append(chunk)
            return response.status, response_headers, b"".join(chunks)
        except (socket.timeout, TimeoutError):
            raise FetchError(f"timed out: {url} took more than {settings.timeout:g} s (--timeout)") from None
        except ssl.SSLError as exc:
            raise FetchError(f"TLS error from {url}: {exc.reason or exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
            raise FetchError(f"cannot fetch {url}: {reason}") from None
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------- extraction

@dataclass(frozen=True)
class PageArticle:
    """What an article page says about itself; `date` is ISO `YYYY-MM-DD` when the page states one."""

    title: str
    paragraphs: tuple[str, ...]
    date: str | None
    author: str | None
    url: str | None  # canonical URL when the page declares one
    lang: str | None
    sitename: str | None


def extract_article(html: str, url: str | None = None) -> PageArticle | None:
    """Main text and metadata of an article page (menus, related links and banners left out), or None
    when the page has no article text."""
    import trafilatura

    document = trafilatura.bare_extraction(html, url=url, with_metadata=True, include_formatting=True,
                                           include_comments=False, include_tables=False)
    if document is None or not (document.text or "").strip():
        return None
    title, blocks = extracted_blocks(document.text, document.title)
    paragraphs = [paragraph for _, paragraph in blocks]  # a page's sections are not kept
    if not paragraphs:
        return None
    date = None
    if document.date:
        date = str(document.date)[:10]
    return PageArticle(title=title, paragraphs=tuple(paragraphs), date=date, author=document.author or None,
                       url=document.url or None, lang=page_language(html, "\n".join(paragraphs)),
                       sitename=document.sitename or None)
