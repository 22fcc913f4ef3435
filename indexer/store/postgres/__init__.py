"""The PostgreSQL + pgvector backend: a `Store` (`PgIndex`) and a `StoreWriter` (`PgWriter`) on a database server.

Modules, each importing only those before it:

    url     store URLs (our options on the query string), the connection pool, connect errors
    schema  the tables and their migrations (applied by `PgWriter`, version in `newsqa_schema`)
    reader  `PgIndex` and its BM25 leg over the postings (`PgLexical`)
    writer  `PgWriter`, deletes, shards (the indexing pipeline into it is `indexer.ingest.targets`)

The names below are the backend's public surface; import them from here.
"""

from __future__ import annotations

from indexer.store.postgres.reader import LexicalQuery, PgIndex, PgLexical, open_pg_index
from indexer.store.postgres.schema import SCHEMA_VERSION
from indexer.store.postgres.url import POOL_SIZE, StoreUrl, is_store_url
from indexer.store.postgres.writer import WRITE_BATCH_CHUNKS, PgWriter, delete_from_store, parse_shard, shard_of

__all__ = [
    "POOL_SIZE", "SCHEMA_VERSION", "WRITE_BATCH_CHUNKS", "LexicalQuery", "PgIndex", "PgLexical", "PgWriter",
    "StoreUrl", "delete_from_store", "is_store_url", "open_pg_index", "parse_shard", "shard_of",
]
