"""Writing a PostgreSQL store: `PgWriter` (a `StoreWriter`), the indexing and delete commands, shards.

Writes are transactional per batch: an article, its chunks, vectors and postings commit together
or not at all, and a changed article is replaced inside that same transaction. Several writers
(`newsqa index --store URL --shard i/n`) may write to one database at once: chunk ids come from a
sequence, and each article id belongs to exactly one shard.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone

import numpy as np

from indexer.errors import IndexMismatch, IndexMissing, InvalidParameter
from indexer.store.bm25 import tokenize
from indexer.store.common import PG_HNSW_EF_CONSTRUCTION, PG_HNSW_M, lexical_text, paragraphs_json, sections_json
from indexer.store.postgres.schema import (SCHEMA_VERSION, _MIGRATION_LOCK, _MIGRATIONS, _schema_version,
                                           _vector_literal)
from indexer.store.postgres.url import StoreUrl, _connect_error, _psycopg
from indexer.store.protocols import PendingArticle, StoreWriter

# Passages inserted per transaction by the indexer (articles never split across two).
WRITE_BATCH_CHUNKS = 512


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
