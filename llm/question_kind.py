"""What kind of answer a question asks for, and whether a catalog sentence gives one.

"What causes a tsunami?" wants a cause, "How deep is the ocean?" a number, "Where do
earthquakes happen?" a place. The catalog answerer picks description sentences by the words
they share with the question; a sentence that shares them but does not give what was asked
("Tsunami Locations shows ...") used to win over the one that does ("... triggered by an
earthquake ..."). So a sentence carrying the asked-for kind of answer gets a bonus.

Plain patterns, not a model: questions at a kiosk are short and their wh-word and first verb
say what they want; a classifier would need training data this project does not have.
"""

from __future__ import annotations

import re
from enum import Enum


class Kind(Enum):
    CAUSE = "cause"
    PLACE = "place"
    AMOUNT = "amount"
    TIME = "time"
    PERSON = "person"
    OTHER = "other"


_KIND_PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    (
        Kind.CAUSE,
        re.compile(
            r"\b(?:why|what (?:causes|caused|makes|made|creates|drives|triggers|produces)|"
            r"how (?:do|does|did|are|is|can) .{0,40}\b(?:form|forms|formed|happen|happens|start|"
            r"starts|work|works|get|gets|made)\b|cause[sd]?|reason)\b",
            re.I,
        ),
    ),
    (
        Kind.AMOUNT,
        re.compile(
            r"\bhow (?:big|large|small|many|much|far|fast|deep|high|tall|long|old|hot|cold|"
            r"warm|thick|wide|often|strong|heavy)\b|\bwhat (?:percent|percentage|size|"
            r"temperature|speed|depth)\b",
            re.I,
        ),
    ),
    (Kind.TIME, re.compile(r"\bwhen\b|\bwhat (?:year|month|day|time|date)\b", re.I)),
    (
        Kind.PLACE,
        re.compile(
            r"\bwhere\b|\bwhich (?:part|parts|place|places|region|country|"
            r"countries|ocean|oceans|continent)\b",
            re.I,
        ),
    ),
    (Kind.PERSON, re.compile(r"\bwho\b|\bwhat (?:scientist|agency|organi[sz]ation)\b", re.I)),
)

_NUMBER = (
    r"\d[\d,.]*|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|"
    r"thirty|forty|fifty|hundreds?|thousands?|millions?|billions?|half|quarter|dozens?)\b"
)
_ANSWER_PATTERNS: dict[Kind, re.Pattern[str]] = {
    Kind.CAUSE: re.compile(
        r"\b(?:caus\w*|because|due to|result(?:s|ed|ing)? (?:from|in)|as a result|"
        r"trigger\w*|driven by|drives?|leads? to|led to|produc\w*|forms? when|formed when|"
        r"occurs? when|happens? when|created by|comes? from|powered by|fuel\w*|when)\b",
        re.I,
    ),
    Kind.AMOUNT: re.compile(
        _NUMBER + r"|\b(?:percent|degrees?|miles?|kilometers?|km|meters?|feet|tons?|"
        r"times (?:larger|bigger|more|smaller))\b",
        re.I,
    ),
    Kind.TIME: re.compile(
        r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b(?:january|february|march|april|may|june|july|"
        r"august|september|october|november|december|century|centuries|years? ago|season|"
        r"summer|winter|spring|autumn|every year|each year)\b",
        re.I,
    ),
    Kind.PLACE: re.compile(
        r"\b(?:along|near|across|off the|coast\w*|pole|poles|polar|equator\w*|tropic\w*|"
        r"hemisphere|continents?|regions?|basins?|latitudes?|boundar\w*|mountains?|"
        r"pacific|atlantic|indian ocean|arctic|antarctic\w*|africa|asia|europe|america|"
        r"australia|greenland|siberia|india|china|japan|brazil|alaska|florida|california|"
        r"gulf|caribbean|mediterranean|himalaya\w*|amazon|sahara)\b",
        re.I,
    ),
    Kind.PERSON: re.compile(
        r"\b(?:scientists?|researchers?|geologists?|oceanographers?|astronomers?|NOAA|NASA|"
        r"[A-Z][a-z]+ [A-Z][a-z]+)\b"
    ),
}


def question_kind(question: str) -> Kind:
    """The first kind whose pattern the question matches; ``Kind.OTHER`` for the rest."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(question):
            return kind
    return Kind.OTHER


def gives(kind: Kind, sentence: str) -> bool:
    """Does ``sentence`` carry the kind of answer asked for (a cause, a number, a place...)?"""
    pattern = _ANSWER_PATTERNS.get(kind)
    return bool(pattern and pattern.search(sentence))
