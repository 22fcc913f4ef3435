"""Query time: hybrid search with fusion and highlights, cited answers, token-budgeted context.

May import: the shared core and `indexer.store` (through its read interface). Never `indexer.ingest`,
`indexer.evaluate` or `service`.
"""
