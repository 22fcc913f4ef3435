"""Storage: versioned embedded indexes of immutable segments (SQLite + FAISS + BM25 postings each) and
PostgreSQL + pgvector.

`backends.open_store` picks a backend from a directory or a `postgresql://` URL. Query code reaches a
store only through its read interface, never FAISS or SQL directly.

May import: the shared core (`indexer.types`, `errors`, `minhash`). Never `indexer.query`, `indexer.evaluate` or
`service`.
"""
