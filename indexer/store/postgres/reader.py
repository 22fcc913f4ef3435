"""Reading a PostgreSQL store: `PgIndex` (a `Store`) and its BM25 leg over the postings, `PgLexical`.

Lexical ranking is Lucene BM25 (k1, b of `indexer.store.bm25`) computed in SQL from the postings
and the live collection statistics, so both backends return the same scores for the same corpus
(`ts_rank_cd` over the `tsv` column ranks differently and scored lower on SciFact; it is kept for
`lexical_search(..., ranking="ts_rank_cd")` and measured in bench/backends.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.errors import IndexMismatch, IndexMissing, InvalidParameter
from indexer.store.bm25 import B, K1, tokenize
from indexer.store.common import (
    ARTICLE_COLUMNS, CHUNK_COLUMNS, KIND_COUNTS_SQL, PG_HNSW_EF_CONSTRUCTION, PG_HNSW_EF_SEARCH_MAX, PG_HNSW_M,
    SOURCE_STATS_FIELDS, SOURCE_STATS_SQL, article_from_row, article_not_found, chunk_from_row, counts,
    model_mismatch,
)
from indexer.store.embedded import FORMAT_VERSION, package_version
from indexer.store.postgres.schema import SCHEMA_VERSION, _schema_version, _vector_literal
from indexer.store.postgres.url import StoreUrl, _pool
from indexer.store.protocols import Allowed, LexicalTerms, Store
from indexer.types import Article, Chunk, Filters


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
