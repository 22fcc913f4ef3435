"""The PostgreSQL schema: its migrations (applied by `PgWriter`, version in `newsqa_schema`) and data forms.

    articles     one row per article (the same fields as the embedded SQLite table)
    chunks       passages with `embedding vector(D)` (HNSW index, vector_cosine_ops),
                 `tsv tsvector` ('english' config, GIN index) and `lex_len` (BM25 length)
    postings     (term, chunk_id, tf, dl): the BM25 terms of each passage, tokenized exactly as
                 the embedded backend tokenizes them (bm25s, Snowball stemmer, English stop words)
    newsqa_meta  model, dimension, chunking settings, last write time
    newsqa_stats passage count and total BM25 length, kept by the writers in their transactions
"""

from __future__ import annotations

import numpy as np

SCHEMA_VERSION = 2
# Serialises schema creation/migration between concurrent writers (an arbitrary fixed key).
_MIGRATION_LOCK = 7_244_310_551

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


def _schema_version(conn) -> int | None:
    row = conn.execute("SELECT to_regclass('newsqa_schema')").fetchone()
    if row[0] is None:
        return None
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM newsqa_schema").fetchone()[0]


def _vector_literal(vector: np.ndarray) -> str:
    # pgvector's text form; repr of a float32 widened to float64 is exact, so nothing is rounded.
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"
