"""newsqa's core: everything below the service, in four layers that read top-down.

- `indexer.ingest`: files and records in, articles and passages out, written to a store.
- `indexer.store`: where passages, vectors and postings live (embedded directory or PostgreSQL).
- `indexer.query`: search, fusion, highlights, answers and context over a store.
- `indexer.evaluate`: benchmark and question-set harnesses over the layers above.

Shared by all of them, at this level: `types` (small immutable types), `errors` (domain errors),
`settings` (environment settings, each declared once),
`embed` (the sentence model), `sentences`, `tokens` and `minhash` (near-duplicate signatures).
These import nothing from the layers.
"""
