"""Indexing into either store: `build_store` and `delete_from` pick the embedded pipeline
(`indexer.ingest.build`) or the PostgreSQL one (`index_into_store`) from the target.

The PostgreSQL pipeline is the embedded one with a `PgWriter` behind it: the same reading,
dedupe, chunking and summary, committed per article instead of as a new version.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from indexer.errors import InvalidParameter
from indexer.ingest.build import BuildSummary, IngestLoop, build_index, delete_articles, finish_summary
from indexer.ingest.chunk import ChunkSettings
from indexer.ingest.dedupe import DEDUPE_THRESHOLD, KnownArticles
from indexer.ingest.read import ReadReport, read_sources
from indexer.store.postgres import WRITE_BATCH_CHUNKS, PgWriter, delete_from_store, is_store_url, shard_of


def build_store(sources: Sequence, target: str | os.PathLike, *, embedder, shard: tuple[int, int] | None = None,
                **options):
    """Index `sources` into the directory or PostgreSQL store `target` (see `indexer.ingest.build.build_index`)."""
    if is_store_url(str(target)):
        options.pop("wait", None)  # transactional: concurrent writers never lose each other's rows
        return index_into_store(sources, str(target), embedder=embedder, shard=shard, **options)
    if shard is not None:
        raise InvalidParameter("--shard needs a PostgreSQL store (--store postgresql://...): workers of an "
                               "embedded index cannot write to one directory", code="invalid_shard")
    return build_index(sources, target, embedder=embedder, **options)


def delete_from(target: str | os.PathLike, article_ids: Sequence[str], *, wait: bool = True) -> list[str]:
    """Remove articles by id from the directory or PostgreSQL store `target`; return those present.

    `wait=False`: an embedded index busy with another writer raises `IndexBusy`
    (a PostgreSQL store is transactional and never refuses).
    """
    if is_store_url(str(target)):
        return delete_from_store(str(target), article_ids)
    return delete_articles(target, article_ids, wait=wait)


def index_into_store(
    sources: Sequence[str | os.PathLike],
    url: str,
    *,
    embedder,
    settings=None,
    rebuild: bool = False,
    progress: bool | None = None,
    dedupe_threshold: float | None = None,
    shard: tuple[int, int] | None = None,
):
    """`indexer.ingest.build.build_index` for a PostgreSQL store: same pipeline, same summary.

    Incremental: unchanged articles cost nothing, changed ones are replaced
    atomically, new ones added. With `shard=(i, n)` only articles whose id
    hashes to shard `i` are indexed, so `n` workers (on any machines) can
    split one input; near duplicates are found against what was committed
    when a worker started plus what it wrote itself. `dedupe_threshold` None is ingest's
    `DEDUPE_THRESHOLD`, as for an embedded index.
    """
    started = time.perf_counter()
    settings = (settings or ChunkSettings()).validate()
    if rebuild and shard is not None:
        raise InvalidParameter("--rebuild empties the store, so it cannot run as one of several --shard workers: "
                               "run `newsqa index --store URL --rebuild` with the first batch of sources alone, "
                               "then start the shard workers", code="invalid_shard")
    summary = BuildSummary()
    writer = PgWriter(url, model=embedder.name, dimension=embedder.dimension, settings=asdict(settings),
                      rebuild=rebuild)
    wrote = False

    def write(batch) -> None:
        nonlocal wrote
        writer.write(batch)
        wrote = True

    threshold = DEDUPE_THRESHOLD if dedupe_threshold is None else dedupe_threshold
    loop = IngestLoop(
        embedder=embedder, settings=settings, summary=summary, write=write,
        known=KnownArticles(hashes=writer.hashes, signatures=writer.signatures, threshold=threshold),
        progress=sys.stderr.isatty() if progress is None else progress,
        batch_chunks=WRITE_BATCH_CHUNKS,
    )
    try:
        report = ReadReport()
        for article in read_sources(sources, embed=embedder.encode, report=report):
            if shard is None or shard_of(article.article_id, shard[1]) == shard[0]:
                loop.offer(article)
        loop.flush()
        finish_summary(summary, report, started)
        summary.total_articles, summary.total_chunks = writer.totals()
        if wrote:
            # Fresh planner statistics, so term look-ups use the postings index from the first query on.
            writer.conn.execute("ANALYZE articles, chunks, postings")
        if wrote or rebuild:
            summary.version = f"{writer.url.safe} (committed)"
    finally:
        loop.close()
        writer.close()
    return summary
