"""bench/answer_options.py: the NER-typing and reader measurements behind issue 12's choice of rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from answer_options import retyped  # noqa: E402

from indexer.query.spans import typed_spans  # noqa: E402

TEXT = "Shares in Acme Holdings rose after Jane Doe joined the board in Leeds."


def entity(name: str, label: str) -> tuple[int, int, str]:
    start = TEXT.index(name)
    return start, start + len(name), label


def kinds(spans) -> dict[str, str]:
    return {t.text: t.kind for t in spans}


def test_relabel_gives_a_rule_name_span_the_kind_of_the_entity_it_overlaps():
    spans = typed_spans(TEXT)
    # Made-up NER output that disagrees with the rules on purpose: Leeds as an organisation.
    entities = [entity("Acme Holdings", "ORG"), entity("Jane Doe", "PERSON"), entity("Leeds", "ORG")]
    relabelled = kinds(retyped(spans, entities, TEXT, "ner_relabel"))
    assert relabelled["Leeds"] == "organisation" and relabelled["Jane Doe"] == "person"
    assert kinds(retyped(spans, entities, TEXT, "rules")) == kinds(spans)


def test_added_keeps_the_rule_spans_and_adds_only_entities_they_miss():
    spans = typed_spans(TEXT)
    entities = [entity("Jane Doe", "PERSON"), entity("board", "ORG"), entity("Leeds", "DATE")]
    added = retyped(spans, entities, TEXT, "ner_added")
    assert added[:len(spans)] == spans
    extra = added[len(spans):]
    # "Jane Doe" was a rule span already; a DATE is no name kind; "board" is new.
    assert [(t.text, t.kind) for t in extra] == [("board", "organisation")]


@pytest.mark.slow
def test_bench_measures_the_reader_pass_against_the_search(news_index_dir, tmp_path):
    """The real script on the sample index: a reader pass over the top passages costs more than the search
    it follows; NER is measured when spaCy is installed, else skipped with how to install it."""
    out = tmp_path / "options.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "answer_options.py"), "--qa",
                           str(ROOT / "bench" / "news-qa.jsonl"), "--index", str(news_index_dir), "--split", "all",
                           "--limit", "3", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    reader = report["reader"]
    assert reader["questions"] == 3 and reader["wordpieces_per_pair"] > 20
    assert reader["reader_ms_p50"] > reader["search_ms_p50_cached_vector"] > 0
    ner = report["ner"]
    if "skipped" in ner:
        assert "pip install spacy" in ner["skipped"]
    else:
        assert set(ner["accuracy"]) == {"rules", "ner_relabel", "ner_added"}
        assert ner["cost"]["sentences_per_question"] > 0
