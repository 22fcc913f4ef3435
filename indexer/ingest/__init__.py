"""Ingest: read sources, split dumps into articles, dedupe, chunk, embed and write to a store.

May import: the shared core (`indexer.types`, `errors`, `embed`, `sentences`, `tokens`) and
`indexer.store` (to write). Never `indexer.query`, `indexer.evaluate` or `service`.
"""
