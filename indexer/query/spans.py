"""Typed spans of a sentence: the phrases an answer can be (amounts, dates, names).

`typed_spans(text)` finds, by rules, the spans of `text` that can answer a
question of one of the types of `indexer.query.question.ANSWER_TYPES`:

- `money` ("$1.13bn", "£450.7m", "70 euro cents", "13 trillion tenge"),
- `percent` ("4.6%", "90 percent"),
- `quantity` (a number with a unit: "10.8 billion cubic meters", "2Mbps", "8,000-ton"),
- `duration` ("six months", "three-year", "56 minutes"),
- `age` ("aged 85", "a 27-year-old", "Blunkett, 57,"),
- `date` ("1997", "15 December", "February", "27 February 2005"),
- `number` (a count, with the counted noun when it follows: "60 countries", "five million"),
- `name` (a run of capitalised words: "Taalaibek Ibraev", "Croke Park"), typed further
  by `name_kind` as `person`, `organisation`, `place` or `work` by its words and the
  words before it; a name that none of those rules settles stays `name` and counts
  half for any of the four.

Offsets are character offsets into `text`. Spans may overlap (a `money` span and
the `number` inside it); the scorer picks the one of the wanted type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_MONTH = "(?:" + "|".join(MONTHS) + r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?"
_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
WORD_NUMBERS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
                "dozen dozens hundreds thousands millions half").split()
_WORDNUM = r"(?:" + "|".join(WORD_NUMBERS) + r")(?:[- ](?:" + "|".join(WORD_NUMBERS) + r"))*"
_DIGITS = r"\d+(?:[.,]\d+)*"
_NUM = rf"(?:{_DIGITS}|{_WORDNUM})"
_SCALE = r"(?:\s?(?:bn|m|k|tn|billion|million|trillion|thousand)\b)"
_CURRENCY_WORD = (r"(?:dollars?|pounds?|sterling|euro\s+cents|euros?|cents|pence|yen|yuan|tenge|rupees?|roubles?|"
                  r"rubles?|francs?|krona|kronor|pesos?|dinars?|soms?|manats?)")

_MONEY = re.compile(
    rf"(?:(?:US|A|C|HK|NZ)?[$£€¥]\s?{_DIGITS}{_SCALE}?(?:\s(?:dollars|pounds|euros))?"
    rf"|\b{_NUM}{_SCALE}?\s{_CURRENCY_WORD}\b|\b{_DIGITS}p\b)",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"(?:\b{_NUM}\s?(?:%|per\s?cent\b|percent\b|percentage points?\b))", re.IGNORECASE)
_UNITS = (r"(?:cubic\s+met(?:er|re)s|square\s+(?:met(?:er|re)s|miles|kilomet(?:er|re)s|feet)|"
          r"kilomet(?:er|re)s?|km|met(?:er|re)s?|centimet(?:er|re)s?|cm|millimet(?:er|re)s?|mm|miles?|feet|foot|"
          r"ft|inch(?:es)?|yards?|acres?|hectares?|tonnes?|tons?|kg|kilos?|kilograms?|grams?|pounds?\s+in\s+weight|"
          r"litres?|liters?|gallons?|barrels?|GW|MW|kW|kWh|TWh|GWh|MWh|watts?|megawatts?|gigawatts?|volts?|"
          r"Mbps|Kbps|Gbps|mbps|MB|GB|TB|megabytes?|gigabytes?|terabytes?|pixels?|megapixels?|mph|km/h|knots?|"
          r"degrees?|points?|goals?|runs?|wickets?|seconds?|lines?|files?|series|storeys?|floors?|laps?|"
          r"calories|decibels?)")
_QUANTITY = re.compile(rf"(?:\b{_NUM}{_SCALE}?(?:\s?-?\s?|\s(?:active\s|new\s|extra\s)?){_UNITS}\b)", re.IGNORECASE)
_DURATION = re.compile(
    rf"(?:\b(?:{_NUM}|a|an|several|few)(?:\s(?:and\s(?:a\s)?half)\s|[\s-])"
    r"(?:years?|months?|weeks?|days?|hours?|minutes?|mins|seconds?|decades?|centuries|century|nights?)\b"
    r"(?:\s(?:and\s(?:a\s)?half))?)",
    re.IGNORECASE,
)
_AGE = re.compile(
    r"(?:\baged\s\d{1,3}\b|\b\d{1,3}-year-old\b|\b\d{1,3}\s(?:years?\s)?old\b|(?<=,\s)\d{1,3}(?=,)|"
    r"(?<=\()\d{1,3}(?=\))|\bage\s(?:of\s)?\d{1,3}\b|\b\d{1,3}(?:st|nd|rd|th)\sbirthday\b|\bturned\s\d{1,3}\b)",
    re.IGNORECASE,
)
_DATE = re.compile(
    rf"(?:\b(?:{_DAY},?\s)?\d{{1,2}}(?:st|nd|rd|th)?\s{_MONTH}(?:,?\s(?:19|20)\d{{2}})?\b"
    rf"|\b{_MONTH}\s\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s(?:19|20)\d{{2}})?\b"
    rf"|\b(?:{'|'.join(MONTHS)})(?:\s(?:19|20)\d{{2}})?\b"
    rf"|\b(?:1[5-9]|20)\d{{2}}s?\b)",
)
_WEEKDAY = re.compile(rf"\b{_DAY}\b")
_NUMERIC_ANCHOR = re.compile(r"\d|\b(?:" + "|".join(WORD_NUMBERS) + r")\b", re.IGNORECASE)
_PATTERNS = (
    ("money", _MONEY, re.compile(rf"[$£€¥]|\dp\b|\b{_CURRENCY_WORD}\b", re.IGNORECASE)),
    ("percent", _PERCENT, re.compile(r"%|per\s?cent|percent", re.IGNORECASE)),
    ("quantity", _QUANTITY, re.compile(rf"(?:\d|\b|-){_UNITS}\b", re.IGNORECASE)),
    ("duration", _DURATION, re.compile(r"\b(?:year|month|week|day|hour|minute|min|second|decade|centur|night)",
                                       re.IGNORECASE)),
    ("age", _AGE, re.compile(r"aged|year-old|old\b|\bage\b|birthday|turned|\(\d|,\s\d", re.IGNORECASE)),
    ("date", _DATE, re.compile(r"\d|" + "|".join(MONTHS))),
    ("day", _WEEKDAY, re.compile(_DAY)),
)
_NUMBER = re.compile(rf"(?:\b{_NUM}{_SCALE}?(?:\s(?P<noun>[a-z][a-z-]+))?)", re.IGNORECASE)
_COUNTED_IRREGULAR = {"people", "men", "women", "children", "staff", "police", "cattle", "sheep", "fish", "aircraft"}

# Capitalised words in a row, allowing inner "of", "de", "and", "&", "the" and initials ("George W Bush").
_NAME = re.compile(
    r"(?:[A-Z][\w’'.-]*[\w]|[A-Z]\.?)(?:\s+(?:(?:of|de|del|da|van|von|der|le|la|al|bin|&|and|the|on|for|in)\s+)?"
    r"(?:[A-Z][\w’'.-]*[\w]|[A-Z]\.?|\d+\b))*"
)
# Capitalised words that do not start a name when they start a run (sentence starts, titles kept apart).
STARTERS = set("""a an the and but or if in on at of for to by with from as after before since while when where
what which who whom whose why how this that these those it its he she they we i you his her their our my your
there here then so yet also however although though mr mrs ms miss dr prof president minister
chancellor secretary chairman chief boss judge mp mps mr. mrs. dr. last next this monday tuesday wednesday thursday
friday saturday sunday january february march april may june july august september october november december
meanwhile but both all some many most one two three four five six seven eight nine ten according despite
under over about speaking writing analysts experts officials critics during""".split())
_TITLE_PERSON = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Miss|Dr|Sir|Lord|Lady|Dame|Prof|Professor|President|Minister|Chancellor|Secretary|Judge|"
    r"Justice|Senator|Governor|King|Queen|Prince|Princess|Pope|Patriarch|Rev|Captain|Coach|manager|boss|"
    r"chief executive|chairman|chairwoman|director|minister|secretary|spokesman|spokeswoman|striker|midfielder|"
    r"defender|goalkeeper|actor|actress|singer|star|rapper|player|economist|analyst|president|judge|governor|"
    r"founder|head|leader|MP|coach|captain|champion|writer|author|director|producer|presenter|comedian|"
    r"commissioner|editor|chief|official|lawyer|designer|winner|drummer|guitarist|frontman)\.?\s+)$",
)
_ORG_WORDS = set("""ltd limited inc plc corp corporation co group bank banks airways airlines airline motors holdings
association council commission party union united city rovers athletic fc records studios network networks agency
office department ministry organisation organization fund institute university college exchange authority board
court society foundation trust club church churches federation league committee industries international systems technologies telecom communications media
news times post guardian standard mail telegraph herald journal magazine review bbc itv fifa uefa nato
un eu imf wto opec nhs fbi cia police service services partners capital securities insurance energy oil gas
petroleum electric electronics pharmaceuticals entertainment pictures games software networks""".split())
_PLACE_WORDS = set("""street road avenue park square stadium arena theatre theater centre center hall palace house
river lake sea ocean mountains mountain island islands valley bay gulf county province state region city town
village airport port""".split())
_WORK_CUE = re.compile(
    r"(?:\b(?:film|movie|album|single|song|book|novel|play|musical|show|series|sitcom|drama|documentary|game|"
    r"programme|program|opera|record|track|comedy|thriller|biopic|titled|called|entitled|epic|hit)\s+)$",
    re.IGNORECASE,
)
_PLACE_CUE = re.compile(r"(?:\b(?:in|at|to|from|near|outside|across|into|inside)\s+(?:the\s+)?)$")
_QUOTED = re.compile(r"[\"“‘']([A-Z][^\"”’']{1,60}?)[\"”’']")
# Countries and big places the news name most often; the rest are found by their cue words.
PLACES = set("""afghanistan africa albania algeria america argentina armenia asia athens australia austria
azerbaijan baghdad bahrain bangladesh beijing belarus belfast belgium berlin birmingham blackpool bolivia bosnia
brazil brighton britain brussels bulgaria california cambodia canada cardiff chile china colombia croatia cuba
cyprus czech denmark dublin dubai edinburgh egypt england estonia ethiopia europe finland france gaza geneva
georgia germany ghana glasgow greece harrogate holland hollywood hungary iceland india indonesia iran iraq ireland
israel italy jamaica japan jerusalem jordan kabul kazakhstan kenya korea kosovo kuwait kyrgyzstan latvia lebanon
leeds libya lithuania liverpool london los angeles luxembourg madrid malaysia manchester melbourne mexico milan
morocco moscow mumbai netherlands new york nigeria norway oxford pakistan palestine paris peru philippines poland
portugal qatar romania rome russia rwanda scotland serbia shanghai singapore slovakia slovenia somalia spain
sri lanka sudan sweden switzerland sydney syria taiwan tajikistan tokyo turkey turkmenistan uganda ukraine ulster
uzbekistan venezuela vietnam wales washington westminster yemen zimbabwe chatham chevening""".split())


@dataclass(frozen=True)
class TypedSpan:
    """`text[start:end]` is a phrase of type `kind` (see the module docstring)."""

    kind: str
    start: int
    end: int
    text: str


def typed_spans(text: str) -> list[TypedSpan]:
    """Every typed span of `text` (overlapping spans of different kinds are all kept)."""
    found: list[TypedSpan] = []

    def add(kind: str, start: int, end: int) -> None:
        while end > start and text[end - 1] in " ,.;:-":
            end -= 1
        if end > start:
            found.append(TypedSpan(kind, start, end, text[start:end]))

    # Each pattern runs only when a cheap scan finds its anchor: the number-word alternatives make
    # the full patterns slow, and most sentences hold no amount at all.
    numeric = bool(_NUMERIC_ANCHOR.search(text))
    for kind, pattern, gate in _PATTERNS:
        if (numeric or kind in ("date", "day", "duration")) and gate.search(text):
            for m in pattern.finditer(text):
                add(kind, m.start(), m.end())
    specific_end = len(found)
    for m in (_NUMBER.finditer(text) if numeric else ()):
        noun = m.group("noun")
        end = m.end()
        if noun and not (noun.endswith("s") or noun in _COUNTED_IRREGULAR) or (noun and noun.lower() in STARTERS):
            end = m.start("noun")
        if re.fullmatch(r"(?:19|20)\d{2}", m.group(0)[:4]) and (end - m.start() == 4):
            continue  # a bare year is a date, not a count
        add("number", m.start(), end)
    # A count inside an amount, a share, a period, an age or a date is that, not a count.
    specific = [(t.start, t.end) for t in found[:specific_end]]
    found = [t for t in found if t.kind != "number" or not any(s < t.end and t.start < e for s, e in specific
                                                                 if (s, e) != (t.start, t.end))]
    for m in _QUOTED.finditer(text):
        add("work", m.start(1), m.end(1))
    for start, end in _names(text):
        add(name_kind(text, start, end), start, end)
    return found


def _names(text: str) -> list[tuple[int, int]]:
    """Runs of capitalised words, minus sentence-starting function words and titles."""
    spans = []
    for m in _NAME.finditer(text):
        words = list(re.finditer(r"\S+", m.group(0)))
        # Drop leading words that only start a sentence or are titles ("The", "Mr", "President").
        while words and _bare(words[0].group(0)) in STARTERS:
            words.pop(0)
        # Trailing connectives are not part of the name.
        while words and words[-1].group(0).lower() in {"of", "and", "&", "the", "de", "on", "for", "in"}:
            words.pop()
        if not words:
            continue
        start, end = m.start() + words[0].start(), m.start() + words[-1].end()
        phrase = text[start:end]
        if phrase.endswith(("’s", "'s")):
            end -= 2
        if end - start < 2 or not any(c.isalpha() for c in text[start:end]):
            continue
        spans.append((start, end))
    return spans


def _bare(word: str) -> str:
    return word.lower().replace("’", "'").removesuffix("'s").strip("'.,")


def name_kind(text: str, start: int, end: int) -> str:
    """`person`, `organisation`, `place`, `work`, or `name` when the rules cannot tell."""
    phrase = text[start:end]
    words = phrase.replace("’s", "").split()
    lower = [w.lower().strip(".,") for w in words]
    before = text[max(0, start - 40):start]
    if _WORK_CUE.search(before):
        return "work"
    if any(w in _ORG_WORDS for w in lower) or (len(words) == 1 and words[0].isupper() and len(words[0]) >= 2):
        return "organisation"
    if phrase.lower() in PLACES or any(w in _PLACE_WORDS for w in lower[1:]) or lower[-1] in PLACES:
        return "place"
    if _TITLE_PERSON.search(before):
        return "person"
    if _PLACE_CUE.search(before) and len(words) <= 2:
        return "place"
    if 2 <= len(words) <= 4 and all(w[0].isupper() for w in words):
        return "person"
    return "name"
