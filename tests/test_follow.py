"""Following sources (issue 16): feeds, news sitemaps and article pages from a made-up site on loopback.

Every request goes to `service.feeds_demo.FixtureSite` on 127.0.0.1; nothing reaches the internet.
"""

from __future__ import annotations

from urllib.parse import quote

import time
from datetime import datetime, timezone

import httpx
import pytest

from service.feeds_demo import BOILERPLATE_MARKERS, PATHS, STORIES, FixtureSite

TIMEOUT = 1.0


@pytest.fixture()
def site():
    with FixtureSite(slow_seconds=4 * TIMEOUT) as site:
        yield site


def fetch_settings():
    from indexer.ingest.web import FetchSettings

    return FetchSettings(timeout=TIMEOUT, max_bytes=1_000_000, host_delay=0.0)


def sources(site, tmp_path, *, broken=True):
    from indexer.ingest.follow import read_source_list

    path = tmp_path / "sources.txt"
    path.write_text(site.sources_text(broken=broken))
    return read_source_list(path)


def run_round(site, tmp_path, index_dir, embedder, *, broken=True):
    from indexer.ingest.follow import follow_round

    return follow_round(sources(site, tmp_path, broken=broken), index_dir, embedder=embedder, fetch=fetch_settings())


def indexed(index_dir):
    """Articles in the live index version by title, and the follow state's record of each."""
    from indexer.ingest.follow import load_state
    from indexer.store.embedded import open_index

    state = load_state(index_dir)
    index = open_index(index_dir)
    try:
        articles = index.articles([u["article_id"] for u in state["urls"].values() if "article_id" in u])
    finally:
        index.close()
    notes = {u["article_id"]: u for u in state["urls"].values() if u.get("status") == "indexed"}
    return {a.title: (a, notes[a.article_id]) for a in articles.values()}, state


def test_first_round_indexes_every_allowed_article_and_reports_each_failing_source(tmp_path, site, embedder):
    index_dir = tmp_path / "index"
    started = time.monotonic()
    report = run_round(site, tmp_path, index_dir, embedder)
    elapsed = time.monotonic() - started
    by_name = {s.name: s for s in report.sources}

    # Each broken source is reported by name with its reason; the good ones have no error.
    assert {name: s.error is None for name, s in by_name.items()} == {
        "harbour-gazette": True, "steppe-courier": True, "metro-weekly": True, "slow-source": False,
        "broken-source": False, "looping-source": False, "huge-source": False, "html-source": False}
    assert "timed out" in by_name["slow-source"].error and "1 s" in by_name["slow-source"].error
    assert "HTTP 500" in by_name["broken-source"].error
    assert "more than 5 redirects" in by_name["looping-source"].error
    assert "1000000-byte limit" in by_name["huge-source"].error
    assert "HTML page" in by_name["html-source"].error and "not a feed" in by_name["html-source"].error
    # The slow source cost its timeout, not the time it would have taken.
    assert by_name["slow-source"].seconds < 2 * TIMEOUT
    assert elapsed < 4 * TIMEOUT + 60  # embedding 4 articles on a busy machine included

    articles, state = indexed(index_dir)
    expected = {
        STORIES["quokka-census"][0]: ("harbour-gazette", "2026-03-04", "page"),
        STORIES["glacier-retreat"][0]: ("harbour-gazette", "2026-03-05", "page"),
        STORIES["falcon-festival"][0]: ("steppe-courier", "2026-03-06", "page"),
        STORIES["river-cleanup"][0]: ("metro-weekly", "2026-03-07", "feed"),  # no date on the page
    }
    assert {title: (a.source, a.date, note["date_source"]) for title, (a, note) in articles.items()} == expected
    for title, (article, note) in articles.items():
        slug = next(s for s, story in STORIES.items() if story[0] == title)
        for paragraph in STORIES[slug][3]:
            assert paragraph in article.text
        for marker in BOILERPLATE_MARKERS + ["Mayor opens the new bicycle bridge", "All rights reserved",
                                             "We use cookies"]:
            assert marker not in article.text, (title, marker)
        assert note["lang"] == article.lang == "en" and note["author"] == STORIES[slug][1]
        assert article.url.startswith(site.url) and "utm_" not in article.url

    # robots.txt forbids /private/: never requested, remembered as such.
    assert site.requests["/private/leaked-memo.html"] == 0
    assert by_name["harbour-gazette"].disallowed == [f"{site.url}/private/leaked-memo.html"]
    # The quokka story, linked again by the Atom feed with utm_/fbclid parameters, was fetched once.
    assert site.requests["/news/quokka-census.html"] == 1
    # The syndicated copy of the glacier story (another URL, same text) is dropped as a near duplicate.
    assert site.requests["/syndicated/glacier-copy.html"] == 1
    assert state["urls"][f"{site.url}/syndicated/glacier-copy.html"]["status"] == "duplicate"
    assert report.build.added == 4 and report.build.duplicates == 1

    from indexer.ingest.follow import follow_status

    status = follow_status(index_dir)
    assert status["harbour-gazette"]["articles"] == 2 and status["harbour-gazette"]["last_error"] is None
    assert status["metro-weekly"]["articles"] == 1 and status["steppe-courier"]["articles"] == 1
    assert status["broken-source"]["articles"] == 0 and "HTTP 500" in status["broken-source"]["last_error"]
    assert all(s["last_fetched"] for s in status.values())


def test_second_round_fetches_nothing_and_a_new_entry_is_fetched_alone(tmp_path, site, embedder):
    from indexer.store.embedded import current_version

    index_dir = tmp_path / "index"
    run_round(site, tmp_path, index_dir, embedder, broken=False)
    version = current_version(index_dir)
    fetched_before = site.article_fetches()
    feed_requests = site.requests["/feeds/rss.xml"]

    report = run_round(site, tmp_path, index_dir, embedder, broken=False)
    assert site.article_fetches() == fetched_before  # 0 article fetches
    by_name = {s.name: s for s in report.sources}
    assert by_name["harbour-gazette"].status == "not_modified"  # the ETag matched: a 304
    assert site.requests["/feeds/rss.xml"] == feed_requests + 1
    assert report.build is None and current_version(index_dir) == version

    site.publish("tram-line")
    report = run_round(site, tmp_path, index_dir, embedder, broken=False)
    assert site.article_fetches() == fetched_before + 1
    assert site.requests["/news/tram-line.html"] == 1
    assert report.build.added == 1 and current_version(index_dir) != version
    articles, _ = indexed(index_dir)
    tram, note = articles[STORIES["tram-line"][0]]
    # Neither the page nor the feed entry dates the story: the fetch time does, and says so.
    assert note["date_source"] == "fetched"
    assert tram.date == datetime.now(timezone.utc).date().isoformat()


def test_a_new_entry_becomes_searchable_in_a_running_service_without_a_failed_request(tmp_path, site, embedder):
    from helpers import LiveServer, QueryLoad, free_port, wait_for

    from service.app import ServiceSettings

    index_dir = tmp_path / "index"
    run_round(site, tmp_path, index_dir, embedder, broken=False)
    settings = ServiceSettings(index_dir=index_dir, port=free_port(), reload_interval=0.2)
    tram_title = STORIES["tram-line"][0]

    def tram_found() -> bool:
        hits = httpx.get(f"{server.url}/v1/search", params={"q": "tram line to the airport terminals", "k": 3},
                         timeout=30).json()["hits"]
        return any(h["citation"]["title"] == tram_title for h in hits)

    with LiveServer(settings, embedder) as server:
        server.app.state.reloader.grace = 0.2
        with QueryLoad(server.url, clients=3) as load:
            wait_for(lambda: load.ok >= 10, 60, "queries did not get going")
            assert not tram_found()
            site.publish("tram-line")
            report = run_round(site, tmp_path, index_dir, embedder, broken=False)
            assert report.build.added == 1
            wait_for(tram_found, 20, "the new entry never became searchable")
            count = load.ok
            wait_for(lambda: load.ok >= count + 10, 60, "queries stalled after the swap")
        assert load.failures == [], f"{len(load.failures)} failed requests of {load.ok}: {load.failures[:5]}"


def test_tracking_parameters_are_stripped_and_source_lists_are_checked(tmp_path):
    from indexer.errors import InvalidParameter
    from indexer.ingest.follow import parse_every, read_source_list
    from indexer.ingest.web import normalize_url

    assert normalize_url("HTTP://Example.org:80/a/b.html?id=7&utm_source=x&utm_medium=y&fbclid=1&gclid=2#top") \
        == "http://example.org/a/b.html?id=7"
    listing = tmp_path / "sources.txt"
    listing.write_text("# news\nhttps://a.example/feed.xml\nhttps://b.example/rss  B Daily\n")
    assert [(s.name, s.url) for s in read_source_list(listing)] == [
        ("a.example", "https://a.example/feed.xml"), ("B Daily", "https://b.example/rss")]
    listing.write_text("https://a.example/feed.xml\nnot-a-url\n")
    with pytest.raises(InvalidParameter, match=r"sources.txt:2: 'not-a-url' is not an http\(s\) URL"):
        read_source_list(listing)
    listing.write_text("https://a.example/feed.xml x\nhttps://a.example/other.xml x\n")
    with pytest.raises(InvalidParameter, match="'x' is already used on line 1"):
        read_source_list(listing)
    assert parse_every("15m") == 900 and parse_every("90s") == 90 and parse_every("1h") == 3600
    with pytest.raises(InvalidParameter, match="not a duration"):
        parse_every("soon")


def test_xml_bombs_are_refused():
    from indexer.ingest.feeds import FeedError, classify

    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<rss><channel><title>&lol2;</title></channel></rss>")
    with pytest.raises(FeedError, match="unsafe XML"):
        classify(bomb, "application/rss+xml")


@pytest.fixture()
def followed_app(tmp_path, site, embedder):
    """A live app (Litestar test client) over an index followed from the fixture site, with an admin key."""
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    index_dir = tmp_path / "index"
    run_round(site, tmp_path, index_dir, embedder)
    app = create_app(ServiceSettings(index_dir=index_dir, admin_key="adm", reload_interval=0), embedder=embedder)
    with TestClient(app) as client:
        yield client


def test_sources_status_route_and_page_show_each_followed_source(followed_app):
    status = followed_app.get("/v1/sources/status").json()["sources"]
    assert status["harbour-gazette"]["articles"] == 2 and status["harbour-gazette"]["last_error"] is None
    assert status["metro-weekly"]["articles"] == 1 and status["metro-weekly"]["last_fetched"]
    assert status["looping-source"]["articles"] == 0 and "redirects" in status["looping-source"]["last_error"]
    assert status["looping-source"]["last_success"] is None
    page = followed_app.get("/sources")
    assert page.status_code == 200
    for name in ("harbour-gazette", "steppe-courier", "metro-weekly", "slow-source"):
        assert name in page.text
    assert "answered HTTP 500" in page.text


def test_pushed_articles_are_indexed_and_searchable_at_once_with_per_record_errors(followed_app):
    from helpers import assert_error

    admin = {"Authorization": "Bearer adm"}
    article = {"title": "Lighthouse keeper retires after forty winters",
               "text": "The last keeper of the Skerry lighthouse handed over the keys after forty winters on the "
                       "rock.\n\nAutomation means the lamp will now be watched from the mainland.",
               "date": "2026-03-08", "source": "Coast Post", "url": "https://coast.example/keeper"}
    assert_error(followed_app.post("/v1/articles", json=article), 401, "unauthorized")
    assert_error(followed_app.post("/v1/articles", json=article, headers={"Authorization": "Bearer nope"}),
                 401, "unauthorized")
    response = followed_app.post("/v1/articles", headers=admin, json=[
        article, {"title": "No body"}, {"title": "Bad date", "text": "Some text here.", "date": "March 8th"},
        {"title": "Extra", "text": "Body.", "colour": "blue"}, "not an object", {"title": "Blank", "text": " \n "}])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["accepted"], body["added"]) == (6, 1, 1) and body["version"]
    assert [(e["index"], e["message"].split(":")[0].split(" (")[0]) for e in body["errors"]] == [
        (1, "missing required field(s)"), (2, "`date` 'March 8th' is not ISO 8601"),
        (3, "unknown field(s) colour"), (4, "expected a JSON object, got str"), (5, "`text` is blank")]
    hits = followed_app.get("/v1/search", params={"q": "lighthouse keeper retires", "k": 3}).json()["hits"]
    assert hits[0]["citation"]["title"] == article["title"] and hits[0]["citation"]["source"] == "Coast Post"
    # The same article again changes nothing; nothing usable at all is a 400 in the common shape.
    again = followed_app.post("/v1/articles", headers=admin, json=article).json()
    assert (again["added"], again["unchanged"], again["errors"]) == (0, 1, [])
    assert_error(followed_app.post("/v1/articles", headers=admin, json=[{"text": "no title"}]), 400, "invalid_input")
    assert_error(followed_app.post("/v1/articles", headers=admin, content=b"{not json"), 400, "invalid_parameter")

    # DELETE removes it from search at once; a second DELETE, or an unknown id, is a 404.
    article_id = hits[0]["citation"]["article_id"]
    path = "/v1/articles/" + quote(article_id, safe="")
    assert_error(followed_app.delete(path), 401, "unauthorized")
    deleted = followed_app.delete(path, headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] == article_id and deleted.json()["version"] != body["version"]
    hits = followed_app.get("/v1/search", params={"q": "lighthouse keeper retires", "k": 10}).json()["hits"]
    assert article_id not in {h["citation"]["article_id"] for h in hits}
    assert_error(followed_app.get(path), 404, "not_found")
    assert_error(followed_app.delete(path, headers=admin), 404, "not_found")


def test_a_push_longer_than_the_request_time_budget_still_lands(tmp_path, site, embedder):
    from litestar.testing import TestClient

    from helpers import assert_error
    from service.app import ServiceSettings, create_app

    index_dir = tmp_path / "index"
    run_round(site, tmp_path, index_dir, embedder)
    budget = 0.001  # far below the time to search, let alone to embed and write an article
    app = create_app(ServiceSettings(index_dir=index_dir, admin_key="adm", reload_interval=0, request_timeout=budget),
                     embedder=embedder)
    admin = {"Authorization": "Bearer adm"}
    article = {"id": "ferry/winter", "title": "Ferry timetable changes for the winter season",
               "text": "The island ferry will sail twice a day from November, the harbour board said. " * 20}
    with TestClient(app) as client:
        # A search that cannot finish in the budget is cut; writes are not.
        assert_error(client.get("/v1/search", params={"q": "ferry winter timetable island harbour", "k": 100}),
                     503, "timeout")
        pushed = client.post("/v1/articles", json=article, headers=admin)
        assert pushed.status_code == 200 and pushed.json()["added"] == 1, pushed.text
        path = "/v1/articles/" + quote(article["id"], safe="")
        assert client.delete(path, headers=admin).status_code == 200
        assert_error(client.delete(path, headers=admin), 404, "not_found")


def test_pushing_articles_is_refused_without_an_admin_key(tmp_path, embedder, news_index_dir):
    from helpers import assert_error
    from litestar.testing import TestClient

    from service.app import ServiceSettings, create_app

    app = create_app(ServiceSettings(index_dir=news_index_dir, reload_interval=0), embedder=embedder)
    with TestClient(app) as client:
        assert_error(client.post("/v1/articles", json={"title": "t", "text": "x"}), 403, "forbidden")
        assert_error(client.delete("/v1/articles/some-id"), 403, "forbidden")


def test_index_urls_reads_a_feed_a_sitemap_and_a_single_page(site):
    from indexer.ingest.follow import fetch_url_records

    records, errors = fetch_url_records([f"{site.url}/feeds/atom.xml", f"{site.url}/sitemaps/news.xml",
                                         f"{site.url}/news/glacier-retreat.html", f"{site.url}/broken/feed.xml",
                                         f"{site.url}/private/leaked-memo.html"], fetch_settings())
    assert sorted((r.title, r.date, r.date_source) for r in records) == sorted([
        (STORIES["falcon-festival"][0], "2026-03-06", "page"), (STORIES["quokka-census"][0], "2026-03-04", "page"),
        (STORIES["river-cleanup"][0], "2026-03-07", "feed"),
        (STORIES["glacier-retreat"][0], "2026-03-05", "page"),  # the syndicated copy: the build drops one
        (STORIES["glacier-retreat"][0], "2026-03-05", "page")])
    problems = {e.path.rsplit("/", 2)[-2]: e.message for e in errors}
    assert set(problems) == {"broken", "private"}
    assert "answered HTTP 500" in problems["broken"] and "robots.txt" in problems["private"]
    assert site.requests["/private/leaked-memo.html"] == 0


@pytest.fixture()
def restore_logging():
    """`main()` configures logging onto the captured stderr: put the handlers back so nothing logs to it later."""
    import logging

    root = logging.getLogger()
    handlers = root.handlers[:]
    yield
    root.handlers[:] = handlers


@pytest.mark.slow
def test_cli_follow_once_and_index_url(tmp_path, site, capsys, restore_logging):
    from service.cli import main

    listing = tmp_path / "sources.txt"
    listing.write_text(site.sources_text(broken=False) + f"{site.url}/broken/feed.xml broken-source\n")
    flags = ["--timeout", "1", "--host-delay", "0"]
    assert main(["follow", str(listing), "--index", str(tmp_path / "index"), "--once", *flags]) == 0
    out, err = capsys.readouterr()
    assert "source broken-source: error: " in err and "answered HTTP 500" in err
    assert "4 articles added, 1 duplicates dropped" in out
    assert main(["index", f"{site.url}/news/tram-line.html", "--index", str(tmp_path / "index"), "--no-progress",
                 *flags]) == 0
    out, err = capsys.readouterr()
    assert "1 added" in out and "index holds 5 articles" in out


def test_concurrent_writers_lose_no_article_and_one_follower_per_index(tmp_path, site, embedder):
    import fcntl
    import threading

    from indexer.errors import InvalidParameter
    from indexer.ingest.follow import FOLLOW_LOCK, WebRecord, follow_round, index_records
    from indexer.store.embedded import open_index

    index_dir = tmp_path / "index"

    def record(n: int) -> WebRecord:
        return WebRecord(key=f"k{n}", article_id=f"pushed-{n}", title=f"Harbour report number {n}",
                         paragraphs=(f"Story {n}: " + " ".join(f"word{n}x{i}" for i in range(40)),),
                         date="2026-03-01", date_source="page", source="s", url=f"https://x.example/{n}",
                         author=None, lang="en")

    # Two builds at once both start from the live version: without the writer lock one's articles vanish.
    threads = [threading.Thread(target=index_records, args=([record(n)], index_dir), kwargs={"embedder": embedder})
               for n in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    index = open_index(index_dir)
    try:
        assert sorted(index.articles(["pushed-1", "pushed-2", "pushed-3"])) == ["pushed-1", "pushed-2", "pushed-3"]
    finally:
        index.close()

    with open(index_dir / FOLLOW_LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InvalidParameter, match="another `newsqa follow` is running"):
            follow_round(sources(site, tmp_path, broken=False), index_dir, embedder=embedder, fetch=fetch_settings())


def test_rss_1_0_feeds_and_sitemap_indexes_list_their_articles(site):
    from indexer.ingest.feeds import FEED, SITEMAP_INDEX, classify
    from indexer.ingest.follow import FollowSettings, Source, list_source
    from indexer.ingest.web import Fetcher

    fetcher = Fetcher(fetch_settings())
    rdf = fetcher.get(f"{site.url}/feeds/rdf.xml")
    assert classify(rdf.body, rdf.content_type)[0] == FEED
    report, entries = list_source(fetcher, Source("rdf", f"{site.url}/feeds/rdf.xml"), previous={},
                                  settings=FollowSettings())
    assert report.error is None
    assert [(e.url, e.date, e.author) for e in entries] == [
        (f"{site.url}/world/falcon-festival.html", "2026-03-06", "Aigerim Sadyk")]

    index = fetcher.get(f"{site.url}/sitemaps/index.xml")
    assert classify(index.body, index.content_type)[0] == SITEMAP_INDEX
    report, entries = list_source(fetcher, Source("map", f"{site.url}/sitemaps/index.xml"), previous={},
                                  settings=FollowSettings())
    assert report.error is None and site.requests["/sitemaps/news.xml"] == 1
    assert [(e.url.rsplit("/", 1)[-1], e.date, e.title) for e in entries] == [
        ("river-cleanup.html", "2026-03-07", STORIES["river-cleanup"][0]),
        ("glacier-copy.html", "2026-03-05", STORIES["glacier-retreat"][0])]


def test_an_article_page_that_failed_is_retried_next_round(tmp_path, site, embedder):
    from indexer.ingest.follow import load_state

    index_dir = tmp_path / "index"
    run_round(site, tmp_path, index_dir, embedder, broken=False)
    fetched = site.article_fetches()
    site.failing.add("/news/tram-line.html")
    site.publish("tram-line")
    report = run_round(site, tmp_path, index_dir, embedder, broken=False)
    gazette = next(s for s in report.sources if s.name == "harbour-gazette")
    assert gazette.error is None and [(u.rsplit("/", 1)[-1], "HTTP 503" in r) for u, r in gazette.failed] == [
        ("tram-line.html", True)]
    assert load_state(index_dir)["urls"][f"{site.url}/news/tram-line.html"]["attempts"] == 1
    assert report.build is None

    # The feed's validators were not saved, so the next round reads it again and retries only that page.
    site.failing.clear()
    report = run_round(site, tmp_path, index_dir, embedder, broken=False)
    assert next(s for s in report.sources if s.name == "harbour-gazette").status == "ok"
    assert report.build.added == 1
    assert site.article_fetches() == fetched + 2  # the failed try and the retry; nothing else again
    articles, _ = indexed(index_dir)
    assert STORIES["tram-line"][0] in articles


def test_search_filters_by_language_on_the_api_the_page_and_the_tools(followed_app):
    from helpers import assert_error

    admin = {"Authorization": "Bearer adm"}
    german = {"id": "de-1", "title": "Neue Straßenbahn zum Flughafen eröffnet", "lang": "de", "source": "Anzeiger",
              "date": "2026-03-09",
              "text": "Die erste Straßenbahn der neuen Linie fuhr am Morgen vom Hauptbahnhof zum Flughafen ab.\n\n"
                      "Die Fahrt zu den Terminals dauert nun zwanzig Minuten, sagte die Verkehrsbehörde."}
    assert followed_app.post("/v1/articles", headers=admin, json=german).json()["added"] == 1
    assert followed_app.get("/v1/articles/de-1").json()["lang"] == "de"

    def titles(**params):
        response = followed_app.get("/v1/search", params={"k": 10, "mode": "lexical", **params})
        assert response.status_code == 200, response.text
        return {h["citation"]["title"] for h in response.json()["hits"]}

    assert titles(q="Straßenbahn Flughafen", lang="de") == {german["title"]}
    assert titles(q="Straßenbahn Flughafen", lang="en") == set()
    english = titles(q="quokka census rangers", lang="EN")
    assert STORIES["quokka-census"][0] in english and german["title"] not in english
    assert_error(followed_app.get("/v1/search", params={"q": "tram", "lang": "english"}), 400, "invalid_lang")
    # The page and the tools take the same filter.
    page = followed_app.get("/", params={"q": "Straßenbahn Flughafen", "lang": "de", "mode": "lexical"})
    assert page.status_code == 200 and german["title"] in page.text
    page = followed_app.get("/", params={"q": "Straßenbahn Flughafen", "lang": "en", "mode": "lexical"})
    assert german["title"] not in page.text
    context = followed_app.get("/v1/context", params={"q": "Straßenbahn Flughafen", "lang": "de", "mode": "lexical"})
    assert context.status_code == 200 and [c["title"] for c in context.json()["citations"]] == [german["title"]]
    assert_error(followed_app.post("/v1/articles", headers=admin, json={**german, "id": "de-2", "lang": "deutsch"}),
                 400, "invalid_input")


def test_versions_from_before_languages_still_load_filter_and_grow(tmp_path, embedder):
    import json
    import sqlite3

    from indexer.ingest.build import build_index
    from indexer.query.search import Searcher, make_filters
    from indexer.store.embedded import current_version, open_index

    feed = tmp_path / "a.jsonl"
    feed.write_text(json.dumps({"id": "old-1", "title": "Harbour crane toppled by storm",
                                "text": "A gantry crane at the container harbour toppled in the storm overnight."}) + "\n")
    index_dir = tmp_path / "index"
    build_index([feed], index_dir, embedder=embedder, progress=False)
    db = sqlite3.connect(current_version(index_dir) / "newsqa.sqlite")
    db.execute("ALTER TABLE articles DROP COLUMN lang")  # as written before languages were recorded
    db.commit()
    db.close()
    index = open_index(index_dir)
    try:
        assert index.article("old-1").lang is None
        searcher = Searcher(index, embedder)
        assert searcher.search("crane storm", k=3, mode="lexical", filters=make_filters(lang="en")).hits == []
        assert searcher.search("crane storm", k=3, mode="lexical").hits
    finally:
        index.close()
    feed.write_text(json.dumps({"id": "new-1", "title": "Ferry resumes service", "lang": "en",
                                "text": "The island ferry resumed its service after the storm passed."}) + "\n")
    summary = build_index([feed], index_dir, embedder=embedder, progress=False)
    assert summary.added == 1 and not summary.errors
    index = open_index(index_dir)
    try:
        assert index.article("new-1").lang == "en" and index.article("old-1").lang is None
    finally:
        index.close()


def test_language_is_declared_by_the_page_or_guessed_from_the_text(news_index):
    from indexer.ingest.lang import guess_language, page_language

    assert guess_language("The council said on Monday that the bridge will be closed for repairs in the spring.") == "en"
    assert guess_language("Die Stadt hat am Montag mitgeteilt, dass die Brücke im Frühjahr nicht mit dem Auto "
                          "befahren werden kann.") == "de"
    assert guess_language("Le conseil a annoncé que le pont sera fermé pour des travaux dans les semaines qui "
                          "viennent.") == "fr"
    assert guess_language("Toktogul 10.8") is None
    assert page_language('<html lang="pt-BR"><body>the and of</body></html>', "the and of to in is") == "pt"
    # Articles read from a plain-text dump carry the guessed language into the index.
    rows = news_index.list_articles(limit=20)
    langs = {news_index.article(r["article_id"]).lang for r in rows if r["kind"] == "news"}
    assert langs == {"en"}


def test_the_postgresql_store_refuses_a_language_filter_clearly(pg_news_index, embedder):
    from indexer.errors import InvalidParameter
    from indexer.query.search import Searcher, make_filters

    searcher = Searcher(pg_news_index, embedder)
    with pytest.raises(InvalidParameter, match="PostgreSQL store does not record languages") as caught:
        searcher.search("water", k=3, filters=make_filters(lang="en"))
    assert caught.value.code == "invalid_lang"


def test_requests_to_one_host_are_spaced_by_the_host_delay_and_carry_the_user_agent(site):
    from dataclasses import replace

    from indexer.ingest.web import Fetcher

    seen = []
    original = site._respond

    def recording(handler, path, slugs, version):
        seen.append((time.monotonic(), handler.headers.get("User-Agent")))
        return original(handler, path, slugs, version)

    site._respond = recording
    fetcher = Fetcher(replace(fetch_settings(), host_delay=0.3, user_agent="test-crawler/1"))
    for slug in ("quokka-census", "glacier-retreat", "falcon-festival"):
        fetcher.get(site.url + PATHS[slug])
    assert len(seen) == 4  # robots.txt, then the three pages
    gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:])]
    assert all(gap >= 0.25 for gap in gaps), gaps
    assert {agent for _, agent in seen} == {"test-crawler/1"}
