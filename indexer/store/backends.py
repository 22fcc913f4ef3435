"""Choosing the storage backend: the embedded index directory, or a PostgreSQL store.

Everything that opens an index for reading goes through `open_store`; a
`postgresql://` (or `postgres://`) URL selects `indexer.store.postgres`, anything
else is an embedded index directory (`indexer.store.embedded`). `NEWSQA_STORE` names
the store when no option does.
"""

from __future__ import annotations

import os
from pathlib import Path

from indexer.settings import INDEX, STORE
from indexer.store.postgres import is_store_url
from indexer.store.protocols import Store


def default_index_dir() -> Path:
    """The embedded index directory when no option names one: $NEWSQA_INDEX, else ./index."""
    return Path(INDEX.from_env() or INDEX.default)


def store_target(store: str | None, index_dir: str | os.PathLike) -> str | os.PathLike:
    """What to open: `store` if given, else $NEWSQA_STORE, else the index directory."""
    return store or STORE.from_env() or index_dir


def open_store(target: str | os.PathLike, *, model: str | None = None, read_store: str | None = None) -> Store:
    """An open store (`indexer.store.protocols.Store`).

    `target` is an index directory or a PostgreSQL URL; `read_store` (a
    replica's URL) sends the PostgreSQL store's reads there.
    """
    if is_store_url(str(target)):
        from indexer.store.postgres import open_pg_index

        return open_pg_index(str(target), model=model, read_url=read_store or None)
    from indexer.store.embedded import open_index

    return open_index(target, model=model)
