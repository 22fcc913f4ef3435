"""The MCP server as a real subprocess (`newsqa mcp --index DIR`) over stdio, driven by the SDK's client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import anyio
from jsonschema import Draft202012Validator
from mcp import Client, StdioServerParameters

from indexer.ingest.build import delete_articles
from indexer.tokens import count_tokens
from service.tools import tool_parameters

from helpers import ROOT, TOKTOGUL, copy_tree


def server_params(index_dir) -> StdioServerParameters:
    # The SDK passes only a minimal environment to the child: keep it offline and on our cache.
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    if os.environ.get("NEWSQA_CACHE_DIR"):
        env["NEWSQA_CACHE_DIR"] = os.environ["NEWSQA_CACHE_DIR"]
    return StdioServerParameters(command=sys.executable, args=["-m", "service.cli", "mcp", "--index", str(index_dir)],
                                 env=env, cwd=str(ROOT))


def text_of(result) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text


def within(result, max_tokens: int, encoding: str = "cl100k_base") -> dict:
    """The tool result's JSON, after checking the text a model reads fits the budget."""
    text = text_of(result)
    assert count_tokens(text, encoding) <= max_tokens, (count_tokens(text, encoding), max_tokens)
    body = json.loads(text)
    assert result.structured_content == body
    return body


async def session(index_dir) -> dict:
    """One server process for every check (loading the model is the slow part)."""
    seen: dict = {}
    with anyio.fail_after(180):
        async with Client(server_params(index_dir), read_timeout_seconds=120) as client:
            tools = (await client.list_tools()).tools
            seen["tools"] = tools

            result = await client.call_tool("search_news", {"q": "Toktogul water levels"})
            assert not result.is_error, text_of(result)
            seen["search_default"] = within(result, 2000)
            result = await client.call_tool("search_news", {"q": "Toktogul water levels", "max_tokens": 150,
                                                            "encoding": "o200k_base"})
            seen["search_small"] = within(result, 150, "o200k_base")

            result = await client.call_tool("answer_question", {"q": "How many locomotives will Wabtec supply?"})
            assert not result.is_error, text_of(result)
            seen["answer"] = within(result, 2000)
            seen["sources"] = within(await client.call_tool("list_sources", {}), 2000)

            article_id = seen["search_default"]["citations"][0]["article_id"]
            result = await client.call_tool("get_article", {"article_id": article_id})
            seen["article"] = within(result, 2000)
            result = await client.call_tool("get_article", {"article_id": article_id, "max_tokens": 200})
            seen["article_small"] = within(result, 200)

            seen["budgets"] = []
            for max_tokens in (50, 300, 1000, 8000):
                for name, args in (("search_news", {"q": "energy"}), ("get_article", {"article_id": article_id})):
                    result = await client.call_tool(name, {**args, "max_tokens": max_tokens})
                    seen["budgets"].append((name, max_tokens, result.is_error, within(result, max_tokens)))

            seen["bad"] = await client.call_tool("search_news", {"q": "water", "max_tokens": 9000})
            seen["missing"] = await client.call_tool("get_article", {"article_id": "no-such-article"})
            try:
                await client.call_tool("drop_tables", {})
            except Exception as exc:  # a protocol error, not a tool result
                seen["unknown_tool"] = exc

            resources = await client.list_resources()
            seen["resources"] = resources.resources
            seen["templates"] = (await client.list_resource_templates()).resource_templates
            seen["resource"] = await client.read_resource(f"newsqa://articles/{article_id}")
            seen["article_id"] = article_id

            # A rebuild while the server runs (here: a deletion) is picked up without a restart.
            await anyio.to_thread.run_sync(delete_articles, index_dir, [article_id])
            for _ in range(60):
                result = await client.call_tool("get_article", {"article_id": article_id})
                if result.is_error:
                    break
                await anyio.sleep(0.5)
            seen["after_delete"] = result
            seen["search_after_delete"] = within(
                await client.call_tool("search_news", {"q": "Toktogul water levels"}), 2000)
    return seen


def test_mcp_server_over_stdio(news_index_dir, tmp_path):
    # A copy: the test deletes an article from it while the server runs.
    seen = anyio.run(session, copy_tree(news_index_dir, tmp_path / "index"))

    # Tools: the four names, with exactly the input schemas of GET /v1/tools.
    assert [t.name for t in seen["tools"]] == ["search_news", "answer_question", "get_article", "list_sources"]
    for tool in seen["tools"]:
        assert tool.input_schema == tool_parameters(tool.name)
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.annotations.read_only_hint is True

    # search_news: cited blocks, whole result within the default 2,000 tokens and within 150 when asked.
    body = seen["search_default"]
    assert body["context"].startswith(f"[1] {TOKTOGUL} (2025-12-16) — ")
    assert body["tokens"] == count_tokens(body["context"]) and body["max_tokens"] == 2000
    assert [int(n) for n in re.findall(r"^\[(\d+)\] ", body["context"], flags=re.M)] == \
        [c["n"] for c in body["citations"]]
    small = seen["search_small"]
    assert small["max_tokens"] == 150 and small["tokens"] == count_tokens(small["context"], "o200k_base")
    assert small["citations"] and small["truncated"]

    # list_sources: the sources with counts and dates.
    assert seen["sources"]["sources"][0]["name"] == "central-asia-news-2025-12-16"
    assert seen["sources"]["sources"][0]["articles"] >= 6

    # answer_question: a verbatim sentence with its citation.
    answer = seen["answer"]
    assert "300 Evolution Series locomotives" in answer["answer"]
    assert answer["citation"]["title"].startswith("Trump and Tokayev")

    # get_article: the article text from offset 0, cut at a sentence end under a small budget.
    full, part = seen["article"], seen["article_small"]
    assert full["title"] == TOKTOGUL and not full["truncated"] and full["next_start"] is None
    assert part["truncated"] and full["text"].startswith(part["text"]) and part["text"][-1] in ".!?\"”’)"
    assert full["text"][part["end"]:part["next_start"]].isspace()  # the next call resumes at the next sentence

    # Every budget holds (an article's header does not fit in 50 tokens: an error result saying so).
    for name, max_tokens, is_error, result in seen["budgets"]:
        if is_error:
            assert name == "get_article" and max_tokens == 50
            assert result["error"]["code"] == "invalid_max_tokens" and "at least" in result["error"]["message"]
        else:
            assert result["max_tokens"] == max_tokens

    # Bad input: an isError result in the API's error shape the model can read and fix.
    bad = seen["bad"]
    assert bad.is_error and json.loads(text_of(bad))["error"]["code"] == "invalid_max_tokens"
    assert "50..8000" in json.loads(text_of(bad))["error"]["message"]
    missing = seen["missing"]
    assert missing.is_error and json.loads(text_of(missing))["error"]["code"] == "not_found"
    assert "drop_tables" in str(seen["unknown_tool"])

    # Resources: every article and record, readable as Markdown.
    assert len(seen["resources"]) == 7
    assert all(r.uri.startswith("newsqa://articles/") and r.mime_type == "text/markdown" for r in seen["resources"])
    assert TOKTOGUL in {r.title for r in seen["resources"]}
    assert seen["templates"][0].uri_template == "newsqa://articles/{article_id}"
    contents = seen["resource"].contents[0]
    assert contents.text.startswith(f"# {TOKTOGUL}\n\n2025-12-16") and "Ibraev" in contents.text

    # Hot reload: the deleted article is gone from tool results, with no restart.
    gone = seen["after_delete"]
    assert gone.is_error and json.loads(text_of(gone))["error"]["code"] == "not_found"
    assert seen["search_after_delete"]["citations"]
    assert all(c["title"] != TOKTOGUL for c in seen["search_after_delete"]["citations"])


def test_mcp_command_without_an_index_fails_cleanly(tmp_path):
    run = subprocess.run([sys.executable, "-m", "service.cli", "mcp", "--index", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert run.returncode == 2 and run.stdout == ""
    assert "no index at" in run.stderr and "newsqa index" in run.stderr and "Traceback" not in run.stderr
