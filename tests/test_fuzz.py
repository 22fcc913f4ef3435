"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no 500s, one error shape, and every
response conforms to the served schema (documented status, content type, body schema, headers).

Requests go over real HTTP to a real uvicorn server running the real app (real
model, real index), with an API key and an admin key set so the guarded paths
are exercised too. The default run keeps the example count modest; the slow
run (`make test-slow`) sends many more. `test_every_documented_error_conforms`
provokes each error status on purpose (401, 403, 404, 413, 429, 503 are rare
in fuzzing) and validates those responses against the schema too.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import LiveServer, copy_tree, free_port


KEYS = {"Authorization": "Bearer fuzz-admin"}


@pytest.fixture(scope="module")
def live_url(news_index_dir, embedder, tmp_path_factory):
    from service.app import ServiceSettings

    # A copy: POST /v1/articles writes to the index, and the session's index is shared read-only.
    index_dir = copy_tree(news_index_dir, tmp_path_factory.mktemp("fuzz") / "index")
    # The admin key is also the API key here, so every route (reload included) is reachable.
    service = ServiceSettings(index_dir=index_dir, port=free_port(), api_key="fuzz-admin",
                              reload_interval=0)
    with LiveServer(service, embedder) as server:
        yield server.url


def openapi_document() -> dict:
    """The schema the service serves at /schema/openapi.json (made without loading model or index)."""
    from service.app import ServiceSettings, create_app

    return create_app(ServiceSettings()).openapi_schema.to_schema()


# Loaded at collection time: schemathesis' fixture-based loader does not run under pytest 9.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_fuzzed_schema_is_the_served_one(live_url):
    import httpx

    served = httpx.get(f"{live_url}/schema/openapi.json", headers=KEYS).json()
    assert served == openapi_document()


def one_error_shape(ctx, response, case) -> bool | None:
    """Every 4xx/5xx answer is `{"error": {"code": str, "message": str}}`, never a traceback."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["message"], body
    assert "Traceback" not in response.text
    return True


# What the schema promises about responses; auth and negative-data checks are left out on purpose
# (the server's key is optional configuration, and q="  " is a documented 400, not a schema violation).
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance,
               response_headers_conformance]


def check(case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=KEYS, timeout=60,
                           checks=[not_a_server_error, one_error_shape, *CONFORMANCE])


def conforms(method: str, path: str, response) -> None:
    """`response` (real, over HTTP) has a status the schema documents for the route, and a body that
    validates against the documented schema of that status."""
    operation = schema[path][method]
    assert str(response.status_code) in operation.definition.raw["responses"], (method, path, response.status_code)
    operation.validate_response(response)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body


def test_every_documented_error_conforms(live_url, news_index_dir, embedder):
    import httpx

    from service.app import ServiceSettings

    with httpx.Client(base_url=live_url, timeout=60) as http:
        article_id = http.get("/v1/search", params={"q": "Toktogul", "k": 1}, headers=KEYS).json()[
            "hits"][0]["citation"]["article_id"]
        calls = [
            ("GET", "/v1/search", dict(params={"q": "water", "k": 3, "offset": 2}, headers=KEYS), 200),
            ("GET", "/v1/search", dict(params={"q": "water", "group": "article"}, headers=KEYS), 200),
            ("GET", "/v1/search", dict(params={"q": "water", "date_from": "2031-01-01"}, headers=KEYS), 200),
            ("GET", "/v1/search", dict(params={"q": "water", "mode": "fuzzy"}, headers=KEYS), 400),
            ("GET", "/v1/search", dict(params={"q": "water", "colour": "red"}, headers=KEYS), 400),
            ("GET", "/v1/search", dict(params={"q": "water"}), 401),
            ("POST", "/v1/search", dict(json={"q": "water", "offset": 1}, headers=KEYS), 200),
            ("POST", "/v1/search", dict(content=b"x" * 1_100_000, headers={**KEYS, "Content-Type": "application/json"}),
             413),
            ("GET", "/v1/answer", dict(params={"q": "How many locomotives will Wabtec supply?"}, headers=KEYS), 200),
            ("GET", "/v1/answer", dict(params={"q": "x", "k": 0}, headers=KEYS), 400),
            ("GET", "/v1/articles/{article_id}", dict(headers=KEYS), 200),
            ("GET", "/v1/articles/{article_id}", dict(headers={**KEYS, "If-None-Match": "*"}), 304),
            ("GET", "/v1/articles/{missing}", dict(headers=KEYS), 404),
            ("GET", "/v1/sources", dict(headers=KEYS), 200),
            ("GET", "/v1/context", dict(params={"q": "water", "max_tokens": 200}, headers=KEYS), 200),
            ("POST", "/v1/context", dict(json={"q": "water", "max_tokens": 10}, headers=KEYS), 400),
            ("GET", "/v1/tools", dict(params={"format": "anthropic"}, headers=KEYS), 200),
            ("POST", "/v1/tools/{name}", dict(json={}, headers=KEYS), 200),
            ("POST", "/v1/tools/{nope}", dict(json={}, headers=KEYS), 404),
            ("GET", "/health", {}, 200),
            ("GET", "/ready", {}, 200),
            ("GET", "/v1/admin/status", dict(headers={"X-API-Key": "fuzz-admin"}), 200),
        ]
        values = {"{article_id}": article_id, "{missing}": "no-such-article", "{name}": "list_sources",
                  "{nope}": "drop_tables"}
        routes = {"{missing}": "{article_id}", "{nope}": "{name}"}
        for method, template, kwargs, status in calls:
            path = template
            for placeholder, value in values.items():
                path = path.replace(placeholder, value)
            for placeholder, route in routes.items():
                template = template.replace(placeholder, route)
            response = http.request(method, path, **kwargs)
            assert response.status_code == status, (method, path, response.text)
            conforms(method, template, response)

    # 403, 429 and 503 need servers configured to refuse: no admin key and one request per two
    # seconds; a time budget no search can meet.
    strict = ServiceSettings(index_dir=news_index_dir, port=free_port(), rate_limit=0.5, rate_burst=1,
                             reload_interval=0)
    with LiveServer(strict, embedder) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        conforms("POST", "/v1/admin/reload", expect(http.post("/v1/admin/reload"), 403))
        conforms("GET", "/v1/search", expect(http.get("/v1/search", params={"q": "water"}), 429))
    slow = ServiceSettings(index_dir=news_index_dir, port=free_port(), request_timeout=0.001, reload_interval=0)
    with LiveServer(slow, embedder) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        conforms("GET", "/v1/search", expect(http.get("/v1/search", params={"q": "a slow search"}), 503))


def expect(response, status: int):
    assert response.status_code == status, response.text
    return response


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_fuzz_api_no_server_errors(case, live_url):
    check(case, live_url)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_api_no_server_errors_long(case, live_url):
    check(case, live_url)
