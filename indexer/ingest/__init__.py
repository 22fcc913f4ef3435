"""Ingest: read sources, split dumps into articles, dedupe, chunk, embed and write to a store.

May import: the shared core (`indexer.types`, `errors`, `embed`, `sentences`, `tokens`, `minhash`)
and `indexer.store` (to write; `targets` picks the store an index run writes to). Never `indexer.query`, `indexer.evaluate` or `service`.
"""
