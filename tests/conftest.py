"""Shared fixtures: the real model, a real index of the shipped corpus, and the test client; constants and helpers are in helpers.py."""

from __future__ import annotations

pytest_plugins = ["backends"]

import os
from pathlib import Path

import pytest

from helpers import NEWS_PAGE

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder():
    from indexer.embed import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def news_index_dir(tmp_path_factory, embedder) -> Path:
    """A real index of the shipped data/ folder, built once per test session (read-only use)."""
    from indexer.ingest.build import build_index

    path = tmp_path_factory.mktemp("news") / "index"
    summary = build_index([NEWS_PAGE], path, embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    return path


@pytest.fixture(scope="session")
def news_index(news_index_dir, embedder):
    from indexer.store.embedded import open_index

    index = open_index(news_index_dir, model=embedder.name)
    yield index
    index.close()


@pytest.fixture(scope="session")
def searcher(news_index, embedder):
    from indexer.query.search import Searcher

    return Searcher(news_index, embedder)


@pytest.fixture(scope="session")
def client(news_index_dir, embedder):
    """Litestar's test client over the real app (real model, real FAISS index)."""
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(index_dir=news_index_dir), embedder=embedder)
    with TestClient(app=app) as test_client:
        yield test_client
