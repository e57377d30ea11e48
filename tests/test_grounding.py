"""Grounding and the link guard, on the real SOS catalog (no mocks).

The LinkGuard tests cut the model's text at every possible place (every pair of cut points),
because a model's tokens split "More information:" and URLs anywhere, and check that the
visitor never sees a URL and always gets exactly one real, fitting catalog link.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator

import pytest

from catalog.datasets import Catalog, CatalogEntry
from catalog.grounding import (
    Grounding,
    asks_for_related,
    build_grounding,
    is_deictic,
    related_entries,
)
from catalog.retrieval import Retriever
from catalog.text import description_sentences, split_sentences
from llm.base import AnswerEvent, Link, TextDelta
from llm.link_guard import LinkGuard, guard_stream
from llm.prompt import grounding_prompt

TSUNAMI = "tsunami-locations-2000-bce-2014"
URLISH = re.compile(r"https?:|www\.|sos\.noaa\.gov|More information", re.I)


@pytest.fixture(scope="module")
def retriever(catalog: Catalog) -> Retriever:
    return Retriever.build(catalog, use_embeddings=False)


@pytest.fixture(scope="module")
def tsunami(catalog: Catalog) -> CatalogEntry:
    entry = catalog.by_slug(TSUNAMI)
    assert entry is not None
    return entry


# -- deictic questions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "What does this animation show?",
        "what am I looking at",
        "What is this?",
        "Why is that part red?",
        "What else is like this?",
        "What's on the sphere right now?",
        "Can you tell me more about it?",
        "What do these colors mean?",
        "why is the red area so big",
        "Explain that.",
    ],
)
def test_deictic(question: str) -> None:
    assert is_deictic(question)


@pytest.mark.parametrize(
    "question",
    [
        "What causes a tsunami?",
        "Show me hurricanes",
        "Is it true that the ocean is getting acidic?",
        "What will the weather be like this week?",
        "Where do earthquakes happen?",
        "Tell me about Mars",
        "How many people live on Earth?",
    ],
)
def test_not_deictic(question: str) -> None:
    assert not is_deictic(question)


def test_asks_for_related() -> None:
    assert asks_for_related("What else is like this?")
    assert asks_for_related("Are there similar datasets?")
    assert not asks_for_related("What causes a tsunami?")
    assert not asks_for_related("What other planets have rings?")


# -- grounding -----------------------------------------------------------------------------------


def test_deictic_question_grounds_on_the_showing_dataset(
    retriever: Retriever, tsunami: CatalogEntry
) -> None:
    g = build_grounding("What does this animation show?", tsunami, retriever)
    assert g.entries[0] == tsunami and g.primary == tsunami and g.pinned
    assert len(g.entries) == 3 and len(set(g.entries)) == 3
    assert g.showing == tsunami and g.deictic


def test_question_about_the_showing_topic_keeps_it_first(
    retriever: Retriever, tsunami: CatalogEntry
) -> None:
    g = build_grounding("What causes a tsunami?", tsunami, retriever)
    assert g.primary == tsunami and g.entries[0] == tsunami and not g.pinned


def test_clearly_different_question_gets_its_own_dataset(
    retriever: Retriever, tsunami: CatalogEntry
) -> None:
    g = build_grounding("What causes hurricanes?", tsunami, retriever)
    assert g.primary is not None and "hurricane" in g.primary.slug
    assert g.entries[0] == g.primary
    assert tsunami in g.entries  # the sphere's dataset stays in view for the model


def test_no_showing_and_no_match_gives_no_primary(retriever: Retriever) -> None:
    g = build_grounding("Where is the bathroom?", None, retriever)
    assert g.primary is None and g.entries == ()
    g = build_grounding("Why is the ocean getting acidic?", None, retriever, k=2)
    assert g.primary is not None and "acidif" in g.primary.slug and len(g.entries) <= 2


def test_grounding_prompt_lists_facts_and_labels_the_showing_entry(
    retriever: Retriever, tsunami: CatalogEntry
) -> None:
    g = build_grounding("What causes hurricanes?", tsunami, retriever)
    text = grounding_prompt(g, max_chars_per_entry=300)
    for entry in g.entries:
        assert entry.title in text and entry.url in text
    assert "currently on the sphere" in text
    assert text.count("currently on the sphere") == 1
    line = next(li for li in text.splitlines() if tsunami.title in li)
    assert "currently on the sphere" in line
    assert "Keywords:" in text and "Categories:" in text
    assert "no dataset matches" in grounding_prompt(Grounding((), None))


def test_description_sentences_are_clean(catalog: Catalog) -> None:
    for entry in catalog:
        for sentence in description_sentences(entry):
            assert not re.search(r"https?://|www\.|youtube|length of dataset", sentence, re.I)
            assert not re.search(r"[()]", sentence), sentence
    assert split_sentences("Dr. Smith at St. Thomas measured it. Then it rained.") == [
        "Dr. Smith at St. Thomas measured it.",
        "Then it rained.",
    ]


def test_related_entries(catalog: Catalog, retriever: Retriever, tsunami: CatalogEntry) -> None:
    related = related_entries(tsunami, catalog)
    assert [e.slug for e in related] == ["tsunami-wave-run-ups-indian-ocean-2004"]
    lonely = next(e for e in catalog if not e.related and e.keywords)
    for found in (
        related_entries(lonely, catalog),
        related_entries(lonely, catalog, retriever=retriever),
    ):
        assert found and lonely not in found and len(found) <= 5


# -- the link guard ------------------------------------------------------------------------------


def _run(guard: LinkGuard, pieces: list[str]) -> tuple[str, list[Link]]:
    events: list[AnswerEvent] = []
    for piece in pieces:
        events.extend(guard.feed(piece))
    events.extend(guard.finish())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, [e for e in events if isinstance(e, Link)]


def _all_splits(text: str) -> list[list[str]]:
    """Every way to cut the text in three pieces (two cut points), plus one char at a time."""
    cuts = range(len(text) + 1)
    splits = [
        [text[:i], text[i:j], text[j:]] for i, j in itertools.combinations_with_replacement(cuts, 2)
    ]
    return [*splits, list(text)]


def _check_every_split(
    catalog: Catalog, g: Grounding, raw: str, want_text: str, want: str | None
) -> None:
    seen: set[str] = set()
    for pieces in _all_splits(raw):
        text, links = _run(LinkGuard(catalog, g), pieces)
        assert not URLISH.search(text), (pieces, text)
        assert [link.url for link in links] == ([want] if want else []), pieces
        seen.add(text)
    assert seen == {want_text}, seen


@pytest.fixture(scope="module")
def grounding(catalog: Catalog, tsunami: CatalogEntry) -> Grounding:
    runups = catalog.by_slug("tsunami-wave-run-ups-indian-ocean-2004")
    assert runups is not None
    return Grounding(
        (tsunami, runups),
        tsunami,
        relevant=frozenset({"japan-tsunami-wave-propagation-march-11-2011"}),
    )


def test_correct_url_is_kept_and_removed_from_text(catalog: Catalog, grounding: Grounding) -> None:
    runups = grounding.entries[1]
    raw = f"Tsunamis are giant waves.\n\nMore information: {runups.url}/"
    _check_every_split(catalog, grounding, raw, "Tsunamis are giant waves.", runups.url)


def test_hallucinated_slug_is_replaced_by_primary(catalog: Catalog, grounding: Grounding) -> None:
    raw = (
        "Tsunamis travel fast. More information: "
        "https://sos.noaa.gov/catalog/datasets/tsunami-wave-magic-2099"
    )
    _check_every_split(catalog, grounding, raw, "Tsunamis travel fast.", grounding.primary.url)


def test_support_page_and_other_sites_are_replaced(catalog: Catalog, grounding: Grounding) -> None:
    raw = (
        "See https://sos.noaa.gov/support/faq/ for help, or www.example.com. "
        "More information: https://sos.noaa.gov/education/data-lens/ssta/"
    )
    _check_every_split(catalog, grounding, raw, "See for help, or.", grounding.primary.url)


def test_relevant_catalog_page_outside_the_entries_is_kept(
    catalog: Catalog, grounding: Grounding
) -> None:
    url = "https://sos.noaa.gov/catalog/datasets/japan-tsunami-wave-propagation-march-11-2011"
    text, links = _run(LinkGuard(catalog, grounding), [f"Big waves. More information: {url}"])
    assert text == "Big waves." and [link.url for link in links] == [url]
    unrelated = "https://sos.noaa.gov/catalog/datasets/mars"
    text, links = _run(LinkGuard(catalog, grounding), [f"Big waves. More information: {unrelated}"])
    assert [link.url for link in links] == [grounding.primary.url]


def test_pinned_grounding_always_links_the_showing_dataset(
    catalog: Catalog, grounding: Grounding
) -> None:
    pinned = Grounding(grounding.entries, grounding.primary, pinned=True)
    other = grounding.entries[1].url
    _, links = _run(LinkGuard(catalog, pinned), [f"This shows waves. More information: {other}"])
    assert [link.url for link in links] == [grounding.primary.url]


def test_no_primary_and_no_good_url_gives_no_link(catalog: Catalog) -> None:
    text, links = _run(LinkGuard(catalog, Grounding((), None)), ["I don't know. https://x.org/a"])
    assert text == "I don't know." and links == []


def test_exactly_one_link_even_with_several_urls(catalog: Catalog, grounding: Grounding) -> None:
    urls = [e.url for e in grounding.entries]
    raw = f"One {urls[1]} two {urls[0]}.\nMore information: {urls[0]}\nMore information: {urls[1]}"
    text, links = _run(LinkGuard(catalog, grounding), list(raw))
    assert not URLISH.search(text)
    assert [link.url for link in links] == [urls[1]]  # the model's first acceptable one


def test_text_is_not_held_back(catalog: Catalog, grounding: Grounding) -> None:
    guard = LinkGuard(catalog, grounding)
    assert guard.feed("Tsunamis are giant waves that ") == [
        TextDelta("Tsunamis are giant waves that")
    ]
    assert guard.feed("cross oceans. More") == [TextDelta(" cross oceans.")]
    assert guard.feed(" infor") == []  # could still become the marker
    assert guard.feed("mal chats help.") == [TextDelta(" More informal chats help.")]
    assert guard.feed(" More info: www.sos.noaa.gov") == []
    assert guard.finish() == [Link(grounding.primary.url, grounding.primary.title)]


def test_guard_stream_closes_the_raw_stream(catalog: Catalog, grounding: Grounding) -> None:
    closed: list[bool] = []

    async def raw() -> AsyncIterator[str]:
        try:
            for piece in [
                "Waves ",
                "are big. ",
                "More infor",
                "mation: ",
                grounding.entries[0].url,
            ]:
                yield piece
                await asyncio.sleep(0)
        finally:
            closed.append(True)

    async def collect() -> list[AnswerEvent]:
        return [e async for e in guard_stream(raw(), catalog, grounding)]

    events = asyncio.run(collect())
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Waves are big."
    assert events[-1] == Link(grounding.entries[0].url, grounding.entries[0].title)

    async def cancel_early() -> None:
        stream = guard_stream(raw(), catalog, grounding)
        await anext(stream)
        await stream.aclose()

    closed.clear()
    asyncio.run(cancel_early())
    assert closed == [True]
