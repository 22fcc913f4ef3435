"""bench/million.py --short: the synthetic large-index benchmark end to end, small (CI)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT, SCIFACT


pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="SciFact is not in ../shared")
def test_million_bench_short_mode(tmp_path):
    """20,000 synthetic chunks built by IndexDraft, a real `newsqa serve`: zero failed requests, recall@10 >= 0.95."""
    out = tmp_path / "million.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "million.py"), "--short", "--scifact", str(SCIFACT),
                           "--out", str(tmp_path / "index"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["chunks"] == 20_000 and report["failures"] == []
    assert [level["clients"] for level in report["serve"]["levels"]] == [1, 8]
    for level in report["serve"]["levels"]:
        assert level["errors"] == 0 and level["requests"] >= 20
        assert 0 < level["p50_ms"] <= level["p99_ms"]
    # The noise is calibrated: synthetic nearest-neighbour cosines match the real documents' median.
    calibration = report["calibration"]
    assert calibration["sigma"] > 0
    assert abs(calibration["synthetic_nn_cosine"]["median"] - calibration["real_nn_cosine"]["median"]) <= 0.01
    study = report["vector_study"]
    assert study["chosen"]["recall@10_k10"] >= 0.95 and study["vectors"] == 20_000
    assert report["index_disk_bytes"] > 0 and report["memory"]["server_idle"] > report["memory"]["tiny_idle"] > 0
    assert {"embed_ms", "dense_ms", "lexical_ms", "total_ms"} <= set(report["breakdown_ms"])


@pytest.mark.skipif(not (ROOT.parent / "shared" / "datasets" / "bbc-news" / "corpus.jsonl").is_file(),
                    reason="the BBC corpus is not in ../shared")
def test_updates_bench_short_mode(tmp_path):
    """bench/updates.py --short: articles pushed to a live server become searchable, a delete disappears
    from search, and the segmented index gives the same results before and after a merge."""
    out = tmp_path / "updates.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "updates.py"), "--short", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 2 and all(run["articles"] == 3 for run in report["runs"])
    # The bench waits (up to 60 s) until each add and delete shows in search, and fails if it never does.
    assert all(run["visible_after_commit_s"] >= 0 and run["deleted_visible_after_commit_s"] >= 0
               for run in report["runs"])
    assert report["unmerged"]["segments"] == 3 and report["merged"]["segments"] < 3
    assert report["merged_results_identical"] is True


@pytest.mark.skipif(not (ROOT.parent / "shared" / "datasets" / "bbc-news" / "corpus.jsonl").is_file(),
                    reason="the BBC corpus is not in ../shared")
def test_updates_bench_short_mode_postgres(tmp_path):
    """bench/updates.py --backend postgres --short: data/ loaded into a private PostgreSQL server, articles
    pushed to a live `newsqa serve --store` are found by search, a deleted one is gone, and the database
    size and search latency come out as numbers (the segment and merge figures as "n/a")."""
    out = tmp_path / "updates-pg.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "updates.py"), "--backend", "postgres", "--short",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["backend"] == "postgres" and len(report["runs"]) == 2
    for run in report["runs"]:
        assert run["via"] == "http" and run["articles"] == 3
        # Every pushed article found by a search of its title; the deleted one no longer returned.
        assert run["found"] == 3 and run["deleted_gone"] is True
        assert 0 < run["embed_s"] < run["add_s"] < 60 and 0 < run["delete_s"] < 60
        assert 0 <= run["visible_after_commit_s"] < 60 and 0 <= run["deleted_visible_after_commit_s"] < 60
        # Rows were written (PostgreSQL reclaims a delete's space only at VACUUM, so nothing shrinks).
        assert 0 < run["bytes_before"] <= run["bytes_peak"] and run["bytes_before"] < run["bytes_after"]
        assert 0 <= run["extra_disk_share"] < 1
    assert report["index_bytes"] > 0 and report["index_bytes_after"] >= report["runs"][-1]["bytes_after"]
    search = report["unmerged"]
    assert 0 < search["p50_ms"] <= search["p99_ms"] and search["segments"] == "n/a"
    assert report["merged"] == report["merge_s"] == report["merged_results_identical"] == "n/a"
