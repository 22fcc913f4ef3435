"""Segmentation and reading of real inputs: the shipped page, JSONL, a folder of files."""

from __future__ import annotations

import json

import pytest

from indexer.ingest.read import ReadReport, read_sources
from indexer.ingest.segment import parse_date, segment_dump
from indexer.types import MARKET_RATES, NEWS

from helpers import NEWS_PAGE

EXPECTED_TITLES = [
    "Trump and Tokayev Secure a Historic $4.2 Billion Locomotive Deal",
    "Kazakhstan and China Expand Cooperation in Water Management",
    "After Berdimuhamedov Sr.’s Visit, Azerbaijan to Gift Oil Tanker to Turkmenistan",
    "Faith and Diplomacy: Kazakhstan Reconciles Religious Leaders",
    "Kyrgyzstan Faces Power Shortages Amid Record Low Water Levels at Toktogul Reservoir",
    "Kazakhstan to Invest $24 Billion in Energy Modernization",
]


@pytest.fixture(scope="module")
def page(embedder):
    return segment_dump(NEWS_PAGE.read_text(), origin=str(NEWS_PAGE), source="central-asia-news", embed=embedder.encode)


def test_the_page_is_exactly_six_dated_articles(page):
    news = [a for a in page.articles if a.kind == NEWS]
    assert [a.title for a in news] == EXPECTED_TITLES
    assert {a.date for a in news} == {"2025-12-16"}


def test_section_headings_stay_inside_their_articles(page):
    by_title = {a.title: a for a in page.articles}
    locomotive = by_title[EXPECTED_TITLES[0]]
    assert [s.title for s in locomotive.sections] == [
        None, "What Trump and Tokayev said", "Why It Matters: Unlocking Regional Corridors to the West", "The Bottom Line",
    ]
    tanker = by_title[EXPECTED_TITLES[2]]
    assert [s.title for s in tanker.sections] == [None, "From Symbolism to Infrastructure", "Broadening Turkmen-Azerbaijani Cooperation"]
    # A section spans its own text: the Bottom Line section starts with its first paragraph.
    bottom = locomotive.sections[-1]
    assert locomotive.text[bottom.start:].startswith("Taken together")
    assert bottom.end == len(locomotive.text)
    for article in page.articles:
        for heading in ("What Trump and Tokayev said", "The Bottom Line"):
            assert heading not in article.text


def test_currency_ticker_is_kept_once_as_a_dated_record(page):
    records = [a for a in page.articles if a.kind == MARKET_RATES]
    assert len(records) == 1
    rates = records[0]
    assert rates.date == "2025-12-16"
    assert rates.text.splitlines() == [
        "KGS/USD = 0.01144 0%", "KZT/USD = 0.00194 -0%", "TJS/USD = 0.10877 -0%",
        "UZS/USD = 0.00008 0%", "TMT/USD = 0.28571 0%",
    ]
    assert page.boilerplate_lines == 40
    assert not any("KGS/USD" in a.text for a in page.articles if a.kind == NEWS)


def test_offsets_and_paragraphs_index_the_article_text(page):
    for article in page.articles:
        for start, end in article.paragraphs:
            assert article.text[start:end].strip() == article.text[start:end] != ""
        assert article.sections[0].start == 0
        assert article.sections[-1].end == len(article.text)


def test_ids_are_stable_across_runs(page, embedder):
    again = segment_dump(NEWS_PAGE.read_text(), origin="x", source="central-asia-news", embed=embedder.encode)
    assert [a.article_id for a in again.articles] == [a.article_id for a in page.articles]


def test_a_different_layout_segments_the_same_way(embedder):
    # Two dates, a markdown file: the method is not tied to the shipped page.
    text = (
        "Menu | Home | World\n\n3 March 2024\n\n"
        "Floods Close Schools Across Almaty Region\n\n"
        "Heavy spring floods forced authorities in the Almaty region to close 40 schools on Monday, officials said.\n\n"
        "Rescue teams evacuated more than 2,000 residents from low-lying villages as rivers burst their banks.\n\n"
        "Menu | Home | World\n\nMarch 4, 2024\n\n"
        "Uzbekistan Launches New High-Speed Rail Line to Khiva\n\n"
        "Uzbekistan opened a high-speed railway between Bukhara and Khiva, cutting travel time to three hours.\n\n"
        "Menu | Home | World\n"
    )
    result = segment_dump(text, origin="t.txt", source="t", embed=embedder.encode)
    assert [(a.title, a.date) for a in result.articles] == [
        ("Floods Close Schools Across Almaty Region", "2024-03-03"),
        ("Uzbekistan Launches New High-Speed Rail Line to Khiva", "2024-03-04"),
    ]
    assert result.boilerplate_lines == 3


@pytest.mark.parametrize("text,expected", [
    ("16 December 2025", "2025-12-16"), ("December 16, 2025", "2025-12-16"), ("2025-12-16", "2025-12-16"),
    ("Tuesday, 16 December 2025", "2025-12-16"), ("31 February 2025", None), ("The Bottom Line", None),
])
def test_date_lines(text, expected):
    assert parse_date(text) == expected


def test_jsonl_reader_reports_bad_lines_and_keeps_going(tmp_path, embedder):
    path = tmp_path / "articles.jsonl"
    lines = [
        json.dumps({"id": "a1", "title": "Water", "text": "Para one.\n\nPara two.", "date": "2025-01-02T10:00:00Z",
                    "url": "https://example.org/a1", "source": "Example", "section": "Economy"}),
        "{not json",
        json.dumps({"id": "a2", "text": "No title."}),
        json.dumps({"id": "a3", "title": "Bad date", "text": "Text.", "date": "yesterday"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": 7, "title": "Seven", "text": "Seventh."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    report = ReadReport()
    articles = list(read_sources([tmp_path], embed=embedder.encode, report=report))
    assert [a.article_id for a in articles] == ["a1", "7"]
    first = articles[0]
    assert (first.date, first.source, first.url, first.sections[0].title) == ("2025-01-02", "Example", "https://example.org/a1", "Economy")
    assert first.text == "Para one.\n\nPara two."
    where = {e.where(): e.message for e in report.errors}
    assert set(where) == {f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5", str(tmp_path / "notes.pdf")}
    assert "title" in where[f"{path}:3"]
    assert "ISO 8601" in where[f"{path}:4"]
    assert "unsupported file type" in where[str(tmp_path / "notes.pdf")]


def test_folder_of_txt_md_and_html(tmp_path, embedder):
    (tmp_path / "one.txt").write_text("Solar Farm Opens Near Tashkent\n\nA 100 MW solar farm began operating near Tashkent on Friday.\n")
    (tmp_path / "two.md").write_text("# Bishkek Metro Plans Revived\n\nThe city council approved a study for a metro line.\n\n## Funding\n\nThe study will cost $2 million.\n")
    (tmp_path / "three.html").write_text(
        "<html><head><title>Dushanbe Hosts Water Summit</title><meta name='date' content='2025-06-01'></head>"
        "<body><nav>Home | About</nav><article><h1>Dushanbe Hosts Water Summit</h1>"
        "<p>Delegates from 50 countries met in Dushanbe to discuss glacier melt and water security in Central Asia.</p>"
        "<p>The summit ended with a declaration on shared river basins and early-warning systems for floods.</p>"
        "<p>A &lt;script&gt;alert(1)&lt;/script&gt; tag in text stays text.</p></article></body></html>"
    )
    report = ReadReport()
    articles = {a.title: a for a in read_sources([tmp_path], embed=embedder.encode, report=report)}
    assert not report.errors
    assert set(articles) == {"Solar Farm Opens Near Tashkent", "Bishkek Metro Plans Revived", "Dushanbe Hosts Water Summit"}
    assert [s.title for s in articles["Bishkek Metro Plans Revived"].sections] == [None, "Funding"]
    html = articles["Dushanbe Hosts Water Summit"]
    assert "glacier melt" in html.text and "Home | About" not in html.text
    assert html.date == "2025-06-01"
