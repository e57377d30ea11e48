"""Educator modes on top of any answerer: classroom activity, spoken quiz, related datasets.

SOS Explorer users click a dataset and get a summary, a classroom activity or a quiz; at the
sphere the same requests come by voice: "describe a classroom activity using this dataset",
"how could I use it in a middle-school class", "quiz me on this", "what else is like this?".
:class:`EducatorAnswerer` wraps the process's answerer (catalog, local model or
OpenAI-compatible) and takes these requests itself where it can do them right:

- **Quiz**: always here, from the catalog entry (:mod:`llm.quiz`), because a visitor's answer
  must be checked against a known right answer, not a model's guess. Stateless: the quiz's
  state is re-derived from the assistant's last message each turn.
- **What else is like this?**: always here: the catalog's own related datasets (then close
  neighbours by topic), spoken as titles, with their pages as "More information" lines of text
  (silent for TTS, shown on screen) and the first suggestion as the answer's link.
- **Classroom activity**: built here from the catalog entry when the inner answerer is the
  catalog one; an LLM backend gets the request with a mode hint in its instructions instead, so
  the SOS model writes the activity from the same grounding.

Everything else goes to the inner answerer unchanged. The audience (kids / general /
educator) sets length and vocabulary here too: kids get shorter, simpler activities and quiz
talk; educators get the curriculum angle (grade band, NGSS disciplinary core ideas).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import asks_for_related, build_grounding, is_deictic, related_entries
from catalog.retrieval import Retriever, analyze
from catalog.text import description_sentences, spoken_title
from llm.base import Answerer, AnswerEvent, AnswerRequest, Audience, Link, TextDelta
from llm.link_guard import split_for_streaming
from llm.quiz import (
    LETTERS,
    QUIZ_LENGTH,
    QuizBank,
    QuizQuestion,
    QuizState,
    is_stop,
    looks_like_question,
    match_option,
    question_text,
    quiz_state,
    score_text,
    stem,
)

GradeBand = Literal["elementary", "middle", "high"]
RELATED_SHOWN = 3

# --------------------------------------------------------------------------------------------
# Intents
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Classroom activity from the catalog entry
# --------------------------------------------------------------------------------------------

_DCI_NAMES = {
    "ESS1": "Earth's Place in the Universe",
    "ESS2": "Earth's Systems",
    "ESS3": "Earth and Human Activity",
    "LS2": "Ecosystems",
}
_HUMAN_RE = re.compile(
    r"disaster|hazard|earthquake|tsunami|hurricane|cyclone|flood|drought|fire|climate change|"
    r"warming|pollution|emission|carbon|population|human|energy|sea level|people|health",
    re.I,
)
_LIFE_RE = re.compile(
    r"ecosystem|biolog|\blife\b|animal|fish|coral|species|chlorophyll|plankton|vegetation|"
    r"biodiversity|migrat|habitat|food web|whale|turtle|bird|shark|forest",
    re.I,
)
_TIME_RE = re.compile(
    r"\b\d{3,4}(?:\s*(?:BCE|BC|CE|AD))?\s*[-–]\s*(?:\d{2,4}|present)\b|over time|each (?:day|"
    r"frame|year|month)|daily|monthly|yearly|annual|seasonal|time series|animation",
    re.I,
)

_TOP_SECTIONS = frozenset({"Air", "Water", "Land", "Space", "People", "Snow and Ice", "Extras"})
# Sentences that lean on the one before make no sense alone ("As a result, ...").
_DANGLING_RE = re.compile(
    r"^(?:but|however|as a result|this|these|those|that|it|its|they|also|and|so|thus|here|"
    r"in addition|additionally|furthermore|therefore|in contrast)\b",
    re.I,
)
_SHOWS_RE = re.compile(r"\b(?:shows?|depicts?|displays?|illustrates?|represents?)\b")


def ngss_ideas(entry: CatalogEntry) -> list[str]:
    """NGSS disciplinary core ideas the dataset's catalog sections and topics touch (codes
    without grade prefix): Space -> ESS1; living things -> LS2; air, water, land, ice ->
    ESS2; hazards, climate change and people -> ESS3. At most two, in that order."""
    tags = " ".join([*entry.categories, *entry.keywords, entry.title])
    tops = set(entry.categories)
    ideas: list[str] = []
    if "Space" in tops:
        ideas.append("ESS1")
    if _LIFE_RE.search(tags):
        ideas.append("LS2")
    if tops & {"Air", "Water", "Land", "Snow and Ice"}:
        ideas.append("ESS2")
    if "People" in tops or _HUMAN_RE.search(tags):
        ideas.append("ESS3")
    return ideas[:2]


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (", and " if len(items) > 2 else " and ") + items[-1]


class ActivityWriter:
    """Writes a concrete, honest classroom activity from one catalog entry: what students look
    at on the sphere (its description), what they look for (its topics, places and time span),
    what they record and argue, and where it sits in the curriculum. Nothing is invented
    beyond the entry: no data values, no claims the description does not make."""

    def __init__(self, bank: QuizBank) -> None:
        self._bank = bank

    def topics(self, entry: CatalogEntry) -> tuple[str, list[str], list[str]]:
        """(main subject, science concepts, places) from the entry's sections and keywords.
        The subject is the section or keyword its title names ("Tsunami Locations" ->
        tsunamis), else its first sub-section."""
        subs = [c for c in entry.categories if c not in _TOP_SECTIONS]
        words = [k.strip() for k in entry.keywords if re.fullmatch(r"[A-Za-z][A-Za-z ]+", k)]
        places = [k for k in words if self._bank.is_name(k)][:3]
        concepts = [self._bank.case(k) for k in [*subs, *words] if not self._bank.is_name(k)]
        concepts = list(dict.fromkeys(concepts))
        title = {stem(w) for w in re.findall(r"[a-z]+", entry.title.lower())}
        named = [c for c in concepts if all(stem(w) in title for w in c.split())]
        subject = (named or concepts or [spoken_title(entry.title).lower()])[0]
        return subject, [c for c in concepts if c != subject][:3], places

    def write(self, entry: CatalogEntry, band: GradeBand, audience: Audience) -> str:
        title = spoken_title(entry.title)
        subject, concepts, places = self.topics(entry)
        shows = self._what_it_shows(entry, 25 if audience == "kids" else 40)
        changes = bool(_TIME_RE.search(f"{entry.title} {entry.description[:600]}"))
        look_for = "how the pattern changes over time" if changes else "where it is strongest"
        where = f", for example around {_join(places)}" if places else ""
        ideas = _join(concepts[:2]) if concepts else subject
        if audience == "kids" or band == "elementary":
            parts = [
                f"Here's an activity for young students with {title}.",
                shows,
                f"First, ask them what they already know about {subject}.",
                f"Then play it on the sphere and have them point to where they see the most "
                f"{subject}{where}, and say {look_for} in their own words.",
                "Finally, each student draws what they saw and shares one question about it.",
            ]
        elif band == "high":
            parts = [
                f"Here's a high-school activity with {title}.",
                shows,
                f"Warm up by asking what controls {subject}, and list the students' ideas.",
                f"On the sphere, have small groups read the legend and describe {look_for}"
                f"{where}, noting what they measure and what they only estimate.",
                f"Then each group explains the pattern with {ideas}, "
                "and names one limit of the data from the catalog description.",
                "Close by having them propose a question the dataset could help answer.",
            ]
        else:
            parts = [
                f"Here's a middle-school activity with {title}.",
                shows,
                f"Start by asking students where and why they think {subject} happen"
                if subject.endswith("s")
                else f"Start by asking students what they think drives {subject}",
            ]
            parts[-1] += ", and write their guesses down."
            parts += [
                f"Then play the dataset on the sphere and have small groups note {look_for}"
                f"{where}.",
                f"Each group writes one claim with evidence from the globe, linking what "
                f"they saw to {ideas}, and one new question.",
            ]
        codes = ngss_ideas(entry)
        if codes and audience != "kids":
            prefix = {"elementary": "", "middle": "MS-", "high": "HS-"}[band]
            names = _join([f"{_DCI_NAMES[c]} ({prefix}{c})" for c in codes])
            parts.append(f"It connects to the NGSS core ideas {names}.")
        related = related_entries(entry, self._bank.catalog, k=1)
        if related and audience != "kids":
            parts.append(f"For a follow-up, compare it with {spoken_title(related[0].title)}.")
        return " ".join(p.strip() for p in parts if p.strip())

    @staticmethod
    def _what_it_shows(entry: CatalogEntry, max_words: int) -> str:
        """The description sentence that says what the dataset shows (or its first short one);
        "" when every sentence is too long to say aloud here."""
        sentences = [s for s in description_sentences(entry) if not _DANGLING_RE.match(s)]
        for sentence in sentences:
            if _SHOWS_RE.search(sentence) and len(sentence.split()) <= max_words:
                return sentence
        short = [s for s in sentences if len(s.split()) <= max_words]
        return short[0] if short else ""


# --------------------------------------------------------------------------------------------
# The wrapper answerer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    """What to say (text, streamed in word groups) and the link to show, or a request to pass
    on to the inner answerer."""

    text: str = ""
    link: CatalogEntry | None = None
    delegate: AnswerRequest | None = None


class EducatorAnswerer:
    """Educator modes around ``inner``; see the module docstring. Stateless and shared, like
    every answerer: all per-visitor state comes from the request (history, showing, audience).

    ``write_activities``: build classroom activities from the catalog here (default: when the
    inner answerer is the catalog one); otherwise they go to ``inner`` with a mode hint.
    """

    def __init__(
        self,
        inner: Answerer,
        catalog: Catalog,
        retriever: Retriever,
        *,
        write_activities: bool | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._catalog = catalog
        self._retriever = retriever
        self._bank = QuizBank(catalog)
        self._bank.warm()
        self._activities = ActivityWriter(self._bank)
        self._write_activities = (
            inner.name == "catalog" if write_activities is None else write_activities
        )

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """An educator answer (text in word groups, then its Link), or the inner answerer's.

        Deciding runs retrieval and builds quiz questions, so it runs in a worker thread; the
        inner stream is closed when this one is (barge-in reaches the model).
        """
        reply = await asyncio.to_thread(self.reply, request)
        if reply.delegate is not None:
            async with contextlib.aclosing(self.inner.stream(reply.delegate)) as inner:
                async for event in inner:
                    yield event
            return
        for piece in split_for_streaming(reply.text):
            yield TextDelta(piece)
            await asyncio.sleep(0)
        if reply.link is not None:
            yield Link(url=reply.link.url, title=reply.link.title)

    async def aclose(self) -> None:
        await self.inner.aclose()

    # -- deciding --------------------------------------------------------------------------

    def reply(self, request: AnswerRequest) -> _Reply:
        """What to do with one request. Blocking (retrieval); :meth:`stream` threads it."""
        question = request.question
        state = quiz_state(request.history, self._bank)
        if state is not None:
            if is_stop(question):
                return self._stop_quiz(state.entry, state.score, state.answered)
            if not asks_for_quiz(question):
                questions = self._bank.questions(state.entry)
                current = questions[state.number - 1]
                choice = match_option(question, current.options)
                if choice is not None:
                    return self._grade(request, state.entry, questions, state, choice)
                if not looks_like_question(question):
                    return self._ask_again(state.entry, current, state)
        if asks_for_quiz(question):
            return self._start_quiz(request)
        if is_stop(question) and "quiz" in question.lower():
            return _Reply("There's no quiz going on. Say quiz me on this to start one.")
        if asks_for_more_like(question):
            entry = self._target(request, question)
            if entry is not None:
                return self._related(entry, request.audience)
        if asks_for_activity(question):
            return self._activity(request)
        return _Reply(delegate=request)

    def _target(self, request: AnswerRequest, question: str) -> CatalogEntry | None:
        """The dataset an educator request is about: the showing one for "this" or when no
        other topic is named, else the catalog's best match for the named topic."""
        showing = request.showing
        topic = topic_words(question)
        if not analyze(topic) or (showing is not None and is_deictic(question)):
            return showing
        probe = dataclasses.replace(request, question=topic)
        grounding = build_grounding(probe.question, probe.showing, self._retriever, k=1)
        if grounding.pinned:
            return showing
        return grounding.primary or showing

    # -- related datasets ------------------------------------------------------------------

    def related(self, entry: CatalogEntry, k: int = RELATED_SHOWN) -> list[CatalogEntry]:
        """The catalog's own related datasets first, then the closest by shared topics."""
        found = related_entries(entry, self._catalog, k=k)
        if len(found) < k:
            tags = " ".join([*entry.keywords, *entry.categories])
            for hit in self._retriever.search(tags, k=k + 2):
                if hit.entry != entry and hit.entry not in found:
                    found.append(hit.entry)
        return found[:k]

    def _related(self, entry: CatalogEntry, audience: Audience) -> _Reply:
        shown = self.related(entry, 2 if audience == "kids" else RELATED_SHOWN)
        title = spoken_title(entry.title)
        if not shown:
            return _Reply(f"I don't know of datasets like {title} in the catalog.", entry)
        names = _join([spoken_title(e.title) for e in shown])
        if audience == "kids":
            text = f"If you like this one, you might also like {names}."
        else:
            text = f"If you like {title}, have a look at {names}."
        if audience == "educator":
            shared = self._shared_topics(entry, shown)
            if shared:
                text += f" They share topics like {_join(shared)}."
        links = "\n".join(f"More information: {e.url}" for e in shown)
        return _Reply(f"{text}\n\n{links}", shown[0])

    @staticmethod
    def _shared_topics(entry: CatalogEntry, others: Sequence[CatalogEntry]) -> list[str]:
        mine = {k.lower(): k for k in [*entry.keywords, *entry.categories]}
        theirs = {k.lower() for e in others for k in [*e.keywords, *e.categories]}
        tops = {"air", "water", "land", "space", "people", "snow and ice", "extras"}
        return [k.lower() for key, k in mine.items() if key in theirs and key not in tops][:3]

    # -- classroom activity ----------------------------------------------------------------

    def _activity(self, request: AnswerRequest) -> _Reply:
        entry = self._target(request, request.question)
        band = grade_band(request.question, request.audience)
        if not self._write_activities:
            return _Reply(delegate=_with_hint(request, activity_hint(entry, band)))
        if entry is None:
            return _Reply(
                "Which dataset would you like a classroom activity for? Ask me while it's on "
                "the sphere, or name it, for example: a classroom activity about hurricanes."
            )
        return _Reply(self._activities.write(entry, band, request.audience), entry)

    # -- quiz ------------------------------------------------------------------------------

    def _start_quiz(self, request: AnswerRequest) -> _Reply:
        entry = self._target(request, request.question)
        if entry is None:
            return _Reply(
                "What should the quiz be about? Ask me while a dataset is on the sphere, or "
                "name one, for example: quiz me about hurricanes."
            )
        questions = self._bank.questions(entry)
        if not questions:
            return _Reply(
                f"Sorry, the catalog doesn't tell me enough about {spoken_title(entry.title)} "
                "for a quiz.",
                entry,
            )
        count = "Three questions" if len(questions) == QUIZ_LENGTH else "A few questions"
        opening = (
            f"Let's play a quiz about {spoken_title(entry.title)}! {count}: say A, B or C."
            if request.audience == "kids"
            else f"Let's do a quiz about {spoken_title(entry.title)}. {count}; answer with "
            "A, B or C, or say the answer."
        )
        return _Reply(f"{opening} {question_text(entry, 1, questions[0])}", entry)

    def _grade(
        self,
        request: AnswerRequest,
        entry: CatalogEntry,
        questions: Sequence[QuizQuestion],
        state: QuizState,
        choice: int,
    ) -> _Reply:
        current = questions[state.number - 1]
        right = choice == current.answer
        score = state.score + int(right)
        if right:
            verdict = f"That's right, it's {current.right}!"
        else:
            verdict = f"Not quite. The answer is {LETTERS[current.answer]}, {current.right}."
        parts = [verdict, _explanation(current, request.audience)]
        answered = state.number
        if answered >= len(questions):
            parts.append(self._final(entry, score, answered, request.audience))
        else:
            parts.append(score_text(score, answered))
            parts.append(question_text(entry, answered + 1, questions[answered]))
        return _Reply(" ".join(p for p in parts if p), entry)

    @staticmethod
    def _ask_again(entry: CatalogEntry, current: QuizQuestion, state: QuizState) -> _Reply:
        parts = ["Sorry, I didn't catch your answer. Say A, B or C, or say stop the quiz."]
        if state.answered:
            parts.append(score_text(state.score, state.answered))
        parts.append(question_text(entry, state.number, current))
        return _Reply(" ".join(parts), entry)

    @staticmethod
    def _final(entry: CatalogEntry, score: int, total: int, audience: Audience) -> str:
        praise = (
            "Perfect score!"
            if score == total
            else "Well done!"
            if score * 2 > total
            else "Nice try, and now you know more about it!"
        )
        text = f"That's the end of the quiz: you got {score} out of {total}. {praise}"
        if audience == "educator":
            text += " Every question comes from the catalog entry, so you can reuse them in class."
        return text

    @staticmethod
    def _stop_quiz(entry: CatalogEntry, score: int, answered: int) -> _Reply:
        text = "Okay, the quiz is stopped."
        if answered:
            text += f" You got {score} out of {answered}."
        return _Reply(text, entry)


def _explanation(question: QuizQuestion, audience: Audience) -> str:
    """The catalog fact behind the answer; kids get it only when it is short."""
    if audience == "kids" and len(question.explanation.split()) > 25:
        return ""
    return question.explanation


def activity_hint(entry: CatalogEntry | None, band: GradeBand) -> str:
    """The mode hint an LLM backend gets for a classroom-activity request."""
    about = f'the SOS dataset "{entry.title}" ({entry.url})' if entry else "the dataset they name"
    return (
        f"Mode: classroom activity. The visitor is an educator who wants a concrete activity "
        f"for {band}-school students using {about}. In four to six spoken sentences, say what "
        "students look at on the sphere, what they record or discuss, one question they "
        "investigate, and which science ideas it teaches. Use only the catalog facts; do not "
        "invent data values."
    )


def _with_hint(request: AnswerRequest, hint: str) -> AnswerRequest:
    instructions = f"{request.instructions.strip()}\n\n{hint}".strip()
    return dataclasses.replace(request, instructions=instructions)
