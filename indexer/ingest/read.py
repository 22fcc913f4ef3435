"""Readers: turn input paths into articles, reporting bad input per file and line.

Formats:
- `.jsonl` / `.ndjson`: one article per line, fields `id`, `title`, `text`,
  optional `date` (ISO 8601), `url`, `source`, `section`.
- `.txt` / `.md`: one article or a news dump of many, split into articles by
  `indexer.ingest.segment` (a headline line, a date line and prose start an
  article). A `.md` file with YAML front matter (`title`, `date`, `source`,
  `url` between `---` lines) is one article; `#` headings in it are sections.
- `.html` / `.htm`: main text and metadata extracted with trafilatura; the
  source is the site name (og:site_name), else the host, else the file stem.
- a folder: every supported file below it, in sorted order.
- `-`: JSONL read from standard input.

`read_sources` never raises for bad input: it yields `InputError` values next
to the articles so the caller can count and report them and go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date as Date, datetime
from pathlib import Path

from indexer.ingest.documents import make_article, normalize_space
from indexer.errors import InputError
from indexer.ingest.segment import Embed, segment_dump
from indexer.types import MARKET_RATES, Article

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUPPORTED = TEXT_SUFFIXES + HTML_SUFFIXES + JSONL_SUFFIXES

MAX_ID_CHARS = 512
STDIN = "-"  # a source that means JSONL on standard input
STDIN_NAME = "<stdin>"  # how errors name it

SkipFile = Callable[[str], "int | None"]


@dataclass
class ReadReport:
    """Counts from reading: what came in and what was dropped or refused."""

    files: int = 0
    boilerplate_lines: int = 0
    duplicate_paragraphs: int = 0
    errors: list[InputError] = field(default_factory=list)
    # (path, SHA-256 of the bytes, articles read) of each file read in full.
    file_digests: list[tuple[str, str, int]] = field(default_factory=list)
    # Articles of files skipped as unchanged (see `skip_file`).
    skipped_articles: int = 0
    # Input consumed so far, in bytes (approximate inside a file, exact at its end): drives the progress bar.
    bytes_read: int = 0


def read_sources(
    paths: Sequence[str | os.PathLike], *, embed: Embed, report: ReadReport, skip_file: SkipFile | None = None
) -> Iterator[Article]:
    """Yield the articles of every path in order; record problems in `report.errors`.

    `skip_file(sha256)` may return the number of articles a file with those
    bytes gave before: the file is then not parsed at all (segmenting a dump
    calls the model, so an unchanged file must cost nothing).
    """
    for path in paths:
        if str(path) == STDIN:
            yield from _read_stdin(report)
            continue
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            for file in files:
                if file.suffix.lower() in SUPPORTED:
                    yield from _read_file(file, embed=embed, report=report, skip_file=skip_file)
                else:
                    report.errors.append(_unsupported(file))
        elif path.is_file():
            yield from _read_file(path, embed=embed, report=report, skip_file=skip_file)
        else:
            report.errors.append(InputError("no such file or folder", path=str(path)))


def _read_stdin(report: ReadReport) -> Iterator[Article]:
    """`-` on the command line: JSONL on standard input."""
    try:
        text = sys.stdin.buffer.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.errors.append(InputError(f"not UTF-8 text (byte {exc.start}): send UTF-8 JSONL", path=STDIN_NAME))
        return
    report.files += 1
    yield from _read_jsonl(text, Path(STDIN_NAME), report)


def input_size(paths: Sequence[str | os.PathLike]) -> int | None:
    """Bytes of the supported files `read_sources(paths)` will read; None when that is unknown (stdin)."""
    total = 0
    for path in paths:
        if str(path) == STDIN:
            return None
        path = Path(path)
        if path.is_dir():
            files = (p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            total += sum(_size(p) for p in files if p.suffix.lower() in SUPPORTED)
        elif path.is_file():
            total += _size(path)
    return total


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unsupported(path: Path) -> InputError:
    return InputError(
        f"unsupported file type {path.suffix or '(none)'!r}: use {', '.join(SUPPORTED)} or a folder",
        path=str(path),
    )


def _read_file(path: Path, *, embed: Embed, report: ReadReport, skip_file: SkipFile | None) -> Iterator[Article]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        report.errors.append(_unsupported(path))
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        report.errors.append(InputError(f"cannot read: {exc.strerror}", path=str(path)))
        return
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.errors.append(
            InputError(f"not UTF-8 text (byte {exc.start}): re-save the file as UTF-8", path=str(path))
        )
        return
    report.files += 1
    digest = hashlib.sha256(raw).hexdigest()
    known = skip_file(digest) if skip_file else None
    start = report.bytes_read
    if known is not None:
        report.skipped_articles += known
        report.bytes_read = start + len(raw)
        return
    count, errors = 0, len(report.errors)
    for article in _parse(text, path, suffix, embed, report):
        count += 1
        yield article
    report.bytes_read = start + len(raw)
    if len(report.errors) == errors:  # a file with bad records is read again, so they are reported again
        report.file_digests.append((str(path), digest, count))


def _parse(text: str, path: Path, suffix: str, embed: Embed, report: ReadReport) -> Iterator[Article]:
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(text, path, report)
    elif suffix in HTML_SUFFIXES:
        yield from _read_html(text, path, report)
    else:
        front = _front_matter(text, path, report) if suffix != ".txt" else None
        if front is not None:
            yield from _front_matter_article(*front, path, report)
            return
        segmented = segment_dump(text, origin=str(path), source=_source_name(path), embed=embed)
        report.boilerplate_lines += segmented.boilerplate_lines
        report.duplicate_paragraphs += segmented.duplicate_paragraphs
        if not any(a.kind != MARKET_RATES for a in segmented.articles):
            report.errors.append(InputError("no article text found", path=str(path)))
        yield from segmented.articles


def _source_name(path: Path) -> str:
    return path.stem


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")


def _front_matter(text: str, path: Path, report: ReadReport) -> tuple[dict, str] | None:
    """(fields, body) of a Markdown file that starts with YAML front matter, else None.

    Static-site and newsroom exports write one article per file this way, with
    `title`, `date`, `source` and `url` between `---` lines.
    """
    text = text.replace("\r\n", "\n")
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None
    import yaml

    try:
        fields = yaml.safe_load(match[1])
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        report.errors.append(InputError(
            f"invalid YAML front matter ({getattr(exc, 'problem', None) or type(exc).__name__}): "
            "write `key: value` lines between the --- lines; the article is read without it",
            path=str(path), line=mark.line + 2 if mark is not None else 1))
        fields = {}
    if not isinstance(fields, dict):
        fields = {}
    return fields, text[match.end():]


def _front_matter_article(fields: dict, body: str, path: Path, report: ReadReport) -> Iterator[Article]:
    def text_field(name: str) -> str | None:
        value = fields.get(name)
        return normalize_space(str(value)) or None if isinstance(value, (str, int, float)) else None

    title = text_field("title")
    blocks: list[tuple[str | None, str]] = []
    section: str | None = None
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append((section, " ".join(paragraph)))
            paragraph.clear()

    for line in body.splitlines():
        line = line.strip()
        heading = _MD_HEADING.match(line)
        if heading:
            flush()
            if title is None and len(heading[1]) == 1 and not blocks:
                title = heading[2]  # the page's own `# Title`
            elif not (len(heading[1]) == 1 and heading[2] == title):
                section = heading[2]
        elif line:
            paragraph.append(line)
        else:
            flush()
    flush()
    if not blocks:
        report.errors.append(InputError("no article text found under the front matter", path=str(path)))
        return
    date = fields.get("date")
    try:
        if isinstance(date, (Date, datetime)):
            date = date.isoformat()
        date = _normalize_date(date, str(path))
    except ValueError as exc:
        report.errors.append(InputError(f"front matter: {exc}; the article is indexed undated", path=str(path)))
        date = None
    article, dropped = make_article(
        title=title or path.stem,
        blocks=blocks,
        date=date,
        source=text_field("source") or _source_name(path),
        url=text_field("url"),
        origin=str(path),
    )
    report.duplicate_paragraphs += dropped
    yield article


def _normalize_date(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"`date` must be an ISO 8601 string like 2025-12-16, got {value!r}")
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise ValueError(f"`date` {value!r} is not ISO 8601: write it like 2025-12-16") from None


def _read_jsonl(text: str, path: Path, report: ReadReport) -> Iterator[Article]:
    for number, line in enumerate(text.splitlines(), start=1):
        report.bytes_read += len(line) + 1  # characters: close enough for progress, corrected at the file's end
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(InputError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=str(path), line=number))
            continue
        except RecursionError:
            report.errors.append(InputError("JSON nested too deeply: an article is one flat object", path=str(path),
                                            line=number))
            continue
        except ValueError:  # Python refuses integers of more than 4,300 digits
            report.errors.append(InputError("invalid JSON: a number of more than 4,300 digits", path=str(path),
                                            line=number))
            continue
        try:
            article, dropped = _article_from_record(record, f"{path}:{number}")
        except ValueError as exc:
            report.errors.append(InputError(str(exc), path=str(path), line=number))
            continue
        report.duplicate_paragraphs += dropped
        yield article


def _article_from_record(record: object, origin: str) -> tuple[Article, int]:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [name for name in ("id", "title", "text") if record.get(name) in (None, "")]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)} (need id, title and text)")
    article_id = record["id"]
    if not isinstance(article_id, (str, int)) or isinstance(article_id, bool):
        raise ValueError(f"`id` must be a string or an integer, got {_preview(article_id)}")
    article_id = str(article_id).strip()
    if not article_id or len(article_id) > MAX_ID_CHARS:
        raise ValueError(f"`id` must be 1 to {MAX_ID_CHARS} characters, got {len(article_id)}: {_preview(article_id)}")
    for name in ("id", "title", "text", "url", "source", "section", "lang", "date"):
        value = article_id if name == "id" else record.get(name)
        if name != "date" and value is not None and not isinstance(value, str):
            raise ValueError(f"`{name}` must be a string, got {type(value).__name__}")
        if isinstance(value, str):
            _check_unicode(name, value)
    if not normalize_space(record["text"]):
        raise ValueError("`text` is only white space: an article needs text to search")
    if not normalize_space(record["title"]):
        raise ValueError("`title` is only white space: give the article a title")
    section = record.get("section") or None
    paragraphs = [p for p in record["text"].replace("\r\n", "\n").split("\n\n") if p.strip()]
    return make_article(
        title=record["title"],
        blocks=[(section, p) for p in paragraphs],
        article_id=article_id,
        date=_normalize_date(record.get("date"), origin),
        source=record.get("source") or None,
        url=record.get("url") or None,
        origin=origin,
        lang=(record.get("lang") or "").strip().lower() or None,
    )


def _preview(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _check_unicode(name: str, value: str) -> None:
    """Refuse text that cannot be stored as UTF-8: JSON escapes allow unpaired surrogates like \\ud800."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"`{name}` holds an unpaired surrogate \\u{ord(value[exc.start]):04x} at character {exc.start}: "
            "write the character itself or a valid surrogate pair"
        ) from None


def extracted_blocks(text: str, title: str | None) -> tuple[str, list[tuple[str | None, str]]]:
    """The title and (section, paragraph) blocks of trafilatura's formatted text: `#` lines are
    headings; the first names the article when the page declared no title, later ones start sections."""
    blocks: list[tuple[str | None, str]] = []
    section: str | None = None
    title = (title or "").strip()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            if not title:
                title = heading
            elif heading != title:
                section = heading
            continue
        blocks.append((section, line))
    return title, blocks


def _read_html(text: str, path: Path, report: ReadReport) -> Iterator[Article]:
    try:
        import trafilatura
    except ImportError:  # pragma: no cover - depends on the environment
        report.errors.append(InputError("HTML needs trafilatura: `pip install trafilatura`", path=str(path)))
        return
    document = trafilatura.bare_extraction(
        text, with_metadata=True, include_formatting=True, include_comments=False, favor_recall=True
    )
    if document is None or not (document.text or "").strip():
        report.errors.append(InputError("no article text found in the HTML", path=str(path)))
        return
    title, blocks = extracted_blocks(document.text, document.title)
    if not blocks:
        report.errors.append(InputError("no article text found in the HTML", path=str(path)))
        return
    date = None
    if document.date:
        try:
            date = _normalize_date(document.date, str(path))
        except ValueError:
            date = None
    article, dropped = make_article(
        title=title or path.stem,
        blocks=blocks,
        date=date,
        source=(document.sitename or document.hostname or _source_name(path)),
        url=document.url or None,
        origin=str(path),
    )
    report.duplicate_paragraphs += dropped
    yield article
