"""The indexing pipeline: read → segment → dedupe → chunk → embed → store.

`build_index` is incremental: articles already in the index with the same
content cost nothing (no model calls), changed ones are replaced, new ones
added. Near duplicates of indexed articles are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.ingest.chunk import WINDOWS, ChunkSettings, chunk_article, window_inputs
from indexer.ingest.dedupe import DEDUPE_THRESHOLD, DuplicateFinder, KnownArticles, signature
from indexer.ingest.lang import guess_language
from indexer.embed import Embedder, passage_input, pooled
from indexer.errors import IndexMismatch, InputError, InvalidParameter
from indexer.ingest.read import ReadReport, input_size, read_sources
from indexer.store.embedded import (
    FORMAT_VERSION, Index, IndexDraft, current_version, open_index, read_manifest, remove_stale_drafts, writer_lock,
)
from indexer.store.protocols import PendingArticle
from indexer.types import Article, Chunk

# Passages collected before embedding: the larger the set, the less padding once sorted by length.
EMBED_BATCH_CHUNKS = 512


@dataclass
class BuildSummary:
    """What a build did, for the CLI summary and for tests."""

    files: int = 0
    articles_read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    duplicate_paragraphs: int = 0
    boilerplate_lines: int = 0
    chunks: int = 0
    errors: list[InputError] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    version: str | None = None
    total_articles: int = 0
    total_chunks: int = 0

    @property
    def passages_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["errors"] = [{"where": e.where(), "message": e.message} for e in self.errors]
        data["passages_per_second"] = round(self.passages_per_second, 2)
        return data


def content_hash(article: Article) -> str:
    """Changes whenever anything shown or searched of the article changes."""
    payload = [article.title, article.text, article.date, article.source, article.url, article.kind,
               [asdict(s) for s in article.sections]]
    return hashlib.sha1(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def _check_compatible(base: Index, model: str, settings: dict, index_dir: Path) -> None:
    if base.manifest.get("model") != model or base.manifest.get("chunking") != settings:
        raise IndexMismatch(
            f"the index at {index_dir} was built with model {base.manifest.get('model')!r} and chunking "
            f"{base.manifest.get('chunking')}, this run uses {model!r} and {settings}: "
            "add --rebuild to build it again from these sources"
        )


class IngestLoop:
    """The per-article decisions every storage backend shares.

    `offer(article)` sorts an article into unchanged (same content hash as
    indexed: no model call), duplicate (same id twice in this run, or a near
    duplicate of another indexed article, at `known.threshold`), updated or added; new and changed
    articles are chunked and embedded in batches and handed to `write` as
    `PendingArticle`s, which the backend stores (replacing same-id articles).
    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        settings: ChunkSettings,
        summary: BuildSummary,
        known: KnownArticles,
        write: Callable[[list[PendingArticle]], None],
        progress: bool,
        batch_chunks: int = EMBED_BATCH_CHUNKS,
        input_bytes: int | None = None,
        bytes_read: Callable[[], int] | None = None,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.summary = summary
        self.known = known
        self._write = write
        self._batch_chunks = batch_chunks
        self._written = DuplicateFinder(known.threshold)  # this run's new and changed articles
        self._embedded = 0
        self._seen: set[str] = set()
        self._pending: list[tuple[Article, list[Chunk], str, np.ndarray]] = []
        # With the input's size known the bar counts input bytes (a true total and ETA); else passages.
        self._bytes_read = bytes_read if input_bytes is not None else None
        self._bar = _progress(progress, input_bytes if bytes_read is not None else None)

    def _duplicate(self, article_id: str, sig: np.ndarray) -> str | None:
        # An article this run replaced is matched by its new text only, never by the stored one.
        written = self._written
        return written.find(sig, exclude=article_id) or self.known.duplicate(sig, exclude=article_id, replaced=written)

    def offer(self, article: Article) -> None:
        summary = self.summary
        summary.articles_read += 1
        if article.lang is None:
            # The language is not part of the content hash: indexes built before languages were recorded
            # are not embedded again; `--rebuild` records the languages of their articles.
            article = replace(article, lang=guess_language(article.title + "\n" + article.text))
        digest = content_hash(article)
        if article.article_id in self._seen:
            summary.duplicates += 1
            return
        self._seen.add(article.article_id)
        stored = self.known.content_hash(article.article_id)
        if stored == digest:
            summary.unchanged += 1
            return
        sig = signature(article.title + "\n" + article.text)
        if self._duplicate(article.article_id, sig) is not None:
            summary.duplicates += 1
            return
        if stored is not None:
            summary.updated += 1
        else:
            summary.added += 1
        self._written.add(article.article_id, sig)
        chunks = chunk_article(article, self.settings, self.embedder.count_wordpieces)
        self._pending.append((article, chunks, digest, sig))
        if sum(len(c) for _, c, _, _ in self._pending) >= self._batch_chunks:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        chunks = [c for _, cs, _, _ in self._pending for c in cs]
        if self.settings.max_wordpieces <= WINDOWS.max_wordpieces:
            # The chunker already kept every passage inside the model's window: one input each.
            titles = {a.article_id: a.title for a, _, _, _ in self._pending}
            inputs = [passage_input(titles[c.article_id], c.section, c.text) for c in chunks]
            owner = np.arange(len(chunks))
        else:
            articles = {a.article_id: a for a, _, _, _ in self._pending}
            windows = [window_inputs(articles[c.article_id], c, self.embedder.count_wordpieces) for c in chunks]
            inputs = [text for group in windows for text in group]
            owner = np.repeat(np.arange(len(chunks)), [len(group) for group in windows])
        # One model batch at a time, so the bar moves every ~64 passages; sorted by length first,
        # so each batch pads as little as one call over all of them would.
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        step = self.embedder.batch_size
        embedded = np.zeros((len(inputs), self.embedder.dimension), dtype=np.float32)
        for begin in range(0, len(order), step):
            batch = order[begin : begin + step]
            t0 = time.perf_counter()
            embedded[batch] = self.embedder.encode([inputs[i] for i in batch])
            self.summary.embed_seconds += time.perf_counter() - t0
            self._tick(len(batch))  # model inputs: a passage cut into windows counts each window
        vectors = pooled(embedded, owner, len(chunks))
        batch, offset = [], 0
        for article, article_chunks, digest, sig in self._pending:
            n = len(article_chunks)
            batch.append(PendingArticle(article, tuple(article_chunks), vectors[offset : offset + n], digest, sig))
            offset += n
        self._write(batch)
        self.summary.chunks += len(chunks)
        self._pending.clear()

    def _tick(self, passages: int) -> None:
        self._embedded += passages
        if self._bytes_read is None:
            self._bar.update(passages)
        else:
            self._bar.set_postfix(passages=self._embedded, refresh=False)
            self._bar.update(max(0, self._bytes_read() - self._bar.n))

    def close(self) -> None:
        if self._bytes_read is not None:
            self._bar.update(max(0, self._bytes_read() - self._bar.n))
        self._bar.close()


def finish_summary(summary: BuildSummary, report: ReadReport, started: float) -> None:
    """Copy what reading found into `summary` and stop its clock."""
    summary.files = report.files
    summary.unchanged += report.skipped_articles
    summary.errors = report.errors
    summary.boilerplate_lines = report.boilerplate_lines
    summary.duplicate_paragraphs = report.duplicate_paragraphs
    summary.seconds = time.perf_counter() - started


def build_index(
    sources: Sequence[str | os.PathLike],
    index_dir: str | os.PathLike,
    *,
    embedder: Embedder,
    settings: ChunkSettings = ChunkSettings(),
    rebuild: bool = False,
    progress: bool | None = None,
    dedupe_threshold: float = DEDUPE_THRESHOLD,
    wait: bool = True,
) -> BuildSummary:
    """Index `sources` into `index_dir` (created, or updated in place atomically).

    Holds the index's writer lock from reading the live version to the
    commit: a concurrent writer waits (or, with `wait=False`, gets `IndexBusy`).
    """
    index_dir = Path(index_dir)
    with writer_lock(index_dir, wait=wait):
        return _build_locked(sources, index_dir, embedder=embedder, settings=settings, rebuild=rebuild,
                             progress=progress, dedupe_threshold=dedupe_threshold)


def _build_locked(
    sources: Sequence[str | os.PathLike],
    index_dir: Path,
    *,
    embedder: Embedder,
    settings: ChunkSettings,
    rebuild: bool,
    progress: bool | None,
    dedupe_threshold: float,
) -> BuildSummary:
    started = time.perf_counter()
    settings = settings.validate()
    settings_dict = asdict(settings)
    summary = BuildSummary()
    base = None
    if index_dir.is_dir():
        remove_stale_drafts(index_dir)
    if not rebuild and current_version(index_dir) is not None:
        base = open_index(index_dir, lazy=True)  # rows only: a write never reads the vectors of old segments
        _check_compatible(base, embedder.name, settings_dict, index_dir)
    known_files = base.known_files() if base else {}
    draft: IndexDraft | None = None
    report = ReadReport()

    def ensure_draft() -> IndexDraft:
        nonlocal draft
        if draft is None:
            draft = IndexDraft(index_dir, base=base, model=embedder.name, dimension=embedder.dimension,
                               settings=settings_dict)
        return draft

    def write(batch: list[PendingArticle]) -> None:
        ensure_draft().write(batch)

    loop = IngestLoop(
        embedder=embedder, settings=settings, summary=summary, write=write,
        known=KnownArticles(hashes=base.article_hashes, signatures=base.signatures, hash_of=base.content_hash,
                            similar=base.similar_signatures, threshold=dedupe_threshold)
        if base else KnownArticles.empty(dedupe_threshold),
        progress=sys.stderr.isatty() if progress is None else progress,
        input_bytes=input_size(sources), bytes_read=lambda: report.bytes_read,
    )
    try:
        for article in read_sources(sources, embed=embedder.encode, report=report, skip_file=known_files.get):
            loop.offer(article)
        loop.flush()
        new_files = [f for f in report.file_digests if f[1] not in known_files]
        if new_files:
            current = ensure_draft()
            for path, digest, articles in new_files:
                current.record_file(digest, path, articles)
        if draft is not None and draft.changed:
            summary.version = draft.commit().name
        elif draft is not None:
            draft.abort()
    except BaseException:
        if draft is not None:
            draft.abort()
        raise
    finally:
        loop.close()
        if base is not None:
            base.close()
    finish_summary(summary, report, started)
    version = current_version(index_dir)
    if version is not None:
        counts = read_manifest(version)["counts"]
        summary.total_articles, summary.total_chunks = counts["articles"], counts["chunks"]
    return summary


def delete_articles(index_dir: str | os.PathLike, article_ids: Sequence[str], *, wait: bool = True) -> list[str]:
    """Remove articles by id in a new version (tombstones: no segment is rewritten); return the ids
    that were present.

    Takes the writer lock like `build_index`.
    """
    index_dir = Path(index_dir)
    if current_version(index_dir) is None:
        open_index(index_dir)  # raises IndexMissing without creating the directory
    with writer_lock(index_dir, wait=wait):
        return _delete_locked(index_dir, article_ids)


def _delete_locked(index_dir: Path, article_ids: Sequence[str]) -> list[str]:
    base = open_index(index_dir, lazy=True)
    try:
        draft = IndexDraft(index_dir, base=base, model=base.manifest["model"], dimension=base.dimension,
                           settings=base.manifest["chunking"])
        try:
            removed = draft.remove(article_ids)
            if removed:
                draft.forget_files()
                draft.commit()
            else:
                draft.abort()
        except BaseException:
            draft.abort()
            raise
    finally:
        base.close()
    return removed


# A tiered merge compacts the segments smaller than this fraction of the largest one.
SMALL_SEGMENT_FRACTION = 0.1
# The background merge policy's defaults (`newsqa serve --merge-segments`, `--merge-deleted-share`).
MERGE_SMALL_SEGMENTS = 4
MERGE_DELETED_SHARE = 0.25
# Times a merge starts again when another merge took its segments while it worked.
MERGE_ATTEMPTS = 3


@dataclass(frozen=True)
class MergePolicy:
    """When a tiered merge is due (see `plan_merge`): more than `small_segments` small segments, or a
    segment with more than `deleted_share` of its passages tombstoned."""

    small_segments: int = MERGE_SMALL_SEGMENTS
    deleted_share: float = MERGE_DELETED_SHARE

    def __post_init__(self) -> None:
        if self.small_segments < 1:
            raise InvalidParameter(f"--merge-segments is {self.small_segments}, it must be at least 1: the small "
                                   f"segments left unmerged (default {MERGE_SMALL_SEGMENTS})")
        if not 0 < self.deleted_share <= 1:
            raise InvalidParameter(f"--merge-deleted-share is {self.deleted_share}, it must be above 0 and at most 1: "
                                   f"the share of a segment's passages deleted before it is rewritten (1: never; "
                                   f"default {MERGE_DELETED_SHARE})")


def small_segments(live: Sequence[int]) -> list[int]:
    """Positions of the segments (given by their live passages) under `SMALL_SEGMENT_FRACTION` of the largest."""
    largest = max(live, default=0)
    return [n for n, size in enumerate(live) if size < SMALL_SEGMENT_FRACTION * largest]


def plan_merge(segments: Sequence[tuple[int, int]], policy: MergePolicy) -> list[int]:
    """Positions of the segments a tiered merge compacts now (empty: none is due), from each live
    segment's (live passages, tombstoned passages), oldest first.

    The small segments (`small_segments`) are merged once there are more than `policy.small_segments`
    of them, so a stream of small adds leaves a bounded number of segments to search while the large
    one (and its HNSW graph) is left alone. A segment more than `policy.deleted_share` of whose
    passages are tombstoned is rewritten without them (with the small ones if those are due too), so
    deleted rows do not keep costing disk and search time. Pure: no I/O.
    """
    small = small_segments([live for live, _ in segments])
    chosen = set(small) if len(small) > policy.small_segments else set()
    for n, (live, dead) in enumerate(segments):
        if dead and dead / (live + dead) > policy.deleted_share:
            chosen.add(n)
    return sorted(chosen)


def segment_sizes(index: Index) -> list[tuple[int, int]]:
    """(live passages, tombstoned passages) of each segment `index` lists, read from its manifest."""
    return [(e["counts"]["chunks"], e["rows"]["chunks"] - e["counts"]["chunks"]) for e in index.entries]


def merge_index(index_dir: str | os.PathLike, *, wait: bool = True, small_only: bool = False,
                policy: MergePolicy | None = None, should_stop: Callable[[], bool] | None = None) -> str | None:
    """Compact segments of the index at `index_dir` into one, dropping tombstoned rows; return the new
    version's name, or None when there was nothing to merge.

    Which segments: those `plan_merge` finds due under when a `policy` is given (the background merges
    of `newsqa serve`); else every segment, or with `small_only` (`newsqa merge --small`) those holding
    fewer than `SMALL_SEGMENT_FRACTION` of the largest one's passages, when there are two or more, so the
    large segment (and its HNSW graph) is not rewritten for a few new articles.

    The merged segment is written without the writer lock, while searches and writers go on; the lock is
    taken only to publish it, after moving it onto any version committed meanwhile (`IndexDraft.rebase`),
    so a writer waits for a merge no longer than for a publish. `wait=False` raises `IndexBusy` when
    another writer holds the lock as the merge starts or publishes. `should_stop()` turning true makes
    the merge give up (None) before it publishes. Crash-safe like any write: until the publish the live
    version is untouched; old segments are removed only once no kept version lists them and no reader
    holds them.
    """
    index_dir = Path(index_dir)
    if current_version(index_dir) is None:
        open_index(index_dir)  # raises IndexMissing without creating the directory
    if not wait:
        with writer_lock(index_dir, wait=False):
            pass  # busy now: fail at once rather than after the work

    def choose(index: Index) -> list[int]:
        if policy is not None:
            return plan_merge(segment_sizes(index), policy)
        return merge_candidates(index, small_only=small_only)

    stopping = should_stop or (lambda: False)
    for _ in range(MERGE_ATTEMPTS):
        base = open_index(index_dir, lazy=True)
        try:
            chosen = choose(base)
            if not chosen or stopping():
                return None
            draft = IndexDraft(index_dir, base=base, model=base.manifest["model"], dimension=base.dimension,
                               settings=base.manifest["chunking"])
            try:
                draft.absorb(chosen)
                draft.seal()
                if stopping():
                    draft.abort()
                    return None
                with writer_lock(index_dir, wait=wait):
                    version = _publish_merge(index_dir, draft, base)
                if version is None:
                    draft.abort()  # another merge took some of these segments: plan again from its version
                    continue
                return version
            except BaseException:
                draft.abort()
                raise
        finally:
            base.close()
    return None


def _publish_merge(index_dir: Path, draft: IndexDraft, base: Index) -> str | None:
    """Commit a sealed merge `draft` over the live version (the writer lock held); None on a conflict."""
    live = current_version(index_dir)
    if live is None or live.name == base.version:
        return draft.commit().name
    newer = Index(live, lazy=True)
    try:
        return draft.commit().name if draft.rebase(newer) else None
    finally:
        newer.close()


def merge_candidates(index: Index, *, small_only: bool = False) -> list[int]:
    """Positions of the segments a merge compacts (empty: nothing worth doing)."""
    entries = index.entries
    if small_only:
        small = small_segments([e["rows"]["chunks"] for e in entries])
        return small if len(small) > 1 else []
    if len(entries) > 1:
        return list(range(len(entries)))
    # One segment: worth rewriting only to purge tombstones or to convert a format-1 version.
    if entries and (entries[0]["deleted"] or index.manifest.get("format_version") != FORMAT_VERSION):
        return [0]
    return []


class _NoBar:
    n = 0

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(show: bool, input_bytes: int | None = None):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    if input_bytes is None:
        return tqdm(desc="embedding passages", unit="passage", file=sys.stderr)
    return tqdm(desc="indexing", total=input_bytes, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
