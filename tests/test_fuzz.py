"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no 500s, one error shape.

Requests go over real HTTP to a real uvicorn server running the real app (real
model, real index), with an API key and an admin key set so the guarded paths
are exercised too. The default run keeps the example count modest; the slow
run (`make test-slow`) sends many more.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from conftest import copy_tree
from test_updates import LiveServer, free_port

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


def check(case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=KEYS, checks=[not_a_server_error, one_error_shape], timeout=60)


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
