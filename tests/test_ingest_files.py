"""One article per file: .txt, .md (front matter or `#` title) and .html files read as one article each.

The fixtures are small made-up articles written here; the multi-article dump is the shipped page.
"""

from __future__ import annotations

import shutil

import pytest

from indexer.ingest.read import ReadReport, read_sources
from indexer.types import MARKET_RATES, NEWS

from helpers import NEWS_PAGE

TXT = """Glacier Museum Opens in Karakol

12 May 2024

The town of Karakol opened a museum about the glaciers of the Tian Shan on Sunday, its director said.

Visitors can walk through a model ice cave and see photographs of the Inylchek glacier taken since 1930.
"""

FRONT_MATTER = """---
title: "Apricot Harvest Breaks Record in Batken"
date: 2024-07-03
source: Fergana Valley Herald
url: https://example.org/apricots
layout: post
---

# Apricot Harvest Breaks Record in Batken

Farmers in Batken picked 90,000 tonnes of apricots this season, the regional office reported.

## Exports

Most of the dried fruit goes to Russia and China, traders said.
"""

MD_TITLE = """# Ferry Service Resumes on Lake Issyk-Kul

*2 June 2024*

A passenger ferry between Cholpon-Ata and Karakol resumed service after a ten-year pause on Saturday.

The crossing takes four hours, and tickets cost 1,500 som, the operator said.
"""

MD_UNDATED = """# Chess Club Wins National Cup

The Osh chess club won the national team cup for the third time, beating Bishkek in the final round.
"""

HTML = """<html><head><title>Snow Leopard Count Rises</title>
<meta property="og:site_name" content="Mountain Wildlife News">
<meta name="date" content="2024-02-11"></head>
<body><nav>Home | About</nav><article><h1>Snow Leopard Count Rises</h1>
<p>Camera traps recorded 30 snow leopards in the Sarychat reserve this winter, up from 18, rangers said.</p>
<p>The survey covered 700 square kilometres of high valleys over four months.</p></article></body></html>
"""

HTML_NO_SITE = """<html><head><title>Bazaar Moves to New Site</title></head>
<body><article><h1>Bazaar Moves to New Site</h1>
<p>The old city bazaar will move to a larger covered market on the edge of town next spring, the mayor said.</p>
<p>Traders will get their stalls for the same rent for the first two years.</p></article></body></html>
"""


def _read(paths, embedder) -> tuple[list, ReadReport]:
    report = ReadReport()
    return list(read_sources(paths, embed=embedder.encode, report=report)), report


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "glacier.txt").write_text(TXT)
    (tmp_path / "apricots.md").write_text(FRONT_MATTER)
    (tmp_path / "ferry.md").write_text(MD_TITLE)
    (tmp_path / "chess.md").write_text(MD_UNDATED)
    (tmp_path / "leopards.html").write_text(HTML)
    (tmp_path / "bazaar.html").write_text(HTML_NO_SITE)
    return tmp_path


def test_a_folder_of_single_article_files_gives_one_article_each(folder, embedder):
    articles, report = _read([folder], embedder)
    assert not report.errors, report.errors
    by_title = {a.title: a for a in articles}
    assert len(articles) == 6 == len(by_title)

    glacier = by_title["Glacier Museum Opens in Karakol"]
    assert (glacier.date, glacier.source) == ("2024-05-12", "glacier")
    assert glacier.text.startswith("The town of Karakol opened") and "Inylchek" in glacier.text
    assert "12 May 2024" not in glacier.text

    apricots = by_title["Apricot Harvest Breaks Record in Batken"]
    assert (apricots.date, apricots.source, apricots.url) == (
        "2024-07-03", "Fergana Valley Herald", "https://example.org/apricots")
    assert [s.title for s in apricots.sections] == [None, "Exports"]
    assert "layout" not in apricots.text and "---" not in apricots.text
    assert not apricots.text.startswith("Apricot Harvest")  # the repeated # title is not body text

    ferry = by_title["Ferry Service Resumes on Lake Issyk-Kul"]
    assert (ferry.date, ferry.source) == ("2024-06-02", "ferry")
    assert ferry.text.startswith("A passenger ferry") and "tickets cost" in ferry.text

    chess = by_title["Chess Club Wins National Cup"]
    assert (chess.date, chess.source) == (None, "chess")

    leopards = by_title["Snow Leopard Count Rises"]
    assert (leopards.date, leopards.source) == ("2024-02-11", "Mountain Wildlife News")
    assert by_title["Bazaar Moves to New Site"].source == "bazaar"


def test_the_multi_article_dump_still_splits_next_to_single_articles(folder, embedder):
    shutil.copy(NEWS_PAGE, folder / NEWS_PAGE.name)
    articles, report = _read([folder], embedder)
    assert not report.errors, report.errors
    page = [a for a in articles if a.source == NEWS_PAGE.stem]
    assert len([a for a in page if a.kind == NEWS]) == 6
    assert len([a for a in page if a.kind == MARKET_RATES]) == 1
    assert len(articles) == 6 + 7


def test_broken_front_matter_is_reported_and_the_article_still_read(tmp_path, embedder):
    (tmp_path / "broken.md").write_text("---\ntitle: [unclosed\ndate: 2024-01-01\n---\n\n# Real Title Here\n\n"
                                        "Body text of the article, long enough to read as prose.\n")
    (tmp_path / "baddate.md").write_text("---\ntitle: Council Meets\ndate: someday\n---\n\n"
                                         "The council met on Tuesday and approved the budget.\n")
    articles, report = _read([tmp_path], embedder)
    assert {a.title for a in articles} == {"Real Title Here", "Council Meets"}
    messages = {e.where(): e.message for e in report.errors}
    assert any(where.startswith(str(tmp_path / "broken.md") + ":") and "invalid YAML front matter" in message
               for where, message in messages.items()), messages
    assert "is not ISO 8601" in messages[str(tmp_path / "baddate.md")]
