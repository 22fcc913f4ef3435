"""A made-up news site on loopback, to see `newsqa follow` work without the internet.

`FixtureSite` serves (all invented, written for this project):

- `/feeds/rss.xml` (RSS 2.0, with ETag and Last-Modified: a repeat request gets a 304),
  `/feeds/atom.xml` (Atom), `/feeds/rdf.xml` (RSS 1.0), `/sitemaps/news.xml` (a Google News sitemap)
  and `/sitemaps/index.xml` (a sitemap index naming it);
- article pages wrapped in boilerplate: a menu, a cookie banner, related links, a footer;
- `/robots.txt`, which forbids `/private/`;
- broken sources: `/slow/feed.xml` (answers after `slow_seconds`), `/broken/feed.xml` (500),
  `/loop/feed.xml` (redirects forever), `/huge/feed.xml` (20 MB), `/pages/front.html` (HTML, not a feed);
- the same story twice: the Atom feed links the quokka story with `utm_` parameters.

`site.publish()` adds a new entry to the RSS feed (new ETag). `site.requests` counts requests per path.

`python -m service.feeds_demo --index DIR` serves the site, follows it once into DIR and prints the
round's report (this is `make follow-demo`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# slug: (title, byline, page date or None, paragraphs)
STORIES = {
    "quokka-census": (
        "Island census counts a third more quokkas",
        "Mara Quill", "2026-03-04",
        ["Rangers on Wadjemup finished their spring census of quokkas and counted a third more animals than "
         "in the previous survey, the island authority said.",
         "The rangers credit the fenced nursery areas built after the bushfires, where young quokkas can feed "
         "without competing with visitors for shade.",
         "Visitors are reminded that feeding the marsupials is forbidden and that the fine for touching one "
         "has been doubled."]),
    "glacier-retreat": (
        "Valley glacier retreats past the old weather station",
        "Tomas Brenn", "2026-03-05",
        ["The tongue of the Sarn valley glacier has retreated past the abandoned weather station for the first "
         "time since measurements began, surveyors reported.",
         "Meltwater from the glacier feeds the reservoir that supplies three towns, and engineers are studying "
         "whether the spillway must be widened before the summer melt.",
         "Hikers are asked to keep away from the ice front, where blocks the size of houses break off without "
         "warning."]),
    "falcon-festival": (
        "Falconers gather for the steppe festival",
        "Aigerim Sadyk", "2026-03-06",
        ["More than two hundred falconers brought golden eagles and saker falcons to the steppe festival, "
         "where birds are judged on speed, obedience and the grace of their return to the glove.",
         "Veteran hunters said fewer young people train eagles today, but the festival's youth class drew a "
         "record number of entrants.",
         "The organisers plan a permanent aviary so that injured birds can be cared for between festivals."]),
    "river-cleanup": (
        "Volunteers pull a tonne of litter from the canal",
        "Lio Marsh", None,  # no date on the page: the sitemap's publication date is used
        ["Some four hundred volunteers spent the weekend hauling shopping trolleys, bicycles and plastic from "
         "the city canal, filling eleven skips.",
         "Divers found a safe that had been reported stolen from a pawn shop and handed it to the police.",
         "The water board will install floating booms at two storm drains where most of the plastic enters "
         "the canal."]),
    "leaked-memo": (
        "Internal memo on the staff canteen",
        "Anonymous", "2026-03-04",
        ["This page sits under a path robots.txt forbids, so a polite crawler never fetches it."]),
    "tram-line": (
        "New tram line opens to the airport",
        "Dana Keel", None,  # no date anywhere: the fetch time is used
        ["The first tram on the new airport line left the central station at dawn, carrying commuters, "
         "railway enthusiasts and a brass band.",
         "The line cuts the journey to the terminals to twenty minutes and runs every six minutes at peak "
         "hours, the transport department said.",
         "Taxi drivers protested at the terminal entrance, saying the line would halve their trade."]),
}
PATHS = {"quokka-census": "/news/quokka-census.html", "glacier-retreat": "/news/glacier-retreat.html",
         "falcon-festival": "/world/falcon-festival.html", "river-cleanup": "/metro/river-cleanup.html",
         "leaked-memo": "/private/leaked-memo.html", "tram-line": "/news/tram-line.html",
         "glacier-copy": "/syndicated/glacier-copy.html"}
FEED_DATES = {"quokka-census": "Wed, 04 Mar 2026 08:00:00 GMT", "glacier-retreat": "Thu, 05 Mar 2026 09:30:00 GMT",
              "leaked-memo": "Wed, 04 Mar 2026 12:00:00 GMT"}
BOILERPLATE_MARKERS = ["Accept all cookies", "Most read", "Subscribe to the newsletter", "Sport Weather Culture"]
HUGE_BYTES = 20 * 1024 * 1024


def article_html(slug: str, *, canonical: bool = True, outlet: str = "Harbour Gazette") -> str:
    title, author, date, paragraphs = STORIES["glacier-retreat" if slug == "glacier-copy" else slug]
    meta = [f'<meta property="og:title" content="{title}">', f'<meta name="author" content="{author}">']
    if date:
        meta.append(f'<meta property="article:published_time" content="{date}T07:00:00Z">')
    if canonical:
        meta.append(f'<link rel="canonical" href="/{PATHS[slug].lstrip("/")}">')
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | {outlet}</title>{''.join(meta)}</head>
<body>
<div class="cookie-banner"><p>We use cookies to improve your experience.</p><button>Accept all cookies</button></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/sport">Sport Weather Culture</a></li>
<li><a href="/subscribe">Subscribe to the newsletter</a></li></ul></nav></header>
<main><article><h1>{title}</h1><p class="byline">By {author}</p>
{body}
</article>
<aside class="related"><h2>Most read</h2><ul>
<li><a href="/x/1">Mayor opens the new bicycle bridge</a></li><li><a href="/x/2">Ferry timetable changes</a></li>
<li><a href="/x/3">Bakery wins the regional bread prize</a></li></ul></aside></main>
<footer><p>{outlet} · All rights reserved · <a href="/privacy">Privacy</a> · <a href="/contact">Contact</a></p></footer>
</body></html>"""


def rss_feed(base: str, slugs: list[str]) -> str:
    items = []
    for slug in slugs:
        date = f"<pubDate>{FEED_DATES[slug]}</pubDate>" if slug in FEED_DATES else ""
        items.append(f"<item><title>{STORIES[slug][0]}</title><link>{base}{PATHS[slug]}</link>"
                     f"<guid>{base}{PATHS[slug]}</guid>{date}<description>Summary.</description></item>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Harbour Gazette</title>'
            f'<link>{base}/</link><description>Local news</description>{"".join(items)}</channel></rss>')


def atom_feed(base: str) -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Steppe Courier</title><id>{base}/feeds/atom.xml</id>
<updated>2026-03-06T10:00:00Z</updated>
<entry><title>{STORIES['falcon-festival'][0]}</title><link href="{base}{PATHS['falcon-festival']}"/>
<id>{base}{PATHS['falcon-festival']}</id><updated>2026-03-06T10:00:00Z</updated><author><name>Aigerim Sadyk</name></author></entry>
<entry><title>{STORIES['quokka-census'][0]}</title>
<link href="{base}{PATHS['quokka-census']}?utm_source=atom&amp;utm_medium=feed&amp;fbclid=xyz"/>
<id>{base}/quokka-again</id><updated>2026-03-04T08:00:00Z</updated></entry>
</feed>"""


def news_sitemap(base: str) -> str:
    def url(slug: str, date: str) -> str:
        return (f"<url><loc>{base}{PATHS[slug]}</loc><news:news><news:publication><news:name>Metro Weekly"
                f"</news:name><news:language>en</news:language></news:publication><news:publication_date>{date}"
                f"</news:publication_date><news:title>{STORIES['glacier-retreat' if slug == 'glacier-copy' else slug][0]}"
                f"</news:title></news:news></url>")

    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">'
            + url("river-cleanup", "2026-03-07T06:00:00Z") + url("glacier-copy", "2026-03-05T11:00:00Z")
            + "</urlset>")


def sitemap_index(base: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{base}/sitemaps/news.xml</loc><lastmod>2026-03-07</lastmod></sitemap></sitemapindex>")


def rdf_feed(base: str) -> str:
    """RSS 1.0 (RDF) with the falcon story, dated by dc:date."""
    link = f"{base}{PATHS['falcon-festival']}"
    return f"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="{base}/feeds/rdf.xml"><title>Steppe Courier (RDF)</title><link>{base}/</link>
<description>RSS 1.0</description><items><rdf:Seq><rdf:li rdf:resource="{link}"/></rdf:Seq></items></channel>
<item rdf:about="{link}"><title>{STORIES['falcon-festival'][0]}</title><link>{link}</link>
<dc:date>2026-03-06T10:00:00Z</dc:date><dc:creator>Aigerim Sadyk</dc:creator></item>
</rdf:RDF>"""


class FixtureSite:
    """The made-up site in a `ThreadingHTTPServer` on 127.0.0.1 (a free port), in a thread.

    `requests` counts requests per path (query string dropped); `slow_seconds` is how long
    `/slow/feed.xml` waits before answering.
    """

    def __init__(self, *, slow_seconds: float = 5.0, port: int = 0) -> None:
        self.slow_seconds = slow_seconds
        self.requests: Counter[str] = Counter()
        self.rss_slugs = ["quokka-census", "glacier-retreat", "leaked-memo"]
        self.rss_version = 1
        self.failing: set[str] = set()  # paths that answer 503 for now (a page that fails, then recovers)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: tests and the demo print their own reports
                pass

            def do_GET(self) -> None:
                site._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FixtureSite:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def sources_text(self, *, broken: bool = True) -> str:
        """A source list for `newsqa follow` (good sources first, then the broken ones)."""
        lines = [f"{self.url}/feeds/rss.xml harbour-gazette", f"{self.url}/feeds/atom.xml steppe-courier",
                 f"{self.url}/sitemaps/news.xml metro-weekly"]
        if broken:
            lines += [f"{self.url}/slow/feed.xml slow-source", f"{self.url}/broken/feed.xml broken-source",
                      f"{self.url}/loop/feed.xml looping-source", f"{self.url}/huge/feed.xml huge-source",
                      f"{self.url}/pages/front.html html-source"]
        return "\n".join(lines) + "\n"

    def publish(self, slug: str = "tram-line") -> None:
        """Add `slug` at the top of the RSS feed (the feed's ETag changes)."""
        with self._lock:
            self.rss_slugs.insert(0, slug)
            self.rss_version += 1

    def article_fetches(self) -> int:
        """Requests for article pages (feeds, sitemaps and robots.txt not counted)."""
        return sum(n for path, n in self.requests.items() if path.endswith(".html") and path != "/pages/front.html")

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        with self._lock:
            self.requests[path] += 1
            slugs, version = list(self.rss_slugs), self.rss_version
        try:
            self._respond(handler, path, slugs, version)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, size limit): that is the point of those fixtures

    def _send(self, handler, status: int, body: str | bytes, content_type: str, headers: dict | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _respond(self, handler, path: str, slugs: list[str], version: int) -> None:
        if path in self.failing:
            return self._send(handler, 503, "Service Unavailable", "text/plain")
        if path == "/robots.txt":
            return self._send(handler, 200, "User-agent: *\nDisallow: /private/\n", "text/plain")
        if path == "/feeds/rss.xml":
            etag = f'"rss-v{version}"'
            modified = formatdate(1772611200 + version * 3600, usegmt=True)
            if handler.headers.get("If-None-Match") == etag:
                handler.send_response(304)
                handler.send_header("ETag", etag)
                handler.end_headers()
                return
            return self._send(handler, 200, rss_feed(self.url, slugs), "application/rss+xml; charset=utf-8",
                              {"ETag": etag, "Last-Modified": modified})
        if path == "/feeds/atom.xml":
            return self._send(handler, 200, atom_feed(self.url), "application/atom+xml")
        if path == "/sitemaps/news.xml":
            return self._send(handler, 200, news_sitemap(self.url), "application/xml")
        if path == "/sitemaps/index.xml":
            return self._send(handler, 200, sitemap_index(self.url), "application/xml")
        if path == "/feeds/rdf.xml":
            return self._send(handler, 200, rdf_feed(self.url), "application/rdf+xml")
        for slug, article_path in PATHS.items():
            if path == article_path:
                page = (article_html(slug, canonical=False, outlet="Metro Weekly") if slug == "glacier-copy"
                        else article_html(slug))
                return self._send(handler, 200, page, "text/html; charset=utf-8")
        if path == "/slow/feed.xml":
            self._stop.wait(self.slow_seconds)
            return self._send(handler, 200, rss_feed(self.url, []), "application/rss+xml")
        if path == "/broken/feed.xml":
            return self._send(handler, 500, "Internal Server Error", "text/plain")
        if path == "/loop/feed.xml":
            step = int(handler.path.partition("?n=")[2] or 0) + 1
            handler.send_response(302)
            handler.send_header("Location", f"/loop/feed.xml?n={step}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if path == "/huge/feed.xml":
            # No Content-Length: the client must stop reading at its own limit.
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.end_headers()
            handler.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>huge</title>')
            block = b"<!-- " + b"x" * 65_000 + b" -->"
            for _ in range(HUGE_BYTES // len(block)):
                handler.wfile.write(block)
            handler.close_connection = True
            return
        if path == "/pages/front.html":
            return self._send(handler, 200, "<!doctype html><html><body><h1>Front page</h1></body></html>",
                              "text/html")
        return self._send(handler, 404, "not found", "text/plain")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a made-up news site on loopback and follow it once.")
    parser.add_argument("--index", type=Path, default=Path("demo-index"), help="index to follow into")
    parser.add_argument("--port", type=int, default=8931,
                        help="port of the made-up site (fixed, so a second run finds nothing new; 0: any free one)")
    parser.add_argument("--keep-serving", action="store_true", help="keep the site up after the round (Ctrl-C)")
    args = parser.parse_args(argv)
    from indexer.embed import Embedder
    from indexer.ingest.follow import follow_round, read_source_list
    from indexer.ingest.web import FetchSettings

    with FixtureSite(slow_seconds=3.0, port=args.port) as site:
        args.index.mkdir(parents=True, exist_ok=True)
        sources_file = args.index.parent / f"{args.index.name}-sources.txt"
        sources_file.write_text(site.sources_text())
        print(f"made-up news site at {site.url}; sources listed in {sources_file}")
        report = follow_round(read_source_list(sources_file), args.index, embedder=Embedder(purpose="passages"),
                              fetch=FetchSettings(timeout=1.0, max_bytes=1_000_000, host_delay=0.0))
        for source in report.sources:
            state = f"error: {source.error}" if source.error else (
                f"{source.status}: {source.entries} entries, {source.fetched} pages fetched, "
                f"{len(source.disallowed)} forbidden by robots.txt, {len(source.failed)} failed")
            print(f"  {source.name}: {state}")
        if report.build is not None:
            b = report.build
            print(f"indexed {b.added} new articles ({b.duplicates} near duplicates dropped) into {args.index}, "
                  f"version {b.version}; index holds {b.total_articles} articles")
        else:
            print("nothing new since the last round (the RSS feed answered 304, every other page was seen)")
        print(f"follow state (per source: last fetch, articles, last error): {args.index}/follow-state.json")
        print(f"try: newsqa search 'quokka census' --index {args.index}   or   newsqa serve --index {args.index}")
        if args.keep_serving:
            print("serving the made-up site until Ctrl-C")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
