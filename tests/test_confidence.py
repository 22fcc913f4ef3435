"""The fitted confidence weights are data (indexer/query/confidence_weights.json) that the calibration writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from indexer.errors import ResourceMissing
from indexer.query.confidence import CONFIDENCE_WEIGHTS_FILE, ConfidenceWeights

ROOT = Path(__file__).resolve().parent.parent
QA_SET = ROOT / "bench" / "news-qa.jsonl"
# The weights `indexer/query/search.py` carried as literals before they became a file: the same
# numbers must come out, so every confidence and low_confidence flag stays as it was.
PASTED = (-7.371, 13.362, 8.937)


def _pasted_confidence(dense: float, coverage: float) -> float:
    w0, w_dense, w_cover = PASTED
    return 1.0 / (1.0 + math.exp(-(w0 + w_dense * dense + w_cover * coverage)))


def test_the_packaged_weights_give_the_same_confidences_as_before():
    weights = ConfidenceWeights.load()
    assert (weights.w0, weights.w_dense, weights.w_cover) == PASTED
    grid = [i / 20 for i in range(21)]
    for dense in grid:
        for coverage in grid:
            assert weights.confidence(dense, coverage) == _pasted_confidence(dense, coverage), (dense, coverage)


def test_a_search_uses_the_weights_it_is_given(searcher):
    from indexer.query.search import Searcher

    query = "How much water had the Toktogul reservoir accumulated?"
    packaged = searcher.search(query)
    assert packaged.confidence == _pasted_confidence(packaged.signals["dense"], packaged.signals["coverage"])
    assert not packaged.low_confidence
    doubting = Searcher(searcher.index, searcher.embedder, confidence=ConfidenceWeights(w0=-50.0, w_dense=1.0,
                                                                                        w_cover=1.0))
    result = doubting.search(query)
    assert result.low_confidence and result.confidence < 1e-15
    assert [h.chunk_id for h in result.hits] == [h.chunk_id for h in packaged.hits], "the ranking does not move"


def test_weights_round_trip_through_the_file(tmp_path):
    calibration = {"w0": -1.25, "w_dense": 3.5, "w_cover": 0.125, "train_accuracy": 0.9,
                   "leave_one_out_accuracy": 0.85, "questions": 40}
    fitted = ConfidenceWeights.from_calibration(calibration, qa="set.jsonl")
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(fitted.as_dict()), encoding="utf-8")
    loaded = ConfidenceWeights.load(path)
    assert loaded == fitted and loaded.fitted_on == fitted.fitted_on
    assert loaded.fitted_on["qa"] == "set.jsonl" and loaded.fitted_on["questions"] == 40
    assert loaded.confidence(0.5, 0.5) == 1.0 / (1.0 + math.exp(-(-1.25 + 3.5 * 0.5 + 0.125 * 0.5)))


@pytest.mark.parametrize("text", ["not json", "{}", '{"w0": "x", "w_dense": 1, "w_cover": 1}', "[]"])
def test_unreadable_weights_name_the_file_and_the_fix(tmp_path, text):
    path = tmp_path / "weights.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ResourceMissing) as err:
        ConfidenceWeights.load(path)
    assert str(path) in err.value.message and "--fit-confidence" in err.value.message
    assert CONFIDENCE_WEIGHTS_FILE.name == "confidence_weights.json"


def test_eval_calibrate_writes_the_weights_a_searcher_loads(tmp_path, news_index_dir, capsys):
    from service.cli import main

    out = tmp_path / "confidence.json"
    assert main(["eval", "--qa", str(QA_SET), "--index", str(news_index_dir), "--fit-confidence", str(out),
                 "--json", "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads(capsys.readouterr().out)
    calibration = report["calibration"]
    written = ConfidenceWeights.load(out)
    assert (written.w0, written.w_dense, written.w_cover) == (
        calibration["w0"], calibration["w_dense"], calibration["w_cover"])
    assert written.fitted_on["qa"] == str(QA_SET) and written.fitted_on["questions"] == calibration["questions"]
    # The packaged file is this command's output on the shipped corpus: refitting reproduces it.
    packaged = ConfidenceWeights.load()
    assert written == packaged, (written, packaged)
    assert {k: v for k, v in written.fitted_on.items() if k != "qa"} == {
        k: v for k, v in packaged.fitted_on.items() if k != "qa"}
