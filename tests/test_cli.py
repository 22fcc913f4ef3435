"""The `newsqa` command line as a user runs it: exit codes, quiet output, bad records, browsing commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


from service.cli import build_parser, main

from helpers import ROOT

GOOD = [
    {"id": "river-1", "title": "River levels fall in autumn", "source": "Valley Post", "date": "2025-10-02",
     "text": "The river fell by a metre in September. Farmers along the valley reported dry irrigation canals."},
    {"id": "river-2", "title": "New bridge opens over the river", "source": "valley post", "date": "2025-11-20",
     "text": "A new road bridge opened on Monday. It shortens the trip between the two river towns by an hour."},
]


def _newsqa(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """One real `newsqa index - bad.jsonl` run: stdin JSONL plus a file mixing good and hostile records."""
    folder = tmp_path_factory.mktemp("bad")
    lines = [
        json.dumps(GOOD[0]),
        r'{"id":"lone","title":"Lone surrogate","text":"lone \ud800 x"}',
        '{"id":"deep","title":"t","text":' + "[" * 1000 + "]" * 1000 + "}",
        '{"id":"big","title":"t","text":"x","n":' + "9" * 5000 + "}",
        "42",
        '{"id":"   ","title":"Blank id","text":"Some text."}',
        '{"id":"ctl","title":"Bell \\u0007 title","text":"Text with a NUL \\u0000 and an escape \\u001b[31m."}',
    ]
    (folder / "bad.jsonl").write_text("\n".join(lines) + "\n")
    index = folder / "index"
    run = _newsqa("index", "-", str(folder / "bad.jsonl"), "--index", str(index), stdin=json.dumps(GOOD[1]) + "\n")
    return run, folder / "bad.jsonl", index


def test_index_skips_bad_records_reports_each_line_and_exits_3(bad_run, capsys):
    run, bad, index = bad_run
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr
    assert f"{bad}:2: `text` holds an unpaired surrogate \\ud800" in run.stderr
    assert f"{bad}:3: JSON nested too deeply" in run.stderr
    assert f"{bad}:4: invalid JSON: a number of more than 4,300 digits" in run.stderr
    assert f"{bad}:5: expected a JSON object, got int" in run.stderr
    assert f"{bad}:6: `id` must be 1 to 512 characters" in run.stderr
    assert "5 record(s) or file(s) failed" in run.stderr
    assert "3 added" in run.stdout and "5 errors" in run.stdout
    # The valid records of the same file, and the one from stdin, are indexed.
    assert main(["list", "--index", str(index), "--json"]) == 0
    rows = {row["article_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"river-1", "river-2", "ctl"}
    assert rows["ctl"]["title"] == "Bell title"  # control characters dropped


def test_index_prints_only_the_summary_and_problems_by_default(bad_run):
    run, _, _ = bad_run
    noise = [line for line in run.stderr.splitlines() if re.search(r"\b(INFO|DEBUG)\b", line)]
    assert noise == []
    for chatter in ("faiss.loader", "ModuleNotFoundError", "bm25s", "sentence_transformers", "Loading weights"):
        assert chatter not in run.stderr
    assert run.stdout.startswith("new version v-") and "index holds 3 articles" in run.stdout


def test_verbose_shows_library_logs(tmp_path):
    (tmp_path / "good.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    run = _newsqa("index", str(tmp_path / "good.jsonl"), "--index", str(tmp_path / "index"), "--verbose")
    assert run.returncode == 0, run.stderr
    assert re.search(r"INFO sentence_transformers", run.stderr), run.stderr
    assert re.search(r"DEBUG faiss", run.stderr), run.stderr
    assert "1 added" in run.stdout


def test_list_show_and_stats_browse_an_index(news_index_dir, news_index, capsys):
    assert main(["list", "--index", str(news_index_dir), "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    article_id, date, source, title = lines[0].split("\t")
    article = news_index.article(article_id)
    assert (date, source, title) == (article.date, article.source, article.title)

    assert main(["list", "--index", str(news_index_dir), "--source", article.source.upper(), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row["source"] == article.source for row in rows)

    assert main(["show", article_id, "--index", str(news_index_dir)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(article.title + "\n") and article.text in shown
    assert main(["show", article_id, "--index", str(news_index_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == article.text

    assert main(["stats", "--index", str(news_index_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["articles"] == news_index.counts["articles"]
    assert stats["passages"] == news_index.counts["chunks"]
    assert sum(s["articles"] for s in stats["sources"]) == stats["articles"]
    dates = [row["date"] for row in news_index.list_articles(limit=1000) if row["date"] and row["kind"] == "news"]
    assert (stats["date_from"], stats["date_to"]) == (min(dates), max(dates))
    assert main(["stats", "--index", str(news_index_dir)]) == 0
    assert "articles" in capsys.readouterr().out


def test_nothing_found_exits_1_and_json_errors_are_json(news_index_dir, capsys):
    assert main(["show", "no-such-id", "--index", str(news_index_dir)]) == 1
    assert "no article with id 'no-such-id'" in capsys.readouterr().err
    assert main(["show", "no-such-id", "--index", str(news_index_dir), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "not_found"

    assert main(["search", "water", "--index", str(news_index_dir), "--date-from", "2099-01-01"]) == 1
    assert capsys.readouterr().out.strip() == "no results"
    assert main(["search", "water", "--index", str(news_index_dir), "--date-from", "2099-01-01", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["hits"] == []
    assert main(["ask", "water?", "--index", str(news_index_dir), "--date-from", "2099-01-01", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["answer"] is None

    assert main(["search", "  ", "--index", str(news_index_dir), "--json"]) == 2
    out = capsys.readouterr().out
    error = json.loads(out)["error"]
    assert set(error) == {"code", "message"} and error["code"] == "empty_query"
    assert main(["list", "--index", str(news_index_dir / "none"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "index_missing"


def test_newsqa_index_env_replaces_the_option(news_index_dir, monkeypatch, capsys):
    monkeypatch.setenv("NEWSQA_INDEX", str(news_index_dir))
    assert build_parser().parse_args(["serve"]).index_dir == news_index_dir
    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["articles"] > 0
    monkeypatch.delenv("NEWSQA_INDEX")
    assert build_parser().parse_args(["search", "q"]).index == Path("index")


def test_version_defaults_and_store_option(capsys):
    from indexer.query.answer import DEFAULT_PASSAGES
    from indexer.query.search import DEFAULT_K
    from indexer.store.embedded import package_version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"newsqa {package_version()}"
    parser = build_parser()
    assert parser.parse_args(["search", "q"]).k == DEFAULT_K
    assert parser.parse_args(["ask", "q"]).k == DEFAULT_PASSAGES
    url = "postgresql://newsqa@localhost/news"
    commands = {"index": ["x"], "delete": ["x"], "search": ["q"], "ask": ["q"], "eval": ["--qa", "x"], "serve": [],
                "mcp": [], "list": [], "show": ["x"], "stats": []}
    subparsers = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    assert set(commands) <= set(subparsers.choices)
    for command, rest in commands.items():
        assert parser.parse_args([command, *rest, "--store", url]).store == url, command


def test_progress_bar_has_a_total_and_eta_and_ticks_per_model_batch(tmp_path, embedder, capsys):
    from indexer.ingest.build import build_index

    with open(tmp_path / "many.jsonl", "w") as out:
        for n in range(150):
            out.write(json.dumps({"id": f"n{n}", "title": f"Bulletin {n} on grain exports",
                                  "text": f"Exporters shipped {n * 7} tonnes of grain in week {n}, the "
                                          f"ministry said. Port number {n % 9} handled most of it."}) + "\n")
    batches = []

    class Recording:  # the real embedder; records how many passages each model call gets
        def __getattr__(self, name):
            return getattr(embedder, name)

        def encode(self, texts, **kwargs):
            batches.append(len(texts))
            return embedder.encode(texts, **kwargs)

    summary = build_index([tmp_path / "many.jsonl"], tmp_path / "index", embedder=Recording(), progress=True)
    assert summary.chunks == 150
    assert sum(batches) == 150 and max(batches) <= 64 and len(batches) >= 3
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    size = (tmp_path / "many.jsonl").stat().st_size
    # e.g. "indexing: 100%|██████████| 26.9k/26.9k [00:04<00:00, 6.2kB/s, passages=150]"
    assert re.search(r"indexing: 100%.*\[\d\d:\d\d<\d\d:\d\d, .*passages=150\]", bar), bar
    assert f"{size / 1024:.1f}k/{size / 1024:.1f}k" in bar, bar
