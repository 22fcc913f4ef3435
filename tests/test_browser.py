"""The search page in a real headless Chromium, against a real `newsqa serve` process.

The index is built in a temporary folder from the shipped news page plus a
JSONL file with an article whose text carries `<script>` markup. Screenshots
go to artifacts/browser/; `NEWSQA_UPDATE_DOCS=1` also refreshes the README's
picture, docs/search-page.png, from the results page.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ARTIFACTS, NEWS_PAGE, ROOT, TOKTOGUL, free_port


playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ARTIFACTS / "browser"
README_SHOT = ROOT / "docs" / "search-page.png"
SCRIPT_TITLE = "Bishkek council notes <script>window.__pwned = 'title'</script>"
SCRIPT_ARTICLE = {
    "id": "script-sample",
    "title": SCRIPT_TITLE,
    "date": "2025-12-10",
    "source": "test-wire",
    "text": (
        "The Bishkek city council discussed the snow removal budget on Tuesday. "
        "A reader comment quoted the markup <script>window.__pwned = 1; alert('xss')</script> verbatim, "
        "and it must be shown as text.\n\n"
        "Another comment pasted <img src=x onerror=\"window.__pwned = 2; alert('img')\"> into the snow removal thread."
    ),
}
DESKTOP = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    """Base URL of a `newsqa serve` subprocess over an index built in a temporary folder."""
    from indexer.ingest.build import build_index

    root = tmp_path_factory.mktemp("browser")
    data = root / "data"
    data.mkdir()
    shutil.copy(NEWS_PAGE, data / NEWS_PAGE.name)
    (data / "extra.jsonl").write_text(json.dumps(SCRIPT_ARTICLE) + "\n", encoding="utf-8")
    summary = build_index([data], root / "index", embedder=embedder, progress=False)
    assert not summary.errors, summary.errors
    port = free_port()
    log = (root / "serve.log").open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--index", str(root / "index"), "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"newsqa serve exited with {process.returncode}:\n{(root / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"newsqa serve did not start in 180 s:\n{(root / 'serve.log').read_text()}")
            time.sleep(0.3)
        # The first searches load lazy parts of the model and index; warm them outside the timed steps.
        for warm in ("/?q=Toktogul+water+levels", "/?q=recipe+for+sourdough+bread+with+rye+flour"):
            urllib.request.urlopen(base + warm.replace(" ", "+"), timeout=180).read()
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: `make test` installs the Debian packages chromium and chromium-driver")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class Tab:
    """A fresh browser context and page; records every JavaScript dialog that opens."""

    def __init__(self, browser, base: str, **options) -> None:
        self.context = browser.new_context(viewport=options.pop("viewport", DESKTOP), **options)
        self.context.set_default_timeout(60_000)  # a loaded CI machine can be slow
        self.page = self.context.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str):
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / name
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def tab(browser, server):
    opened = Tab(browser, server)
    yield opened
    opened.context.close()


def search_with_the_box(page, query: str) -> None:
    assert page.evaluate("document.activeElement && document.activeElement.id") == "q", "box focused on load"
    page.keyboard.type(query)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_type_a_query_press_enter_and_the_toktogul_article_is_first(tab):
    page = tab.goto("/")
    search_with_the_box(page, "Toktogul water levels")
    assert "q=Toktogul+water+levels" in page.url
    first = page.locator("li.result").first
    assert first.locator("h2.result-title").inner_text().strip() == TOKTOGUL
    mark = first.locator("p.passage-text mark").first
    assert mark.is_visible()
    assert mark.inner_text().strip() in first.locator("p.passage-text").first.inner_text()
    assert "16 December 2025" in first.locator("p.meta").inner_text()
    assert page.locator("#q").input_value() == "Toktogul water levels"
    shot = tab.shot("search-results.png")
    tab.shot("search-results-full.png", full_page=True)
    # The README's picture is refreshed on request only, so test runs leave the work tree clean.
    if os.environ.get("NEWSQA_UPDATE_DOCS") or not README_SHOT.exists():
        README_SHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, README_SHOT)


def test_click_through_to_the_article_with_the_passage_highlighted_in_view(tab):
    page = tab.goto("/?q=Toktogul+water+levels")
    cite = page.locator("li.result").first.locator("a.cite").first
    with page.expect_navigation():
        cite.click()
    assert "/articles/" in page.url
    fragment = page.url.rsplit("#", 1)[1]
    start, end = map(int, fragment.split("-"))
    assert page.locator("article.article h1").inner_text() == TOKTOGUL
    mark = page.locator(f"mark[id='{fragment}']")
    assert mark.count() == 1 and mark.is_visible()
    box = mark.bounding_box()
    assert 0 <= box["y"] < DESKTOP["height"], "the cited passage is scrolled into view"
    article_id = page.url.split("/articles/")[1].split("?")[0]
    with urllib.request.urlopen(f"{tab.base}/v1/articles/{article_id}") as response:
        article = json.loads(response.read())
    assert article["text"][start:end].startswith(mark.inner_text()[:60])
    tab.shot("article-page.png")


def test_a_plain_fragment_link_is_highlighted_too(tab):
    page = tab.goto("/?q=Toktogul+water+levels")
    href = page.locator("a.cite").first.get_attribute("href")
    path, fragment = href.split("?")[0], href.split("#")[1]
    page = tab.goto(f"{path}#{fragment}")
    page.wait_for_url(f"**hl={fragment}*")
    assert page.locator(f"mark[id='{fragment}']").is_visible()


def test_keyboard_only_from_the_box_to_the_first_article(tab):
    page = tab.goto("/?q=Toktogul+water+levels")
    assert page.evaluate("document.activeElement.id") == "q"
    for _ in range(25):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('h2.result-title') !== null"):
            break
    else:
        pytest.fail("Tab never reached the first result")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("article.article h1").inner_text() == TOKTOGUL
    assert page.locator("article.article mark[id]").is_visible()


def test_no_results_with_a_filter_set_in_the_advanced_corner(tab):
    page = tab.goto("/")
    page.keyboard.type("Toktogul water levels")
    page.locator("details.advanced summary").click()
    page.locator("input[name=date_from]").fill("2030-01-01")
    page.locator("#q").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "date_from=2030-01-01" in page.url
    assert "No passages match" in page.locator("main h1").inner_text()
    assert page.locator("li.result").count() == 0
    assert page.locator("details.advanced").get_attribute("open") is not None
    tab.shot("no-results.png")


def test_low_confidence_shows_closest_passages_and_says_so(tab):
    page = tab.goto("/?q=recipe+for+sourdough+bread+with+rye+flour")
    notice = page.locator("section.low-confidence")
    assert notice.is_visible() and "No confident match" in notice.inner_text()
    assert page.locator("li.result").count() > 0
    assert page.locator("section.answer").count() == 0
    tab.shot("low-confidence.png")


def test_an_article_with_script_markup_stays_inert(tab):
    page = tab.goto("/")
    search_with_the_box(page, "snow removal budget")
    first = page.locator("li.result").first
    assert first.locator("h2.result-title").inner_text().strip() == SCRIPT_TITLE
    with page.expect_navigation():
        first.locator("a.cite").first.click()
    body = page.locator("div.article-body").inner_text()
    assert "<script>window.__pwned = 1; alert('xss')</script>" in body
    assert "<img src=x onerror=" in body
    assert page.locator("article.article h1").inner_text() == SCRIPT_TITLE
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script").count() == 1 and page.locator("main img").count() == 0
    assert tab.dialogs == []
    tab.shot("script-article.png")


def test_readable_on_a_phone(browser, server):
    phone = Tab(browser, server, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page = phone.goto("/?q=Toktogul+water+levels")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
        assert page.locator("li.result").first.is_visible()
        font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.passage-text')).fontSize)")
        assert font >= 15
        phone.shot("phone-results.png")
    finally:
        phone.context.close()


def test_works_without_javascript(browser, server):
    plain = Tab(browser, server, java_script_enabled=False)
    try:
        page = plain.goto("/")
        page.locator("#q").fill("Toktogul water levels")
        with page.expect_navigation():
            page.locator("#q").press("Enter")
        assert page.locator("li.result h2.result-title").first.inner_text().strip() == TOKTOGUL
        with page.expect_navigation():
            page.locator("a.cite").first.click()
        assert page.locator("article.article mark[id]").is_visible()
    finally:
        plain.context.close()


def test_pages_and_api_docs_work_under_the_content_security_policy(browser, server):
    """The strict CSP is sent, the page's own JS and CSS satisfy it, and /schema renders from local files."""
    csp = Tab(browser, server)
    violations: list[str] = []
    csp.page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text or "Refused to" in message.text else None)
    csp.context.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation', "
                                "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
    try:
        response = csp.page.goto(server + "/?q=Toktogul+water+levels")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page = csp.page
        assert page.evaluate("getComputedStyle(document.querySelector('header.top')).display") != "inline", "CSS ran"
        assert page.evaluate("window.__csp") == []
        # search.js runs: a plain #start-end link is turned into the highlighted form by script.
        href = page.locator("a.cite").first.get_attribute("href")
        path, fragment = href.split("?")[0], href.split("#")[1]
        page.goto(f"{server}{path}#{fragment}")
        page.wait_for_url(f"**hl={fragment}*")
        assert page.locator(f"mark[id='{fragment}']").is_visible()
        assert page.evaluate("window.__csp") == []
        page.goto(server + "/schema")
        page.locator(".swagger-ui .info .title").wait_for()
        assert "newsqa" in page.locator(".swagger-ui .info .title").inner_text()
        assert page.locator(".opblock-summary-path", has_text="/v1/search").count() >= 1
        assert page.evaluate("window.__csp") == []
        csp.shot("api-docs.png")
        assert violations == [], violations
    finally:
        csp.context.close()


def test_newest_toggle_reorders_and_keeps_the_query(tab):
    from datetime import datetime

    page = tab.goto("/?q=Bishkek+snow+removal+budget&mode=lexical")
    toggle = page.locator("nav.sort-toggle")
    assert toggle.is_visible() and toggle.locator("[aria-current]").inner_text() == "Relevance"
    with page.expect_navigation():
        toggle.get_by_role("link", name="Newest").click()
    assert "sort=date" in page.url and "q=Bishkek" in page.url and "mode=lexical" in page.url
    assert page.locator("nav.sort-toggle [aria-current]").inner_text() == "Newest"
    metas = [m.inner_text().split("·")[0].strip() for m in page.locator("li.result p.meta").all()]
    days = [datetime.strptime(m, "%d %B %Y").date() for m in metas if m]
    assert days and days == sorted(days, reverse=True)
    tab.shot("search-newest.png")
    # A new query from the box keeps the order.
    page.locator("#q").fill("Toktogul water levels")
    with page.expect_navigation():
        page.locator("#q").press("Enter")
    assert "sort=date" in page.url


def test_the_answer_box_shows_the_short_answer_in_bold_inside_the_sentence(tab):
    page = tab.goto("/?q=How+much+water+had+the+Toktogul+reservoir+accumulated%3F")
    box = page.locator("section.answer")
    assert box.is_visible()
    sentence = box.locator("p.answer-text")
    bold = sentence.locator("strong.answer-span")
    assert bold.inner_text().strip() == "10.8 billion cubic meters"
    # Bold by the page's style, and inside the quoted sentence, not beside it.
    weight = bold.evaluate("e => getComputedStyle(e).fontWeight")
    assert int(weight) >= 600, weight
    assert "10.8 billion cubic meters" in sentence.inner_text() and len(sentence.inner_text()) > 60
    tab.shot("answer-span.png")
