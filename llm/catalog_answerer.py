"""The offline default answerer: a short spoken answer straight from the SOS catalog.

At a kiosk without a GPU there is no language model, but there is the catalog: 520 datasets
with NOAA-written descriptions. This answerer finds the dataset the question is about (the
shared :func:`catalog.grounding.build_grounding`, so "this" means what is on the sphere exactly as
for the LLM answerers), picks the one or two description sentences that best answer the
question, cleans them for speech, and streams them in word groups like an LLM would, so the
voice loop's sentence splitter and TTS behave the same. The link goes through the same
:class:`llm.link_guard.LinkGuard` as a model's output. When nothing in the catalog fits, it says
so instead of reading out the least bad match.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import (
    Grounding,
    asks_for_related,
    build_grounding,
    choices_to_offer,
    related_entries,
)
from catalog.retrieval import Retriever
from catalog.terms import analyze
from catalog.text import description_sentences, join_spoken, leans_on_previous, spoken_title
from llm.base import AnswerEvent, AnswerRequest, Audience
from llm.clarify import clarifying_question
from llm.link_guard import LinkGuard, split_for_streaming
from llm.question_kind import Kind, gives, question_kind


@dataclass(frozen=True)
class _Style:
    """How long an answer is for one audience."""

    sentences: int
    max_words: int
    length_penalty: float
    long_word_penalty: float


_STYLES: dict[str, _Style] = {
    "kids": _Style(sentences=1, max_words=25, length_penalty=0.3, long_word_penalty=0.6),
    "general": _Style(sentences=2, max_words=60, length_penalty=0.05, long_word_penalty=0.1),
    "educator": _Style(sentences=2, max_words=70, length_penalty=0.05, long_word_penalty=0.0),
}
_DESCRIBING_RE = re.compile(
    r"\b(?:this|the) (?:dataset|animation|visuali[sz]ation|movie|film|image|map|simulation)\b|"
    r"\b(?:shows?|depicts?|displays?|illustrates?)\b",
    re.I,
)
# Catalog sentences that talk about the product rather than the science.
_META_RE = re.compile(
    r"\b(?:science on a sphere|sos explorer|\bsos\b|length of dataset|available for|"
    r"this (?:movie|film) is available)\b",
    re.I,
)


# A sentence that gives what the question asks for (a cause for "why", a number for "how
# deep") counts as much as this many points of word overlap; chosen on the tune part of
# bench/answer_relevance.py.
ANSWER_BONUS = 1.0


def _sentences(entry: CatalogEntry) -> list[str]:
    sentences = [s for s in description_sentences(entry) if not _META_RE.search(s)]
    return sentences or description_sentences(entry)


def _overlaps(sentences: Sequence[str], wanted: set[str]) -> list[float]:
    """Per sentence, how much of the question's words it covers (rarer words count more)."""
    terms = [set(analyze(s)) for s in sentences]
    df = {t: sum(t in ts for ts in terms) for t in wanted}
    return [sum(1.0 + math.log(len(sentences) / df[t]) for t in wanted if t in ts) for ts in terms]


def _asked_terms(question: str, entry: CatalogEntry) -> set[str]:
    """The question's words, less the dataset's title words when it names the dataset ("In the
    dataset Ocean Currents, how fast ...?"): every sentence of that description shares them, so
    they only blur which sentence answers. All of them when nothing else would be left."""
    asked = set(analyze(question))
    title = set(analyze(entry.title))
    rest = asked - title
    if not rest or len(title & asked) < max(1, len(title) // 2):
        return asked
    return rest


def relevance(entry: CatalogEntry, question: str) -> float:
    """How well the entry's best sentence answers the question (0: no word in common)."""
    sentences = _sentences(entry)
    return max(_overlaps(sentences, _asked_terms(question, entry)), default=0.0)


def pick_sentences(
    entry: CatalogEntry, question: str, audience: Audience, said: str = ""
) -> list[str]:
    """The description sentences that best answer ``question``, in their original order.

    Relevance is the overlap of the question's words with the sentence's (rarer words within
    the description count more); without any overlap (deictic or general questions) the
    sentence that describes what the dataset shows wins. Kids get one short sentence, with
    long words counted against it. Sentences already in ``said`` (this conversation's earlier
    answers) are not said again: a follow-up hears what comes next.
    """
    style = _STYLES.get(audience, _STYLES["general"])
    sentences = _sentences(entry)
    if not sentences:
        return [entry.summary(200)] if entry.description.strip() else []
    sentences = [s for s in sentences if s not in said]
    if not sentences:
        return []
    overlaps = _overlaps(sentences, _asked_terms(question, entry))
    kind = question_kind(question)

    def score(i: int) -> float:
        words = sentences[i].split()
        describing = 0.8 if _DESCRIBING_RE.search(sentences[i]) else 0.0
        answers = ANSWER_BONUS if kind is not Kind.OTHER and gives(kind, sentences[i]) else 0.0
        position = -0.15 * i
        too_long = max(0, len(words) - style.max_words / style.sentences) * style.length_penalty
        long_words = sum(len(w) > 10 for w in words) * style.long_word_penalty
        dangling = 2.5 if leans_on_previous(sentences[i]) else 0.0
        return (
            2.0 * overlaps[i] + describing + answers + position - too_long - long_words - dangling
        )

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(i), i))
    chosen: list[int] = []
    used = 0
    for i in ranked:
        words = len(sentences[i].split())
        if chosen and used + words > style.max_words:
            continue
        chosen.append(i)
        used += words
        if len(chosen) == style.sentences:
            break
    return [sentences[i] for i in sorted(chosen)]


# Hits within CLOSE_SCORE of the best (among the first CLOSE_HITS) count as a tie, broken by
# which description answers the question best.
CLOSE_HITS = 5
CLOSE_SCORE = 0.03


class CatalogAnswerer:
    """Answers from the SOS catalog alone (no model): the offline default at a CPU kiosk."""

    name = "catalog"
    generative = False

    def __init__(
        self, catalog: Catalog, retriever: Retriever, *, grounding_entries: int = 3
    ) -> None:
        if grounding_entries < 1:
            raise ValueError("grounding_entries must be >= 1")
        self._catalog = catalog
        self._retriever = retriever
        self._k = grounding_entries

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        """The answer in word groups, then the Link (if the catalog had a real match).

        Retrieval (tens of milliseconds with the dense encoder) runs in a worker thread so one
        visitor's question never stalls the other sessions on the loop.
        """
        grounding, text = await asyncio.to_thread(self.compose, request)
        guard = LinkGuard(self._catalog, grounding)
        for piece in split_for_streaming(text):
            for event in guard.feed(piece):
                yield event
            await asyncio.sleep(0)
        for event in guard.finish():
            yield event

    async def aclose(self) -> None:
        """Nothing to release: the catalog and retriever belong to the process."""

    # -- composing -------------------------------------------------------------------------

    def compose(self, request: AnswerRequest) -> tuple[Grounding, str]:
        """(grounding, raw answer text ending in "More information: URL" when there is a
        match). Blocking; :meth:`stream` runs it in a thread."""
        grounding = build_grounding(request.question, request.showing, self._retriever, self._k)
        showing = request.showing
        top = grounding.hits[0] if grounding.hits else None
        matched = self._retriever.is_match(top)

        if asks_for_related(request.question) and (grounding.pinned or showing is None):
            about = (
                grounding.primary if grounding.pinned else (top.entry if matched and top else None)
            )
            if about is not None:
                return grounding, self._related_answer(about)

        choices = choices_to_offer(request.question, grounding, self._retriever)
        if choices:  # no link: the visitor has not chosen yet
            return Grounding((), None), clarifying_question(choices)
        entry = self._answer_entry(grounding, matched, request.question)
        if entry is None:
            return Grounding((), None), self._no_match(showing)
        said = " ".join(m.content for m in request.history if m.role == "assistant")
        sentences = pick_sentences(entry, request.question, request.audience, said)
        last_link = next((m.link for m in reversed(request.history) if m.link), None)
        if entry.url == last_link:  # still the same dataset: its title was already said
            lead = "" if sentences else f"That's all I know about {spoken_title(entry.title)}."
        elif grounding.pinned and entry == showing:
            lead = f"This is {spoken_title(entry.title)}."
        else:
            lead = f"Take a look at {spoken_title(entry.title)}."
        parts = [lead, *sentences]
        if request.audience == "educator":
            parts.append(self._tags_sentence(entry))
        text = " ".join(p for p in parts if p)
        return grounding, f"{text}\n\nMore information: {entry.url}"

    def _answer_entry(
        self, grounding: Grounding, matched: bool, question: str
    ) -> CatalogEntry | None:
        """Which dataset to read from: the pinned (showing) one for "what is this?", the
        question's own match when the showing one does not fit the question at all, else the
        grounding's primary. None when there is no match and no deictic question."""
        if grounding.pinned:
            return grounding.primary
        if not matched:
            return None
        top = self._best_of_close_hits(grounding, question)
        showing = grounding.showing
        if (
            showing is not None
            and grounding.primary == showing
            and grounding.showing_score < self._retriever.thresholds.weak
        ):
            return top  # a real question, just not about what is showing
        if grounding.primary is not None and grounding.primary != grounding.hits[0].entry:
            return grounding.primary  # the showing dataset, which fits the question
        return top

    def _best_of_close_hits(self, grounding: Grounding, question: str) -> CatalogEntry:
        """Among hits that retrieval could hardly tell apart (many tsunami datasets score the
        same for "what causes a tsunami?"), the one whose description answers best."""
        best = grounding.hits[0]
        close = [
            h.entry
            for h in grounding.hits[:CLOSE_HITS]
            if h.score >= best.score - CLOSE_SCORE and self._retriever.is_match(h)
        ]
        return max(close, key=lambda e: (relevance(e, question), -close.index(e)))

    def _related_answer(self, entry: CatalogEntry) -> str:
        related = related_entries(entry, self._catalog, retriever=self._retriever, k=3)
        if not related:
            return (
                f"I don't know of datasets like {spoken_title(entry.title)} in the catalog."
                f"\n\nMore information: {entry.url}"
            )
        names = join_spoken([spoken_title(e.title) for e in related])
        return (
            f"If you like {spoken_title(entry.title)}, have a look at {names}."
            f"\n\nMore information: {entry.url}"
        )

    @staticmethod
    def _tags_sentence(entry: CatalogEntry) -> str:
        tags = [c for c in entry.categories][:3]
        keywords = [k for k in entry.keywords if k not in tags][:4]
        bits = []
        if tags:
            bits.append(f"It fits classroom topics like {join_spoken([t.lower() for t in tags])}")
        if keywords:
            bits.append(f"keywords include {join_spoken([k.lower() for k in keywords])}")
        return (", and ".join(bits) + ".") if bits else ""

    @staticmethod
    def _no_match(showing: CatalogEntry | None) -> str:
        if showing is not None:
            return (
                "Sorry, I don't have a dataset about that. You can ask me about what's on "
                f"the sphere right now, {spoken_title(showing.title)}."
            )
        return (
            "Sorry, I don't have a dataset about that. Try asking about something on the "
            "sphere, like hurricanes, earthquakes, the oceans, or the planets."
        )
