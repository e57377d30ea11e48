"""Quiz questions about one SOS dataset, built only from its catalog entry.

Questions come only from catalog facts (description sentences, keywords, categories), each
with three spoken options. The same entry always gets the same questions (seeded by its slug),
so a stateless quiz (:mod:`llm.quiz`) can rebuild them on every turn and know the right answer
again. Wrong options are catalog keywords from other sections of the catalog, so they are
clearly wrong rather than arguably right.

The text normalization here (:func:`plain_words`, :func:`stem`, :func:`normalize`) is also how the
visitor's spoken answer is compared with the options, so both sides fold plurals alike.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from catalog.datasets import Catalog, CatalogEntry
from catalog.text import description_sentences, join_spoken, spoken_title

QUIZ_LENGTH = 3
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


# --------------------------------------------------------------------------------------------
# Normalizing text the way Whisper's output and our options can be compared
# --------------------------------------------------------------------------------------------


def plain_words(text: str) -> list[str]:
    """Lower-case words and numbers, apostrophes dropped ("What's" -> "whats")."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def stem(word: str) -> str:
    """Crude plural folding: "earthquakes" ~ "earthquake", "volcanoes" ~ "volcano"."""
    for suffix in ("ies", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def normalize(text: str) -> str:
    return " ".join(stem(w) for w in plain_words(text))


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
                key = normalize(keyword)
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
                key = normalize(question.right)
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
        own = {normalize(k) for k in entry.keywords} | {normalize(c) for c in entry.categories}
        text = f" {normalize(f'{entry.title} {entry.description}')} "
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
        title = normalize(entry.title)
        candidates: list[tuple[int, QuizQuestion]] = []
        for sentence in dict.fromkeys(description_sentences(entry)):
            words = sentence.split()
            if not _CLOZE_MIN_WORDS <= len(words) <= _CLOZE_MAX_WORDS or sentence[-1] != ".":
                continue
            if _META_RE.search(sentence) or '"' in sentence:
                continue
            for keyword in keywords:
                if normalize(keyword) == title:
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
            why += f", along with {join_spoken(others)}." if others else "."
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
        why = f"The catalog files it under {join_spoken([c.lower() for c in tops])}"
        why += f", with topics like {join_spoken([s.lower() for s in subs])}." if subs else "."
        return _shuffled(
            "In the SOS catalog, which of these sections is this dataset in?",
            tops[0].lower(),
            [w.lower() for w in wrong],
            why,
            rng,
        )


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
    return difflib.SequenceMatcher(None, normalize(a), normalize(b)).ratio()
