"""Classroom activities from one catalog entry, and the hint an LLM backend gets instead.

SOS Explorer gives educators a classroom activity per dataset; at the sphere the request comes
by voice. :class:`ActivityWriter` builds one from the catalog entry alone (what students look
at, look for, record and argue, and the NGSS core ideas it touches), for answerers that do not
write prose themselves; :func:`activity_hint` is the mode hint for those that do.
"""

from __future__ import annotations

import re

from catalog.datasets import CatalogEntry
from catalog.grounding import related_entries
from catalog.quiz_bank import TOP_CATEGORIES, QuizBank, stem
from catalog.text import description_sentences, join_spoken, leans_on_previous, spoken_title
from llm.base import Audience
from llm.educator.intents import GradeBand

# Catalog sections at the top of the tree: a dataset's subject is one of its sub-sections.
TOP_SECTIONS = frozenset({*TOP_CATEGORIES, "Extras"})
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
        subs = [c for c in entry.categories if c not in TOP_SECTIONS]
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
        where = f", for example around {join_spoken(places)}" if places else ""
        ideas = join_spoken(concepts[:2]) if concepts else subject
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
            names = join_spoken([f"{_DCI_NAMES[c]} ({prefix}{c})" for c in codes])
            parts.append(f"It connects to the NGSS core ideas {names}.")
        related = related_entries(entry, self._bank.catalog, k=1)
        if related and audience != "kids":
            parts.append(f"For a follow-up, compare it with {spoken_title(related[0].title)}.")
        return " ".join(p.strip() for p in parts if p.strip())

    @staticmethod
    def _what_it_shows(entry: CatalogEntry, max_words: int) -> str:
        """The description sentence that says what the dataset shows (or its first short one);
        "" when every sentence is too long to say aloud here."""
        sentences = [s for s in description_sentences(entry) if not leans_on_previous(s)]
        for sentence in sentences:
            if _SHOWS_RE.search(sentence) and len(sentence.split()) <= max_words:
                return sentence
        short = [s for s in sentences if len(s.split()) <= max_words]
        return short[0] if short else ""


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
