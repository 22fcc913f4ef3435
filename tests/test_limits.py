"""Limits and safety over the real app: API keys, rate limit, body and parameter limits,
time budget, /ready and /metrics."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import assert_error


@pytest.fixture(scope="module")
def make_client(news_index_dir, embedder):
    """A factory of test clients over the real app with the given settings; all closed at the end."""
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    opened = []

    def make(**settings):
        client = TestClient(app=create_app(ServiceSettings(index_dir=news_index_dir, reload_interval=0, **settings),
                                           embedder=embedder))
        opened.append(client)
        return client.__enter__()

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """Parsed Prometheus text: (sample name, sorted labels) -> value (parsing proves the format is valid)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# --- API keys -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(make_client):
    return make_client(api_key="api-secret", admin_key="admin-secret")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"},
                                     {"Authorization": "api-secret"}, {"Authorization": "Basic api-secret"}])
def test_api_key_is_required_when_set(keyed, headers):
    response = keyed.get("/v1/search", params={"q": "Toktogul"}, headers=headers)
    error = assert_error(response, 401, "unauthorized")
    assert "Authorization: Bearer KEY" in error["message"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "api-secret" not in response.text


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer api-secret"}, {"X-API-Key": "api-secret"}])
def test_the_right_api_key_passes(keyed, headers):
    response = keyed.get("/v1/search", params={"q": "Toktogul"}, headers=headers)
    assert response.status_code == 200 and response.json()["hits"]
    assert keyed.post("/v1/search", json={"q": "Toktogul"}, headers=headers).status_code == 200


def test_probes_stay_open_and_everything_else_is_guarded(keyed):
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").status_code == 200
    for path in ("/metrics", "/schema/openapi.json", "/v1/articles/anything", "/v1/admin/status"):
        assert_error(keyed.get(path), 401, "unauthorized")


def test_admin_routes_need_the_admin_key(keyed, make_client):
    assert_error(keyed.post("/v1/admin/reload", headers={"X-API-Key": "api-secret"}), 401, "unauthorized")
    response = keyed.post("/v1/admin/reload", headers={"X-API-Key": "admin-secret"})
    assert response.status_code == 200 and response.json()["changed"] is False
    # Without any key configured the API is open but admin routes are refused, with the fix in the message.
    open_client = make_client()
    assert open_client.get("/v1/search", params={"q": "Toktogul"}).status_code == 200
    error = assert_error(open_client.post("/v1/admin/reload"), 403, "forbidden")
    assert "--admin-key" in error["message"]
    # With only an API key, that key opens the admin routes too.
    api_only = make_client(api_key="only-key")
    assert api_only.get("/v1/admin/status", headers={"X-API-Key": "only-key"}).status_code == 200


def test_api_key_from_the_environment(monkeypatch, news_index_dir):
    from service.app import ServiceSettings, settings_with_env

    monkeypatch.setenv("NEWSQA_API_KEY", "from-env")
    settings = settings_with_env(ServiceSettings(index_dir=news_index_dir))
    assert settings.api_key == "from-env" and settings.admin_key == ""
    assert settings_with_env(ServiceSettings(api_key="flag")).api_key == "flag", "the flag wins over the env"


# --- rate limit ---------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(make_client):
    client = make_client(rate_limit=1.0, rate_burst=3)
    statuses = [client.get("/v1/search", params={"q": "Toktogul", "mode": "lexical"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/v1/search", params={"q": "Toktogul", "mode": "lexical"})
    error = assert_error(response, 429, "rate_limited")
    assert "1 per second" in error["message"] and "retry after" in error["message"]
    assert int(response.headers["retry-after"]) >= 1
    assert client.get("/health").status_code == 200, "probes are never rate limited"
    time.sleep(1.1)
    assert client.get("/v1/search", params={"q": "Toktogul", "mode": "lexical"}).status_code == 200


def test_token_buckets_refill_per_client_and_forget_old_clients():
    from service.limits import TokenBuckets

    buckets = TokenBuckets(rate=2.0, burst=2, max_clients=2)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("b", now=0.0) == 0.0, "each client has its own bucket"
    assert buckets.take("a", now=0.5) == 0.0, "one token back after 1/rate seconds"
    assert buckets.take("a", now=0.5) == pytest.approx(0.5)
    buckets.take("c", now=0.5)
    assert len(buckets._buckets) == 2 and "b" not in buckets._buckets, "least recently seen client forgotten"


# --- bounded work ---------------------------------------------------------------------------------


def test_request_body_size_is_limited(make_client):
    client = make_client(max_body_bytes=2048)
    assert client.post("/v1/search", json={"q": "Toktogul " * 100}).status_code == 200
    error = assert_error(client.post("/v1/search", json={"q": "Toktogul " * 300}), 413, "body_too_large")
    assert error["message"]


@pytest.mark.parametrize("body,code", [
    ({"q": "x" * 1001}, "query_too_long"),
    ({"q": "water", "k": 101}, "invalid_k"),
    ({"q": "water", "k": -1}, "invalid_k"),
    ({"q": "water", "k": 10**12}, "invalid_k"),
    ({"q": "water", "mode": "all"}, "invalid_mode"),
    ({"q": "water", "unknown": 1}, "invalid_parameter"),
    ({"q": 5}, "invalid_parameter"),
])
def test_post_parameters_are_bounded(client, body, code):
    assert_error(client.post("/v1/search", json=body), 400, code)


def test_time_budget_answers_503_and_the_service_keeps_going(make_client):
    client = make_client(request_timeout=0.001)
    error = assert_error(client.get("/v1/search", params={"q": "Toktogul water levels", "k": 100}), 503, "timeout")
    assert "0.001 s" in error["message"]
    relaxed = make_client(request_timeout=30)
    assert relaxed.get("/v1/search", params={"q": "Toktogul water levels", "k": 100}).status_code == 200


# --- probes and metrics ----------------------------------------------------------------------------


def test_ready_reports_the_loaded_index(client):
    body = client.get("/ready").json()
    health = client.get("/health").json()
    assert body == {"status": "ready", "index": health["index"], "chunks": health["chunks"]}


def test_metrics_count_requests_latency_inference_and_index_size(make_client):
    client = make_client(api_key="m")
    headers = {"X-API-Key": "m"}
    for q in ("Toktogul", "locomotives", "water"):
        assert client.get("/v1/search", params={"q": q}, headers=headers).status_code == 200
    client.get("/v1/search", params={"q": "water"})  # 401, counted too
    article_id = client.get("/v1/search", params={"q": "Toktogul"}, headers=headers).json()["hits"][0]["citation"]["article_id"]
    client.get(f"/v1/articles/{article_id}", headers=headers)
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    search = (("method", "GET"), ("route", "/v1/search"))
    assert samples[("newsqa_http_requests_total", (*search, ("status", "200")))] == 4
    assert samples[("newsqa_http_requests_total", (*search, ("status", "401")))] == 1
    assert samples[("newsqa_http_request_duration_seconds_count", search)] == 5
    assert samples[("newsqa_http_request_duration_seconds_bucket", (("le", "+Inf"), *search))] == 5
    # One series per route template, not per article id.
    assert samples[("newsqa_http_requests_total", (("method", "GET"), ("route", "/v1/articles/{article_id}"),
                                                   ("status", "200")))] == 1
    # One model call per distinct query (the repeated one comes from the query cache); highlights
    # need no model call.
    assert samples[("newsqa_model_inference_seconds_count", ())] == 3
    assert samples[("newsqa_model_inference_texts_total", ())] == 3
    assert samples[("newsqa_model_inference_seconds_sum", ())] > 0
    health = client.get("/health").json()
    assert samples[("newsqa_index_items", (("kind", "chunks"),))] == health["chunks"]
    assert samples[("newsqa_index_items", (("kind", "articles"),))] == health["articles"]
    assert samples[("newsqa_index_vectors", ())] == health["chunks"]
    assert samples[("newsqa_index_disk_bytes", ())] > 10_000
    assert samples[("newsqa_index_info", (("model", "all-MiniLM-L6-v2"), ("vector_index", "IndexFlatIP"),
                                          ("version", health["index"])))] == 1


def test_each_app_has_its_own_registry(make_client):
    first, second = make_client(), make_client()
    first.get("/v1/search", params={"q": "Toktogul", "mode": "lexical"})
    samples = metric_samples(second.get("/metrics").text)
    assert not any(name == "newsqa_http_requests_total" and ("route", "/v1/search") in labels
                   for name, labels in samples)


@pytest.mark.slow
def test_query_latency_bench_short_mode(tmp_path, news_index_dir):
    """The CI run of bench/query_latency.py: a real `newsqa serve` process, zero failed requests."""
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "latency.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "query_latency.py"), "--short",
                           "--index", str(news_index_dir), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [level["clients"] for level in report["levels"]] == [1, 8]
    for level in report["levels"]:
        assert level["errors"] == 0 and level["requests"] >= 40
        assert 0 < level["p50_ms"] <= level["p99_ms"]
    assert report["server_rss_bytes"]["after_load"] > 0 and report["index_disk_bytes"] > 0
    assert {"embed_ms", "dense_ms", "lexical_ms", "total_ms"} <= set(report["breakdown_ms"])


@pytest.mark.slow
def test_load_test_short_mode_has_no_failures(tmp_path, news_index_dir):
    """The CI run of bench/load_test.py: mixed requests during index swaps, zero failed requests."""
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "load_test.py"), "--short",
                           "--index", str(news_index_dir), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["failures"] == 0 and report["requests"] > 0
    assert report["swaps"] and not any("error" in swap for swap in report["swaps"])


@pytest.mark.slow
def test_tail_bench_reports_the_ceiling_set_by_work_besides_the_model(tmp_path, news_index_dir):
    """bench/load_test.py --tail, short: model alone, 1 and N clients, and the same searches with every
    query vector cached, whose CPU per request bounds the throughput share any such service reaches."""
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = tmp_path / "tail.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "load_test.py"), "--tail", "--requests", "60",
                           "--clients", "2", "--index", str(news_index_dir), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    alone, without = report["model_alone"], report["without_model"]
    assert alone["queries_per_s"] > 0 and alone["cpu_ms_per_query"] > 0
    # Every timed step says how busy the rest of the machine was while it ran.
    assert all(step["other_processes_cores"] >= 0 for step in [alone, *report["levels"], without])
    assert [level["clients"] for level in report["levels"]] == [1, 2]
    assert without["errors"] == 0 and without["requests"] >= 60 and without["server_cpu_ms_per_request"] > 0
    # Without the model a request costs less server CPU than with it (the model is most of a search).
    assert without["server_cpu_ms_per_request"] < report["levels"][-1]["server_cpu_ms_per_request"]
    besides = without["server_cpu_ms_per_request"] + without["client_cpu_ms_per_request"]
    assert report["ceiling_over_model_alone"] == round(alone["cpu_ms_per_query"]
                                                       / (alone["cpu_ms_per_query"] + besides), 2)
