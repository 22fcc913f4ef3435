"""One writer at a time on an embedded index: real concurrent `newsqa index` processes lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


from indexer.errors import IndexBusy
from indexer.store.embedded import open_index, writer_lock

from helpers import ROOT


def _write_jsonl(path: Path, prefix: str, topics: list[str]) -> list[str]:
    ids = []
    with open(path, "w") as out:
        for n, topic in enumerate(topics):
            article_id = f"{prefix}-{n}"
            ids.append(article_id)
            out.write(json.dumps({
                "id": article_id,
                "title": f"{topic.capitalize()} report number {n} from desk {prefix}",
                "text": f"The {topic} desk {prefix} filed story {n}. It describes the {topic} situation in detail, "
                        f"with figures the {topic} ministry published this week.",
            }) + "\n")
    return ids


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _wait_for_line(process: subprocess.Popen, text: str) -> list[str]:
    """Read stderr lines until one contains `text` (fails if the process ends first)."""
    lines = []
    while True:
        line = process.stderr.readline()
        assert line, f"process ended without printing {text!r}: {''.join(lines)}{process.communicate()}"
        lines.append(line)
        if text in line:
            return lines


def test_two_concurrent_index_runs_keep_both_sets_of_articles(tmp_path):
    a_ids = _write_jsonl(tmp_path / "A.jsonl", "a", ["water", "grain", "energy", "rail", "cotton"])
    b_ids = _write_jsonl(tmp_path / "B.jsonl", "b", ["snow", "gold", "wheat", "roads", "trade"])
    index = tmp_path / "I"
    # The test holds the lock until both writers are blocked on it, so they really run at once
    # (a model load takes longer than either write, so unsynchronised starts would rarely overlap).
    with writer_lock(index):
        first = _cli("index", str(tmp_path / "A.jsonl"), "--index", str(index))
        second = _cli("index", str(tmp_path / "B.jsonl"), "--index", str(index))
        for process in (first, second):
            _wait_for_line(process, f"waiting for another writer (pid {os.getpid()}) on {index}")
    out_a, err_a = first.communicate(timeout=600)
    out_b, err_b = second.communicate(timeout=600)
    assert first.returncode == 0, err_a
    assert second.returncode == 0, err_b
    assert "5 added" in out_a and "5 added" in out_b
    # Whichever went second started from the first one's version.
    assert {out_a.split("index holds ")[1].split(" articles")[0],
            out_b.split("index holds ")[1].split(" articles")[0]} == {"5", "10"}
    live = open_index(index)
    try:
        assert set(live.articles(a_ids + b_ids)) == set(a_ids + b_ids)
        assert live.counts["articles"] == 10
    finally:
        live.close()


def test_no_wait_fails_at_once_with_a_distinct_exit_code(tmp_path):
    _write_jsonl(tmp_path / "A.jsonl", "a", ["water"])
    index = tmp_path / "I"
    with writer_lock(index):
        run = _cli("index", str(tmp_path / "A.jsonl"), "--index", str(index), "--no-wait")
        out, err = run.communicate(timeout=600)
    assert run.returncode == 75, (out, err)
    assert f"another writer (pid {os.getpid()}) is updating {index}" in err
    assert "Traceback" not in err
    assert not list(index.glob("v-*")), "a refused writer wrote nothing"


def test_writer_lock_without_wait_raises_index_busy(tmp_path):
    with writer_lock(tmp_path):
        # flock locks belong to the open file, so a second open in this process conflicts too.
        with pytest.raises(IndexBusy, match=f"pid {os.getpid()}"):
            with writer_lock(tmp_path, wait=False):
                pass
    with writer_lock(tmp_path, wait=False):  # free again once released
        pass


def test_delete_takes_the_same_lock(news_index_dir, capsys):
    from service.cli import main

    with writer_lock(news_index_dir):
        assert main(["delete", "no-such-id", "--index", str(news_index_dir), "--no-wait"]) == 75
    assert f"another writer (pid {os.getpid()})" in capsys.readouterr().err
