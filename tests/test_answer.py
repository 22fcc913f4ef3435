"""Answers: a verbatim sentence with its citation, or null with the reason (real model, real index, real HTTP)."""

from __future__ import annotations

import pytest

from helpers import TOKTOGUL, assert_error


UNANSWERABLE = ["chocolate cake recipe", "Who won the Champions League final?"]


@pytest.fixture(scope="module")
def answerer(searcher):
    from indexer.query.answer import Answerer

    return Answerer(searcher)


@pytest.mark.parametrize("question,expected", [
    ("How much water had the Toktogul reservoir accumulated?", "10.8 billion cubic meters"),
    ("How many locomotives will Kazakhstan's railway get?", "300"),
    ("How much did the level of Lake Balkhash go up?", "32 centimeters"),
    ("How big is the tanker Azerbaijan is donating?", "8,000-ton"),
    ("How many kilometers of utility networks will be repaired or built?", "86,000 kilometers"),
])
def test_factual_questions_are_answered_with_the_figure_verbatim(answerer, news_index, question, expected):
    result = answerer.answer(question)
    assert result.answer is not None, result.reason
    assert expected in result.answer.text
    citation = result.answer.citation
    article = news_index.article(citation.article_id)
    # Verbatim: the citation's span of the article is exactly the answer text.
    assert article.text[citation.start : citation.end] == result.answer.text
    assert citation.title == article.title and citation.paragraph == article.paragraph_at(citation.start)
    assert result.reason is None and result.confidence >= 0.5
    # The answer comes from one of the passages returned with it.
    assert any(p.citation.article_id == citation.article_id
               and p.citation.start <= citation.start < p.citation.end for p in result.passages)


def test_toktogul_answer_cites_its_article(answerer):
    result = answerer.answer("How much water had the Toktogul reservoir accumulated?")
    assert result.answer.citation.title == TOKTOGUL


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_get_no_answer_and_a_reason(answerer, question):
    result = answerer.answer(question)
    assert result.answer is None
    assert result.confidence < 0.5
    assert "low confidence" in result.reason
    assert result.passages  # the passages are still returned, for a client to show if it wants


def test_filters_that_exclude_everything_give_no_answer(answerer):
    from indexer.query.search import make_filters

    result = answerer.answer("How much water had the Toktogul reservoir accumulated?",
                             filters=make_filters(date_from="2030-01-01"))
    assert result.answer is None and result.passages == [] and "no passage" in result.reason


def test_answer_endpoint(client):
    response = client.get("/v1/answer", params={"q": "How much water had the Toktogul reservoir accumulated?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"query", "answer", "confidence", "passages", "reason"}
    assert "10.8 billion cubic meters" in body["answer"]["text"]
    citation = body["answer"]["citation"]
    assert set(citation) >= {"article_id", "title", "date", "source", "url", "section", "start", "end", "paragraph"}
    article = client.get(f"/v1/articles/{citation['article_id']}").json()
    assert article["text"][citation["start"]:citation["end"]] == body["answer"]["text"]
    assert body["passages"] and all({"dense", "lexical", "highlights"} <= set(p) for p in body["passages"])
    assert body["reason"] is None


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_answer_endpoint_abstains(client, question):
    body = client.get("/v1/answer", params={"q": question}).json()
    assert body["answer"] is None and body["reason"] and body["confidence"] < 0.5
    search = client.get("/v1/search", params={"q": question}).json()
    assert search["low_confidence"] is True


@pytest.mark.parametrize("params,code", [
    ({"q": ""}, "empty_query"),
    ({"q": "water", "k": 0}, "invalid_k"),
    ({"q": "water", "mode": "fuzzy"}, "invalid_mode"),
    ({"q": "water", "date_to": "yesterday"}, "invalid_date"),
])
def test_bad_answer_input_is_a_400(client, params, code):
    assert_error(client.get("/v1/answer", params=params), 400, code)


def test_cli_ask(news_index_dir, capsys):
    from service.cli import main

    code = main(["ask", "How much water had the Toktogul reservoir accumulated?", "--index", str(news_index_dir)])
    out = capsys.readouterr().out
    assert code == 0 and "10.8 billion cubic meters" in out and TOKTOGUL in out
    assert main(["ask", "chocolate cake recipe", "--index", str(news_index_dir)]) == 1
    assert "no answer: low confidence" in capsys.readouterr().out


SPAN_QUESTION = "How much water had the Toktogul reservoir accumulated?"


def test_answer_span_on_the_api_and_in_its_schema(client):
    body = client.get("/v1/answer", params={"q": SPAN_QUESTION}).json()
    span, answer = body["answer"]["span"], body["answer"]
    assert span["text"] == "10.8 billion cubic meters"
    article = client.get(f"/v1/articles/{answer['citation']['article_id']}").json()
    assert article["text"][span["start"]:span["end"]] == span["text"]
    assert answer["citation"]["start"] <= span["start"] < span["end"] <= answer["citation"]["end"]
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"]
    assert "span" in schema["AnswerTextOut"]["properties"]
    assert set(schema["AnswerSpanOut"]["properties"]) == {"text", "start", "end"}


def test_answer_span_is_bold_inside_the_sentence_on_the_page(client):
    html = client.get("/", params={"q": SPAN_QUESTION}).text
    box = html[html.index('<section class="answer"'):]
    box = box[:box.index("</section>")]
    assert '<strong class="answer-span">10.8 billion cubic meters</strong>' in box
    assert "Toktogul" in box.split("<strong")[0] + box.split("</strong>")[1]  # the sentence around it


def test_cli_ask_prints_the_short_answer_first(news_index_dir, capsys):
    from service.cli import main

    assert main(["ask", SPAN_QUESTION, "--index", str(news_index_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "10.8 billion cubic meters" and "10.8 billion cubic meters" in lines[2]


def test_the_answer_tool_carries_the_span(searcher):
    from service.tools import run_tool

    result = run_tool(searcher, "answer_question", {"q": SPAN_QUESTION})
    assert result["span"]["text"] == "10.8 billion cubic meters"
    assert result["citation"]["start"] <= result["span"]["start"] < result["span"]["end"] <= result["citation"]["end"]
