"""Backend fixtures: a real PostgreSQL + pgvector server for the session, and searchers on both backends.

The server is the `pgserver` package's PostgreSQL 16 with pgvector, started
in a temporary directory (Unix socket only) and stopped at the end of the session.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from urllib.parse import urlsplit, urlunsplit

import pytest

from helpers import NEWS_PAGE


BACKENDS = ("embedded", "postgres")


class PgServer:
    """A private PostgreSQL server; `database()` makes a fresh empty database and returns its URL."""

    def __init__(self) -> None:
        import pgserver

        # A short path: the server's Unix socket path must stay under ~100 bytes.
        self.directory = tempfile.mkdtemp(prefix="newsqa-pg-")
        self.server = pgserver.get_server(self.directory, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{secrets.token_hex(4)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return urlunsplit(urlsplit(self.url)._replace(path="/" + name))

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    server = PgServer()
    yield server
    server.stop()


@pytest.fixture()
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server (the schema is made by the first write)."""
    return pg_server.database()


@pytest.fixture(scope="session")
def pg_news_url(pg_server, embedder) -> str:
    """A PostgreSQL store holding the shipped news page (read-only use)."""
    from indexer.ingest.targets import index_into_store

    url = pg_server.database("news")
    summary = index_into_store([NEWS_PAGE], url, embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    return url


@pytest.fixture(scope="session")
def pg_news_index(pg_news_url, embedder):
    from indexer.store.backends import open_store

    index = open_store(pg_news_url, model=embedder.name)
    yield index
    index.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def backend_searcher(request, backend, embedder):
    """A Searcher over the news page on the embedded index, then on PostgreSQL."""
    from indexer.query.search import Searcher

    index = request.getfixturevalue("news_index" if backend == "embedded" else "pg_news_index")
    return Searcher(index, embedder)


@pytest.fixture(scope="session")
def both_searchers(searcher, pg_news_index, embedder):
    """(embedded, postgres) searchers over the same corpus, to compare result by result."""
    from indexer.query.search import Searcher

    return searcher, Searcher(pg_news_index, embedder)
