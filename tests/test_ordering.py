"""Issue 14 (non-fusion part): sort=date, recency, dates named in the query, story collapse.

A small real index (real model, real FAISS, real MinHash dedupe) of articles written here with
explicit dates: four on the (made-up) Kambarata dam works of different ages, two rewrites of one
made-up Osh canal story, and unrelated news, the newest of which sets the index's "now".
"""

from __future__ import annotations

import json

import pytest

from indexer.errors import InvalidParameter
from indexer.query import ordering
from helpers import assert_error, write_jsonl

CANAL = (
    "The regional water authority in Osh announced on Monday that the old canal linking the Ak-Buura river "
    "to the southern orchards will be rebuilt before the spring planting season. Engineers found that "
    "almost half of the concrete lining had cracked after three hard winters and that farmers at the end "
    "of the canal received barely a third of the water they had paid for. The project will replace "
    "eleven kilometres of lining, install new sluice gates at four villages and add meters so that each "
    "farm cooperative pays for the water it actually receives. Officials said the work would cost about "
    "nine million dollars, shared between the national budget and a development loan. Local farmers "
    "welcomed the plan but asked for the work to be finished before April, when apricot trees need the "
    "most water. The authority promised weekly reports on the progress of the works and a telephone line "
    "for complaints about water distribution during the construction period.")
# A syndicated rewrite: about 0.6 shingle Jaccard with CANAL, under dedupe's 0.8, over the story 0.5.
REWRITE = CANAL
for old, new in [("announced on Monday", "said on Monday"), ("will be rebuilt", "is to be rebuilt"),
                 ("almost half", "nearly half"), ("three hard winters", "three harsh winters"),
                 ("barely a third", "only a third"), ("eleven kilometres", "11 kilometres"),
                 ("weekly reports", "regular reports")]:
    REWRITE = REWRITE.replace(old, new, 1)

ARTICLES = [
    {"id": "dam-old", "date": "2023-03-01", "title": "Kambarata dam turbine contract signed",
     "text": "The Kambarata hydropower dam on the Naryn river will get its first turbine under a contract "
             "signed on Wednesday. The Kambarata dam builders said the turbine for the Kambarata hydropower "
             "plant on the Naryn river would be delivered within two years."},
    {"id": "dam-mid", "date": "2024-06-15", "title": "Kambarata dam site road reopened",
     "text": "The road to the Kambarata dam site reopened after landslides. Trucks carrying cement for the "
             "dam on the Naryn river resumed deliveries on Saturday."},
    {"id": "dam-new", "date": "2025-11-28", "title": "Energy ministry reviews winter supply",
     "text": "The energy ministry reviewed the winter electricity supply on Friday. Among other projects it "
             "mentioned progress at the Kambarata hydropower dam, where concrete works continue."},
    {"id": "dam-undated", "title": "Kambarata dam explained",
     "text": "What is the Kambarata dam? A planned hydropower dam on the Naryn river, meant to regulate "
             "water for the Toktogul reservoir downstream."},
    {"id": "canal-a", "date": "2025-11-20", "title": "Osh canal to be rebuilt before spring", "text": CANAL},
    {"id": "canal-b", "date": "2025-11-21", "title": "Osh orchards canal rebuild planned", "text": REWRITE},
    {"id": "snow", "date": "2025-12-01", "title": "Bishkek clears snow from main streets",
     "text": "Snow ploughs cleared the main streets of Bishkek overnight after the first heavy snowfall of "
             "the winter. The city hall asked drivers to leave cars off the avenues until noon."},
    {"id": "bazaar", "date": "2025-10-05", "title": "Osh bazaar traders move to new halls",
     "text": "Traders at the Osh bazaar moved into two new covered halls built after last year's fire. Rents "
             "stay the same until the end of the year, the market administration said."},
]


@pytest.fixture(scope="module")
def dated_index_dir(tmp_path_factory, embedder):
    from indexer.ingest.build import build_index

    root = tmp_path_factory.mktemp("ordering")
    data = root / "articles.jsonl"
    write_jsonl(data, ARTICLES)
    summary = build_index([data], root / "index", embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    return root / "index"


@pytest.fixture(scope="module")
def dated_searcher(dated_index_dir, embedder):
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    index = open_index(dated_index_dir, model=embedder.name)
    yield Searcher(index, embedder)
    index.close()


@pytest.fixture(scope="module")
def dated_client(dated_index_dir, embedder):
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    with TestClient(app=create_app(ServiceSettings(index_dir=dated_index_dir), embedder=embedder)) as client:
        yield client


def ids(hits) -> list[str]:
    return [h["citation"]["article_id"] if isinstance(h, dict) else h.citation.article_id for h in hits]


# --- pure functions -----------------------------------------------------------------------------


def test_named_dates_finds_months_and_years():
    assert ordering.named_dates("December 2025 blackouts") == [(2025, 12)]
    assert ordering.named_dates("Toktogul 2025") == [(2025, None)]
    assert ordering.named_dates("Sept. 2024 and 2019 floods") == [(2024, 9), (2019, None)]
    assert ordering.named_dates("Toktogul water levels 300 m3") == []


def test_recency_factor_halves_per_half_life():
    assert ordering.recency_factor(0, 30) == 1.0
    assert ordering.recency_factor(30, 30) == pytest.approx(0.5)
    assert ordering.recency_factor(90, 30) == pytest.approx(0.125)


def test_newest_first_breaks_ties_by_score_and_puts_undated_last():
    from datetime import date

    items = [("a", date(2025, 1, 1), 0.9), ("b", None, 1.0), ("c", date(2025, 3, 1), 0.2), ("d", date(2025, 3, 1), 0.5)]
    order = ordering.newest_first(items, lambda i: i[1], lambda i: i[2])
    assert [i[0] for i in order] == ["d", "c", "a", "b"]


def test_relevant_keeps_results_from_half_the_best_score():
    assert ordering.relevant([1.0, 0.6, 0.5, 0.49], lambda s: s) == [1.0, 0.6, 0.5]


@pytest.mark.parametrize("value, days", [("30d", 30.0), ("30", 30.0), (7.5, 7.5), (None, None), ("", None)])
def test_half_life_parsing(value, days):
    assert ordering.parse_half_life(value) == days


@pytest.mark.parametrize("value", ["0", "-3", "soon", "36501d", "30 days"])
def test_bad_half_life_names_value_limit_and_fix(value):
    with pytest.raises(InvalidParameter) as err:
        ordering.parse_half_life(value)
    assert repr(value) in str(err.value) and "36500" in str(err.value) and "recency=30d" in str(err.value)


def test_dated_index_keeps_both_rewrites():
    """The rewrite is under the ingest dedupe threshold but over the story threshold."""
    from indexer.ingest.dedupe import DEDUPE_THRESHOLD, signature, similarity

    estimate = similarity(signature(CANAL), signature(REWRITE))
    assert ordering.STORY_SIMILARITY <= estimate < DEDUPE_THRESHOLD


# --- the searcher ---------------------------------------------------------------------------------


def test_default_order_is_relevance_and_unchanged(dated_searcher):
    plain = dated_searcher.search("Kambarata hydropower dam Naryn river", k=5, group="article")
    same = dated_searcher.search("Kambarata hydropower dam Naryn river", k=5, group="article",
                                 ordering=ordering.Ordering())
    assert ids(plain.hits) == ids(same.hits)
    assert [h.score for h in plain.hits] == [h.score for h in same.hits]


def test_recency_ranks_the_newer_article_first(dated_searcher):
    query = "Kambarata hydropower dam Naryn river turbine"
    plain = ids(dated_searcher.search(query, k=5, group="article").hits)
    assert plain.index("dam-old") < plain.index("dam-new")  # the more relevant one wins without recency
    recent = dated_searcher.search(query, k=10, group="article", ordering=ordering.make_ordering(recency="30d"))
    order = ids(recent.hits)
    assert order.index("dam-new") < order.index("dam-old")
    assert order[0] == "dam-new"


def test_query_dates_favour_the_named_year(dated_searcher):
    query = "Kambarata dam 2024"
    plain = ids(dated_searcher.search(query, k=5, group="article").hits)
    dated = ids(dated_searcher.search(query, k=5, group="article", ordering=ordering.make_ordering(dates="auto")).hits)
    assert dated[0] == "dam-mid"
    assert plain != dated


def test_sort_date_passages_newest_first_undated_last(dated_searcher):
    result = dated_searcher.search("Kambarata dam", k=10, ordering=ordering.make_ordering(sort="date"))
    dates = [h.citation.date for h in result.hits]
    assert len(dates) >= 3
    dated = [d for d in dates if d]
    assert dated == sorted(dated, reverse=True)
    assert all(d is None for d in dates[len(dated):])  # undated only at the end


# --- the HTTP API (the real app) ------------------------------------------------------------------


def test_api_sort_date_order(dated_client):
    params = {"q": "Kambarata hydropower dam", "group": "article"}
    relevance = dated_client.get("/v1/search", params=params).json()
    newest = dated_client.get("/v1/search", params={**params, "sort": "date"})
    assert newest.status_code == 200, newest.text
    order = ids(newest.json()["hits"])
    dates = [h["citation"]["date"] for h in newest.json()["hits"]]
    assert ids(relevance["hits"])[0] == "dam-old"
    assert order[0] == "dam-new"
    assert [d for d in dates if d] == sorted((d for d in dates if d), reverse=True)
    assert None not in dates or dates.index(None) == len([d for d in dates if d])
    assert [h["rank"] for h in newest.json()["hits"]] == list(range(1, len(order) + 1))
    # POST takes the same parameter.
    posted = dated_client.post("/v1/search", json={**params, "sort": "date"})
    assert ids(posted.json()["hits"]) == order


def test_api_recency(dated_client):
    params = {"q": "Kambarata hydropower dam Naryn river turbine", "group": "article"}
    assert ids(dated_client.get("/v1/search", params=params).json()["hits"])[0] == "dam-old"
    assert ids(dated_client.get("/v1/search", params={**params, "recency": "30"}).json()["hits"])[0] == "dam-new"


def test_api_collapse_story_folds_the_rewrite(dated_client):
    params = {"q": "Osh canal rebuilt before spring planting", "group": "article"}
    plain = ids(dated_client.get("/v1/search", params=params).json()["hits"])
    assert {"canal-a", "canal-b"} <= set(plain)
    body = dated_client.get("/v1/search", params={**params, "collapse": "story"}).json()
    hits = body["hits"]
    canal = [h for h in hits if h["citation"]["article_id"] in ("canal-a", "canal-b")]
    assert len(canal) == 1
    assert len(canal[0]["similar"]) == 1
    assert {canal[0]["citation"]["article_id"], canal[0]["similar"][0]["article_id"]} == {"canal-a", "canal-b"}
    assert all(h["similar"] == [] for h in hits if h is not canal[0])  # the unrelated ones stay alone
    assert len(hits) == len(plain) - 1
    # Passages too: one story, one result.
    passages = dated_client.get("/v1/search", params={**params, "collapse": "story", "group": "passage"}).json()
    assert len([h for h in passages["hits"] if h["citation"]["article_id"].startswith("canal")]) == 1


@pytest.mark.parametrize("name, value, code", [("sort", "newest", "invalid_sort"), ("recency", "soon", "invalid_recency"),
                                               ("dates", "yes", "invalid_dates"), ("collapse", "all", "invalid_collapse")])
def test_api_bad_ordering_values(dated_client, name, value, code):
    error = assert_error(dated_client.get("/v1/search", params={"q": "dam", name: value}), 400, code)
    assert repr(value) in error["message"]


def test_openapi_declares_the_new_params(dated_client):
    spec = dated_client.get("/schema/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/v1/search"]["get"]["parameters"]}
    assert params["sort"]["schema"]["enum"] == ["relevance", "date"] or "relevance" in json.dumps(params["sort"])
    assert "story" in json.dumps(params["collapse"]) and "auto" in json.dumps(params["dates"])
    assert "half-life" in params["recency"]["description"].lower()


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_sort_date(dated_index_dir, capsys):
    from service.cli import main

    assert main(["search", "Kambarata hydropower dam", "--index", str(dated_index_dir),
                 "--group", "article", "--sort", "date", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert ids(body["hits"])[0] == "dam-new"
    dated = [h["citation"]["date"] for h in body["hits"] if h["citation"]["date"]]
    assert dated == sorted(dated, reverse=True)
    assert main(["search", "Kambarata dam", "--index", str(dated_index_dir), "--recency", "soon"]) == 2
    assert "recency='soon'" in capsys.readouterr().err


# --- the tools ----------------------------------------------------------------------------------


def test_tool_search_news_collapse_and_sort(dated_client):
    args = {"q": "Osh canal rebuilt before spring planting", "k": 10}
    plain = dated_client.post("/v1/tools/search_news", json=args)
    assert plain.status_code == 200, plain.text
    assert {"canal-a", "canal-b"} <= {c["article_id"] for c in plain.json()["citations"]}
    folded = dated_client.post("/v1/tools/search_news", json={**args, "collapse": "story"}).json()
    canal = [c for c in folded["citations"] if c["article_id"].startswith("canal")]
    assert len({c["article_id"] for c in canal}) == 1
    assert [s["article_id"] for s in canal[0]["similar"]] == [
        ({"canal-a", "canal-b"} - {canal[0]["article_id"]}).pop()]
    newest = dated_client.post("/v1/tools/search_news",
                               json={"q": "Kambarata hydropower dam Naryn river", "sort": "date"}).json()
    dates = [c["date"] for c in newest["citations"] if c["date"]]
    assert dates and dates == sorted(dates, reverse=True)
    bad = dated_client.post("/v1/tools/search_news", json={"q": "dam", "recency": "soon"})
    assert bad.status_code == 400 and "recency='soon'" in bad.text
    # The answer tool does not take an order (its answer is the best sentence).
    tool = next(t for t in dated_client.get("/v1/tools").json() if t["function"]["name"] == "answer_question")
    assert "sort" not in tool["function"]["parameters"]["properties"]


def test_context_get_takes_sort(dated_client):
    response = dated_client.get("/v1/context", params={"q": "Kambarata dam", "sort": "date"})
    assert response.status_code == 200, response.text
    dates = [c["date"] for c in response.json()["citations"] if c["date"]]
    assert dates == sorted(dates, reverse=True)


# --- the page -------------------------------------------------------------------------------------


def _links(html: str, text: str) -> list[str]:
    import re
    from html import unescape

    return [unescape(m) for m in re.findall(r'<a href="([^"]+)">' + re.escape(text) + "</a>", html)]


def test_page_toggle_keeps_params_and_sorts(dated_client):
    page = dated_client.get("/", params={"q": "Kambarata hydropower dam", "date_from": "2020-01-01"})
    assert page.status_code == 200
    newest = _links(page.text, "Newest")
    assert len(newest) == 1 and "sort=date" in newest[0] and "date_from=2020-01-01" in newest[0] and "q=Kambarata" in newest[0]
    assert '<strong aria-current="true">Relevance</strong>' in page.text
    import re

    relevance_order = re.findall(r'data-article-id="([^"]+)"', page.text)
    sorted_page = dated_client.get(newest[0])
    assert '<strong aria-current="true">Newest</strong>' in sorted_page.text
    back = _links(sorted_page.text, "Relevance")
    assert len(back) == 1 and "sort=" not in back[0] and "date_from=2020-01-01" in back[0]
    order = re.findall(r'data-article-id="([^"]+)"', sorted_page.text)
    assert order[0] == "dam-new" and relevance_order[0] == "dam-old"
    # A new query from the form keeps the order.
    assert '<input type="hidden" name="sort" value="date">' in sorted_page.text


def test_page_folds_rewrites_under_n_similar(dated_client):
    import re

    page = dated_client.get("/", params={"q": "Osh canal rebuilt before spring planting"})
    shown = re.findall(r'data-article-id="([^"]+)"', page.text)
    canal = [a for a in shown if a.startswith("canal")]
    assert len(canal) == 1
    assert "1 similar" in page.text
    other = ({"canal-a", "canal-b"} - set(canal)).pop()
    assert re.search(r'<a href="/articles/' + other + r'\?[^"]*">', page.text)


def stories_of(result) -> dict[str, list[str]]:
    """Article id of each result with folded articles -> the folded article ids."""
    return {h.citation.article_id: [c.article_id for c in result.similar[h.chunk_id]]
            for h in result.hits if h.chunk_id in result.similar}


# --- PostgreSQL store -------------------------------------------------------------------------------


def test_postgres_store_orders_and_collapses_like_the_embedded_one(pg_url, dated_index_dir, dated_searcher, embedder,
                                                                   tmp_path):
    from indexer.query.search import Searcher
    from indexer.ingest.targets import index_into_store
    from indexer.store.postgres import open_pg_index

    data = tmp_path / "articles.jsonl"
    write_jsonl(data, ARTICLES)
    summary = index_into_store([data], pg_url, embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    index = open_pg_index(pg_url, model=embedder.name)
    try:
        pg = Searcher(index, embedder)
        assert dict(index.signatures(["canal-a"]))["canal-a"].shape == (64,)
        for query, order in [("Kambarata hydropower dam Naryn river", ordering.make_ordering(sort="date")),
                             ("Kambarata hydropower dam Naryn river turbine", ordering.make_ordering(recency="30d")),
                             ("Osh canal rebuilt before spring planting", ordering.make_ordering(collapse="story"))]:
            want = dated_searcher.search(query, k=10, group="article", ordering=order)
            got = pg.search(query, k=10, group="article", ordering=order)
            assert ids(got.hits) == ids(want.hits), query
            assert stories_of(got) == stories_of(want), query
        assert stories_of(got) == {"canal-a": ["canal-b"]} or stories_of(got) == {"canal-b": ["canal-a"]}
    finally:
        index.close()
