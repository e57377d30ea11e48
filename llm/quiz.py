"""A short spoken quiz about one SOS dataset, with no state kept.

Answerers are shared by every session of a process, so a quiz cannot live in the answerer.
Instead everything needed to go on is in what the assistant last said: "Question 2 of 3 about
<spoken title>. ... You have 1 right out of 1 so far." From that text :func:`quiz_state`
recovers the dataset, the question number and the score, and
:meth:`catalog.quiz_bank.QuizBank.questions` rebuilds the same three questions, so the expected
answer is known again.

The visitor's answer is matched tolerantly, because it arrives through Whisper: "B", "bee",
"the second one", "earthquake" for "earthquakes" all count.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from catalog.datasets import CatalogEntry
from catalog.quiz_bank import QUIZ_LENGTH, QuizBank, QuizQuestion, normalize, plain_words
from catalog.text import spoken_title
from llm.base import ChatMessage

LETTERS = ("A", "B", "C")


@dataclass(frozen=True)
class QuizState:
    """Where a quiz stands, as recovered from the assistant's last message: the dataset, the
    question the visitor is answering now (1-based) and how many earlier ones were right."""

    entry: CatalogEntry
    number: int
    score: int

    @property
    def answered(self) -> int:
        return self.number - 1


# --------------------------------------------------------------------------------------------
# What the assistant says, and reading it back
# --------------------------------------------------------------------------------------------

_QUESTION_RE = re.compile(rf"Question (\d+) of {QUIZ_LENGTH} about ")
_SCORE_RE = re.compile(r"You have (\d+) right out of (\d+) so far")


def question_text(entry: CatalogEntry, number: int, question: QuizQuestion) -> str:
    """How question ``number`` is asked. The "Question N of 3 about <title>." opening is what
    :func:`quiz_state` reads back on the next turn, so it must stay exactly this shape."""
    a, b, c = question.options
    return (
        f"Question {number} of {QUIZ_LENGTH} about {spoken_title(entry.title)}. "
        f"{question.prompt} Is it A, {a}; B, {b}; or C, {c}?"
    )


def score_text(score: int, answered: int) -> str:
    return f"You have {score} right out of {answered} so far."


def quiz_state(history: Sequence[ChatMessage], bank: QuizBank) -> QuizState | None:
    """The quiz in progress, from the assistant's last message; None when the last thing the
    assistant said was not a quiz question (no quiz, or it ended)."""
    last = next((m.content for m in reversed(history) if m.role == "assistant"), None)
    if not last:
        return None
    matches = list(_QUESTION_RE.finditer(last))
    if not matches:
        return None
    match = matches[-1]
    number = int(match.group(1))
    entry = bank.entry_for_spoken_title(last[match.end() :])
    if entry is None or not 1 <= number <= QUIZ_LENGTH:
        return None
    scores = list(_SCORE_RE.finditer(last[: match.start()]))
    score = int(scores[-1].group(1)) if scores else 0
    return QuizState(entry=entry, number=number, score=min(score, number - 1))


# --------------------------------------------------------------------------------------------
# Understanding the visitor's answer
# --------------------------------------------------------------------------------------------

_STOP_RE = re.compile(
    r"\b(?:stop|end|quit|cancel|finish|exit|leave|skip)\b.{0,20}\bquiz\b|"
    r"^\W*(?:stop|quit|enough|no more|i'?m done|i am done|that'?s enough)\b",
    re.I,
)
_FILLER = frozenset(
    {"i", "think", "its", "it", "is", "the", "answer", "im", "going", "with", "go", "my"}
    | {"guess", "option", "letter", "number", "choice", "um", "uh", "hmm", "maybe"}
    | {"probably", "ok", "okay", "so", "well", "say", "pick", "choose", "one"}
)
_NUMBER_WORDS = {"one": 0, "two": 1, "to": 1, "too": 1, "three": 2}
_LETTER_WORDS = {
    0: {"a", "ay", "eh", "hey", "aye"},
    1: {"b", "bee", "be", "bea", "bi"},
    2: {"c", "see", "sea", "si", "cee", "she"},
}
_ORDINALS = {
    0: {"first", "1st", "1"},
    1: {"second", "2nd", "2", "middle"},
    2: {"third", "3rd", "3", "last"},
}


def is_stop(utterance: str) -> bool:
    """ "Stop the quiz", "end quiz", "I'm done"."""
    return _STOP_RE.search(utterance.strip()) is not None


def match_option(utterance: str, options: Sequence[str]) -> int | None:
    """Which option the visitor chose, or None when it is not clear.

    Tried in order: the option's own words (fuzzy, plural-folded: Whisper spells "volcanos"),
    "the first/second/third/last one", then the letter ("B", "bee", "option C"). Letters only
    count in a short answer, so "a volcano" is not read as option A.
    """
    said = normalize(utterance)
    if not said:
        return None
    scores = [_option_score(said, normalize(option)) for option in options]
    best = max(range(len(options)), key=lambda i: scores[i])
    runner_up = max(s for i, s in enumerate(scores) if i != best)
    if scores[best] >= 0.8 and scores[best] - runner_up >= 0.1:
        return best
    tokens = [t for t in plain_words(utterance) if t not in _FILLER and t not in ("the", "a", "an")]
    raw = plain_words(utterance)
    for before, word in itertools.pairwise(raw):
        if before in ("number", "option", "answer", "choice") and word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    for index, names in _ORDINALS.items():
        if any(t in names for t in raw) and len(tokens) <= 3:
            return index
    if 1 <= len(raw) <= 6:
        content = [t for t in raw if t not in _FILLER and t != "the"]
        if len(content) == 1:
            for index, names in _LETTER_WORDS.items():
                if content[0] in names:
                    return index
    return None


def _option_score(said: str, option: str) -> float:
    """How well the best window of the utterance matches the option (0..1)."""
    if not option:
        return 0.0
    if f" {option} " in f" {said} ":
        return 1.0
    words = said.split()
    size = len(option.split())
    best = 0.0
    for n in {max(1, size - 1), size, size + 1}:
        for start in range(0, max(1, len(words) - n + 1)):
            window = " ".join(words[start : start + n])
            best = max(best, difflib.SequenceMatcher(None, window, option).ratio())
    return best


def looks_like_question(utterance: str) -> bool:
    """A new question rather than an answer ("what causes hurricanes?")."""
    words = plain_words(utterance)
    starts = ("what", "why", "how", "where", "when", "who", "which", "tell", "can", "could")
    return len(words) >= 3 and (utterance.strip().endswith("?") or words[0] in starts)
