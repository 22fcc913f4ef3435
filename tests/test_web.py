"""The server-rendered search and article pages, through Litestar's test client (real app, model, index)."""

from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from indexer.types import Span
from service.web import Segment, mark_segments, parse_range, pretty_date, safe_url

from helpers import TOKTOGUL

# An article whose text and title carry markup: it must render as inert text.
SCRIPT_ARTICLE = {
    "id": "script-sample",
    "title": "Bishkek council notes <script>window.__pwned = 'title'</script>",
    "date": "2025-12-10",
    "source": "test-wire",
    "url": "javascript:window.__pwned='url'",
    "text": (
        "The Bishkek city council discussed the snow removal budget on Tuesday. "
        "A reader comment quoted the markup <script>window.__pwned = 1; alert('xss')</script> verbatim, "
        "and it must be shown as text.\n\n"
        "Another comment pasted <img src=x onerror=\"window.__pwned = 2\"> into the snow removal thread."
    ),
}


class Page(HTMLParser):
    """The parts of a page the tests look at: elements by tag with attributes and inner text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("input", "meta", "link", "br", "img"):
            self._open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, **attrs) -> list[dict]:
        def match(e):
            if e["tag"] != tag:
                return False
            for name, value in attrs.items():
                have = e["attrs"].get(name.rstrip("_"))
                if name == "class_":
                    if have is None or value not in have.split():
                        return False
                elif have != value:
                    return False
            return True

        return [e for e in self.elements if match(e)]


def get_page(client, url: str, status: int = 200, **params) -> Page:
    response = client.get(url, params=params) if params else client.get(url)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text
    return Page(response.text)


# --- pure helpers ----------------------------------------------------------------------------


def test_mark_segments_splits_by_offsets_and_keeps_the_text():
    text = "Alpha beta. Gamma <b>delta</b>. Epsilon."
    base = 100
    segments = mark_segments(text, base, [Span(112, 131), Span(90, 105)], anchor="112-131")
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.mark) for s in segments] == [
        ("Alpha", True), (" beta. ", False), ("Gamma <b>delta</b>.", True), (" Epsilon.", False)]
    assert [s.anchor for s in segments] == ["112-131", None, None, None]


def test_mark_segments_merges_overlaps_and_ignores_outside_spans():
    assert mark_segments("abcdef", 10, [Span(11, 13), Span(12, 15), Span(0, 5), Span(30, 40)]) == (
        Segment("a"), Segment("bcde", mark=True), Segment("f"))
    assert mark_segments("", 0, []) == (Segment(""),)


def test_parse_range_accepts_only_spans_inside_the_text():
    assert parse_range("3-7", 10) == Span(3, 7)
    for bad in ("7-3", "3-11", "-3-4", "a-b", "37", "", None, "3-3"):
        assert parse_range(bad, 10) is None, bad


def test_small_formatting_helpers():
    assert pretty_date("2025-12-16") == "16 December 2025"
    assert pretty_date("Dec 2025") == "Dec 2025" and pretty_date(None) == ""
    assert safe_url("https://example.org/a") == "https://example.org/a"
    assert safe_url("javascript:alert(1)") is None and safe_url(" JavaScript:x") is None and safe_url(None) is None


# --- the search page over the shipped corpus ----------------------------------------------------


def test_home_page_has_a_focused_search_box_and_the_advanced_corner(client):
    page = get_page(client, "/")
    [box] = page.find("input", name="q")
    assert "autofocus" in box["attrs"] and box["attrs"]["type"] == "search"
    [form] = page.find("form", role="search")
    assert form["attrs"]["method"] == "get" and form["attrs"]["action"] == "/"
    [details] = page.find("details", class_="advanced")
    assert "open" not in details["attrs"]
    sources = [o["attrs"]["value"] for o in page.find("option") if o["attrs"].get("value") is not None]
    assert "central-asia-news-2025-12-16" in sources
    assert {"hybrid", "dense", "lexical"} <= set(sources)
    assert not page.find("ol", class_="results")
    # One local stylesheet, one local script: nothing from a CDN.
    assert [e["attrs"]["href"] for e in page.find("link", rel="stylesheet")] == ["/static/style.css"]
    assert [e["attrs"]["src"] for e in page.find("script")] == ["/static/search.js"]


def test_static_files_are_served(client):
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # no remote fonts or images
    js = client.get("/static/search.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_toktogul_query_shows_its_article_first_with_highlights_and_a_citation_link(client):
    page = get_page(client, "/", q="Toktogul water levels")
    results = page.find("li", class_="result")
    assert results, "no results rendered"
    titles = [e["text"].strip() for e in page.find("h2", class_="result-title")]
    assert titles[0] == TOKTOGUL
    assert len(titles) == len(set(titles)), "results must be grouped by article"
    first = results[0]
    article_id = first["attrs"]["data-article-id"]
    # The first passage of the first result has a highlighted sentence taken from the passage.
    first_passage = page.find("p", class_="passage-text")[0]
    marks = [m["text"] for m in page.find("mark")]
    assert marks and marks[0] in first_passage["text"]
    assert "Toktogul" in first_passage["text"]
    assert first["text"].count("16 December 2025") == 1
    # The citation link carries the passage offsets in the query and the fragment.
    cite = page.find("a", class_="cite")[0]["attrs"]["href"]
    parts = urlsplit(cite)
    assert parts.path == f"/articles/{article_id}"
    start, end = map(int, parts.fragment.split("-"))
    assert parse_qs(parts.query)["hl"] == [f"{start}-{end}"]
    assert parse_qs(parts.query)["q"] == ["Toktogul water levels"]
    article = client.get(f"/v1/articles/{article_id}").json()
    assert article["text"][start:end].startswith(first_passage["text"][:40])


def test_article_page_marks_the_cited_passage_by_offsets(client):
    page = get_page(client, "/", q="Toktogul water levels")
    cite = page.find("a", class_="cite")[0]["attrs"]["href"]
    parts = urlsplit(cite)
    start, end = map(int, parts.fragment.split("-"))
    article_page = get_page(client, f"{parts.path}?{parts.query}")
    article = client.get(f"/v1/articles/{parts.path.rsplit('/', 1)[1]}").json()
    assert article_page.find("h1")[-1]["text"] == TOKTOGUL
    body_marks = [m for m in article_page.find("mark") if m["text"] != "highlighted"]  # not the legend
    assert body_marks[0]["attrs"].get("id") == f"{start}-{end}"
    # The marked runs, joined, are exactly the cited text minus the gaps between paragraphs.
    cited = article["text"][start:end]
    assert re.sub(r"\s+", " ", " ".join(m["text"] for m in body_marks)) == re.sub(r"\s+", " ", cited)
    # Every paragraph of the article is on the page, and the back link returns to the results.
    body = " ".join(p["text"] for p in article_page.find("p"))
    assert all(article["text"][a:b][:30] in body for a, b in article["paragraphs"])
    back = [a for a in article_page.find("a") if a["text"].startswith("← Back")]
    assert back and back[0]["attrs"]["href"] == "/?q=Toktogul+water+levels"


def test_article_page_without_highlight_and_with_a_stale_one(client):
    page = get_page(client, "/", q="locomotive deal")
    article_id = page.find("li", class_="result")[0]["attrs"]["data-article-id"]
    plain = get_page(client, f"/articles/{article_id}")
    assert not plain.find("mark") and plain.find("h1")[-1]["text"].startswith("Trump and Tokayev")
    headings = [h["text"] for h in plain.find("h2")]
    assert "What Trump and Tokayev said" in headings
    stale = get_page(client, f"/articles/{article_id}", hl="999990-999999")
    assert not stale.find("mark")
    assert "not in this article" in " ".join(p["text"] for p in stale.find("p"))


def test_query_and_filters_live_in_the_url_and_refill_the_form(client):
    page = get_page(client, "/", q="water", mode="lexical", date_from="2025-12-01", date_to="2025-12-31",
                    source="central-asia-news-2025-12-16")
    assert page.find("input", name="q")[0]["attrs"]["value"] == "water"
    assert page.find("input", name="date_from")[0]["attrs"]["value"] == "2025-12-01"
    assert page.find("input", name="date_to")[0]["attrs"]["value"] == "2025-12-31"
    assert "open" in page.find("details", class_="advanced")[0]["attrs"]
    selected = [o["attrs"]["value"] for o in page.find("option") if "selected" in o["attrs"]]
    assert selected == ["central-asia-news-2025-12-16", "lexical"]
    assert page.find("li", class_="result")
    # Links from the results keep the search, so the back link restores it.
    query = parse_qs(urlsplit(page.find("a", class_="cite")[0]["attrs"]["href"]).query)
    assert query["mode"] == ["lexical"] and query["source"] == ["central-asia-news-2025-12-16"]


def test_empty_query_is_a_friendly_prompt(client):
    for q in ("", "   "):
        page = get_page(client, "/", q=q)
        assert "Type something to search for" in page.find("h1")[0]["text"]
        assert not page.find("ol", class_="results")


def test_no_results_says_so_and_offers_to_drop_the_filters(client):
    page = get_page(client, "/", q="Toktogul water levels", date_from="2030-01-01")
    assert "No passages match" in page.find("h1")[0]["text"]
    links = [a["attrs"]["href"] for a in page.find("a")]
    assert "/?q=Toktogul+water+levels" in links


def test_low_confidence_shows_the_closest_passages_but_says_so(client):
    page = get_page(client, "/", q="recipe for sourdough bread with rye flour")
    notices = page.find("section", class_="low-confidence")
    assert notices and "No confident match" in notices[0]["text"]
    assert page.find("li", class_="result"), "the closest passages are still shown"
    assert not page.find("section", class_="answer")
    confident = get_page(client, "/", q="Toktogul water levels")
    assert not confident.find("section", class_="low-confidence")


@pytest.mark.parametrize("params,fragment", [
    ({"q": "water", "date_from": "16/12/2025"}, "YYYY-MM-DD"),
    ({"q": "x" * 1001}, "1000"),
    ({"q": "water", "mode": "fuzzy"}, "hybrid, dense, lexical"),
    ({"q": "water", "k": "ten"}, "1..100"),
])
def test_bad_input_is_a_400_page_with_the_fix(client, params, fragment):
    page = get_page(client, "/", 400, **params)
    [alert] = page.find("section", role="alert")
    assert fragment in alert["text"]
    assert page.find("form", role="search"), "the search box stays on the page"


def test_query_text_is_escaped(client):
    response = client.get("/", params={"q": "<script>alert(1)</script> water"})
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; water" in response.text


def test_unknown_article_is_a_friendly_404_page(client):
    page = get_page(client, "/articles/no-such-article", 404)
    assert "We couldn’t find that article" in page.find("h1")[0]["text"]


def test_answer_box_when_the_answer_module_finds_one(client):
    pytest.importorskip("indexer.query.answer")
    page = get_page(client, "/", q="How low is the water level at the Toktogul reservoir?")
    answers = page.find("section", class_="answer")
    assert answers, "an answerable question shows the answer box"
    assert TOKTOGUL in answers[0]["text"]
    assert answers[0]["text"].count("16 December 2025") == 1


# --- markup in articles, and server faults, over a small index of its own ------------------------


@pytest.fixture(scope="module")
def script_client(tmp_path_factory, embedder):
    from litestar.testing import TestClient

    from indexer.ingest.build import build_index
    from service.app import ServiceSettings, create_app

    root = tmp_path_factory.mktemp("web")
    source = root / "articles.jsonl"
    source.write_text(json.dumps(SCRIPT_ARTICLE) + "\n", encoding="utf-8")
    summary = build_index([source], root / "index", embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    app = create_app(ServiceSettings(index_dir=root / "index", reload_interval=0), embedder=embedder)
    with TestClient(app=app) as test_client:
        yield test_client


def test_markup_in_articles_is_escaped_everywhere(script_client):
    response = script_client.get("/", params={"q": "snow removal budget"})
    assert response.status_code == 200
    text = response.text
    assert "<script>window" not in text and "<img src=x" not in text
    assert "&lt;script&gt;window.__pwned = &#39;title&#39;&lt;/script&gt;" in text
    page = Page(text)
    assert [s["attrs"].get("src") for s in page.find("script")] == ["/static/search.js"]
    assert not page.find("img")
    href = page.find("a", class_="cite")[0]["attrs"]["href"]
    article = script_client.get(href.split("#")[0])
    assert article.status_code == 200
    assert "<script>window" not in article.text and "<img src=x" not in article.text
    assert "&lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt;" in article.text
    article_page = Page(article.text)
    assert [s["attrs"].get("src") for s in article_page.find("script")] == ["/static/search.js"]
    # The javascript: URL of the record is never made a link.
    assert not [a for a in article_page.find("a") if "javascript" in a["attrs"].get("href", "").lower()]
    body = " ".join(p["text"] for p in article_page.find("p"))
    assert "<script>window.__pwned = 1; alert('xss')</script>" in html.unescape(body)


def test_a_server_fault_is_a_friendly_500_page(tmp_path, script_client, embedder):
    from litestar.testing import TestClient

    from indexer.store.embedded import current_version
    from service.app import ServiceSettings, create_app

    index_dir = tmp_path / "index"
    shutil.copytree(Path(script_client.app.state.resources.settings.index_dir), index_dir)
    app = create_app(ServiceSettings(index_dir=index_dir, reload_interval=0), embedder=embedder)
    with TestClient(app=app) as broken:
        # The metadata database disappears under the running server: a real fault, not bad input.
        (current_version(index_dir) / "newsqa.sqlite").unlink()
        page = get_page(broken, "/", 500, q="snow removal")
        [alert] = page.find("section", role="alert")
        assert "Something went wrong on our side" in alert["text"]
        assert page.find("form", role="search")
