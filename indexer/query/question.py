"""Question analysis: the expected answer type, the focus terms and the explicit constraints.

`analyse(question)` reads a reader's question with rules (regular expressions
over the question words, and capitalisation for names):

- `answer_type`: one of `ANSWER_TYPES`, from the wh-phrase ("how much … worth"
  → money, "how old" → age, "which film" → work, "who" → person, "where did she
  finish" → rank, "how often" → frequency, "why" → reason, ...), or for a query
  with no question word from a word for a kind it names ("Kanye West age?" → age,
  "Ofcom chairman?" → person);
- `focus`: the question's content words (lower case), which the answer
  sentence should mention and near which the answer should sit;
- `years` and `entities`: explicit constraints. A year ("2024") or a named
  entity ("Netflix") of the question that an article's text does not carry
  means that article cannot be about what is asked.

Why rules and not an NER library: the answer types here are decided by the
question's wh-phrase, which NER does not give; for the sentence side, the
spans are numbers, amounts and capitalised names, which regular expressions
find in a fraction of a millisecond per sentence (an answer's ~25 sentences cost a few
milliseconds; the whole answer measured 19.5 ms against 27.6 ms for the search on the BBC
index at load 3), whereas a transformer NER model costs about as much per sentence as
embedding it (~12 ms on 2 cores), far over the answer's budget (15 ms above the search).
spaCy's small CNN pipeline, measured with `bench/answer_options.py`, costs ~190 ms of CPU per
question over its candidate sentences and answers fewer questions, not more: taking a name's kind
from its entity lost 5 sentences of the BBC fitting half's 94, adding its entities as spans lost one
short answer (README, "Answers on real news"). The rules misjudge some names (a person's name
read as a place); the scorer then counts a name of unsure kind at half weight, and the fitted
weights (`answer_weights.json`) absorb the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexer.query.spans import DEMONYMS, NATIONALITIES, TITLE_INSIDE, _names
from indexer.store.bm25 import stem

ANSWER_TYPES = ("number", "money", "percent", "quantity", "date", "duration", "age", "person", "organisation",
                "place", "work", "rank", "frequency", "reason", "score", "other")

# Span kinds that can answer each question type, with how well (1 = exactly the kind asked for).
ACCEPTS: dict[str, dict[str, float]] = {
    "number": {"number": 1.0, "quantity": 0.8, "money": 0.3, "percent": 0.3},
    "money": {"money": 1.0, "number": 0.3},
    "percent": {"percent": 1.0, "number": 0.2},
    "quantity": {"quantity": 1.0, "number": 0.6, "money": 0.4, "percent": 0.4, "duration": 0.4},
    "date": {"date": 1.0, "day": 0.4},
    "duration": {"duration": 1.0, "quantity": 0.4, "number": 0.3},
    "age": {"age": 1.0, "number": 0.3},
    "person": {"person": 1.0, "name": 0.6, "organisation": 0.3},
    "organisation": {"organisation": 1.0, "name": 0.6, "person": 0.3, "place": 0.2, "work": 0.2},
    "place": {"place": 1.0, "name": 0.6, "organisation": 0.3, "person": 0.2},
    "work": {"work": 1.0, "name": 0.6, "person": 0.2, "organisation": 0.2},
    "rank": {"ordinal": 1.0, "number": 0.3},
    "frequency": {"frequency": 1.0, "duration": 0.3},
    "reason": {"reason": 1.0},
    "score": {"score": 1.0, "number": 0.3},
    "other": {"frequency": 0.5, "event": 0.5, "name": 0.5, "person": 0.5, "organisation": 0.5, "work": 0.5, "place": 0.5, "number": 0.5,
              "quantity": 0.5, "money": 0.5, "percent": 0.5, "date": 0.5, "duration": 0.5},
}

_I = re.IGNORECASE
_PERSON_NOUNS = (r"(?:person|man|woman|player|minister|judge|actor|actress|singer|star|rapper|artist|director|"
                 r"economist|analyst|boss|chief|chairman|executive|leader|president|politician|mp|official|coach|"
                 r"manager|striker|captain|footballer|athlete|driver|champion|author|writer|comedian|presenter|"
                 r"designer|musician|band member|lawyer|spokesman|founder|governor|commissioner|secretary|"
                 r"chancellor|candidate|winner|runner|boxer|golfer|cricketer|bowler|batsman|tennis player|"
                 r"sprinter|rider|jockey|host|guitarist|drummer|editor|journalist|reporter|blogger|producer|"
                 r"composer|peer|lord|prime minister|mayor|economist|expert|businessman|tycoon|model|entrepreneur|officer|"
                 r"churchman|prop|painter|celebrity|forward|fly-half|scrum-half|wing|centre|bishop|archbishop|"
                 r"cardinal|pope|patriarch|king|queen|prince|princess|sheikh|emir|rabbi|imam|campaigner|chef|photographer|"
                 r"dancer|pianist|violinist|conductor|novelist|poet)")
ORG_NOUNS = (r"(?:company|firm|bank|group|organi[sz]ation|club|team|side|party|band|agency|network|broadcaster|"
              r"studio|label|union|newspaper|paper|magazine|airline|carrier|retailer|chain|business|insurer|"
              r"operator|manufacturer|maker|supplier|body|charity|regulator|watchdog|government|court|channel|"
              r"website|site|brand|store|supermarket|conglomerate|giant|carmaker|developer|publisher|"
              r"consortium|fund|bidder|buyer|partner|rival|provider|exchange|institution|university|school)")
_PLACE_NOUNS = (r"(?:country|countries|city|town|region|venue|stadium|state|province|nation|capital|place|"
                r"constituency|county|island|village|area|location|ground|theatre|theater|arena|course|circuit|"
                r"hotel|hospital|prison|airport|port|continent|district|street|hall|river|reservoir|lake|dam|mountain)")
_WORK_NOUNS = (r"(?:film|movie|book|album|song|show|series|game|play|single|novel|programme|program|title|"
               r"documentary|musical|sitcom|drama|opera|record|track|comedy|picture|video|biography|memoir|"
               r"report|campaign slogan|slogan|device|gadget|phone|handset|console|laptop|product|browser|drug)")

# A finishing position ("Where did she finish in the 5,000m?"): checked before the head noun ("what
# place") and "where" would read it as a place.
_RANK = re.compile(r"^\s*where\s+(?:did|does|do|will|would|has|have|had)\b.*\b(?:finish|finished|placed)\b|"
                   r"\b(?:what|which)\s+(?:position|place|rank)\s+(?:did|does|do|will|would|has|have|had|is|was)\b"
                   r".*\b(?:finish|finished|come|came|end|ended|placed|rank|ranked)\b", _I)

# Head nouns whose answers are often named after a place.
_PLACE_NAMED = {"club", "side", "team"}

# The words between "what"/"which" and the noun that names the kind asked for: not a do-auxiliary or a
# modal, after which the noun is the subject, not what is asked ("What did the judge rule ...?" asks for
# no judge, "What has the film cost?" for no film); a copula is ("What is the capital of ...?").
_FILLER = r"(?:(?!(?:did|does|do|has|have|had|will|would|could|can|should|might|may|must)\b)\w+\s+)"

_RULES: list[tuple[str, re.Pattern]] = [
    ("frequency", re.compile(r"\bhow\s+(?:often|frequently)\b|\bhow\s+many\s+times\s+(?:a|an|per|each|every)\b", _I)),
    ("score", re.compile(r"\bby\s+what\s+(?:margin|score|majority)\b|"
                         r"\bwhat\s+(?:was|is)\s+the\s+(?:[\w'’-]+\s+){0,3}majority\b|"
                         r"\bwhat\s+(?:was|is)\s+the\s+(?:final\s+)?(?:score|margin)\b|"
                         r"\bwhat\s+(?:score|margin)\b", _I)),
    ("reason", re.compile(r"^\s*why\b|\bfor\s+what\s+reason\b|\bwhat\s+(?:caused|causes|is\s+behind|was\s+behind|led\s+to)\b",
                          _I)),
    ("percent", re.compile(r"\b(?:what|which)\s+(?:percentage|percent|share|proportion|fraction)\b|"
                           r"\bby\s+what\s+(?:percentage|percent)\b|\bhow\s+much\s+of\b|\bper\s?cent\b|"
                           # A rate is a share ("the unemployment rate", "what rate of inflation"), but for an
                           # exchange rate.
                           r"\b(?:what|which)\s+(?:(?:is|was|were|are|will\s+be)\s+)?(?:the\s+)?(?:[\w'’-]+\s+){0,5}?"
                           r"(?<!exchange\s)rate\b|"
                           r"\bhow\s+(?:fast|quickly)\b.*\b(?:grow|growing|rise|rising|expand|fall|shrink)", _I)),
    ("age", re.compile(r"\bhow\s+old\b|\bwhat\s+age\b|\bat\s+what\s+age\b|\bage\s+(?:was|is|did)\b|"
                       r"^\s*what\s+(?:is|was)\s+.*(?:['’]s?|\bhis|\bher)\s+age\b|^\s*what\s+(?:is|was)\s+the\s+age\s+of\b", _I)),
    ("duration", re.compile(r"\bhow\s+long\s+(?:did|does|do|has|have|had|will|would|is\s+\w+'?s?\s+(?:new\s+)?"
                            r"(?:contract|deal|ban|sentence|break|term|stay|wait|delay)|was\s+the\s+(?:\w+\s+)?"
                            r"(?:ban|sentence|break|ovation|delay|wait|term|stay|contract|standing))|"
                            r"\bfor\s+how\s+long\b|\bhow\s+(?:quickly|soon|early)\b|\bhow\s+much\s+longer\b|\bhow\s+many\s+(?:years|months|weeks|days|hours|minutes|"
                            r"decades)\b|\bwhat\s+(?:period|length\s+of\s+time)\b|\bhow\s+long\s+a\b|"
                            r"\bhow\s+long\s+(?:is|was|will\s+be)\s+(?:the|a|an|its|his|her|their)\s+(?:[\w'’-]+\s+){0,4}?"
                            r"(?:contract|deal|ban|sentence|break|term|stay|wait|delay|suspension|absence|strike|"
                            r"lay-off|holiday|tour|spell)\b|"
                            r"\b(?:waiting\s+time|how\s+much\s+time)\b|\bhow\s+long\b.*\b(?:last|lasts|lasted|run|ran|take|took|"
                            r"serve|served|stay|stayed|wait|spend|spent|remain|continue)\b", _I)),
    ("date", re.compile(r"^\s*when\b|\bwhen\s*\?\s*$|\b(?:what|which)\s+(?:years?|dates?|days?|months?|weeks?|weekends?|decades?|century|centuries)\b|"
                        r"\bin\s+what\s+year\b|\bsince\s+when\b|\bup\s+to\s+when\b|\buntil\s+when\b|"
                        r"^\s*what\s+(?:is|was|are|were)\s+the\s+(?:[\w'’-]+\s+){0,2}(?:dates?|year|day|month)\s+(?:of|for)\b|"
                        r"\bsince\s+what\b", _I)),
    ("money", re.compile(r"\bhow\s+much\b.*\b(?:cost|costs|worth|pay|paid|earn|earned|make|made|spend|spent|"
                         r"raise|raised|profit|profits|loss|losses|revenue|sales|fine|fined|owe|owes|debt|"
                         r"price|charge|budget|invest|investment|compensation|dividend|money|bid|offer|"
                         r"salary|fee|deal|bonus|sell\s+for|sold\s+for|turnover|income)\b|"
                         r"\bhow\s+much\s+(?:money|cash)\b|\bwhat\s+(?:[a-z]+\s+)?(?:price|profit|profits|loss|losses|revenue|"
                         r"sales|fee|fine|salary|dividend|amount|sum|value|budget|bonus|turnover)\b|"
                         r"\bhow\s+big\s+a\s+(?:dividend|fine|loss|profit|bonus)\b|\bwhat\s+(?:was|is)\s+the\s+"
                         r"(?:\w+\s+)?worth\b|\b(?:for\s+)?how\s+much\s+(?:did|does|was|were|is|will)\b.*\b(?:sell|sold|buy|bought)\b", _I)),
    ("quantity", re.compile(r"\bhow\s+(?:much|far|big|large|tall|high|deep|long|wide|heavy|fast)\b|"
                            r"\bhow\s+many\s+(?:kilomet|met|mile|ton|barrel|acre|hectare|point|goal|run|"
                            r"wicket|line|file|cubic|square|gigawatt|megawatt)|"
                            r"\bwhat\s+(?:\w+\s+)?(?:level|speed|time|distance|size|height|capacity|volume|weight|"
                            r"download\s+speed)\b|\bat\s+what\s+level\b|\bby\s+how\s+much\b", _I)),
    ("number", re.compile(r"\bhow\s+many\b|\bwhat\s+(?:number|level)\b|\bwhat\s+(?:position|place|rank)\b|"
                          r"\bwhat\s+(?:is|was|were)\s+the\s+(?:[\w'’-]+\s+)?(?:population|attendance|crowd|turnout|"
                          r"death\s+toll|toll)\b", _I)),
    ("work", re.compile(rf"\b(?:what|which)\s+{_FILLER}{{0,3}}{_WORK_NOUNS}\b|"
                        r"\bwhat\s+(?:is|was)\s+the\s+(?:name|title)\s+of\s+(?:the\s+)?(?:\w+\s+){0,4}" + _WORK_NOUNS +
                        r"|\bwhat\s+is\s+the\s+.*\b(?:documentary|film|album|book|show)\b.*\bcalled\b", _I)),
    ("place", re.compile(rf"^\s*where\b|\b(?:in|at|to|from)\s+(?:what|which)\s+(?:\w+\s+){{0,2}}{_PLACE_NOUNS}\b|"
                         rf"\b(?:what|which)\s+{_FILLER}{{0,2}}{_PLACE_NOUNS}\b|\bwhere\b", _I)),
    ("person", re.compile(rf"^\s*(?:who|whom|whose)\b|\b(?:what|which)\s+{_FILLER}{{0,3}}{_PERSON_NOUNS}\b|"
                          rf"\bwho\b|\bname\s+of\s+the\s+(?:\w+\s+){{0,2}}{_PERSON_NOUNS}\b", _I)),
    ("organisation", re.compile(rf"\b(?:what|which)\s+{_FILLER}{{0,3}}{ORG_NOUNS}\b", _I)),
]
# "Which company..." must win over "which ... chief" (org nouns before person nouns when the noun is the head).
# The head noun after "which"/"what": the last listed noun among the next few words, before the verb.
# A leading clause may come first ("Before joining Tarnside, which club ...").
_HEAD_WINDOW = re.compile(r"^\s*(?:[^,?]{1,60},\s*)?(?:(?:in|at|to|from|for|with|by|on)\s+)?(?:what|which|name\s+the)\s+"
                          r"((?:[\w'’&-]+\s+){0,5}[\w'’&-]+)", _I)
_COPULA_NAME = re.compile(r"^(?:(?:is|was|are|were)\s+(?:the\s+|a\s+|an\s+)?)?(?:(?:name|title)\s+of\s+(?:the\s+|a\s+|an\s+)?)?",
                          _I)
# A question that does not start with its question word may ask in place ("... is showing at which theatre?").
_WH_FIRST = re.compile(r"^\s*(?:who|whom|whose|what|which|where|when|why|how)\b", _I)
_IN_SITU = re.compile(r"\b(?:(?:in|at|to|from|for|with|by|on)\s+)?(?:what|which)\s+((?:[\w'’&-]+\s+){0,5}[\w'’&-]+)", _I)
# "Who is Kyrgyzstan's energy minister?", "Who is the chief executive of Barclays?": the person noun asked for.
_WHO_HEAD = re.compile(rf"^\s*who\s+(?:is|was|are|were|will\s+be|became|becomes)\s+(?:the\s+)?"
                       rf"(?:[\w'’-]+\s+){{0,3}}?(?:new\s+|former\s+|current\s+)?{_PERSON_NOUNS.replace('(?:', '(', 1)}\b", _I)
# A measure after the listed noun makes the noun a modifier: "what reservoir level", "which club record".
_MEASURE_AFTER = re.compile(r"\s+(?:level|levels|price|prices|rate|rates|amount|number|size|cost|value|share|"
                            r"capacity|height|length|record|total|figure|score|age|fee|budget|revenue|profit)\b", _I)
# The noun owns the measure asked for ("What was the Bank of England's base rate ...").
_OWNED_MEASURE = re.compile(r"(?:\s+of\s+[\w'’-]+)?['’]s?\s+(?:[\w-]+\s+)?" + _MEASURE_AFTER.pattern.removeprefix(r"\s+"), _I)
_HEAD_STOP = re.compile(r"\b(?:is|was|were|are|did|does|do|has|have|had|will|would|could|can|should|might)\b", _I)
# Any noun for a kind of thing asked for (a person's, an organisation's, a place's, a work's).
KIND_NOUN = re.compile(rf"{_WORK_NOUNS}|{ORG_NOUNS}|{_PLACE_NOUNS}|{_PERSON_NOUNS}", _I)
_HEADS = [("work", re.compile(rf"\b{_WORK_NOUNS}\b", _I)), ("organisation", re.compile(rf"\b{ORG_NOUNS}\b", _I)),
          ("place", re.compile(rf"\b{_PLACE_NOUNS}\b", _I)), ("person", re.compile(rf"\b{_PERSON_NOUNS}\b", _I))]
# "Who speaks for the campaign?" asks for its spokesman ("X, a spokesman for the campaign").
_SPEAKS_FOR = re.compile(r"^\s*who\s+(?:speaks|spoke|is\s+speaking)\s+for\b", _I)
_WHO_ORG = re.compile(rf"^\s*who\s+(?:bought|owns|runs|makes|made|sponsors|publishes|acquired|took over|"
                      r"broadcasts|organises|operates)\b", _I)
# "Who runs Barclays as its chief executive?" asks for a person, whatever "runs" asks for alone.
_AS_PERSON = re.compile(rf"\bas\s+(?:its|their|the|his|her|a|an)?\s*(?:[\w'’-]+\s+)?{_PERSON_NOUNS}\b", _I)
_MONEY_WORDS = re.compile(r"\b(?:cost|costs|worth|sales|budget|charge|profits?|loss|losses|price|pay|paid|earn|earned|"
                          r"revenue|turnover|dividend|fine|salary|debt|owe|compensation|spend|spent)\b", _I)
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_COUNTED = re.compile(r"\bhow\s+many\s+([a-z][\w-]+)(?:\s+([a-z][\w-]+))?", _I)
STOPWORDS = set("""a an the and or but if of in on at by for to from with without into onto about over under
after before since during as is are was were be been being do does did done has have had will would shall
should can could may might must what which who whom whose when where why how that this these those there here
it its he she they them his her their our we you your i my me us than then so such also not no yet just
only very much many more most less least few other another each every all any some own same new old up down out
off again further once say says said according roughly approximately about around last next first""".split())


@dataclass(frozen=True)
class Question:
    """A question's expected answer type, focus words and explicit constraints."""

    text: str
    answer_type: str
    focus: tuple[str, ...]
    years: tuple[str, ...]
    entities: tuple[str, ...]
    head: str | None = None
    counted: str | None = None  # the noun after "how many" ("countries"), which the answer counts
    # What a quantity asked for measures ("energy" for "How big was the electricity deficit?"), by
    # `indexer.query.spans.UNIT_MEASURES` names; empty when the question does not say.
    measures: tuple[str, ...] = ()
    # "future" ("When will ...", "... next ...") or "past" ("When did ...") for a date question, else None.
    tense: str | None = None
    # The nationalities the question gives the thing asked for ("turkish" in "Which Turkish firm ...").
    nations: tuple[str, ...] = ()
    # The part of a date asked for: "year" ("In what year ..."), "month" or "day" ("On what date ..."), else None.
    date_unit: str | None = None
    # The stemmed lower-case content words (its verb and nouns, not its names or the kind asked for) of a
    # question that asks for the object of its verb ("Who will Taylor Dent meet?"), else empty (`relation`).
    relation: frozenset[str] = frozenset()

    def accepts(self, kind: str) -> float:
        """How well a span of `kind` answers this question (0 = not at all)."""
        if self.head in _PLACE_NAMED and kind in ("place", "name"):
            return 0.8  # "Which club ...": clubs and teams are named after their towns ("from Northampton")
        return ACCEPTS[self.answer_type].get(kind, 0.0)


# A query with no question word ("Kanye West age?", "Ofcom chairman?", "Firefox 1.0 release date?"): the kind
# asked for is named by a word for it, or by the last noun for a kind of thing.
_ANY_WH = re.compile(r"\b(?:who|whom|whose|what|which|where|when|why|how)\b", _I)
_TELEGRAPHIC = (("age", re.compile(r"\bage\b", _I)),
                ("date", re.compile(r"\b(?:dates?|year|day|month)\b", _I)),
                ("number", re.compile(r"\b(?:number|total|count)\s+of\b", _I)),
                ("percent", re.compile(r"\b(?:percentage|per\s?cent|proportion)\b", _I)),
                ("money", _MONEY_WORDS))


def _telegraphic(question: str) -> str | None:
    """The kind a query without a question word names by a word for it ("... age?"), else None."""
    if _ANY_WH.search(question):
        return None
    return next((kind for kind, cue in _TELEGRAPHIC if cue.search(question)), None)


def _typed_head(question: str) -> tuple[str, str] | None:
    """(answer type, noun) when a listed noun after "which"/"what" names the kind of thing asked for
    ("river" in "Which river supplies ..."), else None."""
    q = question.strip()
    who = _WHO_HEAD.match(q)
    if who:
        return "person", who.group(1).lower()
    if _SPEAKS_FOR.match(q):
        return "person", "spokesman"
    if not _ANY_WH.search(q):
        if _telegraphic(q):
            return None
        # "Ofcom chairman?", "Barclays chief executive name?": the last noun for a kind of thing.
        nouns = sorted((m.start(), m.end(), kind) for kind, pattern in _HEADS for m in pattern.finditer(q))
        return (nouns[-1][2], q[nouns[-1][0]:nouns[-1][1]].lower()) if nouns else None
    head = _HEAD_WINDOW.match(q)
    if not head and not _WH_FIRST.match(q):
        head = _IN_SITU.search(q)  # "Mary Poppins is showing at which theatre?"
    if not head or re.search(r"\b(?:how|when)\b", q, _I):
        return None
    # "What is the venue of ...", "What is the name of the theatre ...": the noun after the copula and "name of".
    lead = q[head.start(1):]
    rest = _COPULA_NAME.sub("", lead)
    definite = bool(re.search(r"\bthe\b", lead[:len(lead) - len(rest)], _I))
    if _MEASURE_AFTER.match(" " + rest) or re.match(r"(?:[\w'’-]+\s+)?(?:date|year|day|month)s?\s+of\b", rest, _I):
        # "What is the age of Everton's striker ...", "What was the release date of the phone?": an age, a
        # date is asked for, not a striker or a phone.
        return None
    window = _HEAD_STOP.split(" ".join(rest.split()[:6]).rstrip("?.!"))[0]
    # A noun that owns another after "the" is no head ("What is the firm's new chief executive called?"), but
    # "Which party's candidate ...?" asks for the party.
    found = sorted((m.start(), m.end(), kind) for kind, pattern in _HEADS for m in pattern.finditer(window)
                   if not (re.match(r"['’]s?\b", window[m.end():m.end() + 2])
                           and (definite or re.search(r"\bthe\b", window[:m.start()], _I))))
    if not found:
        return None
    # The first listed noun, or the next one when it follows directly ("Rugby Union chairman").
    noun = found[0]
    for later in found[1:]:
        if later[0] <= noun[1] + 1:
            noun = later
    if _MONEY_WORDS.search(window[:noun[0]]):
        return None  # "What price did the firm pay ...": money is asked for, whatever noun follows
    if _MEASURE_AFTER.match(window, noun[1]) or _OWNED_MEASURE.match(window, noun[1]):
        return None  # "At what reservoir level ...", "the Bank of England's base rate": a level, a rate is asked for
    return noun[2], window[noun[0]:noun[1]].lower()


def head_noun(question: str) -> str | None:
    """The noun that names the kind of thing asked for ("river" in "Which river supplies ..."), or None."""
    typed = _typed_head(question)
    return typed[1] if typed else None


def answer_type(question: str) -> str:
    """The expected answer type of `question` (one of `ANSWER_TYPES`)."""
    q = question.strip()
    telegraphic = _telegraphic(q)
    if telegraphic:
        return telegraphic
    if _WHO_ORG.search(q) and not _AS_PERSON.search(q):
        return "organisation"
    if _RANK.search(q):
        return "rank"
    typed = _typed_head(q)
    if typed:
        return typed[0]
    if (re.match(r"^\s*what\b", q, _I) or re.search(r"\bhow\s+(?:much|big|large)\b", q, _I)) and _MONEY_WORDS.search(q) \
            and not _RULES[0][1].search(q):
        return "money"  # "What did it earn?", "It reported a profit of how much?"
    for kind, pattern in _RULES:
        if pattern.search(q):
            return kind
    return "other"


def analyse(question: str) -> Question:
    """The analysis of `question` (see the module docstring)."""
    words = re.findall(r"[A-Za-z0-9][\w’'-]*", question)
    focus = tuple(dict.fromkeys(w.lower().replace("’", "'").removesuffix("'s") for w in words
                                if w.lower() not in STOPWORDS and len(w) > 1))
    years = tuple(dict.fromkeys(_YEAR.findall(question)))
    entities = []
    # "Britain, Spain and Gibraltar": each name of a list is a constraint of its own (an article that names
    # both need not write "Spain and Gibraltar").
    runs = [(s, e) for start, end in _names(question) for s, e in _listed(question, start, end)]
    for start, end in runs:
        name = question[start:end].strip()
        if start == 0 or question[start - 1] in "\"“(":
            # The question's first word is capitalised anyway; keep it only if it is part of a longer name.
            if " " not in name:
                continue
        # The name after a title is the constraint: an article names "Nick Clegg", not "Lib Dem MEP Nick Clegg".
        titled = list(TITLE_INSIDE.finditer(name))
        if titled and titled[-1].end() < len(name):
            name = name[titled[-1].end():]
        if _YEAR.fullmatch(name) or name.lower() in DEMONYMS:
            continue  # a nationality ("Turkish firm") is no constraint: the article may say "Turkey's"
        entities.append(name)
    nations = tuple(dict.fromkeys(w.lower() for w in words if w[0].isupper() and w.lower() in NATIONALITIES))
    return Question(question, answer_type(question), focus, years, tuple(dict.fromkeys(entities)),
                    head_noun(question), counted_noun(question), measures(question), tense(question), nations,
                    date_unit(question), relation(question))


# A lower-case word (apostrophes and hyphens inside it), not the tail of a longer one.
LOWER_WORD = re.compile(r"(?<![\w'’-])[a-z][a-z'’-]+")
# A question that asks for the object of its verb: the question word, an auxiliary, then the verb's subject.
_WH_OBJECT = re.compile(r"^\s*(?i:who|whom|which\s+[\w-]+(?:\s+[\w-]+)?|what\s+[\w-]+(?:\s+[\w-]+)?)\s+"
                        r"(?i:did|does|do|will|would|can|could|should|has|have|had|might|must)\s+"
                        r"(?:(?i:the|a|an|his|her|their|its|he|she|they|it)\b|[A-Z])")


def relation(question: str) -> frozenset[str]:
    """See `Question.relation`: only when the question asks for the object of its verb ("Who will Taylor
    Dent meet?"), not its subject ("Which celebrity was voted out?")."""
    if not _WH_OBJECT.match(question):
        return frozenset()
    return frozenset(stem(w) for w in LOWER_WORD.findall(question)
                     if w not in STOPWORDS and len(w) > 2 and not KIND_NOUN.fullmatch(w.removesuffix("s")))


_DATE_UNITS = (("year", re.compile(r"\b(?:what|which)\s+years?\b", _I)),
               ("month", re.compile(r"\b(?:what|which)\s+months?\b", _I)),
               ("day", re.compile(r"\b(?:what|which)\s+(?:dates?|days?)\b", _I)))


def date_unit(question: str) -> str | None:
    """The part of a date the question asks for (see `Question.date_unit`)."""
    return next((unit for unit, words in _DATE_UNITS if words.search(question)), None)


_AND = re.compile(r"[^\S\n]+(?:and|&)[^\S\n]+")


def _listed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The names that "and" joins in the name run `text[start:end]`, or the run itself."""
    parts, at = [], start
    for m in _AND.finditer(text, start, end):
        parts.append((at, m.start()))
        at = m.end()
    parts.append((at, end))
    return parts


# Words that say what a quantity measures, by `indexer.query.spans.UNIT_MEASURES` name.
_MEASURE_WORDS = (
    ("energy", re.compile(r"\b(?:electricity|electric|power|energy|generat\w*|output)\b", _I)),
    ("volume", re.compile(r"\b(?:water|gas|oil|volume|fuel|petrol|beer|wine|milk)\b", _I)),
    ("area", re.compile(r"\b(?:area|land|acreage|farmland|forest)\b", _I)),
    ("length", re.compile(r"\bhow\s+(?:far|tall|high|deep|wide|long)\b|"
                          r"\b(?:distance|length|height|depth|width|route|road|track|tunnel|pipeline|railway)\b", _I)),
    ("mass", re.compile(r"\bhow\s+heavy\b|\b(?:weigh|weighs|weighed|weight|tonnage|cargo)\b", _I)),
    ("speed", re.compile(r"\bhow\s+fast\b|\b(?:speed|speeds|broadband|download)\b", _I)),
    ("data", re.compile(r"\b(?:storage|memory|disk|drive|data)\b", _I)),
)
_FUTURE = re.compile(r"\b(?:will|shall|next|upcoming|going\s+to|due\s+to|planned|scheduled)\b", _I)
_PAST = re.compile(r"^\s*(?:when|(?:in\s+)?(?:what|which)\s+(?:year|month|day|date))\s+(?:did|was|were|had)\b", _I)


def measures(question: str) -> tuple[str, ...]:
    """What a quantity the question asks for measures (see `Question.measures`)."""
    return tuple(measure for measure, words in _MEASURE_WORDS if words.search(question))


def tense(question: str) -> str | None:
    """"future" or "past" for a question about when something happens (see `Question.tense`)."""
    if _PAST.search(question):
        return "past"
    return "future" if _FUTURE.search(question) else None


def counted_noun(question: str) -> str | None:
    """The noun a "how many" question counts ("countries" in "How many countries sent ...", "lines" in
    "How many scan lines ..."), or None."""
    m = _COUNTED.search(question)
    if not m:
        return None
    first, second = m.group(1).lower(), (m.group(2) or "").lower()
    if second and second.endswith("s") and not first.endswith("s") and first not in STOPWORDS:
        return second
    return None if first in STOPWORDS else first
