"""One segment of an embedded index: an immutable directory of rows, vectors and BM25 postings.

    SEGMENT/newsqa.sqlite       articles, chunks, input files (and a full-text table)
    SEGMENT/vectors.faiss       FAISS inner-product index over unit vectors, ids = chunk ids
                                (exact; an HNSW graph only when the segment is large)
    SEGMENT/lexical/            BM25 postings (`indexer.store.bm25.Postings`; NumPy + JSON)

A segment is never changed once written. Deletes are tombstones: the version
(indexer/store/embedded.py) lists, per segment, the ids of its articles that are
no longer live, and `Segment` hides them from every read. A segment written
before postings existed (the single-segment layout of format 1) holds bm25s
arrays instead; its postings are computed from its rows when it is loaded, and
`newsqa merge` rewrites it in the current layout.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from indexer.minhash import band_keys
from indexer.store.bm25 import Postings
from indexer.store.common import ARTICLE_COLUMNS, lexical_text

SCHEMA = """
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
-- Each article's MinHash LSH band keys (`indexer.minhash.band_keys`): near-duplicate look-ups by key.
CREATE TABLE IF NOT EXISTS bands (
    key INTEGER NOT NULL,
    article_id TEXT NOT NULL,
    PRIMARY KEY (key, article_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    articles INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, text, tokenize = 'porter unicode61'
);
"""

# Every passage of a segment with its BM25 text, in the order its postings number them.
LEXICAL_ROWS_SQL = ("SELECT c.chunk_id, a.title, c.section, c.text FROM chunks c JOIN articles a USING (article_id) "
                    "ORDER BY c.chunk_id")


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    return conn


def postings_from_rows(conn: sqlite3.Connection) -> Postings:
    """BM25 postings of every passage a segment database holds."""
    rows = conn.execute(LEXICAL_ROWS_SQL).fetchall()
    return Postings.build([r[0] for r in rows], [lexical_text(r[1], r[2], r[3]) for r in rows])


class Segment:
    """A segment opened for reading, with its tombstones (`deleted`: article ids no longer live).

    Rows are read through one read-only SQLite connection per thread; vectors
    and postings load on first use (`load()` loads them at once), so a writer
    that only needs rows never reads the FAISS file. Thread-safe.
    """

    def __init__(self, path: Path, *, deleted: Iterable[str] = ()) -> None:
        self.path = path
        self.deleted = frozenset(deleted)
        self._deleted_json = json.dumps(sorted(self.deleted))
        self._db_path = path / "newsqa.sqlite"
        if not self._db_path.is_file():
            raise FileNotFoundError(2, "segment database missing", str(self._db_path))
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def db(self) -> sqlite3.Connection:
        """This thread's read-only connection to the segment's database."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._db_path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def adopt(self, other: Segment) -> None:
        """Share what `other` (the same segment, open in an older version) has loaded: its vectors and
        postings never change, so a reload reads only the segments that are new."""
        if other.path == self.path:
            for name in ("vectors", "postings", "has_lang"):
                if name in other.__dict__:
                    self.__dict__.setdefault(name, other.__dict__[name])

    def load(self) -> None:
        """Read the vectors, postings and database now, so a damaged file fails here, not in a request."""
        _ = self.vectors, self.postings, self.live_mask
        self.db().execute("SELECT COUNT(*) FROM articles").fetchone()

    @functools.cached_property
    def vectors(self):
        import faiss

        with self._lock:
            return faiss.read_index(str(self.path / "vectors.faiss"))

    @functools.cached_property
    def postings(self) -> Postings:
        lexical = self.path / "lexical"
        if Postings.saved_in(lexical):
            return Postings.load(lexical)
        return postings_from_rows(self.db())  # a segment from before postings: counted from its rows

    @functools.cached_property
    def deleted_chunks(self) -> np.ndarray:
        """Sorted chunk ids of the tombstoned articles."""
        if not self.deleted:
            return np.empty(0, dtype=np.int64)
        rows = self.db().execute(
            "SELECT chunk_id FROM chunks WHERE article_id IN (SELECT value FROM json_each(?))", (self._deleted_json,))
        return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64))

    @functools.cached_property
    def live_mask(self) -> np.ndarray | None:
        """False at each tombstoned position of `postings`; None when nothing is tombstoned."""
        if not self.deleted:
            return None
        return ~np.isin(self.postings.chunk_ids, self.deleted_chunks)

    @property
    def live_vectors(self) -> int:
        return int(self.vectors.ntotal) - len(self.deleted_chunks)

    @functools.cached_property
    def has_lang(self) -> bool:
        # Segments written before languages were kept have no `lang` column.
        return "lang" in {r[1] for r in self.db().execute("PRAGMA table_info(articles)")}

    @functools.cached_property
    def has_bands(self) -> bool:
        # Segments written before band keys were stored have no `bands` table.
        return self.db().execute("SELECT 1 FROM sqlite_master WHERE name = 'bands'").fetchone() is not None

    @functools.cached_property
    def _bands_in_memory(self) -> tuple[dict[int, list[str]], dict[str, bytes]]:
        buckets: dict[int, list[str]] = {}
        signatures: dict[str, bytes] = {}
        for article_id, blob in self.db().execute("SELECT article_id, minhash FROM articles"):
            signatures[article_id] = blob
            for key in band_keys(np.frombuffer(blob, dtype=np.int64)):
                buckets.setdefault(key, []).append(article_id)
        return buckets, signatures

    def similar(self, keys: Sequence[int]) -> list[tuple[str, bytes]]:
        """(article id, MinHash blob) of the live articles with at least one of the LSH band `keys`.

        A segment without a `bands` table has its keys computed once, in memory, on first use.
        """
        if self.has_bands:
            marks = ",".join("?" * len(keys))
            return [(r[0], r[1]) for r in self.rows(
                "SELECT article_id, minhash FROM articles WHERE {live} AND article_id IN "
                f"(SELECT article_id FROM bands WHERE key IN ({marks}))", keys)]
        buckets, signatures = self._bands_in_memory
        ids = {a for key in keys for a in buckets.get(key, ())} - self.deleted
        return [(a, signatures[a]) for a in ids]

    @functools.cached_property
    def article_columns(self) -> str:
        return ARTICLE_COLUMNS + (", lang" if self.has_lang else "")

    def live(self, column: str = "article_id") -> tuple[str, tuple]:
        """A SQL condition (and its parameters) that keeps only live rows, by `column` naming the article id."""
        if not self.deleted:
            return "1", ()
        return f"{column} NOT IN (SELECT value FROM json_each(?))", (self._deleted_json,)

    def rows(self, sql: str, params: Sequence = (), *, column: str = "article_id") -> list[sqlite3.Row]:
        """`sql` with `{live}` replaced by the live-rows condition on `column`; live rows only."""
        condition, extra = self.live(column)
        return self.db().execute(sql.format(live=condition), (*extra, *params)).fetchall()

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of this segment's best `k` live vectors for `query` (one row)."""
        import faiss

        vectors = self.vectors
        # Tombstoned vectors stay in the file: without a filter, ask for that many more and drop them
        # (a filter from `Index.allowed_chunks` holds live passages only).
        dead = self.deleted_chunks
        if allowed is not None:
            # FAISS's bundled stubs (SWIG-generated) miss the keyword constructor and the
            # id-array overloads that the Python wrappers add.
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))  # type: ignore[call-arg]
            scores, ids = vectors.search(query, min(k, vectors.ntotal), params=params)
        else:
            scores, ids = vectors.search(query, min(k + len(dead), vectors.ntotal))
        keep = ids[0] >= 0
        if len(dead):
            keep &= ~np.isin(ids[0], dead)
        return scores[0][keep][:k], ids[0][keep][:k]

    def stored_vectors(self, chunk_ids: np.ndarray) -> np.ndarray:
        try:
            return self.vectors.reconstruct_batch(chunk_ids)
        except RuntimeError:  # an index type without batch reconstruction
            return np.stack([self.vectors.reconstruct(int(i)) for i in chunk_ids])
