"""Asking back when unsure, and understanding the visitor's reply.

A misheard or unusual question ("Why is the sea higher in some places?" heard as "Why is
the sea hire...") used to get either a confident answer about the wrong dataset or "Sorry,
I don't have a dataset about that". When retrieval cannot tell (see
:func:`catalog.grounding.choices_to_offer`), the answer is a short question instead: "I'm
not sure I understood. Did you mean Sea Surface Height Anomaly, or Sea Surface
Salinity?" The next turn ("the first one", "salinity", "yes", "neither") is resolved here
against the choices that question offered, and the conversation layer rewrites it to name
that dataset, so every backend answers exactly it.

Stateless like the rest of the conversation layer: the offered datasets are read back from
the assistant's last message in the request's history (the text this module wrote), so
nothing is kept per session and a restarted server still understands the reply.

Why word overlap and rapidfuzz, not a model: the reply is a few words picking one of two
known titles; stemmed title words ("ozone" in "the ozone one") decide most, and a fuzzy
ratio (a kept library) catches a title heard slightly wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from catalog.datasets import Catalog, CatalogEntry, normalize_title
from catalog.terms import analyze
from catalog.text import spoken_title
from llm.base import AnswerRequest

ASK_LEAD = "I'm not sure I understood."
_ASK_RE = re.compile(re.escape(ASK_LEAD) + r" Did you mean (?P<names>.+)\?$", re.S)
_OR = ", or "
# A reply longer than this is a new question, not a choice (unless it starts like one).
REPLY_MAX_WORDS = 6
FUZZY_CUTOFF = 80.0

_LEAD_IN = r"^\W*(?:(?:um|uh|oh|ok(?:ay)?|well|i mean|i meant|i said)\W+)*"
_YES_RE = re.compile(
    _LEAD_IN + r"(?:yes|yeah|yep|yup|sure|right|correct|that one|that's it|that's right|"
    r"exactly|please)\b",
    re.I,
)
_NO_RE = re.compile(
    _LEAD_IN + r"(?:no|nope|neither|none|nah|not really|no thanks|neither one|neither of "
    r"(?:them|those))\W*(?:(?:thanks|thank you)\W*)?$",
    re.I,
)
_ORDINALS = (
    (re.compile(r"\b(?:first|1st|former|number one|top one)\b", re.I), 0),
    (re.compile(r"\b(?:second|2nd|latter|number two|other one|the other)\b", re.I), 1),
    (re.compile(r"\blast(?: one)?\b", re.I), -1),
)
_CHOICE_START_RE = re.compile(_LEAD_IN + r"(?:the |yes|yeah|no\b)", re.I)


@dataclass(frozen=True)
class Declined:
    """The visitor meant none of the offered datasets."""


DECLINED = Declined()

DECLINED_REPLY = (
    "Okay. Could you ask me again in other words? You can ask about the Earth, the oceans, "
    "the weather or the planets."
)


def clarifying_question(choices: Sequence[CatalogEntry]) -> str:
    """The spoken question offering ``choices`` (one or two datasets)."""
    if not choices:
        raise ValueError("a clarifying question needs at least one dataset to offer")
    names = _OR.join(spoken_title(e.title) for e in choices)
    return f"{ASK_LEAD} Did you mean {names}?"


def offered(text: str, catalog: Catalog) -> list[CatalogEntry]:
    """The datasets a clarifying question (as :func:`clarifying_question` wrote it) offered,
    in the order said; [] for any other text."""
    match = _ASK_RE.match(text.strip())
    if match is None:
        return []
    by_spoken = {normalize_title(spoken_title(e.title)): e for e in catalog}
    found = [by_spoken.get(normalize_title(name)) for name in match.group("names").split(_OR)]
    return [e for e in found if e is not None]


def _last_offer(request: AnswerRequest, catalog: Catalog) -> list[CatalogEntry]:
    for message in reversed(request.history):
        if message.role == "assistant":
            return offered(message.content, catalog)
    return []


def resolve_choice(request: AnswerRequest, catalog: Catalog) -> CatalogEntry | Declined | None:
    """What the visitor's reply chose from the question the last answer asked: a dataset,
    :data:`DECLINED`, or None (no question was asked, or this is a new question)."""
    choices = _last_offer(request, catalog)
    if not choices:
        return None
    reply = request.question.strip()
    if len(reply.split()) > REPLY_MAX_WORDS and not _CHOICE_START_RE.match(reply):
        return None
    if _NO_RE.match(reply):
        return DECLINED
    for pattern, index in _ORDINALS:
        if pattern.search(reply) and (index < 0 or index < len(choices)):
            return choices[index]
    rest = _YES_RE.sub("", reply, count=1)
    if not re.search(r"\w", rest):
        return choices[0] if rest != reply else None  # a bare "yes" takes the first offered
    return _best_by_words(rest, choices) or _best_by_fuzzy(rest, choices)


def _best_by_words(reply: str, choices: Sequence[CatalogEntry]) -> CatalogEntry | None:
    """The one choice sharing the most (stemmed) title words with the reply, if unique."""
    wanted = set(analyze(reply))
    counts = [len(wanted & set(analyze(c.title))) for c in choices]
    best = max(counts)
    if best == 0 or counts.count(best) > 1:
        return None
    return choices[counts.index(best)]


def _best_by_fuzzy(reply: str, choices: Sequence[CatalogEntry]) -> CatalogEntry | None:
    """The one choice with the most title words the reply's words sound like (rapidfuzz
    ratio per word, words of four letters or more), if unique: "sanity" finds "salinity".
    Per word, not over the whole phrase: a short reply ("Mars") is a part of many titles'
    letters ("marine") but close to few of their words."""
    said = [w for w in normalize_title(reply).split() if len(w) >= 4]
    if not said:
        return None
    counts = []
    for choice in choices:
        words = [w for w in normalize_title(spoken_title(choice.title)).split() if len(w) >= 4]
        counts.append(
            sum(
                process.extractOne(w, words, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
                is not None
                for w in said
            )
            if words
            else 0
        )
    best = max(counts)
    if best == 0 or counts.count(best) > 1:
        return None
    return choices[counts.index(best)]
