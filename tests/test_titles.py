"""A question that names a dataset gets exactly that dataset (catalog/titles.py)."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog
from catalog.grounding import build_grounding
from catalog.retrieval import Retriever
from catalog.titles import TitleIndex

FRAMES = (
    "What is '{t}' about?",
    "In the dataset {t}, what do the colors mean?",
    "Tell me about {t}.",
    'What does the "{t}" animation show?',
    "Can you show me {t}?",
)


@pytest.fixture(scope="module")
def titles(catalog: Catalog) -> TitleIndex:
    return TitleIndex(catalog.entries)


@pytest.mark.parametrize("frame", FRAMES)
def test_every_title_in_every_frame_names_exactly_its_dataset(
    catalog: Catalog, titles: TitleIndex, frame: str
) -> None:
    wrong = [e.title for e in catalog if titles.named_in(frame.format(t=e.title)) != e]
    assert not wrong


@pytest.mark.parametrize(
    ("question", "title"),
    [
        (
            "What is Biosphere: Marine Chlorophyll Concentration about?",
            "Biosphere: Marine Chlorophyll Concentration",
        ),
        (
            "What is Biosphere: Marine Chlorophyll Concentration and Land Vegetation about?",
            "Biosphere: Marine Chlorophyll Concentration and Land Vegetation",
        ),
        ("Tell me about Io: Jupiter's Moon", "Io: Jupiter's Moon"),
        ("Tell me about Io Volcanoes: Jupiter's Moon", "Io Volcanoes: Jupiter's Moon"),
        ("What is Carbon Dioxide: One Year - 2012 about?", "Carbon Dioxide: One Year - 2012"),
        ("What is Aurora about?", "Aurora"),
        ("What is Aurora (3D) about?", "Aurora (3D)"),
        # As Whisper writes a spoken title: punctuation lost, numbers and words changed a little.
        ("What is tsunami locations 2000 BC to 2014 about?", "Tsunami Locations - 2000 BCE - 2014"),
        ("tell me about sea ice extent 1978 to present", "Sea Ice Extent- 1978 - Present"),
        ("In the data set Earths magnetic lines, what are the lines?", "Earth's Magnetic Lines"),
    ],
)
def test_siblings_and_spoken_titles(titles: TitleIndex, question: str, title: str) -> None:
    named = titles.named_in(question)
    assert named is not None and named.title == title


@pytest.mark.parametrize(
    "question",
    [
        "What's the largest volcano on Mars?",
        "Is the lake frozen in winter?",
        "Where is the sea surface temperature highest?",
        "What causes a tsunami?",
        "Show me hurricanes",
        "Tell me about volcanoes",
        "What does this show?",
    ],
)
def test_ordinary_questions_name_no_dataset(titles: TitleIndex, question: str) -> None:
    assert titles.named_in(question) is None


def test_a_named_dataset_wins_over_the_showing_one(catalog: Catalog) -> None:
    retriever = Retriever.build(catalog, use_embeddings=False)
    showing = catalog.by_title("Tsunami Locations - 2000 BCE - 2014")
    aurora3d = catalog.by_title("Aurora (3D)")
    g = build_grounding("What is 'Aurora (3D)' about?", showing, retriever)
    assert g.primary == aurora3d and g.pinned and g.entries[0] == aurora3d
