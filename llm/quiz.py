"""A short spoken quiz about one SOS dataset, built from its catalog entry, with no state kept.

Answerers are shared by every session of a process, so a quiz cannot live in the answerer.
Instead everything needed to go on is in what the assistant last said: "Question 2 of 3 about
<spoken title>. ... You have 1 right out of 1 so far." From that text :func:`quiz_state`
recovers the dataset, the question number and the score, and :func:`quiz_questions` rebuilds
the same three questions (seeded by the dataset's slug), so the expected answer is known again.

Questions come only from catalog facts (description sentences, keywords, categories), each
with three spoken options, and the visitor's answer is matched tolerantly, because it arrives
through Whisper: "B", "bee", "the second one", "earthquake" for "earthquakes" all count.
"""

from __future__ import annotations

import difflib
import itertools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from catalog.datasets import Catalog, CatalogEntry
from catalog.text import description_sentences, spoken_title
from llm.base import ChatMessage

QUIZ_LENGTH = 3
LETTERS = ("A", "B", "C")
TOP_CATEGORIES = ("Air", "Water", "Land", "Space", "People", "Snow and Ice")

_CLOZE_MIN_WORDS = 7
_CLOZE_MAX_WORDS = 32
_META_RE = re.compile(
    r"\b(?:science on a sphere|sos|datasets?|catalog|more information|article|website|"
    r"this (?:movie|film|animation|visuali[sz]ation))\b|\w\.(?:org|com|gov|edu)\b",
    re.I,
)
# A keyword usable as a spoken option: letters and spaces, short.
_OPTION_RE = re.compile(r"[A-Za-z][A-Za-z ]{2,18}")


@dataclass(frozen=True, order=True)
class _PoolWord:
    text: str  # as spoken in an option
    key: str  # normalized, for comparisons
    categories: frozenset[str]


@dataclass(frozen=True)
class QuizQuestion:
    """One multiple-choice question: the spoken prompt (without the options), three options,
    the index of the right one and the catalog fact that explains it."""

    prompt: str
    options: tuple[str, str, str]
    answer: int
    explanation: str

    @property
    def right(self) -> str:
        return self.options[self.answer]


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
# Normalizing text the way Whisper's output and our options can be compared
# --------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def stem(word: str) -> str:
    """Crude plural folding: "earthquakes" ~ "earthquake", "volcanoes" ~ "volcano"."""
    for suffix in ("ies", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _norm(text: str) -> str:
    return " ".join(stem(w) for w in _words(text))


# --------------------------------------------------------------------------------------------
# Building the questions
# --------------------------------------------------------------------------------------------


class QuizBank:
    """The distractor pool for one catalog, built once (the catalog is immutable), and the
    deterministic question sets for its entries."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def warm(self) -> None:
        """Build the pools now (about a tenth of a second) rather than on a visitor's turn."""
        _ = self._keyword_pool, self._by_spoken_title, self._word_cases

    @cached_property
    def _keyword_pool(self) -> list[_PoolWord]:
        """Catalog keywords that can be wrong options, sorted. Only keywords that at least two
        datasets use (topics, not oddities like "Facebook"), with the top-level categories of
        every dataset that uses them: a keyword from a dataset's own sections is never a wrong
        option for it, so distractors are clearly wrong rather than arguably right."""
        cats: dict[str, set[str]] = {}
        users: dict[str, int] = {}
        spelled: dict[str, str] = {}
        for entry in self.catalog:
            tops = {c for c in entry.categories if c in TOP_CATEGORIES}
            for keyword in dict.fromkeys(k.strip() for k in entry.keywords):
                key = _norm(keyword)
                if not _OPTION_RE.fullmatch(keyword) or len(key.split()) > 2:
                    continue
                cats.setdefault(key, set()).update(tops)
                users[key] = users.get(key, 0) + 1
                spelled.setdefault(key, keyword)
        return sorted(
            _PoolWord(self.case(spelled[k]), k, frozenset(cats[k])) for k in cats if users[k] >= 2
        )

    @cached_property
    def _by_spoken_title(self) -> dict[str, CatalogEntry]:
        titles: dict[str, CatalogEntry] = {}
        for entry in self.catalog:
            titles.setdefault(spoken_title(entry.title), entry)
        return titles

    @cached_property
    def _word_cases(self) -> tuple[frozenset[str], frozenset[str]]:
        """(words the descriptions write in lower case somewhere, words they only ever write
        capitalized): common words versus names like "Japan" or "Sumatra"."""
        lower: set[str] = set()
        capital: set[str] = set()
        for entry in self.catalog:
            lower.update(re.findall(r"\b[a-z][a-z]+\b", entry.description))
            capital.update(w.lower() for w in re.findall(r"\b[A-Z][a-z]+\b", entry.description))
        return frozenset(lower), frozenset(capital - lower)

    def case(self, phrase: str) -> str:
        """How an option is written: "Earthquakes" -> "earthquakes"; names ("Ring of Fire",
        "Japan") and acronyms ("NOAA", "IR Satellite") stay as they are."""
        phrase = " ".join(phrase.split())
        _, names = self._word_cases
        for token in phrase.split():
            if (len(token) > 1 and token.isupper()) or token.lower() in names:
                return phrase
        return phrase.lower()

    def is_name(self, phrase: str) -> bool:
        """A proper name or acronym (kept capitalized by :meth:`case`)."""
        return self.case(phrase) != phrase.lower()

    def entry_for_spoken_title(self, text: str) -> CatalogEntry | None:
        """The entry whose spoken title ``text`` starts with (the longest such title)."""
        best: CatalogEntry | None = None
        best_len = 0
        for title, entry in self._by_spoken_title.items():
            if len(title) > best_len and text.startswith(title):
                best, best_len = entry, len(title)
        return best

    def questions(self, entry: CatalogEntry) -> list[QuizQuestion]:
        """The quiz's questions for ``entry``: the same list every time (seeded by the slug).

        Up to two fill-in-the-blank questions from the description (its real facts), one
        about its topics, one about its catalog section, then more topics if still short.
        """
        rng = random.Random(f"sos-quiz:{entry.slug}")
        pool = self._pool_for(entry)
        keyword_questions = self._keyword_questions(entry, pool, rng)
        category = self._category_question(entry, rng)
        plan: list[tuple[list[QuizQuestion], int]] = [
            (self._cloze_questions(entry, pool, rng), 2),
            (keyword_questions, 1),
            ([category] if category else [], 1),
            (keyword_questions, QUIZ_LENGTH),
        ]
        taken: set[str] = set()
        chosen: list[QuizQuestion] = []
        for questions, limit in plan:
            used = 0
            for question in questions:
                if len(chosen) == QUIZ_LENGTH or used == limit:
                    break
                key = _norm(question.right)
                if key in taken:
                    continue
                taken.add(key)
                chosen.append(question)
                used += 1
        return chosen

    # -- question kinds ----------------------------------------------------------------------

    def _pool_for(self, entry: CatalogEntry) -> list[_PoolWord]:
        """Wrong options for ``entry``: pool keywords from other sections that its own title,
        description and keywords never mention."""
        tops = {c for c in entry.categories if c in TOP_CATEGORIES}
        own = {_norm(k) for k in entry.keywords} | {_norm(c) for c in entry.categories}
        text = f" {_norm(f'{entry.title} {entry.description}')} "
        return [
            w
            for w in self._keyword_pool
            if not (w.categories & tops) and w.key not in own and f" {w.key} " not in text
        ]

    def _distractors(
        self, pool: Sequence[_PoolWord], right: str, rng: random.Random, n: int = 2
    ) -> list[str] | None:
        """``n`` wrong options unlike ``right`` and each other, of the same kind (a name for
        a name, a common word for a common word), so none stands out by its form alone."""
        proper = right != right.lower()
        fitting = [
            w
            for w in pool
            if (w.text != w.text.lower()) == proper and _similarity(w.key, right) < 0.6
        ]
        picked: list[str] = []
        for word in rng.sample(fitting, min(len(fitting), 12)):
            if all(_similarity(word.key, p) < 0.6 for p in picked):
                picked.append(word.text)
            if len(picked) == n:
                return picked
        return None

    def _cloze_questions(
        self, entry: CatalogEntry, pool: Sequence[_PoolWord], rng: random.Random
    ) -> list[QuizQuestion]:
        """Fill-in-the-blank questions from description sentences that contain a keyword;
        shorter sentences first (they are easier to hold in mind when heard, not read)."""
        keywords = sorted(
            {k.strip() for k in entry.keywords if _OPTION_RE.fullmatch(k.strip())},
            key=lambda k: (-len(k), k),
        )
        title = _norm(entry.title)
        candidates: list[tuple[int, QuizQuestion]] = []
        for sentence in dict.fromkeys(description_sentences(entry)):
            words = sentence.split()
            if not _CLOZE_MIN_WORDS <= len(words) <= _CLOZE_MAX_WORDS or sentence[-1] != ".":
                continue
            if _META_RE.search(sentence) or '"' in sentence:
                continue
            for keyword in keywords:
                if _norm(keyword) == title:
                    continue
                pattern = re.compile(rf"\b{re.escape(keyword)}(?:e?s)?\b", re.I)
                found = list(pattern.finditer(sentence))
                if len(found) != 1 or found[0].start() == 0 or found[0].group(0).isupper():
                    continue
                right = self.case(found[0].group(0))
                wrong = self._distractors(pool, right, rng)
                if wrong is None:
                    continue
                blanked = sentence[: found[0].start()] + "blank" + sentence[found[0].end() :]
                question = _shuffled(
                    f"Fill in the blank: {blanked}",
                    right,
                    wrong,
                    f"The catalog says: {sentence}",
                    rng,
                )
                candidates.append((len(words) // 8, question))
                break
        rng.shuffle(candidates)
        candidates.sort(key=lambda c: c[0])
        return [q for _, q in candidates]

    def _keyword_questions(
        self, entry: CatalogEntry, pool: Sequence[_PoolWord], rng: random.Random
    ) -> list[QuizQuestion]:
        """ "Which of these is one of this dataset's topics?" for its catalog keywords."""
        keywords = sorted(
            {
                self.case(k.strip())
                for k in entry.keywords
                if _OPTION_RE.fullmatch(k.strip()) and len(k.split()) <= 2
            },
            key=str.lower,
        )
        rng.shuffle(keywords)
        out: list[QuizQuestion] = []
        for keyword in keywords:
            wrong = self._distractors(pool, keyword, rng)
            if wrong is None:
                continue
            others = [k for k in keywords if k != keyword][:2]
            why = f"{keyword[:1].upper()}{keyword[1:]} is one of its catalog topics"
            why += f", along with {_join_spoken(others)}." if others else "."
            prompt = "Which of these is one of this dataset's topics?"
            out.append(_shuffled(prompt, keyword, wrong, why, rng))
        return out

    @staticmethod
    def _category_question(entry: CatalogEntry, rng: random.Random) -> QuizQuestion | None:
        """ "Which section of the catalog is it in?": air, water, land, space, people, ..."""
        tops = [c for c in entry.categories if c in TOP_CATEGORIES]
        others = [c for c in TOP_CATEGORIES if c not in tops]
        if not tops or len(others) < 2:
            return None
        wrong = rng.sample(others, 2)
        subs = [c for c in entry.categories if c not in TOP_CATEGORIES][:3]
        why = f"The catalog files it under {_join_spoken([c.lower() for c in tops])}"
        why += f", with topics like {_join_spoken([s.lower() for s in subs])}." if subs else "."
        return _shuffled(
            "In the SOS catalog, which of these sections is this dataset in?",
            tops[0].lower(),
            [w.lower() for w in wrong],
            why,
            rng,
        )


def _join_spoken(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (", and " if len(items) > 2 else " and ") + items[-1]


def _shuffled(
    prompt: str, right: str, wrong: Sequence[str], explanation: str, rng: random.Random
) -> QuizQuestion:
    options = [right, *wrong[:2]]
    rng.shuffle(options)
    return QuizQuestion(
        prompt, (options[0], options[1], options[2]), options.index(right), explanation
    )


def _similarity(a: str, b: str) -> float:
    """0..1 likeness of two options after normalization (catches "tsunami" vs "tsunamis")."""
    return difflib.SequenceMatcher(None, _norm(a), _norm(b)).ratio()


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
    said = _norm(utterance)
    if not said:
        return None
    scores = [_option_score(said, _norm(option)) for option in options]
    best = max(range(len(options)), key=lambda i: scores[i])
    runner_up = max(s for i, s in enumerate(scores) if i != best)
    if scores[best] >= 0.8 and scores[best] - runner_up >= 0.1:
        return best
    tokens = [t for t in _words(utterance) if t not in _FILLER and t not in ("the", "a", "an")]
    raw = _words(utterance)
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
    words = _words(utterance)
    starts = ("what", "why", "how", "where", "when", "who", "which", "tell", "can", "could")
    return len(words) >= 3 and (utterance.strip().endswith("?") or words[0] in starts)


def words_in(options: Iterable[str]) -> set[str]:
    return {w for option in options for w in _norm(option).split()}
