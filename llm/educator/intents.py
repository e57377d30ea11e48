"""Which educator request a visitor's question is, if any: quiz, classroom activity, "what
else is like this?", and the grade band and topic it names.

Regular expressions over the transcript, tuned on how visitors and teachers phrase these at a
sphere; a factual question that merely uses a word ("solar activity", "teach me about
volcanoes", "what is similar about Io and Enceladus?") is not an educator request.
"""

from __future__ import annotations

import re
from typing import Literal

from catalog.grounding import asks_for_related
from llm.base import Audience
from llm.quiz import is_stop

GradeBand = Literal["elementary", "middle", "high"]

_QUIZ_RE = re.compile(
    r"\bquiz\b|\btrivia\b|\btest (?:me|us|my|our)\b|"
    r"\bask (?:me|us) (?:some |a few |three |a couple of )?questions\b",
    re.I,
)
_ACTIVITY_RE = re.compile(
    r"\b(?:classroom|lesson|lessons|lesson plan|students?|pupils|curriculum|grade level|"
    r"k-?12|ngss)\b|"
    r"\b(?:in|for|with|to) (?:a|an|my|our|the|your) (?:[\w-]+ ){0,2}class(?:es)?\b|"
    r"\b(?:my|our|your) (?:[\w-]+ ){0,2}class(?:es)?\b|"
    r"\b(?:middle|high|elementary|primary|secondary)[- ]?school\b|"
    r"\bteach(?:ing|ers?)?\b(?! me\b| us\b)|"
    r"\bactivit(?:y|ies)\b.{0,40}\b(?:using|with|for|on|about|around)\b.{0,12}"
    r"\b(?:this|that|it|the (?:dataset|animation|data))\b|"
    r"\b(?:describe|suggest|give me|plan|design) (?:an? |some )?(?:\w+ )?activit(?:y|ies)\b",
    re.I,
)
_MORE_LIKE_RE = re.compile(
    r"\belse\b|\bmore like\b|\blike (?:this|that|it)\b|"
    r"\b(?:similar|related|other) (?:datasets?|ones?|animations?|visuali[sz]ations?|things)\b",
    re.I,
)
_GRADE_PATTERNS: tuple[tuple[GradeBand, re.Pattern[str]], ...] = (
    (
        "elementary",
        re.compile(
            r"\b(?:elementary|primary school|kindergarten|k-?5|grades? [1-5]\b|"
            r"(?:1st|2nd|3rd|4th|5th|first|second|third|fourth|fifth)[- ]grade)",
            re.I,
        ),
    ),
    (
        "middle",
        re.compile(
            r"\b(?:middle[- ]?school|junior high|grades? [6-8]\b|"
            r"(?:6th|7th|8th|sixth|seventh|eighth)[- ]grade)",
            re.I,
        ),
    ),
    (
        "high",
        re.compile(
            r"\b(?:high[- ]?school|secondary school|grades? (?:9|1[0-2])\b|college|"
            r"(?:9th|10th|11th|12th|ninth|tenth|eleventh|twelfth)[- ]grade)",
            re.I,
        ),
    ),
)
# Words that only say "this is an educator request", dropped before looking for a topic.
_INTENT_WORDS = re.compile(
    r"\b(?:quiz|trivia|test|questions?|ask|give|start|play|take|do|let'?s|let|us|me|my|our|"
    r"on|about|a|an|the|some|few|couple|of|three|please|can|could|would|should|will|you|we|i|"
    r"how|what|describe|suggest|plan|design|use|using|idea|ideas|with|in|for|to|into|it|this|"
    r"that|these|those|dataset|data|animation|one|classroom|class|classes|lesson|lessons|"
    r"students?|pupils|curriculum|school|grade|level|teach|teaching|teachers?|activity|"
    r"activities|middle|high|elementary|primary|junior|secondary|kindergarten|k-?12|ngss|"
    r"college|\d+(?:st|nd|rd|th)?|first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
    r"tenth|eleventh|twelfth|good|fun|short|quick|simple|is|are|be|there|here|now|right|"
    r"and|else|other|others|similar|related|like|any|anything|something|datasets|ones)\b",
    re.I,
)


def asks_for_quiz(question: str) -> bool:
    """ "Quiz me on this", "can we do a quiz about hurricanes", "test me"."""
    return _QUIZ_RE.search(question) is not None and not is_stop(question)


def asks_for_more_like(question: str) -> bool:
    """ "What else is like this?", "any similar datasets?", "show me more like this"; not a
    factual question that merely uses the word ("what is similar about Io and Enceladus?",
    "data related to lightning"), which the inner answerer should answer."""
    return asks_for_related(question) and _MORE_LIKE_RE.search(question) is not None


def asks_for_activity(question: str) -> bool:
    """ "Describe a classroom activity using this dataset", "how could I use it in a
    middle-school class" (not "teach me about volcanoes", not "solar activity")."""
    return _ACTIVITY_RE.search(question) is not None


def grade_band(question: str, audience: Audience) -> GradeBand:
    """The grade band the question names, else one that fits the audience."""
    for band, pattern in _GRADE_PATTERNS:
        if pattern.search(question):
            return band
    return "elementary" if audience == "kids" else "middle"


def topic_words(question: str) -> str:
    """What is left of an educator request once its intent words are gone: the topic it
    names ("quiz me about hurricanes" -> "hurricanes"), or "" for "quiz me on this"."""
    return " ".join(_INTENT_WORDS.sub(" ", question.replace("-", " ")).split()).strip(" ?.!,")
