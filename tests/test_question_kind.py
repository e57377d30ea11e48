"""What a question asks for, and the catalog sentences that give it (real catalog text)."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog
from llm.catalog_answerer import pick_sentences
from llm.question_kind import Kind, gives, question_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What causes a tsunami?", Kind.CAUSE),
        ("Why is the ocean getting more acidic?", Kind.CAUSE),
        ("How do hurricanes form?", Kind.CAUSE),
        ("How deep is the ocean?", Kind.AMOUNT),
        ("How many people live on Earth?", Kind.AMOUNT),
        ("What temperature is the sea near the equator?", Kind.AMOUNT),
        ("When did the big earthquake in Japan happen?", Kind.TIME),
        ("Where do earthquakes happen?", Kind.PLACE),
        ("Which part of the ocean is the saltiest?", Kind.PLACE),
        ("Who made this map?", Kind.PERSON),
        ("Tell me about Mars", Kind.OTHER),
        ("What is the jet stream?", Kind.OTHER),
    ],
)
def test_question_kinds(question: str, kind: Kind) -> None:
    assert question_kind(question) is kind


def test_sentences_that_give_the_kind() -> None:
    assert gives(Kind.CAUSE, "The tsunami was triggered by a magnitude 9.0 earthquake.")
    assert not gives(Kind.CAUSE, "This dataset shows the locations of tsunamis.")
    assert gives(Kind.AMOUNT, "The deepest point is nearly 11,000 meters down.")
    assert not gives(Kind.AMOUNT, "The ocean floor is dark and cold.")
    assert gives(Kind.TIME, "It struck on March 11, 2011.")
    assert gives(Kind.PLACE, "Most earthquakes occur along the boundaries of tectonic plates.")
    assert gives(Kind.PLACE, "The strongest storms form in the western Pacific.")
    assert not gives(Kind.PLACE, "Scientists measure it carefully.")
    assert not gives(Kind.OTHER, "Anything at all.")


def test_the_answer_leads_with_what_was_asked(catalog: Catalog) -> None:
    """On the real catalog: a "where" question gets the sentence with the places, a "how
    many"/"how big" question the one with the numbers, over sentences that share more words."""
    quakes = catalog.by_slug("earthquakes-and-eruptions-1960-2010")
    assert quakes is not None
    picked = pick_sentences(quakes, "Where do earthquakes happen?", "kids")
    assert any(gives(Kind.PLACE, s) for s in picked), picked
    for entry in catalog.entries:
        sentences = pick_sentences(entry, f"How big is {entry.title}?", "kids")
        numbered = [s for s in sentences if gives(Kind.AMOUNT, s)]
        if numbered:
            break
    else:  # pragma: no cover - the catalog has numbers
        pytest.fail("no catalog answer to a 'how big' question gave a number")
