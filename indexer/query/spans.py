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
- `ordinal` (a finishing position: "fifth", "21st", not "the second round"),
- `frequency` ("once every two years", "twice a week", "annually"),
- `score` (a result or a margin: "6-1", "eight to one"),
- `reason` (a cause: "critically low water levels" after "due to", "because (of)", "amid", ...),
- `name` (a run of capitalised words: "Taalaibek Ibraev", "Croke Park"), typed further
  by `name_kind` as `person`, `organisation`, `place` or `work` by its words and the
  words before it; a name that none of those rules settles stays `name` and counts
  half for any of the four; a lone nationality ("Lebanese", "Italian") is `nationality`,
  which answers none of them. A name run split by "and", "&", "in", "on" or "for" also
  gives each side as a span ("Oliver Letwin and Tim Yeo": "Tim Yeo"), and a name after a title inside the run as a person
  ("Planning Minister Julio De Vido": "Julio De Vido"). A name that ends in an event word ("World
  Cup", "Champions League") is an `event`, one that ends in an office ("Home Secretary") an `office`; neither
  answers a name question.

Offsets are character offsets into `text`. Spans may overlap (a `money` span and
the `number` inside it); the scorer picks the one of the wanted type.
"""

from __future__ import annotations

import os
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
# A comparative after an amount belongs to it ("1.5 billion cubic meters less", "3% more").
_COMPARED = r"(?:\s(?:less|more|fewer|lower|higher)\b)?"
_PERCENT = re.compile(rf"(?:\b{_NUM}\s?(?:%|per\s?cent\b|percent\b|percentage points?\b){_COMPARED})", re.IGNORECASE)
_UNITS = (r"(?:cubic\s+met(?:er|re)s|square\s+(?:met(?:er|re)s|miles|kilomet(?:er|re)s|feet)|"
          r"kilomet(?:er|re)s?|km|met(?:er|re)s?|centimet(?:er|re)s?|cm|millimet(?:er|re)s?|mm|miles?|feet|foot|"
          r"ft|inch(?:es)?|yards?|acres?|hectares?|tonnes?|tons?|kg|kilos?|kilograms?|grams?|pounds?\s+in\s+weight|"
          r"litres?|liters?|gallons?|barrels?|GW|MW|kW|kWh|TWh|GWh|MWh|watts?|megawatts?|gigawatts?|volts?|"
          r"Mbps|Kbps|Gbps|mbps|MB|GB|TB|megabytes?|gigabytes?|terabytes?|pixels?|megapixels?|mph|km/h|knots?|"
          r"degrees?|points?|goals?|runs?|wickets?|seconds?|lines?|files?|series|storeys?|floors?|laps?|"
          r"calories|decibels?)")
_QUANTITY = re.compile(rf"(?:\b{_NUM}{_SCALE}?(?:\s?-?\s?|\s(?:active\s|new\s|extra\s)?){_UNITS}\b{_COMPARED})",
                       re.IGNORECASE)
_DURATION = re.compile(
    rf"(?:\b(?:{_NUM}|a|an|several|few)(?:\s(?:and\s(?:a\s)?half)\s|[\s-])"
    r"(?:years?|months?|weeks?|days?|hours?|minutes?|mins|seconds?|decades?|centuries|century|nights?|seasons?|"
    r"series|terms)\b"
    r"(?:\s(?:and\s(?:a\s)?half))?)(?!-old\b)",
    re.IGNORECASE,
)
_AGE = re.compile(
    r"(?:\baged\s\d{1,3}\b|\b\d{1,3}-year-old\b|\b\d{1,3}\s(?:years?\s)?old\b|(?<=,\s)\d{1,3}(?=,(?!\d))|"
    r"(?<=\()\d{1,3}(?=\))|\bage\s(?:of\s)?\d{1,3}\b|\b\d{1,3}(?:st|nd|rd|th)\sbirthday\b|\bturned\s\d{1,3}\b)",
    re.IGNORECASE,
)
_DATE = re.compile(
    rf"(?:\b(?:{_DAY},?\s)?(?:\d{{1,2}}(?:\s?[-–]\s?|\s(?:to|and)\s))?\d{{1,2}}(?:st|nd|rd|th)?\s{_MONTH}(?:,?\s(?:19|20)\d{{2}})?\b"
    rf"|\b{_MONTH}\s\d{{1,2}}(?:st|nd|rd|th)?(?:\s?[-–]\s?\d{{1,2}})?(?:,?\s(?:19|20)\d{{2}})?\b"
    rf"|\b(?:{'|'.join(MONTHS)})(?:\s(?:19|20)\d{{2}})?\b"
    rf"|\b(?:1[5-9]|20)\d{{2}}s?\b)",
)
_WEEKDAY = re.compile(rf"\b{_DAY}\b")
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
             "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()
# A finishing position: "fifth", "21st", "joint third"; not an ordinal before a noun it counts ("the
# second round", "his third title").
_ORDINAL = re.compile(rf"\b(?:joint[\s-])?(?:{'|'.join(_ORDINALS)}|\d{{1,3}}(?:st|nd|rd|th))(?:\s+place)?\b"
                      r"(?![^\S\n]+(?!place\b|in\b|at\b|on\b|with\b|behind\b|after\b|and\b|or\b|overall\b|"
                      r"for\b|to\b|of\b|last\b|this\b|when\b|as\b)[a-z])", re.IGNORECASE)
# How often: "once every two years", "twice a week", "every four years", "annually".
_FREQUENCY = re.compile(
    rf"(?:\b(?:once|twice|{_NUM}\s+times)\s+(?:a|an|per|each|every)(?:\s+{_NUM})?\s+"
    r"(?:years?|months?|weeks?|days?|decades?|seasons?|hours?)\b"
    rf"|\b(?:once\s+)?every\s+(?:other\s+|{_NUM}\s+)?(?:years?|months?|weeks?|days?|decades?|seasons?|hours?)\b"
    r"|\b(?:annually|yearly|monthly|weekly|daily|fortnightly|quarterly|biennially|hourly)\b)",
    re.IGNORECASE,
)
# A cause: the words after "due to", "because of", ... up to the clause's end, at most twelve words ("blackouts
# due to critically low water levels at the dam").
_REASON_CUE = re.compile(r"\b(?:due|because|owing|result|thanks|caused|blamed|amid)\b")  # on lower-case text
_REASON = re.compile(r"\b(?:due\s+to|because(?:\s+of)?|owing\s+to|as\s+a\s+result\s+of|thanks\s+to|caused\s+by|"
                     r"blamed\s+on|amid)\s+((?:[^\s,.;:!?()“”\"]+\s+){0,11}[^\s,.;:!?()“”\"]+)", re.IGNORECASE)
# A score or a margin: "6-1", "27-22", "eight to one".
_SCORE = re.compile(rf"\b(?:\d{{1,3}}\s?[-–]\s?\d{{1,3}}|{_WORDNUM}\sto\s{_WORDNUM})\b(?![-–]\d)", re.IGNORECASE)
_NUMERIC_ANCHOR = re.compile(r"\d|\b(?:" + "|".join(WORD_NUMBERS) + r")\b")  # on lower-case text
_PATTERNS = (
    ("money", _MONEY, re.compile(rf"[$£€¥]|\dp\b|\b{_CURRENCY_WORD}\b", re.IGNORECASE)),
    ("percent", _PERCENT, re.compile(r"%|per\s?cent|percent", re.IGNORECASE)),
    ("quantity", _QUANTITY, re.compile(rf"(?:\d|\b|-){_UNITS}\b", re.IGNORECASE)),
    ("duration", _DURATION, re.compile(r"\b(?:year|month|week|day|hour|minute|min|second|decade|centur|night|"
                                       r"season|series|term)",
                                       re.IGNORECASE)),
    ("age", _AGE, re.compile(r"aged|year-old|old\b|\bage\b|birthday|turned|\(\d|,\s\d", re.IGNORECASE)),
    ("date", _DATE, re.compile(r"\d|" + "|".join(MONTHS))),
    ("day", _WEEKDAY, re.compile(_DAY)),
    ("ordinal", _ORDINAL, re.compile(r"\d(?:st|nd|rd|th)\b|(?:" + "|".join(_ORDINALS) + r")\b", re.IGNORECASE)),
    ("score", _SCORE, re.compile(r"\d\s?[-–]\s?\d|\b(?:" + "|".join(WORD_NUMBERS) + r")\sto\s", re.IGNORECASE)),
    ("frequency", _FREQUENCY, re.compile(r"\b(?:once|twice|times|every|annually|yearly|monthly|weekly|daily|"
                                         r"fortnightly|quarterly|biennially|hourly)\b", re.IGNORECASE)),
)


def _on_lower_case(gate: re.Pattern) -> re.Pattern:
    """`gate` without IGNORECASE, for text already in lower case: `re` runs a case-sensitive alternation
    of words two to five times faster (the gates were half of `typed_spans`' time). Only the pattern's
    literal capitals change ("kWh"), not its escapes ("\\S")."""
    if not gate.flags & re.IGNORECASE:
        return gate
    return re.compile(re.sub(r"(?<!\\)[A-Z]", lambda m: m.group(0).lower(), gate.pattern),
                      gate.flags & ~re.IGNORECASE)


# Each pattern's gate, and whether it reads the lower-case text (the case-sensitive gates, month and day
# names, read the text itself).
_GATES = tuple((kind, pattern, _on_lower_case(gate), bool(gate.flags & re.IGNORECASE))
               for kind, pattern, gate in _PATTERNS)

# Not the digits of an ordinal ("the 8th Congress" counts nothing).
_NUMBER = re.compile(rf"(?:\b{_NUM}(?!\d|(?:st|nd|rd|th)\b){_SCALE}?(?:\s(?P<noun>[a-z][a-z-]+))?)", re.IGNORECASE)
_COUNTED_IRREGULAR = {"people", "men", "women", "children", "staff", "police", "cattle", "sheep", "fish", "aircraft"}
# Words ending in "s" after a number that are no counted noun ("Powerbook 100 has been chosen").
_NOT_COUNTED = {"has", "was", "is", "does", "goes", "says", "its", "his", "this", "thus", "as", "us", "plus", "less",
                "across", "perhaps", "whereas", "unless", "always", "sometimes", "makes", "takes", "gives",
                "comes", "becomes", "remains", "seems", "means", "needs", "wants", "gets"}

# Capitalised words in a row, allowing inner "of", "de", "and", "&", "the" and initials ("George W Bush").
# Words of a name are separated by spaces, never by a line break (a paragraph ends a name).
_NAME = re.compile(
    r"(?:[A-Z][\w’'.-]*[\w]|[A-Z]\.?)(?:[^\S\n]+(?:(?:of|de|del|della|di|da|du|des|dos|van|von|der|le|la|al|bin|&|and|the|on|for|in)"
    r"[^\S\n]+)?(?:[A-Z][\w’'.-]*[\w]|[A-Z]\.?|\d+\b(?![-–]\d)))*"
)
# Inner words that join two names rather than make one ("Oliver Letwin and Tim Yeo", "Championships in
# St Etienne"): each side is also a span of its own.
_JOINERS = re.compile(r"[^\S\n]+(?:and|&|in|on|for)[^\S\n]+|[’']s[^\S\n]+")
# Only a possessive separates an organisation's owner from its name: its "and" is part of the name
# ("Kazakhstan's Ministry of Water Resources and Irrigation").
_POSSESSIVE = re.compile(r"[’']s[^\S\n]+")
_LISTED = re.compile(r"[^\S\n]+(?:and|&)[^\S\n]+")
# Nationality and regional adjectives: a name run does not start with one ("Argentine Juan Ignacio
# Chela"), and alone one is not a name of a person, organisation, place or work.
DEMONYMS = set("""afghan african albanian algerian american argentine argentinian armenian asian australian
austrian azerbaijani bangladeshi belarusian belgian bolivian bosnian brazilian british bulgarian cambodian
canadian chilean chinese colombian croatian cuban cypriot czech danish dutch egyptian english estonian
ethiopian european filipino finnish french georgian german ghanaian greek hungarian icelandic indian
indonesian iranian iraqi irish israeli italian jamaican japanese jordanian kazakh kenyan korean kosovan
kuwaiti kyrgyz latvian lebanese libyan lithuanian malaysian mexican moroccan nigerian norwegian pakistani
palestinian peruvian polish portuguese qatari romanian russian rwandan saudi scottish serbian singaporean
slovak slovakian slovenian somali spanish sudanese swedish swiss syrian taiwanese tajik thai tunisian
turkish turkmen ugandan ukrainian uzbek venezuelan vietnamese welsh yemeni zimbabwean western eastern
northern southern latin arab arabic catholic muslim christian jewish hindu sikh buddhist protestant
anglican islamic scandinavian caribbean""".split())
# The demonyms that name a country's people, not a region or a faith.
NATIONALITIES = DEMONYMS - set("""western eastern northern southern latin arab arabic catholic muslim christian jewish
hindu sikh buddhist protestant anglican islamic scandinavian caribbean european african asian""".split())
# Countries whose demonym does not start like their name.
_COUNTRY_OF = {"french": "france", "dutch": "netherlands", "welsh": "wales", "swiss": "switzerland",
               "danish": "denmark", "irish": "ireland", "spanish": "spain", "greek": "greece", "swedish": "sweden",
               "finnish": "finland", "polish": "poland", "norwegian": "norway", "british": "britain"}


def same_nation(nationality: str, word: str) -> bool:
    """Whether `word` (lower case: a demonym or a place) names the nation of `nationality` ("turkey" for
    "turkish", "france" for "french")."""
    if word == nationality or word == _COUNTRY_OF.get(nationality):
        return True
    return nationality not in _COUNTRY_OF and word in PLACES and len(os.path.commonprefix([nationality, word])) >= 4


# A title inside a name run: the person's name follows it ("Planning Minister Julio De Vido").
TITLE_INSIDE = re.compile(r"\b(?:Minister|Secretary|Chancellor|President|Chairman|Chairwoman|Chief|Executive|"
                           r"Director|Judge|Justice|Governor|Senator|Commissioner|Spokesman|Spokeswoman|Mayor|"
                           r"Ambassador|Coach|Manager|Captain|Editor|Analyst|Economist|Professor|Dr|Sir|Rapper|"
                           r"Singer|Model|Actor|Actress|Star|Striker|Boss|Author|Writer|Designer|Comedian|Presenter|"
                           r"Chef|Entrepreneur|Businessman|Tycoon|Magnate|Officer|Defender|Midfielder|Goalkeeper|"
                           r"Winger|Bishop|Archbishop|Cardinal|Producer|Founder|Lawyer|Champion|MEP|MP)[^\S\n]+")
# Royal and religious titles that make the name they start a person's, even when a place follows
# ("Patriarch Kirill of Moscow").
_NAME_TITLES = {"pope", "patriarch", "king", "queen", "prince", "princess", "sheikh", "emir", "rabbi", "imam",
                "archbishop", "bishop", "cardinal", "sultan", "tsar", "saint"}
# Titles that belong to the name they precede ("Sir Ian Blair"), unlike offices ("Commissioner").
_HONORIFIC = re.compile(r"Sir|Dr|Dame|Lord|Lady")
# A company introduced by where it sits or who owns it ("Pennsylvania-based Wabtec"), right before its name.
_LOCATED_WORD = r"-(?:based|listed|owned|headquartered|registered)"
LOCATED_BEFORE = re.compile(r"\w" + _LOCATED_WORD + r"[^\S\n]+$")
# A noun for a kind of organisation right before a name makes it one ("water firm Aguas Argentinas",
# "US giant United Parcel Services", "the Catholic movement Opus Dei"), and so does `LOCATED_BEFORE`.
_ORG_CUE = re.compile(r"\b(?:firm|company|group|bank|carmaker|giant|club|side|movement|party|band|label|retailer|"
                      r"airline|carrier|broadcaster|network|newspaper|magazine|agency|charity|insurer|operator|"
                      r"maker|manufacturer|supplier|regulator|watchdog|conglomerate|consortium|publisher|"
                      r"developer|studio|chain|supermarket|team|outfit)[^\S\n]+$|" + LOCATED_BEFORE.pattern)
# "Pennsylvania-based Wabtec", "Kremlin-owned Gazprom": where a company sits or who owns it is no part of its name.
_LOCATED = re.compile(r"[\w.’']+" + _LOCATED_WORD)
# All-capital abbreviations that name places, not organisations.
_PLACE_ABBREVIATIONS = {"US", "UK", "USA", "UAE", "U.S", "U.K", "U.S.A"}
# Capitalised words that do not start a name when they start a run (sentence starts, titles kept apart).
STARTERS = set("""a an the and but or if in on at of for to by with from as after before since while when where
what which who whom whose why how this that these those it its he she they we i you his her their our my your
there here then so yet also however although though mr mrs ms miss dr prof president minister
chancellor secretary chairman chief boss judge mp mps mr. mrs. dr. last next this monday tuesday wednesday thursday
friday saturday sunday january february march april may june july august september october november december
meanwhile but both all some many most one two three four five six seven eight nine ten according despite
under over about speaking writing analysts experts officials critics during more less fewer only even just
around nearly almost""".split())
_WHEN_WORDS = {w.lower() for w in MONTHS} | {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                              "sunday"}
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
court society foundation trust club church churches federation league committee congress parliament assembly
forum conference industries international systems technologies telecom communications media
news times post guardian standard mail telegraph herald journal magazine review bbc itv fifa uefa nato
un eu imf wto opec nhs fbi cia police service services partners capital securities insurance energy oil gas
petroleum electric electronics pharmaceuticals entertainment pictures games software networks""".split())
# Lower-case words inside a person's name ("Piero della Francesco", "Ludwig van Beethoven").
_PARTICLES = {"de", "del", "della", "di", "da", "du", "dos", "van", "von", "der", "le", "la", "al", "bin"}
# Names of competitions, prizes and events: none of person, organisation, place or work.
_EVENT_WORDS = set("""cup championship championships olympics olympic games league trophy prize award awards open
tournament series festival final finals trial marathon grand slam prix premiership""".split())
# Offices: a name run that ends in one ("Home Secretary", "Prime Minister") names a post, not who holds it.
_OFFICES = set("""secretary minister chancellor president commissioner spokesman spokeswoman chairman chairwoman
governor mayor ambassador executive premier""".split())
# Words that start a place's name before a country or city ("South Korea", "Greater London"); another word
# before one makes a name of unsure kind ("Power China", "Air China": companies).
_PLACE_PREFIXES = set("""north south east west northern southern eastern western central greater new upper lower
great inner outer mainland republic united sub north-east north-west south-east south-west old downtown
metropolitan""".split())
_PLACE_WORDS = set("""street road avenue park square stadium arena theatre theater centre center hall palace house
river lake sea ocean mountains mountain island islands valley bay gulf county province state region city town
village airport port reservoir dam canal bridge district""".split())
# The noun before a work's name, or before it as an appositive ("a new album, Astronaut,"; the comma form only
# for nouns that are not also verbs or common words: "to play, Smith said" names no play).
_WORK_CUE = re.compile(
    r"(?:\b(?:film|movie|album|single|song|book|novel|play|musical|show|series|sitcom|drama|documentary|game|"
    r"programme|program|opera|record|track|comedy|thriller|biopic|titled|called|entitled|epic|hit)\s+|"
    r"\b(?:film|movie|album|novel|documentary|musical|sitcom|biopic|memoir),\s+)$",
    re.IGNORECASE,
)
_PLACE_CUE = re.compile(r"(?:\b(?:in|at|to|from|near|outside|across|into|inside)\s+(?:the\s+)?|"
                        r"\b(?:town|city|village|region|resort|port|province|district)\s+of\s+)$")
# An apostrophe inside a word ("It's", "Dent's") is no quote mark: a quote opens after a non-letter and
# closes before one.
_QUOTED = re.compile(r"(?<![\w])[\"“‘']([A-Z][^\"”’']{1,60}?)[\"”’'](?![\w])")
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


# What a quantity's unit measures: a question about electricity asks for kWh, not cubic metres.
UNIT_MEASURES = (
    ("energy", re.compile(r"(?:\d|\b)(?:[kMGT]Wh?|(?:kilo|mega|giga|tera)?watts?(?:\s?hours?)?)$", re.IGNORECASE)),
    ("volume", re.compile(r"\b(?:cubic\s+met(?:er|re)s|litres?|liters?|gallons?|barrels?)$", re.IGNORECASE)),
    ("area", re.compile(r"\b(?:square\s+\w+|acres?|hectares?)$", re.IGNORECASE)),
    ("length", re.compile(r"(?:\d|\b)(?:kilomet(?:er|re)s?|km|met(?:er|re)s?|centimet(?:er|re)s?|cm|"
                          r"millimet(?:er|re)s?|mm|miles?|feet|foot|ft|inch(?:es)?|yards?)$", re.IGNORECASE)),
    ("mass", re.compile(r"(?:\d|\b)(?:tonnes?|tons?|kg|kilos?|kilograms?|grams?|pounds\s+in\s+weight)$",
                        re.IGNORECASE)),
    ("speed", re.compile(r"(?:\d|\b)(?:mph|km/h|knots?|[MKG]bps)$", re.IGNORECASE)),
    ("data", re.compile(r"(?:\d|\b)(?:[MGT]B|(?:mega|giga|tera)bytes?)$")),
)


def unit_measure(quantity: str) -> str | None:
    """What the unit of a `quantity` span measures ("energy" for "2.4 billion kWh"), or None."""
    core = re.sub(r"\s(?:less|more|fewer|lower|higher)$", "", quantity)
    return next((measure for measure, unit in UNIT_MEASURES if unit.search(core)), None)


@dataclass(frozen=True)
class TypedSpan:
    """`text[start:end]` is a phrase of type `kind` (see the module docstring)."""

    kind: str
    start: int
    end: int
    text: str


def typed_spans(text: str, common: frozenset[str] | set[str] = frozenset()) -> list[TypedSpan]:
    """Every typed span of `text` (overlapping spans of different kinds are all kept). `common`: words the
    article writes in lower case; one of them that opens the sentence starts no name ("Sales rose",
    "Oil prices fell")."""
    found: list[TypedSpan] = []

    def add(kind: str, start: int, end: int) -> None:
        while end > start and text[end - 1] in " ,.;:-":
            end -= 1
        if end > start:
            found.append(TypedSpan(kind, start, end, text[start:end]))

    # Each pattern runs only when a cheap scan finds its anchor: the number-word alternatives make
    # the full patterns slow, and most sentences hold no amount at all.
    lower = text.lower()
    numeric = bool(_NUMERIC_ANCHOR.search(lower))
    for kind, pattern, gate, on_lower in _GATES:
        if (numeric or kind in ("date", "day", "duration", "ordinal", "frequency")) and \
                gate.search(lower if on_lower else text):
            for m in pattern.finditer(text):
                add(kind, m.start(), m.end())
    specific_end = len(found)
    for m in (_NUMBER.finditer(text) if numeric else ()):
        noun = m.group("noun")
        end = m.end()
        if noun and not (noun.endswith("s") or noun in _COUNTED_IRREGULAR) or (noun and noun.lower() in STARTERS) or \
                (noun and noun.lower() in _NOT_COUNTED):
            end = m.start("noun")
        if re.fullmatch(r"(?:19|20)\d{2}", m.group(0)[:4]) and (end - m.start() == 4):
            continue  # a bare year is a date, not a count
        add("number", m.start(), end)
    # A count inside an amount, a share, a period, an age or a date is that, not a count.
    specific = [(t.start, t.end) for t in found[:specific_end]]
    found = [t for t in found if t.kind != "number" or not any(s < t.end and t.start < e for s, e in specific
                                                                 if (s, e) != (t.start, t.end))]
    for m in (_REASON.finditer(text) if _REASON_CUE.search(lower) else ()):
        add("reason", m.start(1), m.end(1))
    for m in _QUOTED.finditer(text):
        if _title_like(m.group(1)):
            add("work", m.start(1), m.end(1))
    quoted = [(t.start, t.end) for t in found if t.kind == "work"]
    for start, end in _names(text, common):
        if any(s <= start and end <= e for s, e in quoted):
            continue  # the words of a quoted title are that title ("We Are The World" names no person)
        start, kind = _trimmed(text, start, end)
        if text[start:end].lower() in DEMONYMS:
            kind = "nationality"
        add(kind, start, end)
        # An organisation's name keeps its inner words ("European Bank for Reconstruction and Development"),
        # not its possessor ("Robert Sillerman's Sports Entertainment Enterprises"); a list of
        # organisations is split ("Corran Group and Tamu Group").
        parts = _parts(text, start, end)
        if kind == "organisation":
            listed = _parts(text, start, end, _LISTED)
            if not all(name_kind(text, s, e) == "organisation" for s, e in listed):
                listed = []
            parts = listed + [p for s, e in listed or [(start, end)] for p in _parts(text, s, e, _POSSESSIVE)]
        for part_start, part_end in parts:
            # Each part as a run of its own: "Barclays and California-based Wells Fargo".
            part_start, part_kind = _trimmed(text, part_start, part_end)
            add(part_kind, part_start, part_end)
        titles = list(TITLE_INSIDE.finditer(text, start, end))
        if titles and titles[-1].end() < end:
            # The person follows the last title ("Metropolitan Police Commissioner Sir Ian Blair"); an
            # honorific right after another title is part of the name ("Sir Ian Blair").
            last = titles[-1]
            at = last.start() if (_HONORIFIC.fullmatch(last.group(0).strip()) and len(titles) > 1
                                  and titles[-2].end() == last.start()) else last.end()
            if text[at].isupper():  # "Minister of Economy" names no one after its title
                add("person", at, end)
    # A number that ends a name is part of it, not a count ("Apple Powerbook 100", "Channel 4").
    named = [(t.start, t.end) for t in found if t.kind in ("person", "organisation", "place", "work", "name", "event")
             and " " in t.text]
    return [t for t in found if t.kind != "number" or not any(s <= t.start and t.end == e for s, e in named)]


_TITLE_SMALL = {"a", "an", "the", "of", "and", "in", "on", "at", "to", "for", "with", "from", "by", "or", "is", "de"}


def _title_like(quote: str) -> bool:
    """Whether a quoted phrase reads as a title ("No More Mr Nasty", "Salt and Silence"): most of its words
    capitalised. Quoted speech ("It has got to change itself a bit") is no work's name."""
    words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", quote) if w.lower() not in _TITLE_SMALL]
    return not words or sum(w[0].isupper() for w in words) * 2 >= len(words)


def _trimmed(text: str, start: int, end: int) -> tuple[int, str]:
    """The start and the kind of the name run `text[start:end]` without a nationality or a company's seat in front."""
    kind = name_kind(text, start, end)
    first = re.match(r"\S+[^\S\n]+", text[start:end])
    if first and (bare(first.group(0).strip()) in NATIONALITIES and kind not in ("organisation", "work")
                  or _LOCATED.fullmatch(first.group(0).strip())):
        # A nationality before a name is not part of it ("Argentine Juan Ignacio Chela"), unless the
        # whole is an organisation's name ("European Bank for Reconstruction and Development") or a
        # work's title ("the album, Irish Skies"); a region or a faith is part of the name ("Northern
        # Ireland", "Western Australia", "Christian Wilkins"). "Pennsylvania-based Wabtec": the seat is no
        # part of the company's name.
        start += first.end()
        kind = name_kind(text, start, end)
    return start, kind


def _parts(text: str, start: int, end: int, joiners: re.Pattern = _JOINERS) -> list[tuple[int, int]]:
    """The names a joining word ("and", "in", ...) or a possessive ("Robert Sillerman's Sports
    Entertainment") separates inside the name run `text[start:end]` (`joiners`: what separates)."""
    parts, at = [], start
    for m in joiners.finditer(text, start, end):
        parts.append((at, m.start()))
        at = m.end()
    if not parts:
        return []
    parts.append((at, end))
    return [(s, e) for s, e in parts if e - s >= 2 and text[s].isupper()]


def _names(text: str, common: frozenset[str] | set[str] = frozenset()) -> list[tuple[int, int]]:
    """Runs of capitalised words, minus sentence-starting function words and titles, and minus a first word
    of the sentence that is in `common` (words written in lower case elsewhere: "Sales", "Inflation")."""
    spans = []
    opening = len(text) - len(text.lstrip(" \t\n\"“‘'(")) if common else -1
    for m in _NAME.finditer(text):
        words = list(re.finditer(r"\S+", m.group(0)))
        # Drop leading words that only start a sentence or are titles ("The", "Mr", "President").
        while words and (bare(words[0].group(0)) in STARTERS or (
                m.start() + words[0].start() == opening and words[0].group(0).lower() in common
                and (len(words) == 1 or not words[1].group(0)[0].isupper()))):
            # (A common word that opens the sentence before another capitalised one may be a first name:
            # "Bill Gates", "Will Young".)
            words.pop(0)
        # A day, month or year after "on" or "in" ends the name: "a deal with Granite Kenya on Monday".
        if len(words) >= 3 and words[-2].group(0) in ("on", "in") and (
                bare(words[-1].group(0)) in _WHEN_WORDS or re.fullmatch(r"(?:19|20)\d\d", words[-1].group(0))):
            del words[-2:]
        # Nor does a nationality after "and" ("Kenya's Tamu Group and Irish builder ...").
        if len(words) >= 3 and words[-2].group(0) in ("and", "&") and bare(words[-1].group(0)) in DEMONYMS:
            del words[-1]
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


def bare(word: str) -> str:
    """`word` lower case, without a possessive or edge punctuation ("Turkey's" -> "turkey")."""
    return word.lower().replace("’", "'").removesuffix("'s").strip("'.,")


def name_kind(text: str, start: int, end: int) -> str:
    """`person`, `organisation`, `place`, `work`, or `name` when the rules cannot tell."""
    phrase = text[start:end]
    words = phrase.replace("’s", "").split()
    lower = [w.lower().strip(".,") for w in words]
    before = text[max(0, start - 40):start]
    if _WORK_CUE.search(before):
        return "work"
    if phrase in _PLACE_ABBREVIATIONS:
        return "place"
    if lower[-1] in _EVENT_WORDS:
        return "event"
    if lower[-1] in _OFFICES and len(words) <= 3:
        return "office"
    if lower[-1] == "court" and len(words) >= 2:
        return "place"  # "Earls Court", "Santa Clara Superior Court": where things happen
    if _ORG_CUE.search(before):
        return "organisation"
    if any(w in _ORG_WORDS for w in lower) or (len(words) == 1 and words[0].isupper() and len(words[0]) >= 2):
        return "organisation"
    if phrase.lower() in PLACES or any(w in _PLACE_WORDS for w in lower[1:]):
        return "place"
    if lower[0] in _NAME_TITLES and len(words) >= 2:
        return "person"  # "Patriarch Kirill of Moscow", "Pope John Paul II": the place names the see
    if lower[-1] in PLACES:
        # "South Korea", "Sri Lanka" are places; "Power China", "Michael Jordan" may be anything.
        return "place" if len(words) == 1 or lower[0] in PLACES or lower[0] in _PLACE_PREFIXES else "name"
    if _TITLE_PERSON.search(before):
        return "person"
    if _PLACE_CUE.search(before) and len(words) <= 2 and not (
            len(words) == 2 and re.match(r"[’']s\s", text[end:end + 3])):  # "at Jack Straw's country house"
        return "place"
    # A possessive inside the run ("France's Suez") joins an owner to what it owns: not a person's name.
    if 2 <= len(words) <= 4 and all(w[0].isupper() or w in _PARTICLES for w in words[1:-1]) and \
            words[0][0].isupper() and words[-1][0].isupper() and not re.search("[’']s[^\\S\\n]", phrase):
        return "person"
    return "name"
