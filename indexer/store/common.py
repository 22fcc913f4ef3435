"""What the embedded and the PostgreSQL stores share: row mapping, stored forms, counts, messages, settings.

Both backends keep the same article and passage columns, serialise sections and
paragraphs the same way, index the same lexical text and report the same counts;
keeping those here means a change to one cannot silently skip the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from indexer.errors import IndexMismatch, NotFound
from indexer.types import Article, Chunk, Section

# Columns of `articles` read into an `Article`, in `article_from_row`'s order.
ARTICLE_COLUMNS = "article_id, title, date, source, url, kind, text, sections, paragraphs, origin"
# Columns of `chunks` read into a `Chunk`, in `chunk_from_row`'s order.
# Articles, undated articles and date range of each named source (SQLite and PostgreSQL alike).
SOURCE_STATS_FIELDS = ("name", "articles", "undated", "date_from", "date_to")
SOURCE_STATS_SQL = ("SELECT source, COUNT(*), COUNT(*) - COUNT(date), MIN(date), MAX(date) FROM articles "
                    "WHERE source IS NOT NULL GROUP BY source ORDER BY source")
CHUNK_COLUMNS = 'chunk_id, article_id, ordinal, text, start, "end", section, paragraph, tokens'
# Article counts by kind in one statement (SQLite >= 3.30 and PostgreSQL both read FILTER).
KIND_COUNTS_SQL = ("SELECT COUNT(*) FILTER (WHERE kind = 'news'), COUNT(*) FILTER (WHERE kind <> 'news') "
                   "FROM articles")

# HNSW graph settings. The embedded FAISS graph (above `EXACT_SEARCH_LIMIT` passages) uses
# M=32, efConstruction=80 and an efSearch that grows with the graph: with M=32,
# efConstruction=80, efSearch=128 gave recall@10 0.966 at 250,000 synthetic passages but
# 0.878 at 1,000,000; efSearch proportional to the size (512 at 1M) gave 0.967 there, at
# about 1.4 ms per single-thread query (bench/million.py).
FAISS_HNSW_M = 32
FAISS_HNSW_EF_CONSTRUCTION = 80
FAISS_HNSW_EF_SEARCH_MIN = 128
FAISS_HNSW_EF_SEARCH_PER = 250_000  # passages per FAISS_HNSW_EF_SEARCH_MIN of search breadth
FAISS_HNSW_EF_SEARCH_MAX = 2048
# pgvector's HNSW index (its defaults); ef_search is raised to the requested depth when larger.
PG_HNSW_M = 16
PG_HNSW_EF_CONSTRUCTION = 64
PG_HNSW_EF_SEARCH = 200
# pgvector refuses a larger ef_search.
PG_HNSW_EF_SEARCH_MAX = 1000


def faiss_ef_search(passages: int) -> int:
    """The FAISS graph's search breadth for `passages` vectors (stored in the file, so the service uses it)."""
    per = FAISS_HNSW_EF_SEARCH_MIN * passages // FAISS_HNSW_EF_SEARCH_PER
    return int(min(max(FAISS_HNSW_EF_SEARCH_MIN, per), FAISS_HNSW_EF_SEARCH_MAX))


def _decoded(value: Any) -> Any:
    # SQLite stores JSON as text; psycopg hands jsonb back decoded.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def article_from_row(row: Sequence[Any]) -> Article:
    """An `Article` from a row of `ARTICLE_COLUMNS` (sections and paragraphs as JSON text or decoded)."""
    return Article(
        article_id=row[0], title=row[1], date=row[2], source=row[3], url=row[4], kind=row[5], text=row[6],
        sections=tuple(Section(*s) for s in _decoded(row[7])),
        paragraphs=tuple(tuple(p) for p in _decoded(row[8])),
        origin=row[9],
        lang=row[10] if len(row) > 10 else None,  # an optional trailing `lang` column
    )


def chunk_from_row(row: Sequence[Any]) -> Chunk:
    """A `Chunk` from a row of `CHUNK_COLUMNS`."""
    return Chunk(chunk_id=row[0], article_id=row[1], ordinal=row[2], text=row[3], start=row[4], end=row[5],
                 section=row[6], paragraph=row[7], tokens=row[8])


def sections_json(article: Article) -> str:
    """The stored form of `article.sections`: a JSON list of each section's field values."""
    return json.dumps([list(asdict(s).values()) for s in article.sections])


def paragraphs_json(article: Article) -> str:
    """The stored form of `article.paragraphs`: a JSON list of [start, end] pairs."""
    return json.dumps(article.paragraphs)


def lexical_text(title: str, section: str | None, text: str) -> str:
    """What a passage's BM25 terms are taken from, in both backends: title, section and text."""
    return " ".join(filter(None, (title, section, text)))


def counts(news: int, records: int, chunks: int) -> dict[str, int]:
    """The `counts` of a store: news articles, other records, passages."""
    return {"articles": int(news), "records": int(records), "chunks": int(chunks)}


def article_not_found(article_id: str) -> NotFound:
    return NotFound(f"no article with id {article_id!r}: ids come from search results (citation.article_id)")


def model_mismatch(store: str, built: object, wanted: str, rebuild: str) -> IndexMismatch:
    """`store` (e.g. "index at DIR") was built with model `built` but queries are embedded with `wanted`."""
    return IndexMismatch(f"{store} was built with model {built!r}, but this service embeds queries with "
                         f"{wanted!r}: rebuild it with `{rebuild}`")
