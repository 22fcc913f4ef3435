"""Typed answers: question analysis, typed spans, the short answer per answer type, the restating-sentence
trap and a temporal near-miss, over made-up articles (real model, real index, packaged fitted weights)."""

from __future__ import annotations

import pytest

from helpers import write_jsonl

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
    # From the second error analysis of the fitting half: titles, cue nouns, works, ranks, frequencies.
    ("New Harbour Police Commissioner Sir Alan Pryce has backed the plan.", "person", "Sir Alan Pryce"),
    ("A row with water firm Aguas Lindas, controlled by Corvale, grew.", "organisation", "Aguas Lindas"),
    ("The band released a new album, Driftwood, the first since 1990.", "work", "Driftwood"),
    ("Moreau, who came fifth in the 10,000m, ran again.", "ordinal", "fifth"),
    ("She finished 21st overall.", "ordinal", "21st"),
    ("The guest was Patriarch Boris of Tarnside and All Vellmoor.", "person", "Patriarch Boris of Tarnside"),
    ("The prize will be given once every two years.", "frequency", "once every two years"),
    ("The summit is held twice a year.", "frequency", "twice a year"),
    # Capitals do not hide a kind: the gates read the text in lower case, and a unit's own capitals
    # ("MW") are lowered in the gate too.
    ("The new turbine adds 300 MW to the grid.", "quantity", "300 MW"),
    ("SALES ROSE 20 PER CENT LAST YEAR.", "percent", "20 PER CENT"),
    ("She came FIFTH in the final.", "ordinal", "FIFTH"),
    ("The fund holds Two Million Pounds.", "money", "Two Million Pounds"),
    ("Output stalled DUE TO heavy snow in the north.", "reason", "heavy snow in the north"),
    ("The Ban Will Last Four Years.", "duration", "Four Years"),
])
def test_typed_spans(text, kind, phrase):
    from indexer.query.spans import typed_spans

    spans = typed_spans(text)
    assert any(s.kind == kind and s.text == phrase and text[s.start:s.end] == phrase for s in spans), spans


@pytest.fixture(scope="module")
def made_up(tmp_path_factory, embedder):
    answerer, index = _answerer_over(tmp_path_factory.mktemp("typed"), ARTICLES, embedder)
    yield answerer, index
    index.close()


def _answerer_over(folder, articles, embedder):
    """An `Answerer` over an index of `articles` built in `folder`, and that index (the caller closes it)."""
    from indexer.ingest.build import build_index
    from indexer.query.answer import Answerer
    from indexer.query.search import Searcher
    from indexer.store.embedded import open_index

    summary = build_index([write_jsonl(folder / "news.jsonl", articles)], folder / "index", embedder=embedder,
                          progress=False)
    assert not summary.errors
    index = open_index(folder / "index")
    return Answerer(Searcher(index, embedder)), index


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


# --- the span rules found by the error analysis of the BBC fitting half (issue 12) ---------------

@pytest.mark.parametrize("text,kind,phrase", [
    ("The ties will be played on the weekend of 12-13 March.", "date", "12-13 March"),
    ("The reservoir held 1.5 billion cubic meters less than last year.", "quantity",
     "1.5 billion cubic meters less"),
    ("Doubters included David Davis, Oliver Letwin and Tim Yeo.", "person", "Tim Yeo"),
    ("Planning Minister Julio De Vido has offered help.", "person", "Julio De Vido"),
    ("Rapper Young Buck has been charged.", "person", "Young Buck"),
    ("Dent beat Argentine Juan Ignacio Chela in the semi-final.", "person", "Juan Ignacio Chela"),
    ("It was named after the painter Piero della Francesco.", "person", "Piero della Francesco"),
    ("He sold it to Robert Sillerman's Sports Entertainment Enterprises.", "person", "Robert Sillerman"),
    ("The European Bank for Reconstruction and Development is paying.", "organisation",
     "European Bank for Reconstruction and Development"),
    ("Energy ministers met in the town of Cholpon-Ata on Friday.", "place", "Cholpon-Ata"),
    ("It was chosen by US magazine Mobile PC.", "place", "US"),
    ("The World Cup winning scrum-half signed.", "event", "World Cup"),
    ("Shares in Solidere, the Lebanese company, fell.", "nationality", "Lebanese"),
    # From the third analysis (news-qa failures).
    # A country's name after a word that is no place names a company as often as a place.
    ("The board signed a deal with Granite Kenya on Monday.", "name", "Granite Kenya"),
    # A month-first day range is one date.
    ("Delegates met on October 4-5, 2005, in Tarnside.", "date", "October 4-5, 2005"),
    # Where a company sits is no part of its name, and says it is a company.
    ("Tarnside-based Kestrel Rail will supply the engines.", "organisation", "Kestrel Rail"),
    ("The U.S. Treasury agreed.", "place", "U.S"),
    # An organisation's "and" joins no two names; its possessor still stands apart.
    ("Vellmoor's Ministry of Roads and Bridges signed it.", "organisation", "Ministry of Roads and Bridges"),
    # A count with a thousands separator after a comma is no age ("Blunkett, 57, ...").
    ("It drew 300 delegates, 1,000 fans and 40 reporters.", "number", "1,000 fans"),
    # From the BBC fitting half: a post is not who holds it; a league is no club.
    ("Mr Dale would not back the Home Secretary's plans.", "office", "Home Secretary"),
    ("He says the Premiership should have a winter break.", "event", "Premiership"),
    # A court is where a case is heard; a year after "in" ends a name; a margin is a score.
    ("The case was filed with the Tarnside County Court in 2004.", "place", "Tarnside County Court"),
    ("The judges ruled by a seven to two majority.", "score", "seven to two"),
    # A show runs for series or seasons, an official serves terms.
    ("The sitcom ran for three series on Channel 5.", "duration", "three series"),
    # A list of organisations' names is split; a nationality after "and" is no part of the name before it.
    ("Bids came from Corran Group and Kenya's Tamu Group and Irish rivals.", "organisation", "Corran Group"),
    # The fourth pass (general typing rules).
    # A region is part of a place's name, unlike a nationality before a person's.
    ("The ferry sails to Northern Tarnside twice a day.", "place", "Northern Tarnside"),
    ("The firm moved its mines to Western Vellmoor and South Tarnside.", "place", "Western Vellmoor"),
    # A work's title may start with a nationality.
    ("The band's new album, Irish Skies, sold well.", "work", "Irish Skies"),
    # A number that ends a name is part of it; a score's first digits are not.
    ("The Vellmoor Phone 300 has been chosen.", "name", "Vellmoor Phone 300"),
    ("Tarnside beat Vellmoor 2-0 on Sunday.", "name", "Vellmoor"),
    # A day range written with "to" or "and" is one date.
    ("The Tarnside regatta runs from 14 to 29 May.", "date", "14 to 29 May"),
    # A part of a run after "and" loses a company's seat as the whole run does.
    ("A tie-up of Corran and Tarnside-based Kestrel Rail was mooted.", "organisation", "Kestrel Rail"),
])
def test_typed_spans_from_the_error_analysis(text, kind, phrase):
    from indexer.query.spans import typed_spans

    spans = typed_spans(text)
    assert any(s.kind == kind and s.text == phrase and text[s.start:s.end] == phrase for s in spans), spans


def test_names_do_not_run_across_a_paragraph_break_or_keep_a_nationality():
    from indexer.query.spans import typed_spans

    texts = {s.text for s in typed_spans("said Gartner analyst Carolina Milanesi.\n\nMore phones were sold. "
                                         "He beat Argentine Juan Ignacio Chela.")}
    assert "Carolina Milanesi" in texts
    assert not any("\n" in t for t in texts)
    assert "Argentine Juan Ignacio Chela" not in texts
    # A bracketed conversion and the amount it converts are both money; the span choice prefers the first.
    assert {"£280.2m", "$532m"} <= {s.text for s in typed_spans("Profits rose to £280.2m ($532m).")}


@pytest.mark.parametrize("question,kind,head,counted", [
    ("Who is Kyrgyzstan's energy minister?", "person", "minister", None),
    ("Who is the boss of Gazprom?", "person", "boss", None),
    ("How quickly did Liverpool score in the final?", "duration", None, None),
    ("How many countries sent delegates to the congress?", "number", None, "countries"),
    ("How many scan lines can a high-definition TV picture have?", "number", None, "lines"),
    # A measure after the noun: a level is asked for, not a reservoir.
    ("At what reservoir level would the turbines stop?", "quantity", None, None),
    # Who speaks for something is its spokesman ("X, a spokesman for the campaign").
    ("Who speaks for the Tarnside campaign on its website?", "person", "spokesman", None),
])
def test_question_heads_and_counted_nouns(question, kind, head, counted):
    from indexer.query.question import analyse

    q = analyse(question)
    assert (q.answer_type, q.head, q.counted) == (kind, head, counted)


def test_a_nationality_is_no_entity_constraint():
    from indexer.query.question import analyse

    # The article may say "Turkey's Everasia": "Turkish" must not count as a name the article lacks.
    assert analyse("Which Turkish firm won the Khurmala Dome contract?").entities == ("Khurmala Dome",)
    # The name after a title is what an article would carry.
    assert analyse("Which seat is Lib Dem MEP Nick Clegg hoping to win?").entities == ("Nick Clegg",)


SPAN_ARTICLES = [
    {"id": "harlow", "title": "Harlow Foods profit rises", "source": "test",
     "text": "Harlow Foods said on Thursday that demand for its frozen meals kept growing through the winter.\n\n"
             "Annual profit rose 12% to £80.5m ($151m), Harlow Foods reported, helped by new stores.\n\n"
             "Corran Bank analyst Maya Lindqvist and retail consultant Ellis Warren said demand for Harlow "
             "Foods would stay strong."},
    {"id": "dunmore", "title": "Dunmore to host trade congress", "source": "test",
     "text": "Dunmore will host this year's trade congress, organisers said on Monday.\n\n"
             "Over the next three days, delegates from 45 countries will meet in the city's old harbour hall."},
    {"id": "cards", "title": "Tory doubts over ID cards", "source": "test",
     "text": "Shadow cabinet members with doubts included Oliver Letwin and Tim Yeo, reports said.\n\n"
             "Transport spokesman Mr Yeo reportedly had doubts about backing ID cards, but denied a split."},
    {"id": "grid", "title": "Ministers agree grid link", "source": "test",
     "text": "Trade ministers met in the town of Ashbury on Friday, where the Kenya trade ministers signed "
             "a power link.\n\nHeavy rain swelled the Ostra River, which feeds the Marrow Reservoir near Tallin."},
]


@pytest.fixture(scope="module")
def span_answerer(tmp_path_factory, embedder):
    answerer, index = _answerer_over(tmp_path_factory.mktemp("spans"), SPAN_ARTICLES, embedder)
    yield answerer
    index.close()


@pytest.mark.parametrize("question,expected", [
    # A bracketed conversion restates the amount before it.
    ("How much annual profit did Harlow Foods report?", "£80.5m"),
    # The name in apposition to the noun asked for, not the other person of the sentence.
    ("Which Corran Bank analyst said demand for Harlow Foods would stay strong?", "Maya Lindqvist"),
    # The count of the noun a "how many" question counts, not the other number of the sentence.
    ("How many countries will send delegates to the Dunmore trade congress?", "45 countries"),
    # A place after a locative preposition answers "where", not the place named as a modifier.
    ("Where did the trade ministers meet?", "Ashbury"),
    # The full name given earlier, not the surname the answer sentence repeats.
    ("Which Tory transport spokesman reportedly had doubts about backing ID cards?", "Tim Yeo"),
    # "Which river": the name that is a river by its own last word.
    ("Which river feeds the reservoir near Tallin?", "Ostra River"),
])
def test_span_choice_rules(span_answerer, question, expected):
    result = span_answerer.answer(question)
    assert result.answer is not None, result.reason
    assert result.answer.span is not None and result.answer.span.text == expected, result.answer


# --- rules from the second error analysis of the fitting half ---


def test_what_a_span_is_not():
    from indexer.query.spans import typed_spans

    # "18-year-old" is an age, not a duration of 18 years.
    assert not any(s.kind == "duration" for s in typed_spans("The 18-year-old Mirza lost in the third round."))
    # An apostrophe inside a word opens no quoted title.
    assert not any(s.kind == "work" and s.text == "It" for s in typed_spans('"It\'s a fine record," he said.'))
    # An owner and what it owns are no person's name.
    assert not any(s.kind == "person" and s.text == "France's Corvale"
                   for s in typed_spans("Aguas Lindas, owned by France's Corvale, fell."))
    # An ordinal before the noun it counts is no finishing position.
    assert not any(s.kind == "ordinal" for s in typed_spans("He lost in the second round."))


@pytest.mark.parametrize("question,kind", [
    ("Where did Anna Moreau finish in the 10,000m final?", "rank"),
    ("What position did Tarnside finish in the league?", "rank"),
    ("Where did the money for the bridge come from?", "place"),
    ("How often will the Larchfield prize be awarded?", "frequency"),
    ("Above what house price will buyers have to pay the new tax?", "money"),
    # The fourth pass (general typing rules).
    # After a do-auxiliary or a modal the noun is the subject, not what is asked for.
    ("What did the Tarnside judge rule about the ferry contract?", "other"),
    ("What will the new Vellmoor stadium hold?", "other"),
    ("What is the capital of Vellmoor?", "place"),
    # "The name of the X" asks for a person only when X is a kind of person.
    ("What was the name of the Tarnside ferry?", "other"),
    ("What is the name of the new Tarnside chief executive?", "person"),
    # A rate is a share, but for an exchange rate.
    ("What is the unemployment rate in Vellmoor?", "percent"),
    ("At what rate did the Tarnside economy grow?", "percent"),
    ("What was the tenge's exchange rate against the dollar?", "other"),
    # Plural date nouns; a majority is a score.
    ("On what dates will the Tarnside regatta be held?", "date"),
    ("What was the council's majority in the Tarnside vote?", "score"),
    # "How much" anywhere with a word for money; "as its chief executive" asks for a person.
    ("Vellmoor Mining reported a profit of how much?", "money"),
    ("Who runs Vellmoor Mining as its chief executive?", "person"),
    ("Who runs the Tarnside ferry service?", "organisation"),
    # "X's age"; a weekend is a date.
    ("What is the Tarnside mayor's age?", "age"),
    ("On which weekend will the Tarnside regatta be held?", "date"),
    ("What is the age of Tarnside's striker Rhys Penna?", "age"),
    ("What was the release date of the Vellmoor Phone?", "date"),
    # The noun that owns the measure asked for is no head: a rate is asked for, not a bank.
    ("What was the Bank of Tarnside's base rate in March?", "percent"),
    ("How early did Tarnside score in the cup final?", "duration"),
    ("How much longer will the Tarnside ban last?", "duration"),
    # A loss is money, however big it is asked to be; a population or a crowd is a count.
    ("How big was Vellmoor Mining's loss?", "money"),
    ("What is the population of Tarnside?", "number"),
    # A noun that owns another is no head: the chief executive is asked for, not the firm.
    ("What is the Tarnside firm's new chief executive called?", "person"),
])
def test_question_types_second_analysis(question, kind):
    from indexer.query.question import analyse

    assert analyse(question).answer_type == kind


def test_a_device_is_a_work_and_a_club_may_be_named_after_its_town():
    from indexer.query.question import analyse

    device = analyse("Which device did the magazine name the best gadget of the year?")
    assert (device.answer_type, device.head) == ("work", "device")
    club = analyse("Which club did the scrum-half play for before joining Tarnside?")
    assert club.answer_type == "organisation" and club.accepts("place") > club.accepts("person")
    company = analyse("Which company bought the Tarnside mine?")
    assert company.accepts("place") < company.accepts("person")


def test_unretrieved_stretches_of_the_best_articles():
    from dataclasses import dataclass

    from indexer.query.answer import _unretrieved
    from indexer.types import Citation, Hit

    @dataclass
    class Article:
        text: str

    text = "First paragraph here.\n\nSecond paragraph here.\n\nThird paragraph here."
    cite = lambda aid, s, e: Citation(aid, "t", None, None, None, None, s, e, 0)  # noqa: E731
    second = text.index("Second")
    hits = [Hit(1, 1.0, text[second:second + 22], cite("a", second, second + 22), 7),
            Hit(2, 0.5, "x", cite("b", 0, 1), 8), Hit(3, 0.4, "y", cite("c", 0, 1), 9)]
    found = _unretrieved(hits, {"a": Article(text), "b": Article("x and more"), "c": Article("y and more")}, 2)
    # Article a: before and after its passage; article b: after its passage; article c is third, left out.
    assert [(p, h.citation.article_id, h.text) for p, h in found] == [
        (1, "a", "First paragraph here."), (1, "a", "Third paragraph here."), (2, "b", "and more")]
    for _, h in found:
        source = {"a": text, "b": "x and more"}[h.citation.article_id]
        assert source[h.citation.start:h.citation.end] == h.text and h.chunk_id == -1


def _chosen_span(question, sentence, published=None):
    from indexer.query.answer import _ASKED_WORD, _best_span, _norm, _typed
    from indexer.query.question import analyse
    from indexer.store.bm25 import stem

    analysed = analyse(question)
    asked = _norm(question)
    asked_words = {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}
    focus = {stem(w): 1.0 for w in analysed.focus}
    return _best_span(_typed(analysed, sentence, asked, asked_words, focus, published))[0]


@pytest.mark.parametrize("question,sentence,expected", [
    # A bracketed abbreviation restates the name before it ("NPS" sits nearer the question's words).
    ("Which company is tipped to bid for Corvale Logistics?",
     "Delivery giant Northfield Parcel Services (NPS) is tipped to bid for Corvale Logistics.",
     "Northfield Parcel Services"),
    # A name that starts with the title the question asks for ("Which patriarch": "Patriarch Boris ...").
    ("Which patriarch visited the Tarnside congress?",
     "Patriarch Boris of Vellmoor came too, as Archbishop Lund visited the Tarnside congress.",
     "Patriarch Boris of Vellmoor"),
    # The newspaper a sentence cites as its source is not the answer ("Harbour Times" sits next to "Quill").
    ("Which Catholic group does Mara Quill say gives her spiritual support?",
     "Ms Quill told the Harbour Times she has spiritual support from the Catholic movement Sancta Via.",
     "Sancta Via"),
])
def test_span_choice_second_analysis(question, sentence, expected):
    span = _chosen_span(question, sentence)
    assert span is not None and span.text == expected, span


LONG_ARTICLE = {
    "id": "keeper", "title": "Corwin Blake leaves Tarnside lighthouse", "source": "test",
    "text": "Corwin Blake, the keeper of the Tarnside lighthouse, has handed over its keys after a long career "
            "on the rocky coast. Corwin Blake kept the Tarnside light burning through storms, blackouts and "
            "the great flood, and Corwin Blake became known to every fishing crew along the shore.\n\n"
            + " ".join(f"In the {season} season the lamp was cleaned, the glass was polished and the logbook "
                       f"was filled with notes on the weather, the tides and the passing ships."
                       for season in ("wet", "dry", "cold", "warm", "windy", "calm", "foggy", "bright"))
            + "\n\nThe harbour board thanked the old lighthouse keeper at a small ceremony. Keeper Corwin Blake, 61, "
            "plans to move inland to be "
            "near his daughter.",
}


@pytest.fixture(scope="module")
def long_answerer(tmp_path_factory, embedder):
    answerer, index = _answerer_over(tmp_path_factory.mktemp("long"), [LONG_ARTICLE, *ARTICLES], embedder)
    yield answerer
    index.close()


def test_the_answer_may_come_from_the_best_articles_unretrieved_text(long_answerer):
    # One passage is retrieved: the lead, which names the keeper three times but not his age.
    result = long_answerer.answer("How old is Tarnside keeper Corwin Blake, who kept the light burning through storms?",
                                  k=1)
    assert result.answer is not None, result.reason
    retrieved = result.passages[0].citation
    assert result.answer.span is not None and result.answer.span.text == "61", result.answer
    assert not retrieved.start <= result.answer.span.start < retrieved.end


def test_the_second_articles_unretrieved_text_gives_candidates_too(long_answerer):
    # The mining article ranks first and holds an age ("Helena Marsh, 52"), so nothing sends the answerer
    # deeper; the keeper's age sits in the second article, outside its retrieved lead.
    from indexer.query.question import analyse

    searcher = long_answerer.searcher
    query = "How old is Corwin Blake, the Tarnside lighthouse keeper?"
    hits = searcher.search("Vellmoor Mining Helena Marsh Corwin Blake keeper Tarnside", k=10).hits
    mining = next(h for h in hits if h.citation.article_id == "mining")
    lead = next(h for h in hits if h.citation.article_id == "keeper" and h.citation.start == 0)
    assert "61" not in lead.text
    candidates = long_answerer._candidates(query, searcher.query_terms(query), analyse(query), [mining, lead])
    assert any(c.hit.citation.article_id == "mining" and c.span is not None and c.span.text == "52"
               for c in candidates)
    unretrieved = [c for c in candidates if c.hit.citation.article_id == "keeper" and c.features["unretrieved"]]
    assert any(c.span is not None and c.span.text == "61" for c in unretrieved), [c.text for c in unretrieved]


def test_candidates_carry_the_word_similarity_of_the_spans_sentence(made_up):
    # "earnings" shares no stem with "profit", but their wordpiece vectors are close: the profit sentence
    # matches the question better by the `words` feature than the sentence about workers.
    answerer, _ = made_up
    considered, _ = answerer.consider("What were the Tarnside copper producer's yearly earnings?")
    singles = {c.text: c for c in considered.candidates if not c.features["pair"]}
    profit = next(c for t, c in singles.items() if "$412m" in t)
    workers = next(c for t, c in singles.items() if "3,400 workers" in t)
    assert profit.features["words"] > workers.features["words"]


def test_a_penalised_span_lowers_its_candidates_type():
    from indexer.query.answer import _ASKED_WORD, _best_span, _norm, _typed
    from indexer.query.question import analyse
    from indexer.store.bm25 import stem

    question = "Which company does Mara Quill praise?"
    analysed, asked = analyse(question), _norm(question)
    asked_words = {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}
    focus = {stem(w): 1.0 for w in analysed.focus}
    # The only organisation is the cited source: it stays the span, with less than a full type fit.
    span, fit, _, _ = _best_span(_typed(analysed, "Ms Quill told the Harbour Times she was pleased.", asked,
                                        asked_words, focus))
    assert span.text == "Harbour Times" and 0 < fit < 1


# --- rules from the third analysis (bench/news-qa.jsonl failures, then the BBC fitting half) ---


def test_a_congress_is_no_person():
    from indexer.query.spans import typed_spans

    spans = typed_spans("Tarnside hosted the 8th Congress of Leaders of Old and Traditional Faiths.")
    assert not any(s.kind == "person" for s in spans), spans


def test_what_a_quantity_measures_and_when_a_question_is_set():
    from indexer.query.question import analyse
    from indexer.query.spans import unit_measure

    assert analyse("By what margin did the judges rule against the ban?").answer_type == "score"
    assert analyse("Which Turkish or Irish firm won?").nations == ("turkish", "irish")

    assert analyse("How big was Vellmoor's electricity shortfall last year?").measures == ("energy",)
    assert analyse("How far is Tarnside from Vellmoor?").measures == ("length",)
    assert [unit_measure(q) for q in ("1.8 billion kWh", "3.1 billion cubic metres less", "40 tonnes", "3,400 workers")] \
        == ["energy", "volume", "mass", None]
    assert analyse("When will the next Tarnside congress be held?").tense == "future"
    assert analyse("When did Tarnside host the congress?").tense == "past"
    assert analyse("How many delegates came?").tense is None


@pytest.mark.parametrize("question,sentence,published,expected", [
    # The quantity whose unit measures what the question names, not the one beside the question's words.
    ("How big was Vellmoor's power shortfall last year?",
     "Vellmoor's power shortfall grew last year as the reservoir held 3.1 billion cubic metres less; "
     "the gap reached 1.8 billion kWh.", None, "1.8 billion kWh"),
    # A ministry is no company.
    ("Which company signed a roads deal with Vellmoor?",
     "Vellmoor's Ministry of Roads and Bridges signed a deal with Granite Kenya on Monday.", None, "Granite Kenya"),
    # A company introduced by where it sits answers "which firm", not the board beside the question's words.
    ("Which US firm will build the Vellmoor trains?",
     "The Vellmoor Transport Board said Ohio-based Kestrel won the contract to build the trains.", None, "Kestrel"),
    # An appositive after the name, with a possessive and modifiers: "Mr Dale, his transport spokesman".
    ("Which Tory transport spokesman had doubts about the Vellmoor bridge?",
     "Mr Dale, her transport and roads spokesman, sided with Tory leader Anna Cole, who had doubts about the "
     "Vellmoor bridge.",
     None, "Dale"),
    # The nationality the question asks for: not the firm of another nation beside the question's words.
    ("Which Kenyan firm won the contract to build the Vellmoor bridge?",
     "The contract to build the Vellmoor bridge was won by Irish builder Corran Group, beating Kenya's Tamu Group.",
     None, "Kenya's Tamu Group"),
    # "at London's Earls Court": the place that is owned (with its owner), not the owner alone.
    ("Where will the Tarnside band perform?",
     "The Tarnside band will perform at London's Ellery Court next month.", None, "London's Ellery Court"),
    # A title that shares the question's words ("police") before the name, not the other person beside them.
    ("Which senior police officer backed the Vellmoor curfew?",
     "Vellmoor Police Commissioner Sir Alan Pryce agreed, though Tom Reyes first backed the Vellmoor curfew.",
     None, "Sir Alan Pryce"),
    # ... but only when a kind of person is asked for: "Who scored" does not ask for the manager.
    ("Who scored Tarnside's late goal in the cup defeat?",
     "Tarnside manager Ed Vance blamed the cup defeat on the referee, though Sam Okoro scored a late goal.",
     None, "Sam Okoro"),
    # A country does not answer "which city".
    ("Which coastal city will host the new casino?",
     "The new casino will be hosted by Kenya, with Mombasa as its home.", None, "Mombasa"),
    # "from near Tarnside" is where someone comes from, not where something is held.
    ("Where is the Larchfield ceremony that Anna Moreau attends being held?",
     "Anna Moreau, from near Tarnside, attends the Larchfield ceremony, held this year at Ellery Hall.",
     None, "Ellery Hall"),
    # "When will ... next": a date after the article's, not the one before it beside the question's words.
    ("When will the next Tarnside congress be held?",
     "The 8th Tarnside congress was held on March 3-4, 2005, and delegates agreed to meet again in 2008.",
     "2005-06-01", "2008"),
])
def test_span_choice_third_analysis(question, sentence, published, expected):
    span = _chosen_span(question, sentence, published)
    assert span is not None and span.text == expected, span


def test_a_dotted_abbreviation_meets_the_questions_constraint():
    from indexer.query.answer import _constraint_misses
    from indexer.query.question import analyse

    question = analyse("Which US firm will build the Vellmoor trains?")
    assert _constraint_misses(question, "Trains", "The U.S. firm Kestrel will build Vellmoor's trains.") == (0.0, 0.0)


def test_a_day_after_on_ends_a_name():
    from indexer.query.spans import typed_spans

    texts = {s.text for s in typed_spans("They signed a deal with Granite Kenya on Monday.")}
    assert "Granite Kenya" in texts and not any("Monday" in t and "Granite" in t for t in texts)


def test_why_asks_for_a_reason_and_a_cause_is_one():
    from indexer.query.question import analyse
    from indexer.query.spans import typed_spans

    assert analyse("Why did the Tarnside ferry stop running?").answer_type == "reason"
    sentence = "The ferry stopped running in March due to a shortage of trained crew, the council said."
    assert _chosen_span("Why did the Tarnside ferry stop running?", sentence).text == "a shortage of trained crew"
    assert "reason" not in {s.kind for s in typed_spans("The ferry stopped running in March.")}


def test_an_ordinal_counts_nothing():
    from indexer.query.spans import typed_spans

    spans = typed_spans("The 8th congress met for the 21st time.")
    assert not any(s.kind == "number" for s in spans), spans


ELIGIBLE_ARTICLE = {
    "id": "brandt", "title": "Tarnside lighthouse keeper Ivo Brandt honoured", "source": "test",
    "text": "Tarnside lighthouse keeper Ivo Brandt, honoured by the harbour board this week, has kept the Tarnside "
            "light burning through 40 winters and 300 storms.\n\nThe board praised his work at a small ceremony. "
            "Brandt, 71, plans to retire in the spring.",
}


def test_a_span_of_the_kind_asked_for_beats_a_weak_fit(tmp_path, embedder):
    # The lead repeats the question's words and holds counts ("40 winters"), which fit an age question
    # only weakly; the sentence with the age ("Brandt, 71,") answers it.
    answerer, index = _answerer_over(tmp_path, [ELIGIBLE_ARTICLE, *ARTICLES], embedder)
    try:
        result = answerer.answer("How old is Tarnside lighthouse keeper Ivo Brandt?")
    finally:
        index.close()
    assert result.answer is not None, result.reason
    assert result.answer.span is not None and result.answer.span.text == "71", result.answer


def test_a_name_without_the_facility_asked_for_fits_weakly():
    from indexer.query.answer import STRONG_FIT, _ASKED_WORD, _norm, _typed
    from indexer.query.question import analyse

    question = "Which theatre is the Tarnside musical playing at?"
    asked = _norm(question)
    typed = _typed(analyse(question), "The Tarnside musical opened in London last week.", asked,
                   {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}, {})
    # "London" is no theatre: a sentence that names one ("Royal Ellery Theatre") is chosen before it.
    assert [(span.text, fit < STRONG_FIT) for span, fit, _ in typed.spans] == [("London", True)]


def test_an_office_of_a_ministry_names_no_person():
    from indexer.query.spans import typed_spans

    spans = typed_spans("Vellmoor's Deputy Minister of Economy, Ana Sole, spoke.")
    assert not any(s.kind == "person" and s.text.startswith("of ") for s in spans), spans


def test_unretrieved_stretches_may_skip_the_first_articles():
    from dataclasses import dataclass

    from indexer.query.answer import _unretrieved
    from indexer.types import Citation, Hit

    @dataclass
    class Article:
        text: str

    cite = lambda aid: Citation(aid, "t", None, None, None, None, 0, 1, 0)  # noqa: E731
    hits = [Hit(1, 1.0, "x", cite("a"), 7), Hit(2, 0.5, "y", cite("b"), 8), Hit(3, 0.4, "z", cite("c"), 9)]
    articles = {"a": Article("x in a"), "b": Article("y in b"), "c": Article("z in c")}
    found = _unretrieved(hits, articles, 3, skip=1)
    assert [(p, h.citation.article_id, h.text) for p, h in found] == [(2, "b", "in b"), (3, "c", "in c")]


VARGA_PROFILE = {
    "id": "varga-profile", "title": "Tarnside ferry captain Odile Varga honoured", "source": "test",
    "text": "Tarnside ferry captain Odile Varga has been honoured by the harbour board for her service on the "
            "Tarnside crossing. Captain Odile Varga of the Tarnside ferry thanked her crew.",
}
VARGA_RETIREMENT = {
    "id": "varga-retires", "title": "Harbour board thanks its ferry crews", "source": "test",
    "text": "The harbour board thanked the ferry crews of Tarnside, among them captain Odile Varga, at a dinner.\n\n"
            + " ".join(f"In the {season} season the ferry was painted, the engines were serviced and the logbook "
                       f"was filled with notes on the weather, the tides and the passing ships."
                       for season in ("wet", "dry", "cold", "warm", "windy", "calm", "foggy", "bright"))
            + "\n\nThe board's chairman spoke last. Varga, 58, will retire in the spring.",
}


def test_without_a_span_of_the_kind_asked_for_the_next_articles_are_read_whole(tmp_path, embedder):
    # The best article names the captain but gives no age; the second one gives it in a paragraph that no
    # retrieved passage holds. Only the first article's text is read whole unless no candidate holds a span
    # that fits the question well (`STRONG_FIT`): then the next articles' text is read too.
    answerer, index = _answerer_over(tmp_path, [VARGA_PROFILE, VARGA_RETIREMENT, *ARTICLES], embedder)
    try:
        result = answerer.answer("How old is Tarnside ferry captain Odile Varga?", k=2)
    finally:
        index.close()
    assert [p.citation.article_id for p in result.passages][:1] == ["varga-profile"]
    assert result.answer is not None, result.reason
    assert result.answer.span is not None and result.answer.span.text == "58", result.answer


# --- the fourth pass: general typing and choice rules (issue 12) -----------------------------------

def test_a_common_word_that_opens_a_sentence_starts_no_name():
    from indexer.query.answer import lower_words
    from indexer.query.spans import typed_spans

    common = lower_words("Oil prices rose again. Demand for oil and copper grew, and sales of the shares fell; "
                         "the bill passed.")
    assert {"oil", "sales", "shares", "bill"} <= common and "Oil" not in common
    # "Oil" written in lower case elsewhere is no organisation (its name words would make it one).
    assert not any(s.text.startswith("Oil") for s in typed_spans("Oil prices rose at Vellmoor Energy.", common))
    assert [s.text for s in typed_spans("Shares in Tarnside Mining fell.", common)] == ["Tarnside Mining"]
    # Before another capitalised word it may be a first name ("Bill Harland"); without `common`, as before.
    assert any(s.kind == "person" and s.text == "Bill Harland" for s in typed_spans("Bill Harland spoke.", common))
    assert any(s.text.startswith("Oil") for s in typed_spans("Oil prices rose at Vellmoor Energy."))


@pytest.mark.parametrize("question,sentence,expected", [
    # A place before the noun for an organisation says where it is; it is not the organisation's name.
    ("Which club did Rhys Penna play for before joining Tarnside?",
     "The scrum-half has impressed since joining the Vellmoor side from Harrowgate this summer.", "Harrowgate"),
    ("Which company will build the Tarnside bridge?",
     "A Vellmoor firm, Kestrel Works, will build the Tarnside bridge.", "Kestrel Works"),
    # Whatever is asked but a place ("US magazine Quill" sits next to the question's words).
    # The part of a date asked for: a month for "what month", not the year beside it.
    ("In what month will the Tarnside regatta be held?", "The 2005 Tarnside regatta will be held in June.", "June"),
    ("In what year was the Tarnside regatta first held?", "The Tarnside regatta was first held in June 1987.",
     "June 1987"),
    ("What did the magazine Quill name as the gadget of the year?",
     "The Vellmoor Phone 300 has been chosen as the gadget of the year by US magazine Quill.", "Vellmoor Phone 300"),
    # A name before a person's title says whose title it is; the noun asked for after a name is in
    # apposition only when a comma or a bracket sets it off ("Oliver Stone's film" is his film).
    ("Which minister said the Tarnside ferry would close?",
     "The Tarnside ferry will close, a Home Office minister has said. Mara Quill said the cost was too high.",
     "Mara Quill"),
    ("Which film starring Ana Sole topped the Tarnside box office?",
     "Top of the box office was the thriller Salt Road, starring Ana Sole, as Ivo Brandt's film flopped.", "Salt Road"),
])
def test_span_choice_fourth_pass(question, sentence, expected):
    span = _chosen_span(question, sentence)
    assert span is not None and span.text == expected, span


def test_a_leading_clause_does_not_hide_the_head_noun():
    from indexer.query.question import analyse

    club = analyse("Before joining Tarnside, which club did Rhys Penna play for?")
    assert (club.answer_type, club.head) == ("organisation", "club") and club.accepts("place") >= 0.8
    # A question may ask in place, not first.
    theatre = analyse("The Tarnside musical is showing at which theatre?")
    assert (theatre.answer_type, theatre.head) == ("place", "theatre")
    # The noun after a copula and "the name of" is the head.
    for question, kind, noun in (("What is the venue of the Tarnside talks?", "place", "venue"),
                                 ("What is the name of the Vellmoor minister who resigned?", "person", "minister"),
                                 ("What was the name of the company that bought Corvale?", "organisation", "company")):
        analysed = analyse(question)
        assert (analysed.answer_type, analysed.head) == (kind, noun), question
    # "Name the X ..." asks as "Which X ..." does.
    airline = analyse("Name the airline the Tarnside brewer set up.")
    assert (airline.answer_type, airline.head) == ("organisation", "airline")


def test_what_a_number_is_not():
    from indexer.query.spans import typed_spans

    # "More", "Nearly", ... opening a sentence start no name.
    assert not any(s.text == "More" for s in typed_spans("More than half of Tarnside's ferries are old."))
    # "has" is no counted noun, and the number ending a name counts nothing.
    assert not any(s.kind == "number" for s in typed_spans("The Vellmoor Phone 300 has been chosen."))


def test_the_owner_of_the_thing_asked_for_is_not_it():
    from indexer.query.answer import STRONG_FIT, _ASKED_WORD, _norm, _typed
    from indexer.query.question import analyse

    question = "Which film starring Ana Sole topped the Tarnside box office?"
    asked = _norm(question)
    typed = _typed(analyse(question), "Last week Ivo Brandt's film flopped.", asked,
                   {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}, {})
    # "Ivo Brandt's film" is his film: he is no film, however near the noun "film" he sits.
    assert [(span.text, fit < STRONG_FIT, bonus > 0) for span, fit, bonus in typed.spans] == [("Ivo Brandt", True, False)]


def test_quoted_speech_is_no_title():
    from indexer.query.spans import typed_spans

    speech = typed_spans('But he adds: "It has got to change itself a bit and broaden its appeal."')
    assert not any(s.kind == "work" for s in speech), speech
    # A quoted title is a work, and its words name no person ("Mr Nasty", "Are The World").
    title = typed_spans("His words come in a Tarnside TV documentary called 'No More Mr Nice'.")
    assert [(s.kind, s.text) for s in title if "Nice" in s.text] == [("work", "No More Mr Nice")]


def test_what_is_not_news_to_the_question():
    from indexer.query.answer import _ASKED_WORD, _is_new, _norm
    from indexer.query.spans import TypedSpan

    asked = _norm("Which official offered help to the water firm controlled by Corvale, in Tarnside?")
    words = {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)}
    span = lambda text: TypedSpan("name", 0, len(text), text)  # noqa: E731
    # A possessive run says what its last part says; a word that only adds an ending to an asked one is asked.
    assert not _is_new(span("France's Corvale"), asked, words)
    assert not _is_new(span("Tarnsiders"), asked, words)
    assert _is_new(span("Julio Vance"), asked, words)
    # The parts of a hyphenated question word are asked too.
    owned = _norm("Who offered the Corvale-owned firm help?")
    assert not _is_new(span("France's Corvale"), owned, {w.removesuffix("'s") for w in _ASKED_WORD.findall(owned)})


def test_a_person_is_not_named_after_the_kind_of_person_asked_for():
    span = _chosen_span("Which celebrity was voted out of the Tarnside jungle show?",
                        "On Sunday Ana Sole was voted out of I'm A Celebrity in the Tarnside jungle.")
    assert span is not None and span.text == "Ana Sole", span


def test_each_name_of_a_list_is_a_constraint():
    from indexer.query.question import analyse

    assert analyse("Where are Tarnside, Vellmoor and Corvale holding talks?").entities == (
        "Tarnside", "Vellmoor", "Corvale")


def test_a_surname_alone_gives_way_to_the_full_name_in_the_same_article():
    from indexer.query.answer import Candidate, _in_full
    from indexer.query.spans import TypedSpan
    from indexer.types import Citation, Hit

    def candidate(article, text, name, score):
        hit = Hit(1, 1.0, text, Citation(article, "t", None, None, None, None, 0, len(text), 0), 0)
        at = text.index(name)
        return Candidate(hit, 0, len(text), text, {}, TypedSpan("person", at, at + len(name), name), score=score)

    order = lambda c: c.score  # noqa: E731
    surname = candidate("a", "Speaking on radio, Mrs Marsh declined to comment.", "Marsh", 9.0)
    full = candidate("a", "Vellmoor chief Helena Marsh said profits rose.", "Helena Marsh", 8.0)
    other = candidate("b", "Rival boss Ivo Marsh said nothing.", "Ivo Marsh", 8.5)
    assert _in_full(surname, [surname, full, other], order) is full
    assert _in_full(full, [surname, full, other], order) is full
    assert _in_full(surname, [surname, other], order) is surname  # another article's Marsh may be someone else


def test_the_owner_of_what_the_question_asks_about_is_in_apposition():
    from indexer.query.answer import _ASKED_WORD, _norm, _typed
    from indexer.query.question import analyse
    from indexer.store.bm25 import stem

    question = "Who scored Tarnside's late goal against Vellmoor?"
    asked = _norm(question)
    typed = _typed(analyse(question), "Rhys Penna's late goal was no comfort, said manager Ivo Brandt.", asked,
                   {w.removesuffix("'s") for w in _ASKED_WORD.findall(asked)},
                   {stem(w): 1.0 for w in analyse(question).focus})
    # "Rhys Penna's late goal": whose the goal asked about is, as strong a sign as an apposition.
    assert {span.text: bonus > 0 for span, _, bonus in typed.spans} == {"Rhys Penna": True, "Ivo Brandt": False}


@pytest.mark.parametrize("question,kind,head", [
    # A query with no question word names the kind asked for by a word for it, or by its last noun.
    ("Tarnside mayor age?", "age", None),
    ("Vellmoor Phone release date?", "date", None),
    ("Tarnside council meets again when?", "date", None),
    ("Vellmoor Mining profit figure?", "money", None),
    ("Number of ferries sold by the Tarnside council?", "number", None),
    ("Tarnside Ferries chairman?", "person", "chairman"),
    ("Name of the Tarnside documentary about Ana Sole?", "work", "documentary"),
    # A word for money after the head noun does not hide it; a long break is a duration.
    ("Which Tarnside analyst commented on handset sales?", "person", "analyst"),
    ("How long is the planned Tarnside ferry strike?", "duration", None),
])
def test_queries_without_a_question_word(question, kind, head):
    from indexer.query.question import analyse

    analysed = analyse(question)
    assert (analysed.answer_type, analysed.head) == (kind, head)


def test_the_name_right_after_the_questions_verb_is_its_object():
    # "Sole will meet Dora Vance": the name after a word of the question that is no name (the relation asked
    # about) is its object; the loser of the semi-final sits nearer the question's names.
    span = _chosen_span("Who will Ana Sole meet in the Tarnside final?",
                        "Ana Sole reached the Tarnside final with a win over Mara Quill. Sole will meet Dora Vance on Sunday.")
    assert span is not None and span.text == "Dora Vance", span


def test_only_a_question_about_its_verbs_object_takes_the_name_after_the_verb():
    from indexer.query.question import _WH_OBJECT

    assert _WH_OBJECT.match("Who will Ana Sole meet in the Tarnside final?")
    assert _WH_OBJECT.match("Which company did Tarnside Mining buy?")
    assert not _WH_OBJECT.match("Which celebrity was voted out of the Tarnside jungle show?")
    assert not _WH_OBJECT.match("Who will face Ana Sole in the final?")
