"""Follow news sources: rounds that fetch what changed and index it through the normal build path.

A source is a feed (RSS/Atom), a sitemap or news sitemap (or a sitemap
index), listed in a plain file (`read_source_list`). One round
(`follow_round`):

1. fetches every source concurrently with a conditional GET (the ETag and
   Last-Modified of its last good response); a 304 costs no more;
2. skips entries whose URL (tracking parameters stripped) was seen before, in
   this or any earlier round, from any source;
3. fetches the new article pages (robots.txt, per-host delay and the fetch
   bounds of `indexer.ingest.web`), extracts their text and metadata;
4. indexes them with `build_index` (incremental: a new version with only
   these articles added, near duplicates of indexed articles dropped), which a
   running service picks up by its hot reload;
5. saves the follow state beside the index versions (`follow-state.json`).

A source that fails (down, slow, redirect loop, HTML instead of a feed, too
big) is reported with its reason and costs the others at most the fetch
timeout. The article date comes from the page, else the feed or sitemap
entry, else the fetch time; which one is kept as `date_source`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from indexer.errors import InputError, InvalidParameter
from indexer.ingest.feeds import FEED, SITEMAP, SITEMAP_INDEX, Entry, FeedError, classify, parse_feed, parse_sitemap
from indexer.ingest.web import FetchError, Fetcher, FetchSettings, extract_article, is_url, normalize_url
from indexer.settings import Setting, setting

STATE_FILE = "follow-state.json"
FOLLOW_LOCK = ".follow.lock"
STATE_FORMAT = 1
# An article page that failed this many rounds is not tried again.
MAX_ARTICLE_ATTEMPTS = 3


@dataclass(frozen=True)
class Source:
    name: str
    url: str


# The time between rounds: a duration `parse_every` reads.
EVERY = Setting("every", "15m", "time between rounds, e.g. 15m, 90s, 1h", surfaces=("follow",))


@dataclass(frozen=True)
class FollowSettings:
    """Settings of `newsqa follow` besides the fetch bounds (`FetchSettings`)."""

    workers: int = setting(4, "sources fetched at the same time")
    max_entries: int = setting(200, "new articles fetched per source per round (the rest wait for the next round)")
    max_sitemaps: int = setting(20, "child sitemaps read per sitemap index")


def read_source_list(path: str | os.PathLike) -> list[Source]:
    """Sources from a plain file: one `URL [NAME]` a line; blank lines and `#` comments are skipped.

    Without a name the source is named after the URL's host. Raises InvalidParameter naming the line
    for a line that is not an http(s) URL, or a name used twice.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidParameter(f"cannot read the source list {path}: {exc.strerror}") from None
    sources: list[Source] = []
    names: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url, _, name = line.partition(" ")
        if not is_url(url):
            raise InvalidParameter(f"{path}:{number}: {url!r} is not an http(s) URL: write one `URL [NAME]` a line")
        name = name.strip() or urlsplit(url).netloc
        if name in names:
            raise InvalidParameter(f"{path}:{number}: source name {name!r} is already used on line {names[name]}: "
                                   "give each source its own name after the URL")
        names[name] = number
        sources.append(Source(name, url))
    if not sources:
        raise InvalidParameter(f"{path} lists no sources: write one `URL [NAME]` a line")
    return sources


# ------------------------------------------------------------------------------------------------ state

@contextmanager
def _file_lock(path: Path, *, busy: str | None = None) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created), released when the block ends or the process dies.
    With `busy`, raise InvalidParameter(busy) instead of waiting when another holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise InvalidParameter(busy) from None
        yield
    finally:
        os.close(fd)


def state_path(index_dir: str | os.PathLike) -> Path:
    return Path(index_dir) / STATE_FILE


def load_state(index_dir: str | os.PathLike) -> dict:
    """The follow state of `index_dir` (empty when nothing was followed yet)."""
    path = state_path(index_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": STATE_FORMAT, "sources": {}, "urls": {}}
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidParameter(f"the follow state {path} is unreadable ({exc}): move it aside to start afresh "
                               "(every article will be fetched again)") from None
    state.setdefault("sources", {})
    state.setdefault("urls", {})
    return state


def save_state(index_dir: str | os.PathLike, state: dict) -> None:
    path = state_path(index_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".follow-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state, out, ensure_ascii=False, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def follow_status(index_dir: str | os.PathLike) -> dict[str, dict]:
    """Per followed source (by name): url, last_fetched, last_success, last_error, articles (indexed so far).

    Empty when the index was never followed.
    """
    try:
        state = load_state(index_dir)
    except InvalidParameter:
        return {}
    keys = ("url", "last_fetched", "last_success", "last_error", "articles")
    return {name: {key: info.get(key) for key in keys} for name, info in sorted(state["sources"].items())}


# ------------------------------------------------------------------------------------------------ fetching

@dataclass
class WebRecord:
    """One fetched article, ready to index, and what we know about where its metadata came from."""

    key: str  # normalized URL it was reached by
    article_id: str
    title: str
    paragraphs: tuple[str, ...]
    date: str
    date_source: str  # page, feed or fetched
    source: str
    url: str
    author: str | None
    lang: str | None

    def record(self) -> dict:
        return {"id": self.article_id, "title": self.title, "text": "\n\n".join(self.paragraphs),
                "date": self.date, "source": self.source, "url": self.url, "lang": self.lang}


@dataclass
class SourceReport:
    """What one round did for one source. `error` is the reason it failed (None when it did not)."""

    name: str
    url: str
    status: str = "ok"  # ok, not_modified or error
    error: str | None = None
    entries: int = 0
    new: int = 0
    fetched: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (article URL, reason)
    disallowed: list[str] = field(default_factory=list)  # article URLs robots.txt forbids
    seconds: float = 0.0
    records: list[WebRecord] = field(default_factory=list, repr=False)
    validators: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("records")
        data.pop("validators")
        data["failed"] = [{"url": u, "reason": r} for u, r in self.failed]
        return data


def article_id_for(url: str) -> str:
    """The stable id of a web article: derived from its normalized canonical URL."""
    return hashlib.sha1(normalize_url(url).encode()).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def fetch_page(fetcher: Fetcher, entry: Entry, source: str, key: str, now: datetime) -> WebRecord:
    """Fetch and extract the article at `entry.url`; raises FetchError or FeedError with the reason."""
    response = fetcher.get(entry.url)
    if "html" not in response.content_type and response.content_type not in ("", "application/xml"):
        raise FeedError(f"{response.url} is {response.content_type}, not an HTML page")
    page = extract_article(response.text(), response.url)
    if page is None:
        raise FeedError(f"no article text found in {response.url}")
    if page.date:
        date, date_source = page.date, "page"
    elif entry.date:
        date, date_source = entry.date, "feed"
    else:
        date, date_source = now.date().isoformat(), "fetched"
    canonical = normalize_url(page.url) if page.url and is_url(page.url) else normalize_url(response.url)
    return WebRecord(key=key, article_id=article_id_for(canonical), title=page.title or entry.title or canonical,
                     paragraphs=page.paragraphs, date=date, date_source=date_source, source=source,
                     url=canonical, author=page.author or entry.author, lang=page.lang)


def _entries(fetcher: Fetcher, report: SourceReport, response, settings: FollowSettings,
             *, accept_html: bool) -> list[Entry]:
    kind, body = classify(response.body, response.content_type, max_bytes=fetcher.settings.max_bytes)
    if kind == FEED:
        return list(parse_feed(body, response.url).entries)
    if kind == SITEMAP:
        return list(parse_sitemap(body, response.url).entries)
    if kind == SITEMAP_INDEX:
        entries: list[Entry] = []
        for child in parse_sitemap(body, response.url).entries[: settings.max_sitemaps]:
            try:
                child_response = fetcher.get(child.url)
                child_kind, child_body = classify(child_response.body, child_response.content_type,
                                                  max_bytes=fetcher.settings.max_bytes)
                if child_kind != SITEMAP:
                    raise FeedError(f"{child.url} is listed as a sitemap but is a {child_kind}")
                entries.extend(parse_sitemap(child_body, child_response.url).entries)
            except (FetchError, FeedError) as exc:
                report.failed.append((child.url, str(exc)))
        return entries
    if accept_html:
        return [Entry(url=response.url)]
    raise FeedError(f"{response.url} serves an HTML page ({response.content_type or 'no content type'}), "
                    "not a feed or sitemap: list the site's RSS/Atom feed or sitemap URL instead")


def list_source(fetcher: Fetcher, source: Source, *, previous: dict, settings: FollowSettings,
                accept_html: bool = False) -> tuple[SourceReport, list[Entry]]:
    """Fetch one source's listing (conditional on `previous` validators) and return its entries.

    Never raises for the source's failures: they go in the report (`status="error"`, `error`).
    """
    started = time.monotonic()
    report = SourceReport(source.name, source.url)
    entries: list[Entry] = []
    try:
        response = fetcher.get(source.url, etag=previous.get("etag"), last_modified=previous.get("last_modified"))
        if response.status == 304:
            report.status = "not_modified"
            report.validators = {"etag": previous.get("etag"), "last_modified": previous.get("last_modified")}
        else:
            report.validators = {"etag": response.headers.get("etag"),
                                 "last_modified": response.headers.get("last-modified")}
            entries = [e for e in _entries(fetcher, report, response, settings, accept_html=accept_html)
                       if is_url(e.url)]
    except (FetchError, FeedError) as exc:
        report.status, report.error = "error", str(exc)
    report.entries = len(entries)
    report.seconds = time.monotonic() - started
    return report, entries


def claim_new(report: SourceReport, entries: Sequence[Entry], *, seen: dict, claimed: set,
              settings: FollowSettings) -> list[tuple[str, Entry]]:
    """The entries of `report`'s source to fetch this round, as (normalized URL, entry): not seen in an
    earlier round (failed pages are retried up to MAX_ARTICLE_ATTEMPTS), not taken by a source listed
    before it in this round (`claimed`, updated), at most `settings.max_entries`."""
    chosen = []
    for entry in entries:
        key = normalize_url(entry.url)
        known = seen.get(key)
        if known is not None and (known.get("status") != "failed" or known.get("attempts", 0) >= MAX_ARTICLE_ATTEMPTS):
            continue
        if key in claimed:
            continue
        report.new += 1
        if len(chosen) >= settings.max_entries:
            continue  # left unclaimed: listed again next round
        claimed.add(key)
        chosen.append((key, entry))
    return chosen


def fetch_articles(fetcher: Fetcher, report: SourceReport, chosen: Sequence[tuple[str, Entry]],
                   now: datetime) -> SourceReport:
    """Fetch and extract the chosen article pages into `report.records`; failures and pages robots.txt
    forbids are recorded in the report, never raised."""
    started = time.monotonic()
    for key, entry in chosen:
        if not fetcher.allowed(entry.url):
            report.disallowed.append(entry.url)
            continue
        try:
            record = fetch_page(fetcher, entry, report.name, key, now)
        except (FetchError, FeedError) as exc:
            report.failed.append((entry.url, str(exc)))
            continue
        report.fetched += 1
        report.records.append(record)
    report.seconds += time.monotonic() - started
    return report


def collect(fetcher: Fetcher, sources: Sequence[Source], *, state: dict, settings: FollowSettings,
            now: datetime, accept_html: bool = False) -> list[SourceReport]:
    """List every source, choose the new entries in source order (so which source keeps a story linked
    by two of them does not depend on timing), then fetch the pages; sources run concurrently."""
    workers = max(1, settings.workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="newsqa-follow") as pool:
        listed = list(pool.map(lambda source: list_source(
            fetcher, source, previous=state["sources"].get(source.name, {}), settings=settings,
            accept_html=accept_html), sources))
        claimed: set[str] = set()
        chosen = [claim_new(report, entries, seen=state["urls"], claimed=claimed, settings=settings)
                  for report, entries in listed]
        return list(pool.map(lambda pair: fetch_articles(fetcher, pair[0][0], pair[1], now), zip(listed, chosen)))


# ------------------------------------------------------------------------------------------------ rounds

@dataclass
class RoundReport:
    """One round: per-source reports, the build summary (None when nothing new) and the requests sent."""

    sources: list[SourceReport]
    build: object | None
    requests: int
    seconds: float

    @property
    def added(self) -> int:
        return self.build.added if self.build is not None else 0

    def as_dict(self) -> dict:
        return {"sources": [s.as_dict() for s in self.sources], "requests": self.requests,
                "seconds": round(self.seconds, 3), "build": self.build.as_dict() if self.build is not None else None}


def write_records(records: Sequence[WebRecord], path: Path) -> Path:
    """`records` as a JSON-lines file the normal readers index (indexer/ingest/read.py)."""
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.record(), ensure_ascii=False) + "\n")
    return path


def index_records(records: Sequence[WebRecord], index_dir, *, embedder, build_options: dict | None = None):
    """Index `records` through `build_index` (one new version; near duplicates dropped). Returns the
    BuildSummary and the ids now in the index."""
    from indexer.ingest.build import build_index
    from indexer.store.embedded import open_index

    # build_index holds the index's writer lock, so a push or `newsqa index` at the same time waits.
    with tempfile.TemporaryDirectory(prefix="newsqa-web-") as tmp:
        path = write_records(records, Path(tmp) / "web-articles.jsonl")
        summary = build_index([path], index_dir, embedder=embedder, progress=False, **(build_options or {}))
    for error in summary.errors:  # say which page a bad record came from, not the temporary file
        if error.line is not None and error.line <= len(records):
            error.path, error.line = records[error.line - 1].url, None
    index = open_index(index_dir, lazy=True)  # rows only: the vectors are not needed to see what is present
    try:
        present = set(index.articles([r.article_id for r in records]))
    finally:
        index.close()
    return summary, present


def parse_every(value: str) -> float:
    """Seconds in a round interval like `15m`, `90s`, `1h` or `300`; InvalidParameter otherwise."""
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise InvalidParameter(f"--every {value!r} is not a duration: write it like 15m, 90s or 1h") from None
    if seconds < 1:
        raise InvalidParameter(f"--every {value!r} is below the 1 s minimum: write it like 15m, 90s or 1h")
    return seconds


def follow_round(sources: Sequence[Source], index_dir: str | os.PathLike, *, embedder,
                 fetch: FetchSettings = FetchSettings(), settings: FollowSettings = FollowSettings(),
                 fetcher: Fetcher | None = None) -> RoundReport:
    """One round over `sources` into the index at `index_dir` (see the module docstring)."""
    index_dir = Path(index_dir)
    with _file_lock(index_dir / FOLLOW_LOCK, busy=f"another `newsqa follow` is running on {index_dir}: "
                    "stop it first (one follower per index keeps the follow state consistent)"):
        return _follow_round(sources, index_dir, embedder=embedder, settings=settings,
                             fetcher=fetcher or Fetcher(fetch))


def _follow_round(sources: Sequence[Source], index_dir: Path, *, embedder, settings: FollowSettings,
                  fetcher: Fetcher) -> RoundReport:
    started = time.monotonic()
    state = load_state(index_dir)
    now = _now()
    reports = collect(fetcher, sources, state=state, settings=settings, now=now)
    records = [r for report in reports for r in report.records]
    summary, present = (None, set())
    if records:
        summary, present = index_records(records, index_dir, embedder=embedder)
    stamp = now.isoformat(timespec="seconds")
    for report in reports:
        info = state["sources"].setdefault(report.name, {"articles": 0})
        info["url"] = report.url
        info["last_fetched"] = stamp
        info["last_status"] = report.status
        info["last_error"] = report.error
        if report.status != "error":
            info["last_success"] = stamp
            # A source with article pages that failed keeps its old validators: the next round reads the
            # listing again and retries them (pages already seen are skipped, so this costs one request).
            if not report.failed:
                info["etag"] = report.validators.get("etag")
                info["last_modified"] = report.validators.get("last_modified")
        for url in report.disallowed:
            state["urls"][normalize_url(url)] = {"status": "disallowed", "source": report.name, "seen": stamp}
        for url, reason in report.failed:
            key = normalize_url(url)
            attempts = state["urls"].get(key, {}).get("attempts", 0) + 1
            state["urls"][key] = {"status": "failed", "source": report.name, "reason": reason,
                                  "attempts": attempts, "seen": stamp}
        for record in report.records:
            indexed = record.article_id in present
            state["urls"][record.key] = {
                "status": "indexed" if indexed else "duplicate", "source": record.source,
                "article_id": record.article_id, "title": record.title, "date": record.date,
                "date_source": record.date_source, "lang": record.lang, "author": record.author,
                "url": record.url, "seen": stamp}
        info["articles"] = sum(1 for u in state["urls"].values()
                               if u.get("source") == report.name and u.get("status") == "indexed")
    save_state(index_dir, state)
    return RoundReport(reports, summary, fetcher.requests, time.monotonic() - started)


def fetch_url_records(urls: Sequence[str], fetch: FetchSettings = FetchSettings(),
                      settings: FollowSettings = FollowSettings()) -> tuple[list[WebRecord], list[InputError]]:
    """The articles behind `urls` for `newsqa index URL...`: a feed or sitemap gives its linked pages,
    an HTML page is one article. Failures come back as InputErrors naming the URL (never raised)."""
    sources = [Source(urlsplit(url).netloc, url) for url in urls]
    reports = collect(Fetcher(fetch), sources, state={"sources": {}, "urls": {}}, settings=settings, now=_now(),
                      accept_html=True)
    records: list[WebRecord] = []
    errors: list[InputError] = []
    for report in reports:
        if report.error:
            errors.append(InputError(report.error, path=report.url))
        errors.extend(InputError(reason, path=page) for page, reason in report.failed)
        errors.extend(InputError("robots.txt forbids this page for our user agent", path=page)
                      for page in report.disallowed)
        records.extend(report.records)
    return records, errors
