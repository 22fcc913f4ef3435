"""Typed answers: question analysis, typed spans, the short answer per answer type, the restating-sentence
trap and a temporal near-miss, over made-up articles (real model, real index, packaged fitted weights)."""

from __future__ import annotations

import json

import pytest

ARTICLES = [
    {"id": "mining", "title": "Vellmoor Mining posts record profit", "source": "test",
     "text": "Vellmoor Mining, the copper producer based in Tarnside, said on Tuesday that its annual profit "
             "rose to $412m.\n\nSales climbed 18% as copper prices hit a record high across Europe. The company, "
             "founded in 1987, employs 3,400 workers at its two mines.\n\nChief executive Helena Marsh, 52, said "
             "the firm would keep expanding the Korrin pit, which produced 85,000 tonnes of copper last year."},
    {"id": "trial", "title": "Judge chosen for Brackley fraud trial", "source": "test",
     "text": "A judge has been chosen to hear the long-awaited Brackley fraud trial, court officials said on "
             "Monday.\n\nThe trial of the four former bank directors is expected to last six months. Judge Edmund "
             "Carrow, who presided over the Delmont bribery case, will hear it at Southwark Crown Court.\n\n"
             "Prosecutors say investors lost savings when the bank collapsed."},
    {"id": "festival", "title": "Harbour drama wins Larchfield film prize", "source": "test",
     "text": "Salt and Silence, a drama directed by Amina Boateng, won the Golden Reed award at the Larchfield "
             "film festival on Saturday.\n\nThe festival was held in Port Ellery for the first time, after its "
             "old cinema closed. Organisers said ticket sales were the best in the festival's history."},
    {"id": "election", "title": "Doyle wins Vellmoor mayoral race", "source": "test",
     "text": "Independent candidate Rosa Doyle won the 2005 Vellmoor mayoral election with 41% of the vote.\n\n"
             "She beat the candidate of the Harbour Party by 2,300 votes after a campaign dominated by "
             "the future of the town's ferry port."},
]

# (question, expected answer type, expected short answer)
TYPED = [
    ("How many workers does Vellmoor Mining employ?", "number", "3,400 workers"),
    ("How much profit did Vellmoor Mining make this year?", "money", "$412m"),
    ("By what percentage did Vellmoor Mining's sales climb?", "percent", "18%"),
    ("How much copper did the Korrin pit produce last year?", "quantity", "85,000 tonnes"),
    ("When was Vellmoor Mining founded?", "date", "1987"),
    ("How long is the Brackley fraud trial expected to last?", "duration", "six months"),
    ("How old is Vellmoor Mining's chief executive Helena Marsh?", "age", "52"),
    ("Which judge will hear the Brackley fraud trial?", "person", "Edmund Carrow"),
    ("Which party's candidate did Rosa Doyle beat in Vellmoor?", "organisation", "Harbour Party"),
    ("In which town was the Larchfield film festival held?", "place", "Port Ellery"),
    ("Which film won the Golden Reed award at Larchfield?", "work", "Salt and Silence"),
]


@pytest.mark.parametrize("question,kind,_", TYPED)
def test_question_analysis_finds_the_answer_type(question, kind, _):
    from indexer.query.question import analyse

    assert analyse(question).answer_type == kind


def test_question_analysis_finds_the_constraints():
    from indexer.query.question import analyse

    q = analyse("Who won the 2024 Vellmoor mayoral election for the Harbour Party?")
    assert q.answer_type == "person"
    assert q.years == ("2024",)
    assert "Harbour Party" in q.entities and "Vellmoor" in q.entities
    assert {"vellmoor", "mayoral", "election"} <= set(q.focus)


@pytest.mark.parametrize("text,kind,phrase", [
    ("Profits rose to $1.13bn in the quarter.", "money", "$1.13bn"),
    ("It will spend 13 trillion tenge on the grid.", "money", "13 trillion tenge"),
    ("Hydropower provides around 90 percent of the power.", "percent", "90 percent"),
    ("The reservoir held 10.8 billion cubic meters of water.", "quantity", "10.8 billion cubic meters"),
    ("The ban will last four years.", "duration", "four years"),
    ("The actor died aged 85 in Malibu.", "age", "aged 85"),
    ("Shares start trading on 15 December.", "date", "15 December"),
    ("Delegates from 60 countries attended.", "number", "60 countries"),
    ("Energy minister Taalaibek Ibraev spoke in Bishkek.", "person", "Taalaibek Ibraev"),
])
def test_typed_spans(text, kind, phrase):
    from indexer.query.spans import typed_spans

    spans = typed_spans(text)
    assert any(s.kind == kind and s.text == phrase and text[s.start:s.end] == phrase for s in spans), spans


@pytest.fixture(scope="module")
def made_up(tmp_path_factory, embedder):
    from indexer.ingest.build import build_index
    from indexer.query.answer import Answerer
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    folder = tmp_path_factory.mktemp("typed")
    (folder / "news.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n")
    summary = build_index([folder / "news.jsonl"], folder / "index", embedder=embedder, progress=False)
    assert not summary.errors
    index = open_index(folder / "index")
    yield Answerer(Searcher(index, embedder)), index
    index.close()


@pytest.mark.parametrize("question,kind,expected", TYPED)
def test_short_answer_per_type(made_up, question, kind, expected):
    answerer, index = made_up
    result = answerer.answer(question)
    assert result.answer is not None, result.reason
    span = result.answer.span
    assert span is not None, result.answer.text
    assert expected in span.text, (span, result.answer.text)
    article = index.article(result.answer.citation.article_id)
    # Verbatim, with article offsets, inside the answer sentence.
    assert article.text[span.start:span.end] == span.text
    assert result.answer.citation.start <= span.start < span.end <= result.answer.citation.end


def test_a_sentence_that_restates_the_question_loses_to_the_one_that_answers(made_up):
    answerer, _ = made_up
    result = answerer.answer("Which judge has been chosen to hear the Brackley fraud trial?")
    assert result.answer is not None, result.reason
    # The lead ("A judge has been chosen to hear the ... trial") shares every word but names no judge.
    assert "Edmund Carrow" in result.answer.text
    assert result.answer.span.text == "Edmund Carrow"


def test_a_question_about_a_year_the_archive_does_not_cover_abstains(made_up):
    answerer, _ = made_up
    covered = answerer.answer("Who won the 2005 Vellmoor mayoral election?")
    assert covered.answer is not None and covered.answer.span.text == "Rosa Doyle", covered.reason
    missed = answerer.answer("Who won the 2024 Vellmoor mayoral election?")
    assert missed.answer is None
    assert missed.confidence < covered.confidence
    assert "does not mention the year" in missed.reason
