"""LLM endpoints over HTTP (real app, model and index): /v1/context, /v1/tools, POST /v1/tools/{name}."""

from __future__ import annotations

import json
import re

import pytest
from jsonschema import Draft202012Validator

from indexer.tokens import ENCODINGS, count_tokens

from helpers import TOKTOGUL, assert_error

CONTEXT_KEYS = {"query", "context", "citations", "tokens", "max_tokens", "encoding", "truncated"}
CITATION_KEYS = {"n", "article_id", "title", "date", "source", "url", "section", "start", "end", "paragraph"}


def check_context_body(body: dict, max_tokens: int, encoding: str) -> None:
    assert body["tokens"] == count_tokens(body["context"], encoding) <= max_tokens
    assert body["max_tokens"] == max_tokens
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\] ", body["context"], flags=re.M)]
    assert numbers == [c["n"] for c in body["citations"]] == list(range(1, len(body["citations"]) + 1))
    for block, citation in zip(body["context"].split("\n\n") if body["context"] else [], body["citations"]):
        assert set(citation) == CITATION_KEYS
        assert block.startswith(f"[{citation['n']}] {citation['title']} ({citation['date']}) — ")


def test_context_get_returns_cited_blocks_within_budget(client):
    response = client.get("/v1/context", params={"q": "Toktogul water levels", "max_tokens": 300})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == CONTEXT_KEYS
    assert body["query"] == "Toktogul water levels" and body["encoding"] == "cl100k_base"
    check_context_body(body, 300, "cl100k_base")
    assert body["context"].startswith(f"[1] {TOKTOGUL} (2025-12-16) — Kyrgyz authorities have warned")
    assert body["truncated"] and body["tokens"] > 250  # greedy: the budget is nearly used
    # Citation offsets point at the article text the block quotes (white space collapsed).
    first = body["citations"][0]
    article = client.get(f"/v1/articles/{first['article_id']}").json()
    block = body["context"].split("\n\n")[0].split(" — ", 1)[1]
    assert block == " ".join(article["text"][first["start"]:first["end"]].split())


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("max_tokens", [50, 137, 1000, 2000, 8000])
def test_context_budget_in_both_encodings(client, encoding, max_tokens):
    body = client.get("/v1/context", params={"q": "Kazakhstan energy and water", "max_tokens": max_tokens,
                                             "encoding": encoding}).json()
    check_context_body(body, max_tokens, encoding)
    assert body["encoding"] == encoding and body["citations"]


def test_context_defaults_and_post_matches_get(client):
    got = client.get("/v1/context", params={"q": "locomotive deal"}).json()
    assert got["max_tokens"] == 2000 and got["encoding"] == "cl100k_base"
    posted = client.post("/v1/context", json={"q": "locomotive deal"}).json()
    assert posted == got
    assert got["citations"][0]["title"].startswith("Trump and Tokayev")
    filtered = client.get("/v1/context", params={"q": "locomotive deal", "date_from": "2026-01-01"}).json()
    assert filtered["context"] == "" and filtered["citations"] == [] and filtered["tokens"] == 0


@pytest.mark.parametrize("params,code", [
    ({"q": "water", "max_tokens": 49}, "invalid_max_tokens"),
    ({"q": "water", "max_tokens": 8001}, "invalid_max_tokens"),
    ({"q": "water", "max_tokens": "lots"}, "invalid_parameter"),
    ({"q": "water", "encoding": "gpt2"}, "invalid_encoding"),
    ({"q": ""}, "empty_query"),
    ({"q": "x" * 1001}, "query_too_long"),
    ({"q": "water", "k": 0}, "invalid_k"),
    ({"q": "water", "mode": "fuzzy"}, "invalid_mode"),
    ({"q": "water", "date_to": "yesterday"}, "invalid_date"),
])
def test_bad_context_input_is_a_400(client, params, code):
    error = assert_error(client.get("/v1/context", params=params), 400, code)
    if code == "invalid_max_tokens":
        assert "50..8000" in error["message"]
    assert_error(client.post("/v1/context", json=params), 400, code)


def test_context_post_rejects_unknown_fields(client):
    assert_error(client.post("/v1/context", json={"q": "water", "budget": 100}), 400, "invalid_parameter")


# --- tool definitions ------------------------------------------------------------------------------

EXAMPLES = {
    "search_news": [{"q": "Toktogul water levels"},
                    {"q": "locomotive deal", "max_tokens": 400, "encoding": "o200k_base", "k": 5, "mode": "dense",
                     "date_from": "2025-12-01", "date_to": "2025-12-31", "source": "central-asia-news-2025-12-16",
                     "sort": "date", "recency": "30d", "dates": "auto", "collapse": "story", "lang": "en"}],
    "answer_question": [{"q": "How much is the locomotive deal worth?"},
                        {"q": "How much water had the Toktogul reservoir accumulated?", "max_tokens": 600,
                         "encoding": "cl100k_base", "k": 3, "mode": "hybrid"}],
    "get_article": [{"article_id": "ARTICLE"}, {"article_id": "ARTICLE", "start": 500, "max_tokens": 300,
                                                 "encoding": "o200k_base"}],
    "list_sources": [{}, {"max_tokens": 100, "encoding": "o200k_base"}],
}
BAD_EXAMPLES = {
    "search_news": [{}, {"q": "x", "max_tokens": 10}, {"q": "x", "encoding": "gpt2"}, {"q": "x", "extra": 1},
                    {"q": "x", "k": "5"}, {"q": "x", "date_from": "16/12/2025"},
                    {"q": "x", "lang": "english"}],
    "answer_question": [{"q": ""}, {"q": "x", "k": 0}],
    "get_article": [{}, {"article_id": "a", "start": -1}, {"article_id": "a", "max_tokens": 9000}],
    "list_sources": [{"source": "x"}, {"max_tokens": 10}],
}


@pytest.fixture(scope="module")
def article_id(client):
    return client.get("/v1/search", params={"q": "Toktogul", "k": 1}).json()["hits"][0]["citation"]["article_id"]


def examples(name: str, article_id: str) -> list[dict]:
    return [{k: (article_id if v == "ARTICLE" else v) for k, v in args.items()} for args in EXAMPLES[name]]


def test_tools_are_openai_function_definitions_and_valid_json_schema(client, article_id):
    tools = client.get("/v1/tools").json()
    assert [t["function"]["name"] for t in tools] == ["search_news", "answer_question", "get_article", "list_sources"]
    for tool in tools:
        assert set(tool) == {"type", "function"} and tool["type"] == "function"
        function = tool["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", function["name"]) and len(function["description"]) > 40
        schema = function["parameters"]
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        validator = Draft202012Validator(schema)
        for args in examples(function["name"], article_id):
            validator.validate(args)
        for args in BAD_EXAMPLES[function["name"]]:
            assert not validator.is_valid(args), args


def test_search_news_parameters_are_the_context_endpoint_parameters(client):
    """An agent may call the HTTP route directly with the tool's arguments: GET and POST take them all."""
    schema = client.get("/v1/tools").json()[0]["function"]["parameters"]
    full = EXAMPLES["search_news"][1]
    assert set(full) == set(schema["properties"])
    assert client.get("/v1/context", params=full).status_code == 200
    body = client.post("/v1/context", json=full).json()
    check_context_body(body, 400, "o200k_base")
    assert body["citations"][0]["title"].startswith("Trump and Tokayev")


@pytest.mark.parametrize("name", ["search_news", "answer_question", "get_article"])
def test_every_tool_runs_its_examples_within_budget(client, article_id, name):
    for args in examples(name, article_id):
        response = client.post(f"/v1/tools/{name}", json=args)
        assert response.status_code == 200, response.text
        result = json.loads(response.text)
        budget, encoding = args.get("max_tokens", 2000), args.get("encoding", "cl100k_base")
        assert count_tokens(response.text, encoding) <= budget
        assert result["max_tokens"] == budget
        if name != "get_article":
            assert result["tokens"] == count_tokens(result["context"], encoding)
            assert [int(n) for n in re.findall(r"^\[(\d+)\] ", result["context"], flags=re.M)] == \
                [c["n"] for c in result["citations"]]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("max_tokens", [50, 120, 400, 2000, 8000])
def test_tool_results_never_exceed_max_tokens(client, article_id, encoding, max_tokens):
    calls = {"search_news": {"q": "Kazakhstan energy and water"},
             "answer_question": {"q": "How many locomotives will Wabtec supply?"},
             "get_article": {"article_id": article_id}}
    for name, args in calls.items():
        response = client.post(f"/v1/tools/{name}", json={**args, "max_tokens": max_tokens, "encoding": encoding})
        # A budget too small for even an answer's citation or an article's header is a 400 that
        # says what would fit (never a result over budget).
        if response.status_code == 400:
            error = assert_error(response, 400, "invalid_max_tokens")
            assert name != "search_news" and max_tokens < 200 and "at least" in error["message"]
            continue
        assert response.status_code == 200, response.text
        assert count_tokens(response.text, encoding) <= max_tokens, (name, max_tokens)


def test_answer_question_quotes_a_cited_sentence(client):
    result = client.post("/v1/tools/answer_question", json={"q": "How many locomotives will Wabtec supply?"}).json()
    assert "300 Evolution Series locomotives" in result["answer"]
    citation = result["citation"]
    article = client.get(f"/v1/articles/{citation['article_id']}").json()
    assert article["text"][citation["start"]:citation["end"]] == result["answer"]
    assert result["confidence"] >= 0.5 and result["reason"] is None
    assert any(c["article_id"] == citation["article_id"] for c in result["citations"])


def test_get_article_pages_through_whole_sentences(client, article_id):
    article = client.get(f"/v1/articles/{article_id}").json()
    start, pieces = 0, []
    while start is not None:
        result = client.post("/v1/tools/get_article", json={"article_id": article_id, "start": start,
                                                            "max_tokens": 200}).json()
        assert count_tokens(json.dumps(result, ensure_ascii=False, separators=(",", ":"))) <= 200
        assert result["text"] == article["text"][result["start"]:result["end"]] and result["text"]
        pieces.append((result["start"], result["end"]))
        start = result["next_start"]
        assert result["truncated"] == (start is not None)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(article["text"])
    for (_, end), (begin, _) in zip(pieces, pieces[1:]):
        assert article["text"][end:begin].strip() == ""  # nothing skipped between pages


@pytest.mark.parametrize("name", ["search_news", "answer_question", "get_article"])
def test_bad_tool_arguments_are_400s(client, name):
    for args in BAD_EXAMPLES[name]:
        response = client.post(f"/v1/tools/{name}", json=args)
        error = assert_error(response, 400, response.json()["error"]["code"])
        assert error["code"] in {"invalid_arguments", "invalid_max_tokens", "invalid_encoding", "invalid_k",
                                 "empty_query", "invalid_date", "invalid_start", "invalid_lang"}, error


def test_unknown_tool_and_article(client):
    assert_error(client.post("/v1/tools/delete_everything", json={}), 404, "unknown_tool")
    error = assert_error(client.post("/v1/tools/get_article", json={"article_id": "nope"}), 404, "not_found")
    assert "nope" in error["message"]


def test_answer_question_parameters_are_the_answer_endpoint_parameters(client):
    """/v1/answer takes every search parameter of answer_question (max_tokens and encoding bound the tool's JSON)."""
    schema = client.get("/v1/tools").json()[1]["function"]["parameters"]
    args = EXAMPLES["answer_question"][1]
    http = client.get("/v1/answer", params={k: v for k, v in args.items() if k not in ("max_tokens", "encoding")})
    assert http.status_code == 200, http.text
    tool = client.post("/v1/tools/answer_question", json=args).json()
    assert set(args) <= set(schema["properties"])
    assert http.json()["answer"]["text"] == tool["answer"]
    assert http.json()["answer"]["citation"] == {k: v for k, v in tool["citation"].items() if k != "n"}


@pytest.mark.parametrize("max_tokens", [400, 600, 2000])
@pytest.mark.parametrize("q", ["How many locomotives will Wabtec supply?",
                               "How much water had the Toktogul reservoir accumulated?",
                               "What did Power China sign with Kazakhstan?"])
def test_the_answer_lies_inside_its_context_and_carries_its_block_number(client, q, max_tokens):
    result = client.post("/v1/tools/answer_question", json={"q": q, "max_tokens": max_tokens}).json()
    assert "error" not in result, result
    assert count_tokens(json.dumps(result, ensure_ascii=False, separators=(",", ":"))) <= max_tokens
    if result["answer"] is None:
        pytest.skip(f"no confident answer to {q!r}")
    citation = result["citation"]
    n = citation["n"]
    block = next(c for c in result["citations"] if c["n"] == n)
    assert block["article_id"] == citation["article_id"]
    assert block["start"] <= citation["start"] and citation["end"] <= block["end"]
    text = result["context"].split("\n\n")[n - 1]
    assert text.startswith(f"[{n}] ") and " ".join(result["answer"].split()) in text


def test_an_answer_too_big_for_the_budget_is_a_clear_400(client):
    error = assert_error(client.post("/v1/tools/answer_question", json={
        "q": "How many locomotives will Wabtec supply?", "max_tokens": 50}), 400, "invalid_max_tokens")
    assert "needs" in error["message"] and "max_tokens=50" in error["message"]


def test_anthropic_tool_definitions_are_the_openai_ones_in_the_other_shape(client):
    openai = client.get("/v1/tools", params={"format": "openai"}).json()
    assert openai == client.get("/v1/tools").json()
    anthropic = client.get("/v1/tools", params={"format": "anthropic"}).json()
    assert [set(t) for t in anthropic] == [{"name", "description", "input_schema"}] * len(openai)
    for a, o in zip(anthropic, openai):
        assert a == {"name": o["function"]["name"], "description": o["function"]["description"],
                     "input_schema": o["function"]["parameters"]}
        Draft202012Validator.check_schema(a["input_schema"])
        assert a["input_schema"]["type"] == "object"  # Anthropic requires an object schema
    error = assert_error(client.get("/v1/tools", params={"format": "gemini"}), 400, "invalid_format")
    assert "openai, anthropic" in error["message"]


def test_list_sources_tool_is_the_sources_route_within_its_budget(client):
    sources = client.get("/v1/sources").json()
    body = client.post("/v1/tools/list_sources", json={}).json()
    assert sorted(body["sources"], key=lambda s: s["name"]) == sources and body["truncated"] is False
    small = client.post("/v1/tools/list_sources", json={"max_tokens": 50}).json()
    assert count_tokens(json.dumps(small, ensure_ascii=False, separators=(",", ":"))) <= 50
    assert small["truncated"] is True and len(small["sources"]) < len(sources)
