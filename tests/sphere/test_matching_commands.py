"""Clip names find only the right dataset; transcripts are commands only when they are one;
the rate limit's window slides."""

from __future__ import annotations

import pytest

from catalog.datasets import Catalog
from catalog.retrieval import Retriever
from sphere.commands import Command, recognize
from sphere.control import RateLimiter
from sphere.matching import ClipMatcher


def test_clip_names_map_only_to_the_right_dataset(catalog: Catalog, retriever: Retriever) -> None:
    matcher = ClipMatcher(catalog, retriever)
    assert matcher.match("Blue Marble").slug == "blue-marble"
    assert matcher.match("Earth_Blue_Marble").slug == "blue-marble"
    assert matcher.match("hurricane-season-2005").slug == "hurricane-season-2005"
    assert matcher.match("Hurricane Season 2005").slug == "hurricane-season-2005"
    for nonsense in ("Bob's Holiday Slideshow", "Welcome", "intro_loop", ""):
        assert matcher.match(nonsense) is None, nonsense


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("Show me hurricanes.", Command("play", "hurricanes")),
        ("Can you show me the aurora?", Command("play", "aurora")),
        ("Please play sea surface temperature", Command("play", "sea surface temperature")),
        ("Next one.", Command("next")),
        ("Okay, next one please.", Command("next")),
        ("Skip.", Command("next")),
        ("Go back.", Command("prev")),
        ("Previous one", Command("prev")),
        ("Pause.", Command("pause")),
        ("Play it again.", Command("replay")),
        ("Play that again", Command("replay")),
        ("Play El Niño.", Command("play", "el nino")),  # Whisper's spelling, the catalog's
    ],
)
def test_commands(text: str, command: Command) -> None:
    assert recognize(text) == command


@pytest.mark.parametrize(
    "text",
    [
        "What does this show?",
        "How do hurricanes form?",
        "Show me how clouds form",
        "Tell me about hurricanes",
        "Why is it paused?",
        "Is this the next one?",
        "Show me.",
        "Can you show me what causes the seasons and why the poles are so cold today?",
        "",
    ],
)
def test_questions_are_not_commands(text: str) -> None:
    assert recognize(text) is None


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 10.0, clock=lambda: now[0])
    assert limiter.take()
    now[0] = 5.0
    assert limiter.take() and not limiter.take()
    now[0] = 9.9
    assert not limiter.take()
    now[0] = 10.0  # the first action left the window, the second has not
    assert limiter.take() and not limiter.take()
    assert not RateLimiter(0, 10.0).take()  # rate_limit = 0: no actions at all
