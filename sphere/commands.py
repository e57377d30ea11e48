"""Recognizing spoken sphere commands ("show me hurricanes", "next one") in a transcript.

Deliberately narrow: a command is a short imperative with nothing else in it. Anything that
reads like a question ("what does this show?", "how do hurricanes form?", "why is it
paused?") is not a command and goes to the answerer as before, because a visitor's question
answered as a playlist jump is worse than a command answered as a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from catalog.terms import fold

__all__ = ["Command", "recognize"]

Action = Literal["play", "next", "prev", "pause", "replay"]
MAX_WORDS = 10

_POLITE = (
    r"^(?:(?:ok(?:ay)?|hey|please|so|um+|uh+|now|and)\s+)*"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?)?(?:please\s+)?"
)
_TAIL = r"(?:\s+(?:please|now|on the sphere|on the globe))*$"
_QUESTION_START = re.compile(
    r"^(?:what|why|how|where|when|who|which|is|are|does|do|did|was|were|tell)\b"
)
_PATTERNS: tuple[tuple[Action, re.Pattern[str]], ...] = (
    ("replay", re.compile(_POLITE + r"(?:play|show)\s+(?:it|that|this)\s+again" + _TAIL)),
    ("replay", re.compile(_POLITE + r"(?:replay|restart)(?:\s+(?:it|that|this))?" + _TAIL)),
    ("replay", re.compile(_POLITE + r"(?:start\s+(?:it|that|this)\s+)?(?:over|again)" + _TAIL)),
    (
        "next",
        re.compile(
            _POLITE
            + r"(?:go\s+to\s+the\s+|show\s+me\s+the\s+)?"
            + r"next(?:\s+one|\s+clip|\s+dataset|\s+please)?"
            + _TAIL
        ),
    ),
    ("next", re.compile(_POLITE + r"skip(?:\s+(?:it|this|this one|that))?" + _TAIL)),
    (
        "prev",
        re.compile(
            _POLITE
            + r"(?:go\s+back|back|previous(?:\s+one|\s+clip|\s+dataset)?"
            + r"|go\s+to\s+the\s+previous(?:\s+one)?)"
            + _TAIL
        ),
    ),
    ("pause", re.compile(_POLITE + r"(?:pause|freeze)(?:\s+(?:it|this|that|the sphere))?" + _TAIL)),
    (
        "play",
        re.compile(
            _POLITE + r"(?:show|play|put\s+on|display)\s+(?:me\s+|us\s+)?(?P<query>.+?)" + _TAIL
        ),
    ),
)
_ARTICLES = re.compile(r"^(?:the|a|an|some|something about|something with)\s+")


@dataclass(frozen=True, slots=True)
class Command:
    """A recognized command; ``query`` is what to play (``play`` only)."""

    action: Action
    query: str = ""


def _normalize(text: str) -> str:
    text = fold(text)  # "Play El Niño" -> "play el nino"
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def recognize(text: str) -> Command | None:
    """The command in a transcript, or None (a question, or anything else)."""
    if "?" in text and not re.match(r"^\s*(?:can|could|would|will)\s+you\b", text.lower()):
        return None
    words = _normalize(text)
    if not words or len(words.split()) > MAX_WORDS or _QUESTION_START.match(words):
        return None
    for action, pattern in _PATTERNS:
        match = pattern.match(words)
        if match is None:
            continue
        if action != "play":
            return Command(action)
        query = _ARTICLES.sub("", match.group("query")).strip()
        if not query or query in ("it", "that", "this", "me", "something", "more"):
            return None
        if re.match(r"^(?:how|why|what|where|when|who|which)\b", query):
            return None  # "show me how clouds form" is a question in disguise
        return Command("play", query)
    return None
