"""The embedded index: a directory of immutable segments and versions that list them.

Layout of an index directory `DIR`:

    DIR/CURRENT                 name of the live version (replaced atomically)
    DIR/v-<time>-<rand>/        one version:
        manifest.json           model, dimension, chunking settings, counts, build time, and the live
                                segments: each one's directory, live counts and tombstones (the ids
                                of its articles deleted or replaced since it was written)
        newsqa.sqlite,          the segment this version added, if it added one
        vectors.faiss, lexical/ (see indexer/store/segments.py)

A segment is named by the version directory that holds it (`"."` in that
version's own manifest), and later versions list it again instead of copying
it. A write (`IndexDraft`) adds at most one segment holding only its new and
changed articles, and tombstones the old rows of changed and deleted ones, so
its cost follows the change, not the index. `IndexDraft.absorb` (`newsqa merge`)
compacts segments into one, dropping their tombstoned rows.

A new version is built in `DIR/.tmp-*` and renamed into place; `CURRENT` is
switched last with `os.replace`. A crash at any point leaves the previous
version live, and readers that still hold the old version keep working: a
version directory is removed only when no reader holds it (a shared lock on
its manifest) and no kept version lists the segment it holds.

Format 1 (one version = one segment, BM25 as bm25s arrays) still opens, as a
single segment; versions written on top of it list it like any other segment.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np

from indexer.errors import IndexBusy, IndexMismatch, IndexMissing
from indexer.minhash import band_keys
from indexer.store.bm25 import Lexical
from indexer.store.common import (
    CHUNK_COLUMNS, FAISS_HNSW_EF_CONSTRUCTION, FAISS_HNSW_M, KIND_COUNTS_SQL, SOURCE_STATS_FIELDS, article_from_row,
    article_not_found, chunk_from_row, counts, faiss_ef_search, model_mismatch, paragraphs_json, sections_json,
)
from indexer.store.segments import SCHEMA, Segment, connect, postings_from_rows
from indexer.store.protocols import Allowed, LexicalTerms, PendingArticle, Store, StoreWriter
from indexer.types import Article, Chunk, Filters

FORMAT_VERSION = 2
# Format 1: one version is one segment, with BM25 as bm25s arrays (read as a single segment).
READABLE_FORMATS = (1, 2)
WRITER_LOCK = "WRITER.lock"
KEEP_VERSIONS = 2
# Exact search is affordable below this many passages; above it an HNSW graph keeps latency flat.
EXACT_SEARCH_LIMIT = 200_000

def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("newsqa")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "0+source"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_version(index_dir: Path) -> Path | None:
    """The live version directory of `index_dir`, or None if there is none yet."""
    pointer = index_dir / "CURRENT"
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    path = index_dir / name
    return path if (path / "manifest.json").is_file() else None


@contextmanager
def writer_lock(index_dir: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold the one writer lock of `index_dir` (created if missing) for a whole write.

    A build or delete reads the live version, writes a draft and commits it;
    two at once would each start from the same version and the later commit
    would drop the earlier one's changes. With the lock the second writer
    starts from the first one's version. `wait=False` raises `IndexBusy` at
    once instead of waiting. Readers never take it.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / WRITER_LOCK
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            if not wait:
                raise IndexBusy(
                    f"another writer (pid {holder}) is updating {index_dir}: wait for it to finish, "
                    "or run again without --no-wait to queue behind it"
                ) from None
            logging.getLogger("newsqa.ingest").warning(
                "waiting for another writer (pid %s) on %s…", holder, index_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # released by closing the file


def read_manifest(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


def check_manifest(manifest: dict, *, model: str | None, where: Path) -> None:
    """Refuse an index built for another format or model, with the fix in the message."""
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise IndexMismatch(
            f"index at {where} has format {manifest.get('format_version')}, this newsqa reads "
            f"formats {', '.join(map(str, READABLE_FORMATS))}: rebuild it with `newsqa index SOURCE --index {where.parent} --rebuild`"
        )
    if model is not None and manifest.get("model") != model:
        raise model_mismatch(f"index at {where}", manifest.get("model"), model,
                             f"newsqa index SOURCE --index {where.parent} --rebuild")


def segment_entries(manifest: dict) -> list[dict]:
    """The live segments a version lists, oldest first: `dir` (a version directory's name, "." for the
    version's own), `counts` (live), `rows` (as written), `deleted` (tombstoned article ids), `files`
    (whether its record of input files still counts) and `vector_index`."""
    if "segments" in manifest:
        return [dict(entry) for entry in manifest["segments"]]
    # Format 1: the version directory is the one segment.
    return [{"dir": ".", "counts": dict(manifest["counts"]), "rows": dict(manifest["counts"]), "deleted": [],
             "files": True, "vector_index": manifest.get("vector_index")}]


def _segment_path(version_dir: Path, name: str) -> Path:
    return version_dir if name == "." else version_dir.parent / name


def _in_batches(values: Sequence, size: int = 900) -> Iterator[Sequence]:
    # SQLite limits bound parameters; 900 per query stays under every build's limit.
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


class Index(Store):
    """A loaded, read-only index version: its segments searched as one (a `Store`).

    Searches fan out over the segments and merge their top `k` exactly; BM25
    uses statistics summed over the live passages of every segment, so the
    results equal those of one segment holding the same live articles.
    Tombstoned articles are never returned. `lazy=True` opens the rows only
    (what a writer needs): vectors and postings load on first search. `reuse`
    (an older version still open) lends the vectors and postings of the
    segments both list, so loading a version after an add reads only the new
    segment.

    Safe to share between threads: FAISS searches run concurrently, and each
    thread gets its own read-only SQLite connection per segment.
    """

    # A fixed version: a newer build is served by loading it (service/reload.py).
    live = False

    def __init__(self, version_dir: Path, *, model: str | None = None, lazy: bool = False,
                 reuse: Index | None = None) -> None:
        self.path = version_dir
        # A shared lock held while this version is open: builds do not prune a version in use,
        # nor (through it) the segments it lists.
        self._pin = open(version_dir / "manifest.json", "rb")
        self.segments: list[Segment] = []
        try:
            fcntl.flock(self._pin, fcntl.LOCK_SH)
            self._manifest = read_manifest(version_dir)
            check_manifest(self._manifest, model=model, where=version_dir)
            self.dimension = int(self._manifest["dimension"])
            self.entries = segment_entries(self._manifest)
            loaded = {s.path: s for s in reuse.segments} if reuse is not None else {}
            for entry in self.entries:
                segment = Segment(_segment_path(version_dir, entry["dir"]), deleted=entry["deleted"])
                if segment.path in loaded:
                    segment.adopt(loaded[segment.path])
                self.segments.append(segment)
            if not lazy:
                self.check()
        except BaseException:
            self.close()
            raise

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._manifest["counts"])

    @functools.cached_property
    def lexical(self) -> Lexical:
        return Lexical([(s.postings, s.live_mask) for s in self.segments])

    @property
    def next_chunk_id(self) -> int:
        """The first chunk id never used in this index (ids are not reused, also after deletes)."""
        if "next_chunk_id" in self._manifest:
            return int(self._manifest["next_chunk_id"])
        highest = [s.db().execute("SELECT MAX(chunk_id) FROM chunks").fetchone()[0] for s in self.segments]
        return max((h for h in highest if h is not None), default=-1) + 1

    def check(self) -> None:
        """Read every segment's files once, so a damaged file fails here rather than in a request."""
        for segment in self.segments:
            segment.load()
        _ = self.lexical

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
        if not self._pin.closed:
            self._pin.close()  # releases the shared lock

    def vector_count(self) -> int:
        """Live vectors (tombstoned ones stay in their segment's file until a merge)."""
        return sum(s.live_vectors for s in self.segments)

    def disk_bytes(self) -> int:
        """Bytes of the version's files and of the segments it lists (0 once pruned: the served copy
        lives on in memory)."""
        try:
            paths = {self.path, *(s.path for s in self.segments)}
            return sum(p.stat().st_size for d in paths for p in d.rglob("*") if p.is_file())
        except OSError:
            return 0

    def segment_of(self, article_id: str) -> int | None:
        """The position of the segment holding `article_id` live, or None."""
        for n in range(len(self.segments) - 1, -1, -1):
            segment = self.segments[n]
            if article_id not in segment.deleted and segment.db().execute(
                    "SELECT 1 FROM articles WHERE article_id = ?", (article_id,)).fetchone():
                return n
        return None

    # --- look-ups -----------------------------------------------------------------

    def article(self, article_id: str) -> Article:
        n = self.segment_of(article_id)
        if n is None:
            raise article_not_found(article_id)
        segment = self.segments[n]
        row = segment.db().execute(f"SELECT {segment.article_columns} FROM articles WHERE article_id = ?",
                                   (article_id,)).fetchone()
        return article_from_row(row)

    @functools.cached_property
    def _largest_first(self) -> list[Segment]:
        """The segments by live passages, largest first: a look-up by article id usually ends in the first."""
        order = sorted(range(len(self.segments)), key=lambda n: -self.entries[n]["counts"]["chunks"])
        return [self.segments[n] for n in order]

    def _by_article(self, ids: list[str], columns: Callable[[Segment], str]) -> Iterator[sqlite3.Row]:
        """The live rows (`columns` first, the article id) of articles `ids`, each from the one segment
        holding it live: segments are read largest first until every id is found."""
        missing = set(ids)
        for segment in self._largest_first:
            if not missing:
                return
            wanted = [i for i in ids if i in missing]
            for part in _in_batches(wanted):
                for row in segment.rows(f"SELECT {columns(segment)} FROM articles WHERE {{live}} "
                                        f"AND article_id IN ({_marks(part)})", part):
                    missing.discard(row[0])
                    yield row

    def _by_chunk(self, ids: list[int]) -> Iterator[tuple[Segment, list[int]]]:
        """Each segment holding some of chunk ids `ids` (live or tombstoned), with those ids."""
        if len(self.segments) == 1:
            yield self.segments[0], ids
            return
        wanted = np.asarray(ids, dtype=np.int64)
        for segment in self.segments:
            found, _ = segment.postings.positions(wanted)
            if found.any():
                yield segment, wanted[found].tolist()

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]:
        ids = list(dict.fromkeys(article_ids))
        found = {row[0]: article_from_row(row) for row in self._by_article(ids, lambda s: s.article_columns)}
        return {i: found[i] for i in ids if i in found}

    def list_articles(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        sql = ("SELECT article_id, title, date, source, url, kind FROM articles WHERE {live} "
               "ORDER BY date DESC, title LIMIT ?")
        rows = [dict(r) for s in self.segments for r in s.rows(sql, (limit + offset,))]
        # SQLite's order, across segments: newest first with undated last, then by title.
        rows.sort(key=lambda r: r["title"])
        rows.sort(key=lambda r: (r["date"] is not None, r["date"] or ""), reverse=True)
        return rows[offset : offset + limit]

    def sources(self) -> list[str]:
        sql = "SELECT DISTINCT source FROM articles WHERE {live} AND source IS NOT NULL"
        return sorted({row[0] for s in self.segments for row in s.rows(sql)})

    def source_stats(self) -> list[dict]:
        """Per source: `name`, `articles`, `undated` (articles without a date), `date_from`, `date_to`."""
        sql = ("SELECT source, COUNT(*), COUNT(*) - COUNT(date), MIN(date), MAX(date) FROM articles "
               "WHERE {live} AND source IS NOT NULL GROUP BY source")
        stats: dict[str, list] = {}
        for segment in self.segments:
            for name, articles, undated, first, last in segment.rows(sql):
                if name not in stats:
                    stats[name] = [name, articles, undated, first, last]
                    continue
                known = stats[name]
                known[1] += articles
                known[2] += undated
                known[3] = min(filter(None, (known[3], first)), default=None)
                known[4] = max(filter(None, (known[4], last)), default=None)
        return [dict(zip(SOURCE_STATS_FIELDS, stats[name])) for name in sorted(stats)]

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
        ids = [int(c) for c in chunk_ids]
        found: dict[int, Chunk] = {}
        for segment, held in self._by_chunk(ids):
            for part in _in_batches(held):
                rows = segment.rows(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE {{live}} AND chunk_id IN ({_marks(part)})",
                                    part)
                found.update((row[0], chunk_from_row(row)) for row in rows)
        return {i: found[i] for i in ids if i in found}

    def article_chunks(self, article_id: str) -> list[Chunk]:
        n = self.segment_of(article_id)
        if n is None:
            return []
        rows = self.segments[n].db().execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE article_id = ? ORDER BY ordinal", (article_id,)).fetchall()
        return [chunk_from_row(row) for row in rows]

    def owners(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        ids = [int(c) for c in chunk_ids]
        owners: dict[int, str] = {}
        for segment, held in self._by_chunk(ids):
            for part in _in_batches(held):
                rows = segment.rows(f"SELECT chunk_id, article_id FROM chunks WHERE {{live}} "
                                    f"AND chunk_id IN ({_marks(part)})", part)
                owners.update((int(r[0]), r[1]) for r in rows)
        return owners

    def article_dates(self, article_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(dict.fromkeys(article_ids))
        return {r[0]: r[1] for r in self._by_article(ids, lambda s: "article_id, date")}

    def newest_date(self) -> str | None:
        dates = [s.rows("SELECT MAX(date) FROM articles WHERE {live}")[0][0] for s in self.segments]
        return max(filter(None, dates), default=None)

    def allowed_chunks(self, filters: Filters) -> Allowed:
        """Chunk ids (live only) that pass `filters`, or None when there are no filters."""
        if filters.empty:
            return None
        where, params = filters.sql_where("?")
        parts = []
        for segment in self.segments:
            if filters.lang and not segment.has_lang:
                continue  # a segment from before languages were kept: none is known
            rows = segment.rows("SELECT c.chunk_id FROM chunks c JOIN articles a USING (article_id) "
                                f"WHERE {{live}} AND ({where})", params, column="a.article_id")
            parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    # --- search ---------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        """Top `k` live passages by cosine similarity over every segment; `allowed` restricts them
        before ranking."""
        import faiss

        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        # One query gains nothing from OpenMP threads, and on a busy 2-core machine it waits
        # for the second one to be scheduled (~8 ms). The setting is per calling thread.
        faiss.omp_set_num_threads(1)
        scores, ids = [], []
        wanted = None if allowed is None else np.asarray(allowed, dtype=np.int64)
        for segment in self.segments:
            if segment.vectors.ntotal == 0:
                continue
            mine = None
            if wanted is not None:
                found, _ = segment.postings.positions(wanted)
                mine = wanted[found]
                if not len(mine):
                    continue
            part_scores, part_ids = segment.dense_search(query, k, mine)
            scores.append(part_scores)
            ids.append(part_ids)
        if not ids:
            return []
        all_scores, all_ids = np.concatenate(scores), np.concatenate(ids).astype(np.int64)
        order = np.lexsort((all_ids, -all_scores))[:k]
        # tolist() converts in C: iterating numpy scalars cost more than the FAISS scan itself.
        return list(zip(all_ids[order].tolist(), all_scores[order].tolist()))

    def dense_scores(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Exact cosine (inner product of unit vectors) of `vector` with each passage's stored vector."""
        if not len(chunk_ids):
            return {}
        ids = np.asarray(chunk_ids, dtype=np.int64)
        found_scores: dict[int, float] = {}
        for segment in self.segments:
            found, _ = segment.postings.positions(ids)
            if found.any():
                mine = ids[found]
                found_scores.update(zip(mine.tolist(), (segment.stored_vectors(mine) @ vector).tolist()))
        return {int(c): float(found_scores[int(c)]) for c in chunk_ids if int(c) in found_scores}

    def lexical_terms(self, query: str) -> LexicalTerms:
        """The query with the BM25 score of every passage (None when no query term is indexed)."""
        return LexicalTerms(query, self.lexical.query_scores(query))

    def lexical_search(self, terms: LexicalTerms | str, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        if isinstance(terms, str):
            terms = self.lexical_terms(terms)
        return self.lexical.search(terms.query, k, allowed, scores=terms.prepared)

    def lexical_scores(self, chunk_ids: Sequence[int], terms: LexicalTerms) -> dict[int, float]:
        return self.lexical.scores_for(chunk_ids, terms.prepared)

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        return self.lexical.idf(tokens)

    # --- what the next build starts from ------------------------------------------------

    def article_hashes(self) -> dict[str, str]:
        return {r[0]: r[1] for s in self.segments
                for r in s.rows("SELECT article_id, content_hash FROM articles WHERE {live}")}

    def content_hash(self, article_id: str) -> str | None:
        """The content hash of live article `article_id`, or None: one keyed look-up per segment."""
        for segment in reversed(self.segments):
            if article_id not in segment.deleted:
                row = segment.db().execute("SELECT content_hash FROM articles WHERE article_id = ?",
                                           (article_id,)).fetchone()
                if row is not None:
                    return row[0]
        return None

    def similar_signatures(self, sig: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of the live articles sharing an LSH band with `sig`: the
        near-duplicate candidates, found by key in each segment's `bands` table."""
        keys = band_keys(sig)
        return [(article_id, np.frombuffer(blob, dtype=np.int64))
                for segment in self.segments for article_id, blob in segment.similar(keys)]

    def signatures(self, article_ids: Iterable[str] | None = None) -> Iterable[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of every live article (or of `article_ids`), for near-duplicate
        checks at ingest and story collapse at query time."""
        ids = None if article_ids is None else list(dict.fromkeys(article_ids))
        for segment in self.segments:
            if ids is None:
                rows: Iterable = segment.rows("SELECT article_id, minhash FROM articles WHERE {live}")
            else:
                rows = [r for part in _in_batches(ids) for r in segment.rows(
                    f"SELECT article_id, minhash FROM articles WHERE {{live}} AND article_id IN ({_marks(part)})",
                    part)]
            for article_id, blob in rows:
                yield article_id, np.frombuffer(blob, dtype=np.int64)

    def known_files(self) -> dict[str, int]:
        """SHA-256 of each input file indexed in full → the number of articles it gave (only segments
        written since the last delete count: a delete means every file must be read again)."""
        known: dict[str, int] = {}
        for segment, entry in zip(self.segments, self.entries):
            if not entry.get("files", True):
                continue
            try:
                known.update(segment.db().execute("SELECT sha256, articles FROM files").fetchall())
            except sqlite3.OperationalError:  # a segment written before files were recorded
                pass
        return known


def open_index(index_dir: str | os.PathLike, *, model: str | None = None, lazy: bool = False) -> Index:
    """Load the live version of `index_dir`, refusing a missing or mismatched index (`lazy`: see `Index`)."""
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexMissing(
            f"no index at {index_dir}: build one with `newsqa index data/ --index {index_dir}`"
        )
    return Index(version, model=model, lazy=lazy)


class IndexDraft(StoreWriter):
    """The next index version being written beside the live one (a `StoreWriter`).

    Starts from an existing version (`base`, opened lazily is enough) or from
    nothing. New and changed articles go into one new segment; a changed or
    removed article of `base` is tombstoned in its segment, which is not
    touched. `absorb` copies the live rows of base segments into the new
    segment instead (a merge). `commit()` writes the segment and publishes the
    version; any exception before that leaves the live version untouched and
    removes the draft. A merge writes its segment first (`seal()`) and, if
    another writer committed meanwhile, moves onto that version (`rebase()`)
    before it publishes.
    """

    def __init__(self, index_dir: Path, *, base: Index | None, model: str, dimension: int, settings: dict) -> None:
        import faiss

        self.index_dir = index_dir
        index_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_drafts(index_dir)
        self.path = index_dir / f".tmp-{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        self.model = model
        self.dimension = dimension
        self.settings = settings
        self.base = base
        self.db = connect(self.path / "newsqa.sqlite", readonly=False)
        self.db.executescript(SCHEMA)
        self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        # The base's segments, named from this draft's place (the base's own segment by its directory).
        self.entries = [] if base is None else [
            {**entry, "dir": base.path.name if entry["dir"] == "." else entry["dir"]} for entry in base.entries]
        self.next_chunk_id = 0 if base is None else base.next_chunk_id
        self._tombstoned: dict[int, set[str]] = {}  # base segment position → article ids deleted by this draft
        self._absorbed: list[int] = []
        self._forget_files = False
        self._sealed = False
        self._segment: dict | None = None  # the new segment's entry, once sealed (None: it holds nothing)
        self.changed = False

    def _in_base(self, article_id: str) -> int | None:
        if self.base is None:
            return None
        n = self.base.segment_of(article_id)
        return None if n is None or n in self._absorbed or article_id in self._tombstoned.get(n, ()) else n

    def has_article(self, article_id: str) -> bool:
        return self._in_base(article_id) is not None or self.db.execute(
            "SELECT 1 FROM articles WHERE article_id = ?", (article_id,)).fetchone() is not None

    def _removed(self) -> set[str]:
        return {a for ids in self._tombstoned.values() for a in ids}

    def hashes(self) -> dict[str, str]:
        removed = self._removed()
        known = {} if self.base is None else {a: h for a, h in self.base.article_hashes().items() if a not in removed}
        known.update(self.db.execute("SELECT article_id, content_hash FROM articles").fetchall())
        return known

    def signatures(self) -> Iterable[tuple[str, np.ndarray]]:
        removed = self._removed()
        if self.base is not None:
            yield from ((a, sig) for a, sig in self.base.signatures() if a not in removed)
        for article_id, blob in self.db.execute("SELECT article_id, minhash FROM articles").fetchall():
            yield article_id, np.frombuffer(blob, dtype=np.int64)

    def write(self, pending: Sequence[PendingArticle]) -> int:
        """Add `pending`, each replacing a same-id article, with chunk ids numbered on from the last."""
        replaced = 0
        for p in pending:
            replaced += self.remove_article(p.article.article_id)
            chunks = [replace(c, chunk_id=self.next_chunk_id + i) for i, c in enumerate(p.chunks)]
            self.next_chunk_id += len(chunks)
            self.add_article(p.article, chunks, p.vectors, content_hash=p.content_hash, minhash=p.minhash)
        return replaced

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        return [article_id for article_id in article_ids if self.remove_article(article_id)]

    def remove_article(self, article_id: str) -> bool:
        """Delete an article: tombstone it in its base segment, or drop it from the new one. False if absent."""
        ids = [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE article_id = ?", (article_id,))]
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]  # stubs: see segments
            self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        own = self.db.execute("SELECT minhash FROM articles WHERE article_id = ?", (article_id,)).fetchone()
        if own is not None:
            self.db.executemany("DELETE FROM bands WHERE key = ? AND article_id = ?",
                                [(key, article_id) for key in band_keys(np.frombuffer(own[0], dtype=np.int64))])
        deleted = bool(self.db.execute("DELETE FROM articles WHERE article_id = ?", (article_id,)).rowcount)
        n = self._in_base(article_id)
        if n is not None:
            self._tombstoned.setdefault(n, set()).add(article_id)
            deleted = True
        self.changed = self.changed or deleted
        return deleted

    def add_article(
        self, article: Article, chunks: Sequence[Chunk], vectors: np.ndarray, *, content_hash: str, minhash: np.ndarray
    ) -> None:
        """Insert an article with its chunks (ids already assigned) and their vectors into the new segment."""
        self.db.execute(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                article.article_id, article.title, article.date, article.source, article.url, article.kind,
                article.text, sections_json(article), paragraphs_json(article), article.origin, content_hash,
                minhash.astype(np.int64).tobytes(), article.lang,
            ),
        )
        self.db.executemany("INSERT OR IGNORE INTO bands VALUES (?,?)",
                            [(key, article.article_id) for key in band_keys(minhash)])
        self.db.executemany(
            'INSERT INTO chunks (chunk_id, article_id, ordinal, start, "end", section, paragraph, tokens, text) '
            "VALUES (?,?,?,?,?,?,?,?,?)",
            [(c.chunk_id, c.article_id, c.ordinal, c.start, c.end, c.section, c.paragraph, c.tokens, c.text) for c in chunks],
        )
        self.db.executemany(
            "INSERT INTO chunks_fts (rowid, title, section, text) VALUES (?,?,?,?)",
            [(c.chunk_id, article.title, c.section or "", c.text) for c in chunks],
        )
        if len(chunks):
            self.vectors.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray([c.chunk_id for c in chunks], dtype=np.int64)
            )
        self.changed = True

    def record_file(self, sha256: str, path: str, articles: int) -> None:
        """Remember an input file read in full, so an unchanged copy is not parsed again."""
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?,?,?)", (sha256, path, articles))
        self.changed = True

    def forget_files(self) -> None:
        """After deletes, every input file must be read again to restore what it holds."""
        self.db.execute("DELETE FROM files")
        self._forget_files = True

    def absorb(self, positions: Sequence[int]) -> None:
        """Merge the base segments at `positions` into the new segment: their live rows and vectors are
        copied, their tombstoned ones dropped, and the version will no longer list them."""
        assert self.base is not None, "absorb needs a base version"
        for n in sorted(positions):
            segment, entry = self.base.segments[n], self.entries[n]
            dead = json.dumps(sorted(segment.deleted | self._tombstoned.pop(n, set())))
            lang = "lang" if segment.has_lang else "NULL"
            self.db.execute("ATTACH DATABASE ? AS src", (str(segment.path / "newsqa.sqlite"),))
            try:
                live = "article_id NOT IN (SELECT value FROM json_each(?))"
                self.db.execute(
                    "INSERT INTO articles SELECT article_id, title, date, source, url, kind, text, sections, "
                    f"paragraphs, origin, content_hash, minhash, {lang} FROM src.articles WHERE {live}", (dead,))
                self.db.execute(f"INSERT INTO chunks SELECT * FROM src.chunks WHERE {live}", (dead,))
                self.db.execute("INSERT INTO chunks_fts (rowid, title, section, text) SELECT c.chunk_id, a.title, "
                                "COALESCE(c.section, ''), c.text FROM src.chunks c JOIN src.articles a "
                                f"USING (article_id) WHERE a.{live}", (dead,))
                tables = {r[0] for r in self.db.execute("SELECT name FROM src.sqlite_master WHERE type = 'table'")}
                if "bands" in tables:
                    self.db.execute(f"INSERT OR IGNORE INTO bands SELECT key, article_id FROM src.bands WHERE {live}",
                                    (dead,))
                else:  # a segment written before band keys were stored
                    self.db.executemany("INSERT OR IGNORE INTO bands VALUES (?,?)", (
                        (key, article_id) for article_id, blob in self.db.execute(
                            f"SELECT article_id, minhash FROM src.articles WHERE {live}", (dead,)).fetchall()
                        for key in band_keys(np.frombuffer(blob, dtype=np.int64))))
                if entry.get("files", True) and "files" in tables and not self._forget_files:
                    self.db.execute("INSERT OR REPLACE INTO files SELECT sha256, path, articles FROM src.files")
                ids = np.fromiter((r[0] for r in self.db.execute(
                    f"SELECT chunk_id FROM src.chunks WHERE {live} ORDER BY chunk_id", (dead,))), dtype=np.int64)
                self.db.commit()
            finally:
                self.db.execute("DETACH DATABASE src")
            if len(ids):
                self.vectors.add_with_ids(np.ascontiguousarray(segment.stored_vectors(ids), dtype=np.float32), ids)
            self._absorbed.append(n)
        self.changed = True

    def _tombstone_entry(self, n: int, entry: dict, deleted: set[str]) -> dict:
        """`entry` with `deleted` (article ids live in it until now) tombstoned and its live counts lowered."""
        return _tombstoned(self.base.segments[n].db(), entry, deleted)  # type: ignore[union-attr]  # only with a base

    def _finish_segment(self) -> dict:
        """Write the new segment's postings and vectors; its entry in the version's list."""
        import faiss

        self.db.commit()
        postings_from_rows(self.db).save(self.path / "lexical")
        news, records = self.db.execute(KIND_COUNTS_SQL).fetchone()
        self.db.execute("PRAGMA optimize")
        self.db.commit()
        self.db.close()
        vectors = self.vectors
        if vectors.ntotal > EXACT_SEARCH_LIMIT:
            vectors = _build_graph(vectors, self.dimension)
        faiss.write_index(vectors, str(self.path / "vectors.faiss"))
        written = counts(news, records, vectors.ntotal)
        kind = type(faiss.downcast_index(vectors.index)).__name__
        return {"dir": ".", "counts": written, "rows": written, "deleted": [], "files": True, "vector_index": kind}

    def seal(self) -> None:
        """Write the new segment's files now (postings, vectors, an HNSW graph when large), without
        publishing anything: the costly part of a commit, which a merge does before it takes the writer
        lock. Idempotent; `commit()` seals a draft that is not sealed yet."""
        if self._sealed:
            return
        self.db.commit()
        holds = self.db.execute("SELECT EXISTS (SELECT 1 FROM articles) OR EXISTS (SELECT 1 FROM files)").fetchone()[0]
        if holds:
            self._segment = self._finish_segment()
        else:
            self.db.close()
            (self.path / "newsqa.sqlite").unlink()  # nothing added: the version only lists segments
        self._sealed = True

    def rebase(self, newer: Index) -> bool:
        """Move a sealed merge draft (it absorbed segments and wrote nothing else) onto `newer`, a version
        committed since its base: the segments `newer` added are kept, and the articles `newer` deleted or
        replaced from the absorbed segments are tombstoned in the merged one. False (the draft is left as
        it was) when `newer` no longer lists every absorbed segment: another merge took them.

        This is what lets a merge do its work without the writer lock: only the rebase and the publish
        run under it, so a writer waits milliseconds for a merge, not the merge's length.
        """
        assert self.base is not None and self._sealed and not self._tombstoned, "rebase is for sealed merge drafts"
        named = [{**e, "dir": newer.path.name if e["dir"] == "." else e["dir"]} for e in newer.entries]
        where = {e["dir"]: n for n, e in enumerate(named)}
        absorbed = [self.entries[n] for n in self._absorbed]
        if any(e["dir"] not in where for e in absorbed):
            return False
        gone: set[str] = set()
        files = True
        for entry in absorbed:
            now = named[where[entry["dir"]]]
            gone |= set(now["deleted"]) - set(entry["deleted"])
            files = files and now.get("files", True)
        if self._segment is not None:
            segment = self._segment if files else {**self._segment, "files": False}
            if gone:
                db = connect(self.path / "newsqa.sqlite", readonly=True)
                try:
                    segment = _tombstoned(db, segment, gone)
                finally:
                    db.close()
            self._segment = segment
        self.base = newer
        self.entries = named
        self._absorbed = [where[e["dir"]] for e in absorbed]
        self.next_chunk_id = max(self.next_chunk_id, newer.next_chunk_id)
        return True

    def commit(self, extra: dict | None = None) -> Path:
        """Write the new segment (if anything was added), then publish the version listing it."""
        self.seal()
        entries: list[dict] = []
        at = len(self.entries)  # a merged segment takes the place of the first segment it absorbed
        for n, entry in enumerate(self.entries):
            if n in self._absorbed:
                at = min(at, len(entries))
                continue
            if self._tombstoned.get(n):
                entry = self._tombstone_entry(n, entry, self._tombstoned[n])
            if self._forget_files:
                entry = {**entry, "files": False}
            entries.append(entry)
        if self._segment is not None:
            entries.insert(at, self._segment)
        totals = counts(*(sum(e["counts"][key] for e in entries) for key in ("articles", "records", "chunks")))
        largest = max(entries, key=lambda e: e["counts"]["chunks"], default={})
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "chunking": self.settings,
            "counts": totals,
            "vector_index": largest.get("vector_index") or "IndexFlatIP",
            "package_version": package_version(),
            "built_at": _now(),
            "next_chunk_id": self.next_chunk_id,
            "segments": entries,
            **(extra or {}),
        }
        _write_atomic(self.path / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        _fsync_dir(self.path)
        # Microseconds: names must sort in build order, also for builds within one second.
        name = f"v-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(3)}"
        final = self.index_dir / name
        os.rename(self.path, final)
        _write_atomic(self.index_dir / "CURRENT", name + "\n")
        _fsync_dir(self.index_dir)
        _prune_versions(self.index_dir, keep=name)
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


def _tombstoned(db: sqlite3.Connection, entry: dict, deleted: set[str]) -> dict:
    """`entry` (a segment whose database is `db`) with `deleted`, article ids live in it until now,
    tombstoned and its live counts lowered."""
    marks = json.dumps(sorted(deleted))
    news, records, chunks = db.execute(
        "SELECT COUNT(*) FILTER (WHERE kind = 'news'), COUNT(*) FILTER (WHERE kind <> 'news'), "
        "(SELECT COUNT(*) FROM chunks WHERE article_id IN (SELECT value FROM json_each(?))) "
        "FROM articles WHERE article_id IN (SELECT value FROM json_each(?))", (marks, marks)).fetchone()
    live = entry["counts"]
    return {**entry, "deleted": sorted(set(entry["deleted"]) | deleted),
            "counts": counts(live["articles"] - news, live["records"] - records, live["chunks"] - chunks)}


def _build_graph(exact, dimension: int):
    import faiss

    ids = faiss.vector_to_array(exact.id_map).astype(np.int64)
    vectors = exact.index.reconstruct_n(0, exact.ntotal)
    graph = faiss.IndexHNSWFlat(dimension, FAISS_HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = FAISS_HNSW_EF_CONSTRUCTION
    # The search breadth grows with the graph (stored in the file, so the service uses it).
    graph.hnsw.efSearch = faiss_ef_search(exact.ntotal)
    mapped = faiss.IndexIDMap2(graph)
    mapped.add_with_ids(vectors, ids)
    return mapped


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_drafts(index_dir: Path) -> None:
    """Drafts left by a crashed build of a process that no longer runs."""
    for draft in index_dir.glob(".tmp-*"):
        try:
            pid = int(draft.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(draft, ignore_errors=True)
        except PermissionError:
            pass


def _listed_segments(version_dir: Path) -> set[str]:
    """Names of the directories holding the segments `version_dir` lists."""
    try:
        entries = segment_entries(read_manifest(version_dir))
    except (OSError, ValueError, KeyError):
        return set()
    return {version_dir.name if e["dir"] == "." else e["dir"] for e in entries}


def _prune_versions(index_dir: Path, *, keep: str) -> None:
    """Remove old versions: all but `keep` and the newest `KEEP_VERSIONS - 1` others, and never one a
    reader holds; a removed version's directory stays while a kept version lists the segment it holds."""
    others = sorted(p for p in index_dir.glob("v-*") if p.is_dir() and p.name != keep)
    cut = max(len(others) - (KEEP_VERSIONS - 1), 0)
    kept = [index_dir / keep, *others[cut:]]
    unpinned: list[tuple[Path, BinaryIO | None]] = []
    try:
        for old in others[:cut]:
            try:
                pin = open(old / "manifest.json", "rb")
            except FileNotFoundError:
                unpinned.append((old, None))
                continue
            try:
                fcntl.flock(pin, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pin.close()
                kept.append(old)  # a reader (e.g. a running service) still has it open: a later build prunes it
                continue
            unpinned.append((old, pin))
        needed = set().union(*(_listed_segments(v) for v in kept))
        for old, _ in unpinned:
            if old.name not in needed:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        for _, handle in unpinned:
            if handle is not None:
                handle.close()
