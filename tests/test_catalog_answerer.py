"""The catalog-only answerer on the real SOS catalog (the offline default at a CPU kiosk)."""

from __future__ import annotations

import asyncio
import re

import pytest

from catalog.datasets import Catalog, CatalogEntry
from catalog.retrieval import Retriever
from catalog.text import spoken_title
from llm.base import Answerer, AnswerEvent, AnswerRequest, Link, TextDelta
from llm.catalog_answerer import NOTHING_SHOWING, CatalogAnswerer, pick_sentences

URLISH = re.compile(r"https?:|www\.|sos\.noaa\.gov|More information", re.I)


@pytest.fixture(scope="module")
def answerer(catalog: Catalog) -> CatalogAnswerer:
    return CatalogAnswerer(catalog, Retriever.build(catalog, use_embeddings=False))


@pytest.fixture(scope="module")
def tsunami(catalog: Catalog) -> CatalogEntry:
    entry = catalog.by_slug("tsunami-locations-2000-bce-2014")
    assert entry is not None
    return entry


def ask(
    answerer: CatalogAnswerer, request: AnswerRequest
) -> tuple[list[AnswerEvent], str, list[Link]]:
    async def collect() -> list[AnswerEvent]:
        return [e async for e in answerer.stream(request)]

    events = asyncio.run(collect())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    links = [e for e in events if isinstance(e, Link)]
    assert not URLISH.search(text), text
    assert len(links) <= 1 and all(
        isinstance(e, TextDelta) for e in events[: len(events) - len(links)]
    )
    return events, text, links


def test_is_an_answerer(answerer: CatalogAnswerer) -> None:
    assert isinstance(answerer, Answerer) and answerer.name == "catalog"
    asyncio.run(answerer.aclose())


def test_tsunami_question(answerer: CatalogAnswerer, catalog: Catalog) -> None:
    events, text, links = ask(answerer, AnswerRequest("What causes a tsunami?"))
    assert "tsunami" in text.lower()
    assert len(links) == 1 and catalog.by_url(links[0].url) is not None
    assert "tsunami" in links[0].url
    assert sum(isinstance(e, TextDelta) for e in events) >= 5, "streamed in small pieces"
    assert 10 <= len(text.split()) <= 90


def test_deictic_question_is_about_the_showing_dataset(
    answerer: CatalogAnswerer, tsunami: CatalogEntry
) -> None:
    _, text, links = ask(answerer, AnswerRequest("What does this animation show?", showing=tsunami))
    assert [link.url for link in links] == [tsunami.url]
    assert "Tsunami Locations" in text and "tsunami" in text.lower()


@pytest.mark.parametrize(
    "question",
    [
        "What am I looking at?",
        "What do these colors mean?",
        "Why is that part red?",
        "What is this?",
    ],
)
def test_a_deictic_question_with_nothing_known_on_the_sphere(
    answerer: CatalogAnswerer, question: str
) -> None:
    """Before: "Sorry, I don't have a dataset about that", or a clarifying question between two
    datasets that merely mention colours. Nothing is known to show, so it says so."""
    _, text, links = ask(answerer, AnswerRequest(question))
    assert links == []
    assert text == NOTHING_SHOWING
    _, text, links = ask(answerer, AnswerRequest("What does this tsunami map show?"))
    assert text != NOTHING_SHOWING, "a deictic question that names its topic is answered"


def test_other_question_while_something_shows(
    answerer: CatalogAnswerer, tsunami: CatalogEntry
) -> None:
    _, text, links = ask(answerer, AnswerRequest("What causes hurricanes?", showing=tsunami))
    assert "hurricane" in text.lower() and "hurricane" in links[0].url


def test_nonsense_question_gets_an_honest_no_match(
    answerer: CatalogAnswerer, tsunami: CatalogEntry
) -> None:
    for request in (
        AnswerRequest("Where is the bathroom?"),
        AnswerRequest("zorp blivet quandle?"),
        AnswerRequest("What is the recipe for chocolate chip cookies?", showing=tsunami),
    ):
        _, text, links = ask(answerer, request)
        assert links == [], request.question
        assert "don't have a dataset" in text
    assert "Tsunami Locations" in text  # suggests what is on the sphere


def test_audience_changes_length(answerer: CatalogAnswerer, tsunami: CatalogEntry) -> None:
    lengths = {}
    for audience in ("kids", "general", "educator"):
        request = AnswerRequest("What does this show?", showing=tsunami, audience=audience)
        _, text, links = ask(answerer, request)
        assert [link.url for link in links] == [tsunami.url]
        lengths[audience] = len(text.split())
        if audience == "educator":
            assert "plate tectonics" in text.lower()  # categories and keywords for teachers
    assert lengths["kids"] < lengths["general"] < lengths["educator"], lengths


def test_related_datasets(answerer: CatalogAnswerer, tsunami: CatalogEntry) -> None:
    _, text, links = ask(answerer, AnswerRequest("What else is like this?", showing=tsunami))
    assert "Tsunami Wave Run-ups" in text
    assert [link.url for link in links] == [tsunami.url]


def test_sentences_fit_the_question(catalog: Catalog) -> None:
    mars = catalog.by_slug("mars")
    assert mars is not None
    picked = pick_sentences(mars, "Why is Mars red?", "general")
    assert any("red" in s and "iron" in s for s in picked)
    for s in picked:
        assert not URLISH.search(s) and "(" not in s
    assert (
        spoken_title("Tsunami Locations - 2000 BCE - 2014") == "Tsunami Locations, 2000 BCE to 2014"
    )
    assert spoken_title("Aurora (3D)") == "Aurora 3D"


def test_concurrent_sessions(answerer: CatalogAnswerer) -> None:
    questions = [
        "What causes a tsunami?",
        "Show me hurricanes",
        "Tell me about Mars",
        "Where is the bathroom?",
    ]

    async def one(q: str) -> list[AnswerEvent]:
        return [e async for e in answerer.stream(AnswerRequest(q))]

    async def all_at_once() -> list[list[AnswerEvent]]:
        return await asyncio.gather(*(one(q) for q in questions))

    results = asyncio.run(all_at_once())
    assert [bool([e for e in r if isinstance(e, Link)]) for r in results] == [
        True,
        True,
        True,
        False,
    ]
