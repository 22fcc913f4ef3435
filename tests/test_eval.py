"""The evaluation harness: BEIR SciFact (a fast slice here, the full test split in a slow test) and bench/news-qa.jsonl."""

from __future__ import annotations

import json

import pytest

from helpers import DATA, ROOT, SCIFACT


QA_SET = ROOT / "bench" / "news-qa.jsonl"

needs_scifact = pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="SciFact is not in ../shared")


def test_ranx_metrics_follow_trec_eval_definitions():
    from indexer.evaluate.harness import score_run

    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    perfect = score_run(qrels, {"q1": {"a": 3.0, "x": 2.0}, "q2": {"b": 3.0, "c": 2.0}})
    assert perfect == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}
    second = score_run({"q1": {"a": 1}}, {"q1": {"x": 2.0, "a": 1.0}})
    assert second["mrr@10"] == pytest.approx(0.5) and second["ndcg@10"] == pytest.approx(1 / 1.5849625, abs=1e-6)


@needs_scifact
def test_published_figures_are_read_from_the_dataset_readme():
    from indexer.evaluate.harness import published_figures

    figures = {f.system: f for f in published_figures(SCIFACT)}
    minilm = next(f for name, f in figures.items() if name.startswith("all-MiniLM-L6-v2"))
    assert minilm.ndcg10 == pytest.approx(0.6451) and minilm.recall100 == pytest.approx(0.925)
    anserini = next(f for name, f in figures.items() if name.startswith("BM25, Anserini flat"))
    assert anserini.ndcg10 == pytest.approx(0.6789)


@needs_scifact
def test_beir_slice_keeps_judged_documents():
    from indexer.evaluate.harness import DISTRACTORS_PER_QUERY, load_beir

    data = load_beir(SCIFACT, limit=3)
    assert len(data.queries) == 3 and set(data.qrels) == set(data.queries)
    judged = {doc for docs in data.qrels.values() for doc in docs}
    assert judged <= set(data.corpus)
    assert len(data.corpus) == len(judged) + 3 * DISTRACTORS_PER_QUERY


def test_a_folder_that_is_not_beir_is_a_clear_error(tmp_path):
    from indexer.errors import ResourceMissing
    from indexer.evaluate.harness import load_beir

    with pytest.raises(ResourceMissing, match="corpus.jsonl"):
        load_beir(tmp_path)


@needs_scifact
def test_eval_command_on_a_scifact_slice(tmp_path, capsys, embedder):
    """`newsqa eval --beir` end to end on 5 queries and ~100 documents: index, embed (cached), search, score."""
    from indexer.evaluate.harness import CachedEmbedder, evaluate_beir
    from service.cli import main

    cache = tmp_path / "cache"
    code = main(["eval", "--beir", str(SCIFACT), "--limit", "5", "--cache", str(cache)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| system | nDCG@10 | R@10 | R@100 | MRR@10 |" in out
    for mode in ("dense", "lexical", "hybrid"):
        row = next(line for line in out.splitlines() if line.startswith(f"| newsqa {mode} |"))
        values = [float(v) for v in row.strip("|").split("|")[1:]]
        assert all(0.0 <= v <= 1.0 for v in values) and values[0] > 0.3, row
    assert "a slice" in out
    assert not list(SCIFACT.glob("*.tmp")) and (cache / "beir").is_dir()
    # A rerun finds every passage and query vector in the cache: nothing is embedded again.
    cached = CachedEmbedder(embedder, cache / "embeddings")
    report = evaluate_beir(SCIFACT, cached, limit=5, cache=cache, modes=["hybrid"])
    assert report.queries == 5 and cached.misses == 0 and cached.hits >= 5


def test_embedding_cache_is_keyed_by_text(tmp_path, embedder):
    from indexer.evaluate.harness import CachedEmbedder

    cached = CachedEmbedder(embedder, tmp_path)
    first = cached.encode(["water levels at Toktogul", "locomotives"])
    again = CachedEmbedder(embedder, tmp_path).encode(["locomotives", "water levels at Toktogul"])
    assert (first[::-1] == again).all()
    fresh = embedder.encode(["locomotives"])
    assert abs(float(fresh[0] @ again[0]) - 1.0) < 1e-5


def test_embedding_cache_reloads_keys_that_end_in_a_zero_byte(tmp_path, embedder):
    import hashlib

    from indexer.evaluate.harness import CachedEmbedder

    # About one SHA-1 in 256 ends in 0x00; NumPy's fixed-width bytes drop it on load.
    texts = [t for t in (f"passage {i}" for i in range(5000))
             if hashlib.sha1(f"{embedder.name}\x1f{t}".encode()).digest().endswith(b"\0")][:2]
    assert len(texts) == 2
    CachedEmbedder(embedder, tmp_path).encode(texts)
    again = CachedEmbedder(embedder, tmp_path)
    again.encode(texts)
    assert (again.hits, again.misses) == (2, 0)


def test_qa_set_is_well_formed():
    from indexer.evaluate.harness import load_qa

    items = load_qa(QA_SET)
    answerable = [i for i in items if i.answerable]
    assert len(answerable) >= 25 and len(items) - len(answerable) >= 8
    text = (DATA / "central-asia-news-2025-12-16.txt").read_text()
    for item in answerable:
        assert item.answer in text and item.title in text, item


def test_qa_evaluation_on_the_shipped_corpus(searcher):
    from indexer.evaluate.harness import evaluate_qa

    report = evaluate_qa(searcher, QA_SET)
    metrics = report.metrics()
    assert metrics["top1_article_accuracy"] >= 0.85, report.failures()
    # 31 of 32 sentences and 30 of 32 spans since the third answers pass (README): one more miss is a regression.
    assert metrics["answer_accuracy"] >= 0.96, report.failures()
    assert metrics["short_answer_accuracy"] >= 0.93, report.failures()
    assert metrics["abstention_accuracy"] >= 0.9, report.failures()
    assert metrics["false_abstentions"] == 0.0, report.failures()


def test_qa_report_counts_the_answers_article_apart_from_the_searchs_top_article():
    """The answer can come from the right article when search ranks another first (and the reverse); an
    abstention comes from no article."""
    from indexer.evaluate.harness import QAItem, QAOutcome, QAReport

    item = QAItem("Who runs the Fictional Rail Company?", None, "Ada Quill", True, article_ids=("rail-2",))
    outcomes = [
        QAOutcome(item, "Rail fares rise", "Ada Quill runs it.", 0.9, {}, None, top_article_id="rail-1",
                  answer_article_id="rail-2", span="Ada Quill"),
        QAOutcome(item, "Rail boss named", "Ada Quill runs it.", 0.9, {}, None, top_article_id="rail-2",
                  answer_article_id="rail-3", span="Ada Quill"),
        QAOutcome(item, "Rail boss named", None, 0.1, {}, "low confidence", top_article_id="rail-2"),
        QAOutcome(QAItem("Who won in 2031?", None, None, False), "Rail fares rise", None, 0.1, {}, "low"),
    ]
    report = QAReport("made-up.jsonl", "hybrid", outcomes, 0.5)
    metrics = report.metrics()
    assert metrics["top1_article_accuracy"] == pytest.approx(2 / 3)
    assert metrics["answer_article_accuracy"] == pytest.approx(1 / 3)
    assert metrics["sentence_accuracy"] == pytest.approx(2 / 3)
    assert metrics["short_answer_accuracy"] == pytest.approx(1 / 3)
    assert "| answer from the right article | 0.333 |" in report.table()


def test_cli_eval_qa(news_index_dir, capsys):
    from service.cli import main

    assert main(["eval", "--qa", str(QA_SET), "--index", str(news_index_dir), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body["metrics"]) == {"top1_article_accuracy", "answer_article_accuracy", "answer_accuracy", "sentence_accuracy",
                                    "short_answer_accuracy", "abstention_accuracy", "false_abstentions"}
    assert len(body["outcomes"]) == len((QA_SET).read_text().strip().splitlines())


def test_cli_eval_rejects_a_missing_question_set(tmp_path, news_index_dir, capsys):
    from service.cli import main

    assert main(["eval", "--qa", str(tmp_path / "none.jsonl"), "--index", str(news_index_dir)]) == 2
    assert "no question set" in capsys.readouterr().err


@pytest.mark.slow
@needs_scifact
def test_scifact_slice_reproduces_its_figures(capsys):
    """A 30-query SciFact slice (632 documents), whole documents: the figures the README gives for it.

    The full split (300 queries, 5,183 documents, ~10 minutes of embedding on 2 cores) runs in
    `make bench` (`test_scifact_full_test_split_meets_the_targets`)."""
    from indexer.embed import Embedder
    from indexer.evaluate.harness import evaluate_beir

    report = evaluate_beir(SCIFACT, Embedder(), limit=30)
    with capsys.disabled():
        print("\n" + report.table())
    assert report.queries == 30 and report.documents == 632
    scores = report.scores
    # Dense: each document's vector is the mean of its windows' (0.857 when the model truncated it).
    assert scores["dense"]["ndcg@10"] == pytest.approx(0.869, abs=0.003)
    assert scores["lexical"]["ndcg@10"] == pytest.approx(0.869, abs=0.003)
    # Adaptive fusion (fitted on train splits only).
    assert scores["hybrid"]["ndcg@10"] == pytest.approx(0.895, abs=0.003)
    assert scores["hybrid"]["ndcg@10"] >= max(scores["dense"]["ndcg@10"], scores["lexical"]["ndcg@10"]) - 0.005


@pytest.mark.bench
@needs_scifact
def test_scifact_full_test_split_meets_the_targets(capsys):
    """The whole SciFact test split (300 queries, 5,183 documents); embeddings cached in NEWSQA_CACHE_DIR."""
    from indexer.embed import Embedder
    from indexer.evaluate.harness import evaluate_beir

    report = evaluate_beir(SCIFACT, Embedder())
    with capsys.disabled():
        print("\n" + report.table())
    assert report.queries == 300 and report.documents == 5183
    scores = report.scores
    # The README's table, to four decimals: a change that moves a figure must update both.
    assert scores["dense"]["ndcg@10"] == pytest.approx(0.6439, abs=5e-5)
    assert scores["lexical"]["ndcg@10"] == pytest.approx(0.6762, abs=5e-5)
    # Adaptive fusion; fixed 50/50 fusion scores 0.7318 (0.7297 before documents were embedded by
    # windows), and the floor issue 14 sets is 0.7297. Never worse than the best leg.
    assert scores["hybrid"]["ndcg@10"] == pytest.approx(0.7347, abs=5e-5)
    assert scores["hybrid"]["ndcg@10"] >= 0.7297
    assert scores["hybrid"]["ndcg@10"] >= max(scores["dense"]["ndcg@10"], scores["lexical"]["ndcg@10"]) - 0.005


def test_known_item_evaluation_scores_where_the_article_ranks(tmp_path, searcher, news_index):
    """A query made from an article finds it first; one whose article the index lacks is skipped, not scored."""
    from indexer.evaluate.known_items import evaluate_known_items

    toktogul = next(a["article_id"] for a in news_index.list_articles(limit=100) if "Toktogul" in a["title"])
    path = tmp_path / "known.jsonl"
    path.write_text(
        json.dumps({"qid": "a", "split": "test", "kind": "lead", "query": "Toktogul reservoir water levels",
                    "article_ids": [toktogul]}) + "\n"
        + json.dumps({"qid": "b", "split": "test", "kind": "lead", "query": "anything",
                      "article_ids": ["not-in-this-index"]}) + "\n"
        + json.dumps({"qid": "c", "split": "train", "kind": "lead", "query": "Toktogul", "article_ids": [toktogul]})
        + "\n")
    report = evaluate_known_items(searcher, path, modes=["lexical", "hybrid"], split="test")
    assert report.queries == 1 and report.skipped == 1
    for mode in ("lexical", "hybrid"):
        assert report.scores[mode]["all"] == {"queries": 1, "hit@1": 1.0, "mrr@10": 1.0, "recall@10": 1.0}
        assert report.scores[mode]["lead"]["hit@1"] == 1.0
    assert "| hybrid | all | 1 | 1.000 | 1.000 | 1.000 |" in report.table()


def test_known_item_set_needs_article_ids(tmp_path):
    from indexer.errors import InvalidParameter
    from indexer.evaluate.known_items import load_known_items

    path = tmp_path / "known.jsonl"
    path.write_text(json.dumps({"qid": "a", "query": "x", "article_ids": []}) + "\n")
    with pytest.raises(InvalidParameter, match="article_ids. is empty"):
        load_known_items(path)


def test_bbc_question_set_loads_by_half_and_keeps_no_article_text():
    from indexer.evaluate.harness import load_qa

    path = ROOT / "bench" / "bbc-qa.jsonl"
    fit, test = load_qa(path, split="fit"), load_qa(path, split="test")
    everything = load_qa(path, split="all")
    assert len(fit) + len(test) == len(everything) and fit and test
    assert {i.split for i in fit} == {"fit"} and {i.split for i in test} == {"test"}
    answerable = [i for i in everything if i.answerable]
    assert len(answerable) >= 150 and len(everything) - len(answerable) >= 40
    assert all(i.article_ids and i.answer and i.type for i in answerable)
    # Ids, questions and answer strings only: the articles stay in ../shared.
    for line in path.read_text(encoding="utf-8").splitlines():
        assert set(json.loads(line)) <= {"qid", "split", "section", "question", "article_ids", "answer", "type",
                                         "answerable", "kind", "absent"}


def test_load_qa_rejects_an_unknown_half(tmp_path):
    from indexer.errors import InvalidParameter
    from indexer.evaluate.harness import load_qa

    with pytest.raises(InvalidParameter, match="split"):
        load_qa(QA_SET, split="train")
