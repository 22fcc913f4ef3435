"""Recognise and parse what a source serves: RSS 2.0 / RSS 1.0 / Atom feeds (feedparser), sitemaps and
news sitemaps (sitemaps.org 0.9 + Google News extension), or an HTML page.

XML is first parsed with defusedxml, which refuses entity declarations (XML bombs,
external entities) before any parser expands them.
"""

from __future__ import annotations

import gzip
import io
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urljoin

FEED = "feed"
SITEMAP = "sitemap"
SITEMAP_INDEX = "sitemap_index"
HTML = "html"

_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"


class FeedError(ValueError):
    """The body is not something we can read as a feed, sitemap or page; the message says what it is."""


@dataclass(frozen=True)
class Entry:
    """One linked article: `date` is ISO `YYYY-MM-DD` when the feed or sitemap gives one."""

    url: str
    title: str | None = None
    date: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class Listing:
    """A parsed feed or sitemap. For a sitemap index, `entries` are the child sitemaps."""

    kind: str
    title: str | None
    entries: tuple[Entry, ...]


def _iso_date(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, time.struct_time):
        return datetime(*value[:6], tzinfo=timezone.utc).date().isoformat()
    text = str(value).strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        return text[:10] if len(text) >= 10 and text[4] == "-" and text[7] == "-" else None


def _maybe_gunzip(body: bytes, max_bytes: int) -> bytes:
    if not body.startswith(b"\x1f\x8b"):
        return body
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
        data = stream.read(max_bytes + 1)  # a gzip bomb stops at the limit
    if len(data) > max_bytes:
        raise FeedError(f"the gzipped body unpacks to more than {max_bytes} bytes (--max-bytes)")
    return data


def _root_tag(body: bytes) -> str | None:
    """Local name of the XML root element, None when the body is not well-formed XML."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException

    try:
        root = SafeET.fromstring(body)
    except DefusedXmlException as exc:
        raise FeedError(f"refused unsafe XML ({type(exc).__name__}): entity declarations are not accepted") from None
    except SafeET.ParseError:
        return None
    return root.tag.rsplit("}", 1)[-1].lower()


def classify(body: bytes, content_type: str = "", *, max_bytes: int = 50_000_000) -> tuple[str, bytes]:
    """What `body` is (FEED, SITEMAP, SITEMAP_INDEX or HTML) and the body to parse (gunzipped).

    Raises FeedError when it is none of these (or unsafe XML).
    """
    body = _maybe_gunzip(body, max_bytes)
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    tag = _root_tag(body) if head.startswith(b"<") else None
    if tag == "urlset":
        return SITEMAP, body
    if tag == "sitemapindex":
        return SITEMAP_INDEX, body
    if tag in ("rss", "rdf", "feed", "channel"):
        return FEED, body
    if tag == "html" or head.startswith((b"<!doctype html", b"<html")) or "html" in content_type:
        return HTML, body
    if head.startswith(b"<"):  # malformed XML: feedparser's lenient parser may still read a feed
        if parse_feed(body, "").entries:
            return FEED, body
    kind = content_type or "unknown content"
    raise FeedError(f"not a feed, sitemap or HTML page ({kind}, starts with {body[:40]!r})")


def parse_feed(body: bytes, base_url: str) -> Listing:
    """Entries of an RSS 0.9x/1.0/2.0 or Atom feed, links resolved against `base_url`."""
    import feedparser

    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    entries = []
    for item in parsed.entries:
        link = item.get("link") or next((l.get("href") for l in item.get("links", ()) if l.get("href")), None)
        if not link:
            continue
        date = _iso_date(item.get("published_parsed") or item.get("updated_parsed") or item.get("created_parsed"))
        entries.append(Entry(url=urljoin(base_url, link.strip()), title=(item.get("title") or None),
                             date=date, author=item.get("author") or None))
    return Listing(FEED, parsed.feed.get("title") or None, tuple(entries))


def parse_sitemap(body: bytes, base_url: str) -> Listing:
    """URLs of a sitemap (with news:publication_date / news:title / lastmod as the date and title), or the
    child sitemaps of a sitemap index."""
    import defusedxml.ElementTree as SafeET

    root = SafeET.fromstring(body)
    tag = root.tag.rsplit("}", 1)[-1].lower()
    entries = []
    item_tag = "sitemap" if tag == "sitemapindex" else "url"
    for item in root:
        if item.tag.rsplit("}", 1)[-1].lower() != item_tag:
            continue
        loc = _child_text(item, "loc")
        if not loc:
            continue
        news = item.find(_NEWS_NS + "news")
        title = date = None
        if news is not None:
            title = _child_text(news, "title", _NEWS_NS)
            date = _iso_date(_child_text(news, "publication_date", _NEWS_NS))
        date = date or _iso_date(_child_text(item, "lastmod"))
        entries.append(Entry(url=urljoin(base_url, loc), title=title, date=date))
    return Listing(SITEMAP_INDEX if tag == "sitemapindex" else SITEMAP, None, tuple(entries))


def _child_text(element, name: str, namespace: str = _SITEMAP_NS) -> str | None:
    child = element.find(namespace + name)
    if child is None:
        child = element.find(name)  # sitemaps written without the namespace
    if child is None or child.text is None:
        return None
    return child.text.strip() or None
