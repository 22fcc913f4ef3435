"""The declared storage interfaces: `Store` (what query time reads) and `StoreWriter` (what ingest writes).

Two backends implement both, subclassing them explicitly so mypy checks every
signature: `indexer.store.embedded` (`Index` reads a versioned directory,
`IndexDraft` writes the next version) and `indexer.store.postgres` (`PgIndex`,
`PgWriter`). Query and service code type against these Protocols and never
reach past them into FAISS, SQLite or psycopg.

Passages are named by chunk id (int) everywhere; scores are floats, higher is
better, and equal for the same corpus on either backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np

from indexer.types import Article, Chunk, Filters

# Chunk ids that pass a query's filters (from `Store.allowed_chunks`), or None for no filters.
# Resolved once per query, so the dense and the lexical leg do not each run the filter.
Allowed: TypeAlias = np.ndarray | None


@dataclass(frozen=True)
class PendingArticle:
    """An article ready to write: its chunks, their vectors, and its signatures.

    Chunk ids are numbered from 0 per article; each writer assigns real ids.
    """

    article: Article
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray
    content_hash: str
    minhash: np.ndarray


@dataclass(frozen=True)
class LexicalTerms:
    """A query prepared for one store's BM25 (`Store.lexical_terms`): hand it back to that store's
    `lexical_search` and `lexical_scores`, so the query's term statistics are looked up once."""

    query: str
    # The backend's own form (BM25 scores of every passage, or the terms' weights); opaque to callers.
    prepared: Any


class Store(Protocol):
    """An opened store, read-only: articles, passages, both retrieval legs, facts. Thread-safe."""

    @property
    def version(self) -> str:
        """Names what is served; changes whenever the content does."""
        ...

    @property
    def live(self) -> bool:
        """True when every read sees the last committed write (nothing to reload); False for a
        fixed version that a newer one replaces."""
        ...

    @property
    def manifest(self) -> dict[str, Any]:
        """Model, dimension, chunking settings, counts, vector index, build time."""
        ...

    @property
    def counts(self) -> dict[str, int]:
        """{"articles": news articles, "records": other records, "chunks": passages}."""
        ...

    def close(self) -> None: ...

    # --- articles and passages ---

    def article(self, article_id: str) -> Article:
        """The article, or NotFound naming the id."""
        ...

    def articles(self, article_ids: Iterable[str]) -> dict[str, Article]:
        """The articles that exist among `article_ids`, by id."""
        ...

    def list_articles(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """A page of article summaries (article_id, title, date, source, url, kind), newest first."""
        ...

    def sources(self) -> list[str]:
        """Every article source, sorted."""
        ...

    def article_dates(self, article_ids: Iterable[str]) -> dict[str, str | None]:
        """The date (ISO `YYYY-MM-DD`, or None when undated) of each of `article_ids` the store holds."""
        ...

    def newest_date(self) -> str | None:
        """The latest article date in the store (None when no article is dated)."""
        ...

    def source_stats(self) -> list[dict]:
        """Per source: `name`, `articles`, `undated` (articles without a date), `date_from`, `date_to`."""
        ...

    def signatures(self, article_ids: Iterable[str] | None = None) -> Iterable[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of every article, or of `article_ids`."""
        ...

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, Chunk]:
        """The passages that exist among `chunk_ids`, by id."""
        ...

    def article_chunks(self, article_id: str) -> list[Chunk]:
        """The article's passages in order."""
        ...

    def owners(self, chunk_ids: Sequence[int]) -> dict[int, str]:
        """The article id of each passage that exists among `chunk_ids`, without loading the passages."""
        ...

    # --- retrieval ---

    def allowed_chunks(self, filters: Filters) -> Allowed:
        """The chunk ids that pass `filters`, or None when there are no filters."""
        ...

    def dense_search(self, vector: np.ndarray, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        """Top `k` (chunk id, cosine) for the unit query `vector`, best first, only among `allowed`."""
        ...

    def dense_scores(self, chunk_ids: Sequence[int], vector: np.ndarray) -> dict[int, float]:
        """Exact cosine of `vector` with each given passage's stored vector."""
        ...

    def lexical_terms(self, query: str) -> LexicalTerms:
        """`query` prepared for `lexical_search` and `lexical_scores`."""
        ...

    def lexical_search(self, terms: LexicalTerms | str, k: int, allowed: Allowed = None) -> list[tuple[int, float]]:
        """Top `k` (chunk id, BM25) for the query, best first, only among `allowed`; no zero scores."""
        ...

    def lexical_scores(self, chunk_ids: Sequence[int], terms: LexicalTerms) -> dict[int, float]:
        """Exact BM25 score of each given passage (0.0 when it shares no term with the query)."""
        ...

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """BM25 idf of each stemmed token; a token in no passage gets the largest idf."""
        ...

    # --- facts for metrics ---

    def vector_count(self) -> int:
        """Vectors in the dense index."""
        ...

    def disk_bytes(self) -> int:
        """Bytes of local files the store serves from (0 when it has none, e.g. a database server)."""
        ...


class StoreWriter(Protocol):
    """Writes articles into a store. What `write` and `remove` do becomes visible to readers when
    the writer's unit of work commits (`IndexDraft.commit()`; each call for `PgWriter`)."""

    def hashes(self) -> dict[str, str]:
        """Content hash of every stored article, by id (unchanged articles are skipped)."""
        ...

    def signatures(self) -> Iterable[tuple[str, np.ndarray]]:
        """(article id, MinHash signature) of every stored article, for near-duplicate checks."""
        ...

    def has_article(self, article_id: str) -> bool: ...

    def write(self, pending: Sequence[PendingArticle]) -> int:
        """Store `pending` (each replacing a stored article with its id, chunk ids assigned by the
        writer); return how many replaced one."""
        ...

    def remove(self, article_ids: Sequence[str]) -> list[str]:
        """Delete articles with their passages and vectors; return the ids that were present."""
        ...
