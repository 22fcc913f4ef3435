"""The HTTP API through Litestar's test client: real app, real model, real FAISS index."""

from __future__ import annotations

import pytest

from helpers import TOKTOGUL, assert_error


def test_toktogul_ranks_its_article_first_with_exact_offsets(client):
    response = client.get("/v1/search", params={"q": "Toktogul water levels", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "Toktogul water levels"
    assert isinstance(body["took_ms"], float)
    top = body["hits"][0]
    assert top["rank"] == 1 and top["citation"]["title"] == TOKTOGUL
    citation = top["citation"]
    assert citation["date"] == "2025-12-16"
    assert set(citation) >= {"article_id", "title", "date", "source", "url", "section", "start", "end"}
    article = client.get(f"/v1/articles/{citation['article_id']}").json()
    assert article["text"][citation["start"]:citation["end"]] == top["text"]
    assert [h["rank"] for h in body["hits"]] == list(range(1, len(body["hits"]) + 1))
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_post_search_matches_get(client):
    got = client.get("/v1/search", params={"q": "locomotive deal", "k": 3}).json()
    posted = client.post("/v1/search", json={"q": "locomotive deal", "k": 3}).json()
    assert [h["citation"] for h in got["hits"]] == [h["citation"] for h in posted["hits"]]
    assert got["hits"][0]["citation"]["title"].startswith("Trump and Tokayev")


def test_article_endpoint_returns_sections(client):
    hit = client.get("/v1/search", params={"q": "Wabtec Evolution Series locomotives", "k": 1}).json()["hits"][0]
    article = client.get(f"/v1/articles/{hit['citation']['article_id']}").json()
    assert article["title"].startswith("Trump and Tokayev")
    assert [s["title"] for s in article["sections"]][1:] == [
        "What Trump and Tokayev said", "Why It Matters: Unlocking Regional Corridors to the West", "The Bottom Line"]
    assert article["date"] == "2025-12-16"


def test_health_reports_the_loaded_index(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"] == "all-MiniLM-L6-v2"
    assert body["articles"] == 6 and body["records"] == 1 and body["chunks"] > 6


def test_openapi_schema_is_served(client):
    schema = client.get("/schema/openapi.json").json()
    assert "/v1/search" in schema["paths"] and "/v1/articles/{article_id}" in schema["paths"]


@pytest.mark.parametrize("params,code", [
    ({"q": ""}, "empty_query"),
    ({"q": "   \t "}, "empty_query"),
    ({}, "empty_query"),
    ({"q": "x" * 1001}, "query_too_long"),
    ({"q": "water", "k": 0}, "invalid_k"),
    ({"q": "water", "k": 101}, "invalid_k"),
    ({"q": "water", "k": "ten"}, "invalid_parameter"),
    ({"q": "water", "mode": "fuzzy"}, "invalid_mode"),
    ({"q": "water", "date_from": "16/12/2025"}, "invalid_date"),
])
def test_bad_search_input_is_a_400_with_one_error_shape(client, params, code):
    error = assert_error(client.get("/v1/search", params=params), 400, code)
    if code == "query_too_long":
        assert "1001" in error["message"] and "1000" in error["message"]
    if code == "invalid_k":
        assert "1..100" in error["message"]


def test_bad_post_bodies(client):
    assert_error(client.post("/v1/search", json={"q": " "}), 400, "empty_query")
    assert_error(client.post("/v1/search", json={"k": 3}), 400, "invalid_parameter")
    assert_error(client.post("/v1/search", content=b"{oops", headers={"content-type": "application/json"}), 400, "invalid_request")


def test_unknown_article_and_route(client):
    error = assert_error(client.get("/v1/articles/does-not-exist"), 404, "not_found")
    assert "does-not-exist" in error["message"]
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/search?q=Toktogul+water+levels&k=3", None),
    ("POST", "/v1/search", {"q": "Toktogul water levels", "k": 3}),
    ("GET", "/v1/context?q=Toktogul+water+levels&max_tokens=200", None),
    ("POST", "/v1/context", {"q": "Toktogul water levels", "max_tokens": 200}),
])
def test_a_search_request_takes_one_worker_thread_hop(client, monkeypatch, method, path, body):
    """Each hop costs a context switch and CPU; a search needs one. Litestar 2 wrapped a GET handler
    that shares its path with a POST twice (a hop that only made a coroutine, then the work), and
    ended the searcher lease on a worker thread: three hops per GET search under load."""
    import litestar.concurrency

    hops = []
    real = litestar.concurrency._run_sync_asyncio

    async def counting(fn, *args, **kwargs):
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(litestar.concurrency, "_run_sync_asyncio", counting)
    response = client.request(method, path, json=body)
    assert response.status_code == 200, response.text
    assert len(hops) == 1, hops


def test_no_route_handler_is_offloaded_twice(client):
    """The structural form of the check above, for every route (a new GET/POST pair included)."""
    from litestar.utils.sync import AsyncCallable

    twice = [(sorted(h.http_methods), route.path) for route in client.app.routes
             for h in getattr(route, "route_handlers", ())
             if isinstance(h.fn, AsyncCallable) and isinstance(h.fn.func, AsyncCallable)]
    assert twice == []
