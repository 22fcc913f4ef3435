"""The PostgreSQL + pgvector backend: a `Store` (`PgIndex`) and a `StoreWriter` (`PgWriter`) on a database server.

Where things live (schema created and migrated by `PgWriter`, version in `newsqa_schema`):

    articles     one row per article (the same fields as the embedded SQLite table)
    chunks       passages with `embedding vector(D)` (HNSW index, vector_cosine_ops),
                 `tsv tsvector` ('english' config, GIN index) and `lex_len` (BM25 length)
    postings     (term, chunk_id, tf, dl): the BM25 terms of each passage, tokenized exactly as
                 the embedded backend tokenizes them (bm25s, Snowball stemmer, English stop words)
    newsqa_meta  model, dimension, chunking settings, last write time
    newsqa_stats passage count and total BM25 length, kept by the writers in their transactions

Lexical ranking is Lucene BM25 (k1, b of `indexer.store.bm25`) computed in SQL from the postings
and the live collection statistics, so both backends return the same scores for the same corpus
(`ts_rank_cd` over the `tsv` column ranks differently and scored lower on SciFact; it is kept for
`lexical_search(..., ranking="ts_rank_cd")` and measured in bench/backends.py).

Writes are transactional per batch: an article, its chunks, vectors and postings commit together
or not at all, and a changed article is replaced inside that same transaction. Several writers
(`newsqa index --store URL --shard i/n`) may write to one database at once: chunk ids come from a
sequence, and each article id belongs to exactly one shard.

Our own options ride on the URL's query string and are removed before it reaches libpq:
`pool_size` (connections per process, default `POOL_SIZE`) and `ef_search` (HNSW search breadth).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from indexer.errors import IndexMismatch, IndexMissing, InvalidParameter, ResourceMissing
from indexer.store.bm25 import B, K1, tokenize
from indexer.store.common import (
    ARTICLE_COLUMNS, CHUNK_COLUMNS, KIND_COUNTS_SQL, PG_HNSW_EF_CONSTRUCTION, PG_HNSW_EF_SEARCH,
    PG_HNSW_EF_SEARCH_MAX, PG_HNSW_M, SOURCE_STATS_FIELDS, SOURCE_STATS_SQL, article_from_row, article_not_found, chunk_from_row, counts, lexical_text,
    model_mismatch, paragraphs_json, sections_json,
)
from indexer.store.embedded import FORMAT_VERSION, package_version
from indexer.store.protocols import Allowed, LexicalTerms, PendingArticle, Store, StoreWriter
from indexer.types import Article, Chunk, Filters

SCHEMA_VERSION = 2
# Connections each process keeps to one server (serve: about the number of worker threads).
POOL_SIZE = 8
# Passages inserted per transaction by the indexer (articles never split across two).
WRITE_BATCH_CHUNKS = 512
# Serialises schema creation/migration between concurrent writers (an arbitrary fixed key).
_MIGRATION_LOCK = 7_244_310_551
_URL_OPTIONS = ("pool_size", "ef_search")

_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE newsqa_meta (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE articles (
    article_id text PRIMARY KEY,
    title text NOT NULL,
    date text,
    source text,
    url text,
    kind text NOT NULL,
    text text NOT NULL,
    sections jsonb NOT NULL,
    paragraphs jsonb NOT NULL,
    origin text,
    content_hash text NOT NULL,
    minhash bytea NOT NULL
);
CREATE INDEX articles_date ON articles (date);
CREATE INDEX articles_source ON articles (source);
CREATE SEQUENCE chunk_ids;
CREATE TABLE chunks (
    chunk_id bigint PRIMARY KEY,
    article_id text NOT NULL REFERENCES articles (article_id) ON DELETE CASCADE,
    ordinal integer NOT NULL,
    start integer NOT NULL,
    "end" integer NOT NULL,
    section text,
    paragraph integer NOT NULL,
    tokens integer NOT NULL,
    text text NOT NULL,
    embedding vector({dimension}) NOT NULL,
    tsv tsvector NOT NULL,
    lex_len integer NOT NULL
);
CREATE INDEX chunks_article ON chunks (article_id);
CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = {m}, ef_construction = {ef_construction});
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
-- dl repeats the passage's BM25 length so scoring is an index-only scan of the query's terms.
CREATE TABLE postings (
    term text NOT NULL,
    chunk_id bigint NOT NULL REFERENCES chunks (chunk_id) ON DELETE CASCADE,
    tf integer NOT NULL,
    dl integer NOT NULL,
    PRIMARY KEY (term, chunk_id) INCLUDE (tf, dl)
);
CREATE INDEX postings_chunk ON postings (chunk_id);
"""),
    # BM25 needs the passage count and total length per query: kept by the writers, read in O(1).
    (2, """
CREATE TABLE newsqa_stats (
    id integer PRIMARY KEY CHECK (id = 1),
    chunks bigint NOT NULL,
    total_length bigint NOT NULL
);
INSERT INTO newsqa_stats SELECT 1, COUNT(*), COALESCE(SUM(lex_len), 0) FROM chunks;
"""),
)


def is_store_url(value: str | os.PathLike | None) -> bool:
    """True for a PostgreSQL connection URL (postgresql:// or postgres://)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class StoreUrl:
    """A connection URL split into what libpq reads and our own options."""

    conninfo: str
    pool_size: int = POOL_SIZE
    ef_search: int = PG_HNSW_EF_SEARCH

    @classmethod
    def parse(cls, url: str) -> "StoreUrl":
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _URL_OPTIONS}
        rest = [(k, v) for k, v in query if k not in _URL_OPTIONS]
        values: dict[str, int] = {}
        for name, low, high, default in (("pool_size", 1, 1000, POOL_SIZE),
                                         ("ef_search", 1, PG_HNSW_EF_SEARCH_MAX, PG_HNSW_EF_SEARCH)):
            if name in ours:
                try:
                    value: int | None = int(ours[name])
                except ValueError:
                    value = None
                if value is not None:
                    values[name] = value
                if value is None or not low <= value <= high:
                    raise InvalidParameter(f"{name}={ours[name]!r} in the store URL is not a whole number in "
                                           f"{low}..{high}: e.g. ?{name}={default}",
                                           code="invalid_store_url")
        return cls(urlunsplit(parts._replace(query=urlencode(rest))), **values)

    @property
    def safe(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.conninfo)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.conninfo


def _psycopg():
    """The psycopg module, or a domain error saying how to install the backend's extra."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (checked here so the message covers both)
    except ImportError:
        raise ResourceMissing("the PostgreSQL backend needs psycopg and psycopg-pool: "
                              "pip install 'newsqa[postgres]'") from None
    return psycopg


def _connect_error(url: StoreUrl, exc: Exception) -> IndexMissing:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return IndexMissing(f"cannot connect to the PostgreSQL store {url.safe}: {first}; check the URL, "
                        "that the server runs and accepts this user", code="store_unreachable")


def _pool(url: StoreUrl, *, size: int):
    psycopg = _psycopg()
    from psycopg_pool import ConnectionPool

    def configure(conn) -> None:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(url.ef_search)])

    # One direct connection first: a wrong URL fails at once with libpq's message (a pool would retry).
    try:
        psycopg.connect(url.conninfo, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise _connect_error(url, exc) from None
    pool = ConnectionPool(url.conninfo, min_size=1, max_size=max(size, 1), open=False,
                          kwargs={"autocommit": True}, configure=configure, name="newsqa")
    try:
        pool.open(wait=True, timeout=10)
    except Exception as exc:
        pool.close()
        raise _connect_error(url, exc) from None
    return pool


def _schema_version(conn) -> int | None:
    row = conn.execute("SELECT to_regclass('newsqa_schema')").fetchone()
    if row[0] is None:
        return None
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM newsqa_schema").fetchone()[0]


def _vector_literal(vector: np.ndarray) -> str:
    # pgvector's text form; repr of a float32 widened to float64 is exact, so nothing is rounded.
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


@dataclass(frozen=True)
class LexicalQuery:
    """The BM25 inputs of one query: stemmed terms with idf × multiplicity, and collection stats."""

    terms: tuple[str, ...]
    weights: tuple[float, ...]
    documents: int
    average_length: float


class PgLexical:
    """BM25 (Lucene variant, `indexer.store.bm25.K1`/`B`) over the postings table.

    The methods of `indexer.store.bm25.LexicalIndex`, so `PgIndex` serves its lexical leg
    as `Index` does; the "scores" handed between calls is a `LexicalQuery`, not an array.
    """

    def __init__(self, pool) -> None:
        self._pool = pool

    def _stats_and_df(self, conn, terms: Sequence[str]) -> tuple[int, float, dict[str, int]]:
        """(passages, average BM25 length, document frequency of each term present) in one round trip."""
        rows = conn.execute(
            "SELECT NULL, chunks, total_length FROM newsqa_stats UNION ALL "
            "SELECT term, COUNT(*), 0 FROM postings WHERE term = ANY(%s) GROUP BY term", [list(terms)]).fetchall()
        n, total = next(((int(c), int(t)) for term, c, t in rows if term is None), (0, 0))
        return n, (total / n if n else 0.0), {t: int(c) for t, c, _ in rows if t is not None}

    def query_scores(self, query: str) -> LexicalQuery | None:
        """The query's BM25 inputs, or None when no query term occurs in any passage."""
        tokens = tokenize([query])[0]
        if not tokens:
            return None
        with self._pool.connection() as conn:
            n, avg, df = self._stats_and_df(conn, list(dict.fromkeys(tokens)))
        # A repeated query term counts once per occurrence, as in bm25s.
        counts = Counter(t for t in tokens if t in df)
        if not counts or n == 0:
            return None
        terms = tuple(counts)
        weights = tuple(counts[t] * float(np.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))) for t in terms)
        return LexicalQuery(terms, weights, n, avg)

    _SCORE = """
        WITH q(term, w) AS (SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[]))
        SELECT p.chunk_id,
               SUM(q.w * p.tf / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / %(avg)s))) AS score
        FROM q JOIN postings p USING (term)
        WHERE p.term = ANY(%(terms)s) {where}
        GROUP BY p.chunk_id
    """

    def _params(self, scores: LexicalQuery, **extra) -> dict:
        return {"terms": list(scores.terms), "weights": list(scores.weights), "k1": K1, "b": B,
                "avg": max(scores.average_length, 1e-9), **extra}

    def search(self, query: str, k: int, allowed: np.ndarray | None = None, *,
               scores: LexicalQuery | None = None) -> list[tuple[int, float]]:
        """Top `k` passages by BM25; `allowed` (chunk ids) restricts them in SQL before ranking."""
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        if scores is None:
            scores = self.query_scores(query)
        if scores is None:
            return []
        where = "" if allowed is None else "AND p.chunk_id = ANY(%(allowed)s)"
        sql = self._SCORE.format(where=where) + " ORDER BY score DESC, p.chunk_id LIMIT %(k)s"
        params = self._params(scores, k=k, allowed=None if allowed is None else [int(c) for c in allowed])
        with self._pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [(int(c), float(s)) for c, s in rows if s > 0]

    def scores_for(self, chunk_ids, scores: LexicalQuery | None) -> dict[int, float]:
        """The exact BM25 score of each chunk id; 0.0 when no query term occurs in it."""
        ids = [int(c) for c in chunk_ids]
        result = {c: 0.0 for c in ids}
        if scores is None or not ids:
            return result
        sql = self._SCORE.format(where="AND p.chunk_id = ANY(%(ids)s)")
        with self._pool.connection() as conn:
            rows = conn.execute(sql, self._params(scores, ids=ids)).fetchall()
        result.update((int(c), float(s)) for c, s in rows)
        return result

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene BM25 idf of each stemmed token; tokens absent from the index get the largest idf."""
        tokens = list(tokens)
        with self._pool.connection() as conn:
            n, _, df = self._stats_and_df(conn, tokens)
        ceiling = float(np.log(1 + (n + 0.5) / 0.5)) if n else 1.0
        return {t: float(np.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))) if t in df else ceiling for t in tokens}


class PgIndex(Store):
    """A PostgreSQL store opened for reading (a `Store`).

    Unlike an embedded version it is live: every query sees the last committed
    writes. Safe to share between threads (a connection pool; one connection
    per statement). `read_url` sends every read to a replica.
    """

    # Every read sees committed writes: there is no version to reload.
    live = True

    def __init__(self, url: str, *, model: str | None = None, read_url: str | None = None) -> None:
        self.url = StoreUrl.parse(url)
        self.read_url = StoreUrl.parse(read_url) if read_url else self.url
        self._pool = _pool(self.read_url, size=self.read_url.pool_size)
        try:
            with self._pool.connection() as conn:
                version = _schema_version(conn)
                if version is None:
                    raise IndexMissing(f"no newsqa index in the PostgreSQL store {self.read_url.safe}: build one "
                                       f"with `newsqa index data/ --store {self.url.safe}`")
                if version != SCHEMA_VERSION:
                    raise IndexMismatch(
                        f"the store {self.read_url.safe} has schema version {version}, this newsqa reads "
                        f"{SCHEMA_VERSION}: " + ("run `newsqa index SOURCE --store URL` once (it migrates the "
                                                 "schema)" if version < SCHEMA_VERSION else "upgrade newsqa"))
                meta = dict(conn.execute("SELECT key, value FROM newsqa_meta").fetchall())
        except BaseException:
            self._pool.close()
            raise
        if model is not None and meta.get("model") != model:
            self._pool.close()
            raise model_mismatch(f"the store {self.read_url.safe}", meta.get("model"), model,
                                 "newsqa index SOURCE --store URL --rebuild")
        self._meta = meta
        self.dimension = int(meta["dimension"])
        self.lexical = PgLexical(self._pool)

    # --- facts --------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        with self._pool.connection() as conn:
            meta = dict(conn.execute("SELECT key, value FROM newsqa_meta").fetchall())
        return {
            "format_version": FORMAT_VERSION,
            "schema_version": SCHEMA_VERSION,
            "model": meta.get("model"),
            "dimension": meta.get("dimension"),
            "chunking": meta.get("chunking"),
            "counts": self.counts,
            "vector_index": f"pgvector-hnsw(m={PG_HNSW_M},ef_construction={PG_HNSW_EF_CONSTRUCTION})",
            "package_version": package_version(),
            "built_at": meta.get("built_at"),
            "store": self.url.safe,
        }

    @property
    def version(self) -> str:
        """Changes with every committed write (the chunk id sequence only moves forward)."""
        with self._pool.connection() as conn:
            last, called = conn.execute("SELECT last_value, is_called FROM chunk_ids").fetchone()
            built = conn.execute("SELECT value FROM newsqa_meta WHERE key = 'built_at'").fetchone()
        return f"pg-{last if called else 0}-{(built[0] if built else '')}"

    @property
    def counts(self) -> dict[str, int]:
        with self._pool.connection() as conn:
            news, records = conn.execute(KIND_COUNTS_SQL).fetchone()
            chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return counts(news, records, chunks)

    def vector_count(self) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def disk_bytes(self) -> int:
        """0: the store has no local files (the server's are not ours to walk)."""
        return 0

    def close(self) -> None:
        self._pool.close()

    # --- look-ups -----------------------------------------------------------------

    def article(self, article_id: str) -> Article:
        found = self.articles([article_id])
        if article_id not in found:
            raise article_not_found(article_id)
        return found[article_id]

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]:
        ids = list(dict.fromkeys(article_ids))
        if not ids:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE article_id = ANY(%s)", [ids]).fetchall()
        return {row[0]: article_from_row(row) for row in rows}

    def list_articles(self, *, limit: int = 100, offset: int = 0) -> list[dict]:
        with self._pool.connection() as conn:
            cur = conn.execute(
                "SELECT article_id, title, date, source, url, kind FROM articles "
                "ORDER BY date DESC NULLS LAST, title LIMIT %s OFFSET %s", [limit, offset])
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def sources(self) -> list[str]:
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL ORDER BY source")
            return [row[0] for row in rows.fetchall()]

    def source_stats(self) -> list[dict]:
        """Per source: `name`, `articles`, `undated`, `date_from`, `date_to` (see `Index.source_stats`)."""
        with self._pool.connection() as conn:
            return [dict(zip(SOURCE_STATS_FIELDS, row)) for row in conn.execute(SOURCE_STATS_SQL).fetchall()]

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
        ids = [int(c) for c in chunk_ids]
        if not ids:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE chunk_id = ANY(%s)", [ids]).fetchall()
        return {row[0]: chunk_from_row(row) for row in rows}

    def article_chunks(self, article_id: str) -> list[Chunk]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE article_id = %s ORDER BY ordinal",
                                [article_id]).fetchall()
        return [chunk_from_row(row) for row in rows]

    def owners(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        ids = [int(c) for c in chunk_ids]
        if not ids:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT chunk_id, article_id FROM chunks WHERE chunk_id = ANY(%s)", [ids]).fetchall()
        return {int(c): a for c, a in rows}

    def article_dates(self, article_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(dict.fromkeys(article_ids))
        if not ids:
            return {}
        with self._pool.connection() as conn:
            return dict(conn.execute("SELECT article_id, date FROM articles WHERE article_id = ANY(%s)",
                                     [ids]).fetchall())

    def newest_date(self) -> str | None:
        with self._pool.connection() as conn:
            return conn.execute("SELECT MAX(date) FROM articles").fetchone()[0]

    def allowed_chunks(self, filters: Filters) -> Allowed:
        """Chunk ids that pass `filters` (selected in SQL), or None when there are no filters."""
        if filters.empty:
            return None
        if filters.lang:
            from indexer.errors import InvalidParameter

            raise InvalidParameter(f"lang={filters.lang!r}: the PostgreSQL store does not record languages yet; "
                                   "filter by language on an embedded index (--index)", code="invalid_lang")
        where, params = filters.sql_where("%s")
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT c.chunk_id FROM chunks c JOIN articles a USING (article_id) WHERE "
                                + where + " ORDER BY c.chunk_id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def signatures(self, article_ids: Iterable[str] | None = None) -> Iterable[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of every article (or of `article_ids`), as `Index.signatures`."""
        with self._pool.connection() as conn:
            if article_ids is None:
                rows = conn.execute("SELECT article_id, minhash FROM articles").fetchall()
            else:
                rows = conn.execute("SELECT article_id, minhash FROM articles WHERE article_id = ANY(%s)",
                                    [list(dict.fromkeys(article_ids))]).fetchall()
        for article_id, blob in rows:
            yield article_id, np.frombuffer(blob, dtype=np.int64)

    # --- search ---------------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        """Top `k` passages by cosine similarity; `allowed` restricts them before ranking.

        Without filters the HNSW index answers (ef_search at least `k`); with
        filters the allowed passages are ranked exactly, so a narrow filter
        never loses results to the graph's candidate limit. Scores are inner
        products of the unit vectors, exactly what the embedded FAISS index reports.
        """
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = _vector_literal(vector)
        with self._pool.connection() as conn:
            if allowed is None:
                sql = ("SELECT chunk_id, -(embedding <#> %(q)s::vector) FROM chunks "
                       "ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s")
                if k <= self.read_url.ef_search:  # the session's setting (pool `configure`) is enough
                    rows = conn.execute(sql, {"q": query, "k": k}).fetchall()
                else:
                    with conn.transaction():
                        conn.execute("SELECT set_config('hnsw.ef_search', %s, true)",
                                     [str(min(k, PG_HNSW_EF_SEARCH_MAX))])
                        rows = conn.execute(sql, {"q": query, "k": k}).fetchall()
            else:
                rows = conn.execute(
                    "SELECT chunk_id, -(embedding <#> %(q)s::vector) AS score FROM chunks "
                    "WHERE chunk_id = ANY(%(ids)s) ORDER BY score DESC, chunk_id LIMIT %(k)s",
                    {"q": query, "k": k, "ids": [int(c) for c in allowed]}).fetchall()
        return [(int(c), float(s)) for c, s in rows]

    def dense_scores(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Exact cosine (inner product of unit vectors) of `vector` with each given passage.

        The stored float32 vectors are fetched and multiplied here, as the embedded backend
        does, so both backends report the same bits (pgvector's own `<#>` sums differently).
        """
        ids = [int(c) for c in chunk_ids]
        if not ids:
            return {}
        with self._pool.connection() as conn:
            # vector_send is pgvector's binary form: a 4-byte header, then big-endian float32s (no text parsing).
            rows = dict(conn.execute("SELECT chunk_id, vector_send(embedding) FROM chunks WHERE chunk_id = ANY(%s)",
                                     [ids]).fetchall())
        missing = [i for i in ids if i not in rows]
        if missing:
            raise RuntimeError(f"no stored vector for chunk ids {missing[:5]}")
        stored = np.zeros((len(ids), self.dimension), dtype=np.float32)
        for pos, i in enumerate(ids):
            stored[pos] = np.frombuffer(rows[i], dtype=">f4", offset=4)
        return {c: float(s) for c, s in zip(ids, stored @ vector)}

    def lexical_terms(self, query: str) -> LexicalTerms:
        """The query with its BM25 inputs (a `LexicalQuery`, or None when no term occurs in any passage)."""
        return LexicalTerms(query, self.lexical.query_scores(query))

    def lexical_search(self, terms: LexicalTerms | str, k: int, allowed: Allowed = None, *,
                       ranking: str = "bm25") -> list[tuple[int, float]]:
        """Top `k` passages for the query: BM25 (default, as the embedded backend), or PostgreSQL's `ts_rank_cd`."""
        query = terms if isinstance(terms, str) else terms.query
        if ranking == "bm25":
            prepared = self.lexical_terms(query) if isinstance(terms, str) else terms
            return self.lexical.search(query, k, allowed, scores=prepared.prepared)
        if ranking != "ts_rank_cd":
            raise InvalidParameter(f"ranking={ranking!r} is not known: use bm25 or ts_rank_cd", code="invalid_ranking")
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        where = "" if allowed is None else "AND chunk_id = ANY(%(ids)s)"
        # OR of the query's lexemes: plainto_tsquery would AND them and miss most passages.
        sql = ("WITH q AS (SELECT NULLIF(replace(plainto_tsquery('english', %(q)s)::text, '&', '|'), '')::tsquery AS q) "
               "SELECT chunk_id, ts_rank_cd(tsv, q.q) AS score FROM chunks, q WHERE tsv @@ q.q " + where
               + " ORDER BY score DESC, chunk_id LIMIT %(k)s")
        with self._pool.connection() as conn:
            rows = conn.execute(sql, {"q": query, "k": k,
                                      "ids": None if allowed is None else [int(c) for c in allowed]}).fetchall()
        return [(int(c), float(s)) for c, s in rows]

    def lexical_scores(self, chunk_ids: Sequence[int], terms: LexicalTerms) -> dict[int, float]:
        """Exact BM25 score of each given passage (0.0 without a shared term)."""
        return self.lexical.scores_for(chunk_ids, terms.prepared)

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        return self.lexical.idf(tokens)


def open_pg_index(url: str, *, model: str | None = None, read_url: str | None = None) -> PgIndex:
    """Open the store at `url` for reading (from `read_url`, a replica, when given)."""
    return PgIndex(url, model=model, read_url=read_url)


# --- writing -------------------------------------------------------------------------


def shard_of(article_id: str, shards: int) -> int:
    """The shard (0..shards-1) an article id belongs to: stable across processes and machines."""
    return int.from_bytes(hashlib.sha1(article_id.encode()).digest()[:8], "big") % shards


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """`"i/n"` → (i, n) with 0 <= i < n; None for no sharding."""
    if value in (None, ""):
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        i, n = -1, 0
    if n < 1 or not 0 <= i < n:
        raise InvalidParameter(f"--shard {value!r} is not i/n with 0 <= i < n: e.g. --shard 0/2 and --shard 1/2 "
                               "for two workers", code="invalid_shard")
    return i, n


class PgWriter(StoreWriter):
    """Writes articles to the store (a `StoreWriter`); creates and migrates the schema on open.

    Every `write()` is one transaction: the given articles (each replacing an
    earlier version with the same id) with all their chunks, vectors and
    postings commit together, or nothing does.
    """

    def __init__(self, url: str, *, model: str, dimension: int, settings: dict, rebuild: bool = False) -> None:
        psycopg = _psycopg()

        self.url = StoreUrl.parse(url)
        try:
            self.conn = psycopg.connect(self.url.conninfo, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise _connect_error(self.url, exc) from None
        try:
            self._migrate(model=model, dimension=dimension, settings=settings, rebuild=rebuild)
        except BaseException:
            self.conn.close()
            raise
        self.model = model
        self.dimension = dimension

    def _migrate(self, *, model: str, dimension: int, settings: dict, rebuild: bool) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
            self.conn.execute("CREATE TABLE IF NOT EXISTS newsqa_schema "
                              "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            current = _schema_version(self.conn) or 0
            if current > SCHEMA_VERSION:
                raise IndexMismatch(f"the store {self.url.safe} has schema version {current}, newer than this "
                                    f"newsqa ({SCHEMA_VERSION}): upgrade newsqa")
            for version, sql in _MIGRATIONS:
                if version > current:
                    self.conn.execute(sql.format(dimension=int(dimension), m=PG_HNSW_M,
                                                 ef_construction=PG_HNSW_EF_CONSTRUCTION))
                    self.conn.execute("INSERT INTO newsqa_schema (version) VALUES (%s)", [version])
            meta = dict(self.conn.execute("SELECT key, value FROM newsqa_meta").fetchall())
            wanted = {"model": model, "dimension": int(dimension), "chunking": settings}
            if rebuild:
                self.conn.execute("TRUNCATE articles, chunks, postings")
                self.conn.execute("UPDATE newsqa_stats SET chunks = 0, total_length = 0")
            elif meta and any(meta.get(k) != v for k, v in wanted.items()):
                raise IndexMismatch(
                    f"the store {self.url.safe} was built with model {meta.get('model')!r}, dimension "
                    f"{meta.get('dimension')} and chunking {meta.get('chunking')}, this run uses {model!r}, "
                    f"{dimension} and {settings}: add --rebuild to build it again from these sources")
            if rebuild and meta.get("dimension") not in (None, int(dimension)):
                self.conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dimension)})")
            for key, value in wanted.items():
                self.conn.execute("INSERT INTO newsqa_meta VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE "
                                  "SET value = EXCLUDED.value", [key, json.dumps(value)])

    def hashes(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT article_id, content_hash FROM articles").fetchall())

    def signatures(self) -> Iterable[tuple[str, np.ndarray]]:
        for article_id, blob in self.conn.execute("SELECT article_id, minhash FROM articles").fetchall():
            yield article_id, np.frombuffer(blob, dtype=np.int64)

    def has_article(self, article_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM articles WHERE article_id = %s", [article_id]).fetchone() is not None

    def write(self, pending: Sequence[PendingArticle]) -> int:
        """Insert (or replace) `pending` in one transaction; return how many replaced an existing article."""
        if not pending:
            return 0
        n = sum(len(p.chunks) for p in pending)
        ids = [r[0] for r in self.conn.execute("SELECT nextval('chunk_ids') FROM generate_series(1, %s)", [n])]
        with self.conn.transaction():
            replaced = self._delete([p.article.article_id for p in pending])
            article_rows: list[tuple] = []
            chunk_rows: list[tuple] = []
            posting_rows: list[tuple[str, int, int, int]] = []
            offset = 0
            for p in pending:
                a = p.article
                article_rows.append((a.article_id, a.title, a.date, a.source, a.url, a.kind, a.text,
                                     sections_json(a), paragraphs_json(a), a.origin, p.content_hash,
                                     np.asarray(p.minhash).astype(np.int64).tobytes()))
                texts = [lexical_text(a.title, c.section, c.text) for c in p.chunks]
                for c, vector, text, terms in zip(p.chunks, p.vectors, texts, tokenize(texts) if texts else []):
                    cid = ids[offset]
                    offset += 1
                    chunk_rows.append((cid, a.article_id, c.ordinal, c.start, c.end, c.section, c.paragraph,
                                       c.tokens, c.text, _vector_literal(vector), text, len(terms)))
                    posting_rows.extend((term, cid, tf, len(terms)) for term, tf in Counter(terms).items())
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO articles (article_id, title, date, source, url, kind, text, sections, paragraphs, "
                    "origin, content_hash, minhash) VALUES (%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s::jsonb,%s,%s,%s)",
                    article_rows)
                cur.executemany(
                    'INSERT INTO chunks (chunk_id, article_id, ordinal, start, "end", section, paragraph, tokens, '
                    "text, embedding, tsv, lex_len) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::vector,"
                    "to_tsvector('english', %s),%s)", chunk_rows)
                with cur.copy("COPY postings (term, chunk_id, tf, dl) FROM STDIN") as copy:
                    for row in posting_rows:
                        copy.write_row(row)
            self._count(len(chunk_rows), sum(row[-1] for row in chunk_rows))
            self._touch()
        return len(replaced)

    def _delete(self, article_ids: list[str]) -> list[str]:
        """Delete articles (cascading to chunks and postings) and take their passages out of the BM25 stats."""
        gone = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(lex_len), 0) FROM chunks WHERE article_id = ANY(%s)",
                                 [article_ids]).fetchone()
        rows = self.conn.execute("DELETE FROM articles WHERE article_id = ANY(%s) RETURNING article_id",
                                 [article_ids]).fetchall()
        if gone[0]:
            self._count(-int(gone[0]), -int(gone[1]))
        return [r[0] for r in rows]

    def _count(self, chunks: int, length: int) -> None:
        self.conn.execute("UPDATE newsqa_stats SET chunks = chunks + %s, total_length = total_length + %s",
                          [chunks, length])

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Delete articles (chunks, vectors and postings go with them) in one transaction; return those present."""
        with self.conn.transaction():
            removed = self._delete(list(article_ids))
            if removed:
                self._touch()
        return removed

    def _touch(self) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.conn.execute("INSERT INTO newsqa_meta VALUES ('built_at', %s::jsonb) ON CONFLICT (key) DO UPDATE "
                          "SET value = EXCLUDED.value", [json.dumps(now)])

    def totals(self) -> tuple[int, int]:
        """(news articles, chunks) now committed."""
        articles = self.conn.execute("SELECT COUNT(*) FROM articles WHERE kind = 'news'").fetchone()[0]
        chunks = self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(articles), int(chunks)

    def close(self) -> None:
        self.conn.close()


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
    from indexer.ingest.build import BuildSummary, IngestLoop, finish_summary
    from indexer.ingest.chunk import ChunkSettings
    from indexer.ingest.dedupe import DEDUPE_THRESHOLD
    from indexer.ingest.read import ReadReport, read_sources

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

    loop = IngestLoop(
        embedder=embedder, settings=settings, summary=summary, known=writer.hashes(),
        load_signatures=writer.signatures, write=write,
        progress=sys.stderr.isatty() if progress is None else progress,
        dedupe_threshold=DEDUPE_THRESHOLD if dedupe_threshold is None else dedupe_threshold,
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


def delete_from_store(url: str, article_ids: Sequence[str]) -> list[str]:
    """Remove articles by id in one transaction; return the ids that were present."""
    psycopg = _psycopg()

    parsed = StoreUrl.parse(url)
    try:
        conn = psycopg.connect(parsed.conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise _connect_error(parsed, exc) from None
    try:
        if _schema_version(conn) is None:
            raise IndexMissing(f"no newsqa index in the PostgreSQL store {parsed.safe}: build one with "
                               f"`newsqa index data/ --store {parsed.safe}`")
        meta = dict(conn.execute("SELECT key, value FROM newsqa_meta").fetchall())
    finally:
        conn.close()
    writer = PgWriter(url, model=meta["model"], dimension=meta["dimension"], settings=meta["chunking"])
    try:
        return writer.remove(article_ids)
    finally:
        writer.close()

