"""What users expect when they wire the API in (issue 17): paging and totals, unknown parameters,
scores a client can threshold, filters that explain themselves, /v1/sources, CORS, compression,
ETags. Litestar's test client over the real app (real model, real FAISS index of data/)."""

from __future__ import annotations

import pytest

from helpers import assert_error


NONSENSE = "zxqv blorfle wibbleton quaggaroo"


def test_pages_of_a_search_follow_each_other_and_report_totals(client):
    whole = client.get("/v1/search", params={"q": "water", "k": 8}).json()
    first = client.get("/v1/search", params={"q": "water", "k": 4}).json()
    second = client.get("/v1/search", params={"q": "water", "k": 4, "offset": 4}).json()
    assert [h["citation"] for h in first["hits"] + second["hits"]] == [h["citation"] for h in whole["hits"]]
    assert [h["rank"] for h in second["hits"]] == [5, 6, 7, 8]
    assert second["offset"] == 4
    assert first["total"] == second["total"] == whole["total"] > 8
    assert first["more"] and second["more"]
    last = client.get("/v1/search", params={"q": "water", "k": 4, "offset": whole["total"] - 2}).json()
    assert len(last["hits"]) == 2 and last["more"] is False
    posted = client.post("/v1/search", json={"q": "water", "k": 4, "offset": 4}).json()
    assert [h["citation"] for h in posted["hits"]] == [h["citation"] for h in second["hits"]]


def test_grouped_search_pages_by_article(client):
    first = client.get("/v1/search", params={"q": "water", "k": 2, "group": "article"}).json()
    second = client.get("/v1/search", params={"q": "water", "k": 2, "group": "article", "offset": 2}).json()
    ids = [g["article_id"] for g in first["groups"] + second["groups"]]
    assert len(ids) == len(set(ids)) == 4
    assert first["total"] == second["total"] >= 4 and first["more"] is True


def test_paging_beyond_the_served_depth_is_a_clear_400(client):
    error = assert_error(client.get("/v1/search", params={"q": "water", "k": 10, "offset": 95}), 400,
                         "invalid_offset")
    assert "offset=95" in error["message"] and "100" in error["message"]
    assert_error(client.get("/v1/search", params={"q": "water", "offset": -1}), 400, "invalid_offset")


@pytest.mark.parametrize("path", ["/v1/search?q=water", "/v1/answer?q=water", "/v1/context?q=water",
                                  "/v1/sources", "/v1/tools", "/v1/articles/x"])
def test_an_unknown_query_parameter_is_a_400_that_names_it(client, path):
    error = assert_error(client.get(path + ("&" if "?" in path else "?") + "dat_from=2025-01-01"), 400,
                         "unknown_parameter")
    assert "'dat_from'" in error["message"]


def test_unknown_parameters_on_post_routes_and_the_page(client):
    error = assert_error(client.post("/v1/search?limit=3", json={"q": "water"}), 400, "unknown_parameter")
    assert "'limit'" in error["message"]
    error = assert_error(client.post("/v1/search", json={"q": "water", "limit": 3}), 400, "invalid_parameter")
    assert "limit" in error["message"]
    # Pages ignore unknown parameters: shared links carry tracking tags.
    assert client.get("/", params={"q": "water", "utm_source": "mail"}).status_code == 200


def test_relevance_is_comparable_across_queries(client):
    good = client.get("/v1/search", params={"q": "Toktogul reservoir water levels", "k": 3}).json()
    bad = client.get("/v1/search", params={"q": NONSENSE, "k": 3}).json()
    # The fused score is relative to the query: a nonsense query's top hit still scores high.
    assert bad["hits"][0]["score"] >= 0.5
    top_good, top_bad = good["hits"][0]["relevance"], bad["hits"][0]["relevance"]
    assert 0.0 <= top_bad < 0.2 < 0.7 < top_good <= 1.0
    assert top_good > 5 * top_bad
    grouped = client.get("/v1/search", params={"q": "Toktogul reservoir", "group": "article"}).json()
    assert grouped["groups"][0]["relevance"] == grouped["groups"][0]["hits"][0]["relevance"] > 0.5


def test_sources_list_counts_and_dates(client):
    response = client.get("/v1/sources")
    assert response.status_code == 200, response.text
    sources = response.json()
    assert isinstance(sources, list) and sources
    assert set(sources[0]) == {"name", "articles", "undated", "date_from", "date_to"}
    health = client.get("/health").json()
    assert sum(s["articles"] for s in sources) <= health["articles"] + health["records"]
    assert sources[0]["date_from"] <= sources[0]["date_to"]


def test_source_filter_ignores_case(client):
    name = client.get("/v1/sources").json()[0]["name"]
    exact = client.get("/v1/search", params={"q": "water", "source": name}).json()
    shouted = client.get("/v1/search", params={"q": "water", "source": name.upper()}).json()
    assert exact["hits"] and [h["citation"] for h in shouted["hits"]] == [h["citation"] for h in exact["hits"]]


def test_an_empty_result_names_the_filter_that_emptied_it(client):
    body = client.get("/v1/search", params={"q": "water", "date_from": "2030-01-01"}).json()
    assert body["hits"] == [] and body["total"] == 0 and body["more"] is False
    assert "date_from=2030-01-01 matches no article" in body["reason"] and "2025-12-16" in body["reason"]
    body = client.get("/v1/search", params={"q": "water", "source": "no such wire"}).json()
    assert "source='no such wire' matches no article" in body["reason"]
    body = client.get("/v1/answer", params={"q": "water levels?", "date_to": "2001-01-01"}).json()
    assert body["answer"] is None and "date_to=2001-01-01 matches no article" in body["reason"]
    # Results, or a query the filters do not explain: no reason.
    assert client.get("/v1/search", params={"q": "water"}).json()["reason"] is None


def test_cors_is_off_by_default(client):
    response = client.get("/v1/sources", headers={"Origin": "https://app.example.org"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_from_settings(news_index_dir, embedder):
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    settings = ServiceSettings(index_dir=news_index_dir, cors_origin=("https://app.example.org",), api_key="k")
    key = {"X-API-Key": "k"}
    with TestClient(app=create_app(settings, embedder=embedder)) as cors_client:
        allowed = cors_client.get("/v1/sources", headers={"Origin": "https://app.example.org", **key})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.org"
        other = cors_client.get("/v1/sources", headers={"Origin": "https://evil.example", **key})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
        # The browser's preflight carries no key: it is answered before the key check.
        preflight = cors_client.options("/v1/search", headers={
            "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type"})
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.org"
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()


def test_cors_origin_flag_repeats():
    from service.cli import build_parser

    args = build_parser().parse_args(["serve", "--cors-origin", "https://a.example", "--cors-origin",
                                      "https://b.example"])
    assert args.cors_origin == ["https://a.example", "https://b.example"]
    assert build_parser().parse_args(["serve"]).cors_origin is None


@pytest.mark.parametrize("path", ["/v1/search?q=water&k=10", "/?q=water"])
def test_json_and_html_are_gzipped(client, path):
    response = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    small = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # too small to be worth it


def article_id(client) -> str:
    return client.get("/v1/search", params={"q": "Toktogul", "k": 1}).json()["hits"][0]["citation"]["article_id"]


@pytest.mark.parametrize("kind", ["api", "page", "static"])
def test_etag_revalidates_with_a_304(client, kind):
    path = {"api": f"/v1/articles/{article_id(client)}", "page": f"/articles/{article_id(client)}?hl=0-20",
            "static": "/static/style.css"}[kind]
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_article_etag_is_keyed_by_index_version():
    from service.conventions import article_etag

    assert article_etag("v1", "a") != article_etag("v2", "a") != article_etag("v2", "b")


def test_a_304_is_never_sent_for_a_missing_article(client):
    assert_error(client.get("/v1/articles/nope", headers={"If-None-Match": "*"}), 404, "not_found")


def test_the_search_page_links_to_more_results(client):
    import re

    page = client.get("/", params={"q": "water", "k": "2"}).text
    assert page.count('class="result"') == 2
    link = re.search(r'<a href="([^"]+)" rel="next">More results</a>', page)
    assert link, page
    more = client.get(link.group(1).replace("&amp;", "&")).text
    assert more.count('class="result"') > 2
    everything = client.get("/", params={"q": "water", "k": "100"}).text
    assert 'rel="next"' not in everything


def test_the_search_page_says_which_filter_emptied_it(client):
    page = client.get("/", params={"q": "water", "date_from": "2030-01-01"}).text
    assert "date_from=2030-01-01 matches no article" in page


def test_both_stores_list_sources_and_match_them_in_any_case(both_searchers):
    """The SQLite+FAISS index and the PostgreSQL store agree on /v1/sources and case-blind source filters."""
    from indexer.types import Filters

    embedded, postgres = both_searchers
    stats = embedded.index.source_stats()
    assert stats == postgres.index.source_stats()
    assert stats[0]["name"] == "central-asia-news-2025-12-16" and stats[0]["articles"] >= 6
    for searcher in both_searchers:
        exact = searcher.index.allowed_chunks(Filters(source=stats[0]["name"]))
        shouted = searcher.index.allowed_chunks(Filters(source=stats[0]["name"].upper()))
        assert len(exact) > 0 and sorted(exact) == sorted(shouted)


def test_the_served_schema_documents_parameters_errors_and_keys(client):
    schema = client.get("/schema/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    assert schema["components"]["securitySchemes"]["apiKeyHeader"]["name"] == "X-API-Key"
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                assert parameter.get("description"), (method, path, parameter["name"])
            errors = {s: r for s, r in operation["responses"].items() if s >= "400"}
            assert "503" in errors, (method, path)
            for status, response in errors.items():
                assert response["content"]["application/json"]["schema"] == error_ref, (method, path, status)
            if path not in ("/health", "/ready"):
                assert {"400", "401", "429", "503"} <= set(errors), (method, path)
            if method == "post":
                assert "413" in errors, (method, path)
    search = {p["name"]: p for p in schema["paths"]["/v1/search"]["get"]["parameters"]}
    assert search["q"]["required"] is True
    assert search["mode"]["schema"]["enum"] == ["hybrid", "dense", "lexical"]
    assert search["group"]["schema"]["enum"] == ["passage", "article"]
    assert search["date_from"]["schema"]["format"] == "date"
    assert "404" in schema["paths"]["/v1/articles/{article_id}"]["get"]["responses"]
    assert "403" in schema["paths"]["/v1/admin/reload"]["post"]["responses"]
    assert schema["paths"]["/health"]["get"]["security"] == [{}]
