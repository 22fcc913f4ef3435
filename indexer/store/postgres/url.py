"""PostgreSQL store URLs and connections: our options on the URL, the connection pool, connect errors.

Our own options ride on the URL's query string and are removed before it reaches libpq:
`pool_size` (connections per process, default `POOL_SIZE`) and `ef_search` (HNSW search breadth).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from indexer.errors import IndexMissing, InvalidParameter, ResourceMissing
from indexer.store.common import PG_HNSW_EF_SEARCH, PG_HNSW_EF_SEARCH_MAX

# Connections each process keeps to one server (serve: about the number of worker threads).
POOL_SIZE = 8
_URL_OPTIONS = ("pool_size", "ef_search")


def is_store_url(value: str | os.PathLike | None) -> bool:
    """True for a PostgreSQL connection URL (postgresql:// or postgres://)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class StoreUrl:
    """A connection URL split into what libpq reads and our own options."""

    conninfo: str
    pool_size: int = POOL_SIZE
    ef_search: int = PG_HNSW_EF_SEARCH

    @classmethod
    def parse(cls, url: str) -> "StoreUrl":
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _URL_OPTIONS}
        rest = [(k, v) for k, v in query if k not in _URL_OPTIONS]
        values: dict[str, int] = {}
        for name, low, high, default in (("pool_size", 1, 1000, POOL_SIZE),
                                         ("ef_search", 1, PG_HNSW_EF_SEARCH_MAX, PG_HNSW_EF_SEARCH)):
            if name in ours:
                try:
                    value: int | None = int(ours[name])
                except ValueError:
                    value = None
                if value is not None:
                    values[name] = value
                if value is None or not low <= value <= high:
                    raise InvalidParameter(f"{name}={ours[name]!r} in the store URL is not a whole number in "
                                           f"{low}..{high}: e.g. ?{name}={default}",
                                           code="invalid_store_url")
        return cls(urlunsplit(parts._replace(query=urlencode(rest))), **values)

    @property
    def safe(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.conninfo)
        if parts.password:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.conninfo


def _psycopg():
    """The psycopg module, or a domain error saying how to install the backend's extra."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401  (checked here so the message covers both)
    except ImportError:
        raise ResourceMissing("the PostgreSQL backend needs psycopg and psycopg-pool: "
                              "pip install 'newsqa[postgres]'") from None
    return psycopg


def _connect_error(url: StoreUrl, exc: Exception) -> IndexMissing:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return IndexMissing(f"cannot connect to the PostgreSQL store {url.safe}: {first}; check the URL, "
                        "that the server runs and accepts this user", code="store_unreachable")


def _pool(url: StoreUrl, *, size: int):
    psycopg = _psycopg()
    from psycopg_pool import ConnectionPool

    def configure(conn) -> None:
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(url.ef_search)])

    # One direct connection first: a wrong URL fails at once with libpq's message (a pool would retry).
    try:
        psycopg.connect(url.conninfo, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise _connect_error(url, exc) from None
    pool = ConnectionPool(url.conninfo, min_size=1, max_size=max(size, 1), open=False,
                          kwargs={"autocommit": True}, configure=configure, name="newsqa")
    try:
        pool.open(wait=True, timeout=10)
    except Exception as exc:
        pool.close()
        raise _connect_error(url, exc) from None
    return pool
