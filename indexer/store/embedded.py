"""The embedded index: a directory of plain files, written atomically, checked on load.

Layout of an index directory `DIR`:

    DIR/CURRENT                 name of the live version (replaced atomically)
    DIR/v-<time>-<rand>/        one complete version:
        manifest.json           model, dimension, chunking settings, counts, version, build time
        vectors.faiss           FAISS inner-product index over unit vectors, ids = chunk ids
        newsqa.sqlite           articles, chunks and a full-text (FTS5) table
        lexical/                BM25 arrays (NumPy + JSON)

A new version is built in `DIR/.tmp-*` and renamed into place; `CURRENT` is
switched last with `os.replace`. A crash at any point leaves the previous
version live, and readers that still hold the old version keep working.
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
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indexer.errors import IndexBusy, IndexMismatch, IndexMissing
from indexer.store.bm25 import LexicalIndex
from indexer.store.common import (
    ARTICLE_COLUMNS, CHUNK_COLUMNS, FAISS_HNSW_EF_CONSTRUCTION, FAISS_HNSW_M, KIND_COUNTS_SQL, SOURCE_STATS_FIELDS,
    SOURCE_STATS_SQL, article_from_row,
    article_not_found, chunk_from_row, counts, faiss_ef_search, lexical_text, model_mismatch, paragraphs_json,
    sections_json,
)
from indexer.store.protocols import Allowed, LexicalTerms, PendingArticle, Store, StoreWriter
from indexer.types import Article, Chunk, Filters

FORMAT_VERSION = 1
WRITER_LOCK = "WRITER.lock"
KEEP_VERSIONS = 2
# Exact search is affordable below this many passages; above it an HNSW graph keeps latency flat.
EXACT_SEARCH_LIMIT = 200_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    date TEXT,
    source TEXT,
    url TEXT,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    sections TEXT NOT NULL,
    paragraphs TEXT NOT NULL,
    origin TEXT,
    content_hash TEXT NOT NULL,
    minhash BLOB NOT NULL,
    lang TEXT
);
CREATE INDEX IF NOT EXISTS articles_date ON articles(date);
CREATE INDEX IF NOT EXISTS articles_source ON articles(source);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles(article_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    section TEXT,
    paragraph INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    articles INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, text, tokenize = 'porter unicode61'
);
"""




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
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index at {where} has format {manifest.get('format_version')}, this newsqa reads "
            f"format {FORMAT_VERSION}: rebuild it with `newsqa index SOURCE --index {where.parent} --rebuild`"
        )
    if model is not None and manifest.get("model") != model:
        raise model_mismatch(f"index at {where}", manifest.get("model"), model,
                             f"newsqa index SOURCE --index {where.parent} --rebuild")


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    return conn


class Index(Store):
    """A loaded, read-only index version: dense, lexical and metadata look-ups (a `Store`).

    Safe to share between threads: FAISS searches run concurrently, and each
    thread gets its own read-only SQLite connection.
    """

    # A fixed version: a newer build is served by loading it (service/reload.py).
    live = False

    def __init__(self, version_dir: Path, *, model: str | None = None) -> None:
        import faiss

        self.path = version_dir
        # A shared lock held while this version is open: builds do not prune a version in use.
        self._pin = open(version_dir / "manifest.json", "rb")
        try:
            fcntl.flock(self._pin, fcntl.LOCK_SH)
            self._manifest = read_manifest(version_dir)
            check_manifest(self._manifest, model=model, where=version_dir)
            self.dimension = int(self._manifest["dimension"])
            self.vectors = faiss.read_index(str(version_dir / "vectors.faiss"))
            self.lexical = LexicalIndex.load(version_dir / "lexical")
        except BaseException:
            self._pin.close()
            raise
        self._db_path = version_dir / "newsqa.sqlite"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._manifest["counts"])

    def db(self) -> sqlite3.Connection:
        """This thread's read-only connection to the version's database (embedded-only)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._db_path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def check(self) -> None:
        """Read the database once, so a damaged file fails here rather than in a request."""
        self.db().execute("SELECT COUNT(*) FROM articles").fetchone()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            if not self._pin.closed:
                self._pin.close()  # releases the shared lock

    def vector_count(self) -> int:
        return int(self.vectors.ntotal)

    def disk_bytes(self) -> int:
        """Bytes of the version directory's files (0 once a newer build pruned it: the served copy
        lives on in memory)."""
        try:
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        except OSError:
            return 0

    # --- look-ups -----------------------------------------------------------------

    @functools.cached_property
    def _article_columns(self) -> str:
        # Versions written before languages were kept have no `lang` column.
        columns = {r[1] for r in self.db().execute("PRAGMA table_info(articles)")}
        return ARTICLE_COLUMNS + (", lang" if "lang" in columns else "")

    def article(self, article_id: str) -> Article:
        row = self.db().execute(f"SELECT {self._article_columns} FROM articles WHERE article_id = ?",
                                (article_id,)).fetchone()
        if row is None:
            raise article_not_found(article_id)
        return article_from_row(row)

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]:
        ids = list(dict.fromkeys(article_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db().execute(f"SELECT {self._article_columns} FROM articles WHERE article_id IN ({marks})",
                                 ids).fetchall()
        return {row[0]: article_from_row(row) for row in rows}

    def list_articles(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        rows = self.db().execute(
            "SELECT article_id, title, date, source, url, kind FROM articles ORDER BY date DESC, title LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [dict(row) for row in rows]

    def sources(self) -> list[str]:
        rows = self.db().execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL ORDER BY source")
        return [row[0] for row in rows]

    def source_stats(self) -> list[dict]:
        """Per source: `name`, `articles`, `undated` (articles without a date), `date_from`, `date_to`."""
        rows = self.db().execute(SOURCE_STATS_SQL).fetchall()
        return [dict(zip(SOURCE_STATS_FIELDS, row)) for row in rows]

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
        ids = [int(c) for c in chunk_ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db().execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE chunk_id IN ({marks})", ids).fetchall()
        return {row[0]: chunk_from_row(row) for row in rows}

    def article_chunks(self, article_id: str) -> list[Chunk]:
        rows = self.db().execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE article_id = ? ORDER BY ordinal",
                                 (article_id,)).fetchall()
        return [chunk_from_row(row) for row in rows]

    def owners(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        owners: dict[int, str] = {}
        # SQLite limits bound parameters; 900 per query stays under every build's limit.
        for start in range(0, len(chunk_ids), 900):
            part = [int(c) for c in chunk_ids[start : start + 900]]
            marks = ",".join("?" * len(part))
            rows = self.db().execute(f"SELECT chunk_id, article_id FROM chunks WHERE chunk_id IN ({marks})", part)
            owners.update((int(r[0]), r[1]) for r in rows)
        return owners

    def article_dates(self, article_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(dict.fromkeys(article_ids))
        dates: dict[str, str | None] = {}
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            marks = ",".join("?" * len(part))
            dates.update(self.db().execute(f"SELECT article_id, date FROM articles WHERE article_id IN ({marks})",
                                           part).fetchall())
        return dates

    def newest_date(self) -> str | None:
        return self.db().execute("SELECT MAX(date) FROM articles").fetchone()[0]

    def allowed_chunks(self, filters: Filters) -> Allowed:
        """Chunk ids that pass `filters`, or None when there are no filters."""
        if filters.empty:
            return None
        where, params = filters.sql_where("?")
        try:
            rows = self.db().execute(
                "SELECT c.chunk_id FROM chunks c JOIN articles a USING (article_id) WHERE " + where,
                params,
            ).fetchall()
        except sqlite3.OperationalError:
            if filters.lang and "lang" not in {r[1] for r in self.db().execute("PRAGMA table_info(articles)")}:
                return np.empty(0, dtype=np.int64)  # a version from before languages were kept: none is known
            raise
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # --- search ---------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        """Top `k` passages by cosine similarity; `allowed` restricts them before ranking."""
        import faiss

        if self.vectors.ntotal == 0 or k <= 0:
            return []
        if allowed is not None and len(allowed) == 0:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        k = min(k, self.vectors.ntotal)
        # One query gains nothing from OpenMP threads, and on a busy 2-core machine it waits
        # for the second one to be scheduled (~8 ms). The setting is per calling thread.
        faiss.omp_set_num_threads(1)
        if allowed is not None:
            # FAISS's bundled stubs (SWIG-generated) miss the keyword constructor and the
            # id-array overloads that the Python wrappers add.
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))  # type: ignore[call-arg]
            scores, ids = self.vectors.search(query, k, params=params)
        else:
            scores, ids = self.vectors.search(query, k)
        # tolist() converts in C: iterating numpy scalars cost more than the FAISS scan itself.
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]

    def dense_scores(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Exact cosine (inner product of unit vectors) of `vector` with each passage's stored vector."""
        if not len(chunk_ids):
            return {}
        ids = np.asarray(chunk_ids, dtype=np.int64)
        try:
            stored = self.vectors.reconstruct_batch(ids)
        except RuntimeError:  # an index type without batch reconstruction
            stored = np.stack([self.vectors.reconstruct(int(i)) for i in ids])
        return dict(zip(ids.tolist(), (stored @ vector).tolist()))

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
        return dict(self.db().execute("SELECT article_id, content_hash FROM articles").fetchall())

    def signatures(self, article_ids: Iterable[str] | None = None) -> Iterable[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of every article (or of `article_ids`), for near-duplicate
        checks at ingest and story collapse at query time."""
        rows: Iterable[tuple[str, bytes]]
        if article_ids is None:
            rows = self.db().execute("SELECT article_id, minhash FROM articles")
        else:
            ids = list(dict.fromkeys(article_ids))
            marks = ",".join("?" * len(ids))
            rows = self.db().execute(f"SELECT article_id, minhash FROM articles WHERE article_id IN ({marks})",
                                     ids).fetchall() if ids else []
        for article_id, blob in rows:
            yield article_id, np.frombuffer(blob, dtype=np.int64)

    def known_files(self) -> dict[str, int]:
        """SHA-256 of each input file indexed in full → the number of articles it gave."""
        try:
            return dict(self.db().execute("SELECT sha256, articles FROM files").fetchall())
        except sqlite3.OperationalError:  # an index written before files were recorded
            return {}


def open_index(index_dir: str | os.PathLike, *, model: str | None = None) -> Index:
    """Load the live version of `index_dir`, refusing a missing or mismatched index."""
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexMissing(
            f"no index at {index_dir}: build one with `newsqa index data/ --index {index_dir}`"
        )
    return Index(version, model=model)


class IndexDraft(StoreWriter):
    """A new index version being written beside the live one (a `StoreWriter`).

    Start from an existing version (incremental) or from nothing, add and
    remove articles, then `commit()`; any exception before that leaves the
    live version untouched and removes the draft.
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
        self.db = _connect(self.path / "newsqa.sqlite", readonly=False)
        if base is not None:
            source = sqlite3.connect(f"file:{base.path / 'newsqa.sqlite'}?mode=ro", uri=True)
            source.backup(self.db)
            source.close()
            self.db.executescript(_SCHEMA)  # adds tables that newer versions of the schema have
            if "lang" not in {r[1] for r in self.db.execute("PRAGMA table_info(articles)")}:
                self.db.execute("ALTER TABLE articles ADD COLUMN lang TEXT")  # a version from before languages
            self.vectors = faiss.read_index(str(base.path / "vectors.faiss"))
            if not isinstance(self.vectors, faiss.IndexIDMap2):
                # Graph indexes cannot delete; start from their vectors in an exact index.
                self.vectors = _rebuild_exact(self.vectors, dimension)
        else:
            self.db.executescript(_SCHEMA)
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        row = self.db.execute("SELECT COALESCE(MAX(chunk_id), -1) FROM chunks").fetchone()
        self.next_chunk_id = int(row[0]) + 1
        self.changed = False

    def has_article(self, article_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM articles WHERE article_id = ?", (article_id,)).fetchone() is not None

    def hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT article_id, content_hash FROM articles").fetchall())

    def signatures(self) -> Iterable[tuple[str, np.ndarray]]:
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
        """Delete an article, its chunks, vectors and full-text rows. False if it was absent."""
        ids = [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE article_id = ?", (article_id,))]
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]  # stubs: see dense_search
            self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        deleted = self.db.execute("DELETE FROM articles WHERE article_id = ?", (article_id,)).rowcount
        self.changed = self.changed or bool(deleted)
        return bool(deleted)

    def add_article(
        self, article: Article, chunks: Sequence[Chunk], vectors: np.ndarray, *, content_hash: str, minhash: np.ndarray
    ) -> None:
        """Insert an article with its chunks (ids already assigned) and their vectors."""
        self.db.execute(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                article.article_id, article.title, article.date, article.source, article.url, article.kind,
                article.text, sections_json(article), paragraphs_json(article), article.origin, content_hash,
                minhash.astype(np.int64).tobytes(), article.lang,
            ),
        )
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

    def commit(self, extra: dict | None = None) -> Path:
        """Finish the files, write the manifest, and make this version live."""
        import faiss

        self.db.commit()
        rows = self.db.execute(
            "SELECT c.chunk_id, a.title, c.section, c.text FROM chunks c JOIN articles a USING (article_id) ORDER BY c.chunk_id"
        ).fetchall()
        lexical = LexicalIndex.build([r[0] for r in rows], [lexical_text(r[1], r[2], r[3]) for r in rows])
        lexical.save(self.path / "lexical")
        news, records = self.db.execute(KIND_COUNTS_SQL).fetchone()
        self.db.execute("PRAGMA optimize")
        self.db.commit()
        self.db.close()
        vectors = self.vectors
        if vectors.ntotal > EXACT_SEARCH_LIMIT:
            vectors = _build_graph(vectors, self.dimension)
        faiss.write_index(vectors, str(self.path / "vectors.faiss"))
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "chunking": self.settings,
            "counts": counts(news, records, len(rows)),
            "vector_index": type(faiss.downcast_index(vectors.index)).__name__,  # type: ignore[attr-defined]  # an IndexIDMap2
            "package_version": package_version(),
            "built_at": _now(),
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


def _rebuild_exact(index, dimension: int):
    import faiss

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = index.index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, dimension), np.float32)
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if len(ids):
        exact.add_with_ids(vectors, ids)
    return exact


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


def _prune_versions(index_dir: Path, *, keep: str) -> None:
    versions = sorted(p for p in index_dir.glob("v-*") if p.is_dir() and p.name != keep)
    for old in versions[: max(len(versions) - (KEEP_VERSIONS - 1), 0)]:
        try:
            pin = open(old / "manifest.json", "rb")
        except FileNotFoundError:
            shutil.rmtree(old, ignore_errors=True)
            continue
        with pin:
            try:
                fcntl.flock(pin, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a reader (e.g. a running service) still has it open: a later build prunes it
            shutil.rmtree(old, ignore_errors=True)
