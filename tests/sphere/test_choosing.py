"""Which playlist clip a "show me ..." means (sphere/choosing.py), on real catalog entries."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog
from catalog.retrieval import Retriever
from sphere.choosing import ClipChooser
from sphere.follow import Clip

PLAYLIST = (
    "Blue Marble",
    "Hurricane Season - 2005",
    "ClimateBits: Ozone Hole",
    "Shipping Routes (with labels) - One Year",
    "Carbon Dioxide Concentration: GEOS-5 Model",
    "Plate Movement - 200 Million Years Ago to Today",
    "Clouds - Real-time",
    "Pluto: Dwarf Planet",
    "Sun: STEREO/SDO - Real-time",
    "Marine Migration: Humpback Whale (3D)",
)


@pytest.fixture(scope="module")
def clips(catalog: Catalog) -> list[Clip]:
    return [Clip(n, name, catalog.resolve(name)) for n, name in enumerate(PLAYLIST, 1)]


@pytest.mark.parametrize(
    ("query", "clip"),
    [
        ("hurricanes", "Hurricane Season - 2005"),  # the title's words
        ("the ozone hole", "ClimateBits: Ozone Hole"),
        # what Whisper heard, by sound
        ("my vericanes", "Hurricane Season - 2005"),
        ("my son", "Sun: STEREO/SDO - Real-time"),
        ("the quail", "Marine Migration: Humpback Whale (3D)"),
        # words many titles share do not choose: "one", "today"
        ("today's clouds", "Clouds - Real-time"),
        ("the co2 one", "Carbon Dioxide Concentration: GEOS-5 Model"),
    ],
)
def test_the_clip_meant(retriever: Retriever, clips: list[Clip], query: str, clip: str) -> None:
    chosen = ClipChooser(retriever).best(query, clips)
    assert chosen is not None and chosen.name == clip


@pytest.mark.parametrize(
    "query",
    [
        "dinosaurs",
        "neptune",  # a weak match (a dwarf planet) is not a command's clip
        "the pyramids",
        "whole layer",  # "whole" sounds like "hole"; "layer" is nothing on the playlist
        "some music",
    ],
)
def test_nothing_is_played_for_what_the_playlist_lacks(
    retriever: Retriever, clips: list[Clip], query: str
) -> None:
    assert ClipChooser(retriever).best(query, clips) is None


def test_sounds_like_can_be_off(retriever: Retriever, clips: list[Clip]) -> None:
    assert ClipChooser(retriever, sounds_like=False).best("my vericanes", clips) is None
    assert ClipChooser(None).best("my vericanes", clips) is not None  # no catalog: still sound
