"""What TTS may say, and when: the sentence splitter on streamed deltas, and speakable()."""

from __future__ import annotations

import itertools

import pytest

from catalog.datasets import Catalog
from voice.speech_text import SentenceSplitter, speakable


def stream(text: str, cuts: list[int] | int, splitter: SentenceSplitter | None = None):
    """Feed ``text`` in pieces (every ``cuts`` chars, or at the given offsets); return
    (chunks released by feed, with the number of characters fed when each came; flush)."""
    splitter = splitter or SentenceSplitter()
    if isinstance(cuts, int):
        cuts = list(range(cuts, len(text), cuts))
    bounds = [0, *cuts, len(text)]
    released: list[tuple[str, int]] = []
    for a, b in itertools.pairwise(bounds):
        released += [(c, b) for c in splitter.feed(text[a:b])]
    return released, splitter.flush()


def chunks(text: str, step: int = 1, **kw: int) -> list[str]:
    released, rest = stream(text, step, SentenceSplitter(**kw))
    return [c for c, _ in released] + rest


ANSWER = (
    "Tsunamis are giant waves, caused by earthquakes under the sea. They can cross the "
    "Pacific in less than a day! The 2004 Indian Ocean tsunami reached 30.5 m in places. "
    "More information: https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014/"
)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 11, 64])
def test_same_chunks_whatever_the_delta_boundaries(step: int) -> None:
    assert chunks(ANSWER, step) == [
        "Tsunamis are giant waves,",
        "caused by earthquakes under the sea.",
        "They can cross the Pacific in less than a day!",
        "The 2004 Indian Ocean tsunami reached 30.5 m in places.",
        "More information: https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014/",
    ]


def test_awkward_cuts_mid_word_mid_number_mid_url() -> None:
    text = "Sea level rose 3.5 mm a year. See sos.noaa.gov/catalog for more. Done now."
    cut_points = [
        text.index("3.") + 2,  # "3." | "5 mm": must not split at the decimal point
        text.index("rose") + 2,  # mid-word
        text.index("noaa.") + 5,  # mid-URL, right after a dot
        text.index("catalog") + 3,
    ]
    released, rest = stream(text, sorted(cut_points))
    assert [c for c, _ in released] + rest == [
        "Sea level rose 3.5 mm a year.",
        "See sos.noaa.gov/catalog for more.",
        "Done now.",
    ]


def test_first_chunk_is_released_early_at_a_clause_boundary() -> None:
    text = "Hurricanes form over warm ocean water, when the sea surface is above 26 degrees"
    released, rest = stream(text, 1)
    assert released, "the first clause must be released before the sentence ends"
    first, fed_at = released[0]
    assert first == "Hurricanes form over warm ocean water,"
    assert fed_at < len(text) // 2 + 5, "released as soon as the clause was complete"
    assert rest == ["when the sea surface is above 26 degrees"]


def test_first_clause_shorter_than_minimum_waits() -> None:
    text = "Yes, it does, and El Niño is the reason. Later, clauses stay together."
    assert chunks(text) == [
        "Yes, it does, and El Niño is the reason.",
        "Later, clauses stay together.",
    ]
    assert chunks(text, first_chunk_min_chars=5) == [
        "Yes, it does,",
        "and El Niño is the reason.",
        "Later, clauses stay together.",
    ]


def test_em_dash_is_a_first_clause_boundary() -> None:
    assert chunks("Phytoplankton blooms are huge—visible from space. Yes.")[:2] == [
        "Phytoplankton blooms are huge—",
        "visible from space.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Some places, e.g. Japan and Chile, see many tsunamis.",
        "The U.S. National Weather Service issues warnings.",
        "Dr. Smith studies Mt. Everest and St. Helens today.",
        "Storm No. 5 was the worst one ever recorded.",
        "The ocean absorbs approx. one quarter of our CO2.",
        "The ocean warmed 0.13 degrees per decade since 1901.",
        "It was quiet... then the wave came ashore.",
    ],
)
def test_abbreviations_decimals_and_ellipses_do_not_split(text: str) -> None:
    assert chunks(text, first_chunk_min_chars=200) == [text]


def test_sentence_ends_that_look_like_abbreviations_still_split() -> None:
    assert chunks("No. It is not a tsunami. Wait... Then it came, etc. Next one.") == [
        "No.",
        "It is not a tsunami.",
        "Wait...",
        "Then it came, etc.",
        "Next one.",
    ]


def test_question_and_exclamation_and_newlines_split() -> None:
    text = "## Tsunamis\n\n- They are fast\n- They are long\nReally? Yes!"
    assert chunks(text) == ["## Tsunamis", "- They are fast", "- They are long", "Really?", "Yes!"]


def test_numbered_list_marker_is_not_a_sentence() -> None:
    assert chunks("Two facts:\n1. Waves are fast.\n2. They are long.") == [
        "Two facts:",
        "1. Waves are fast.",
        "2. They are long.",
    ]


def test_long_text_without_punctuation_is_cut_at_word_boundaries() -> None:
    words = ("the ocean keeps warming year after year " * 30).split()
    text = " ".join(words)
    out = chunks(text, step=4, max_chunk_chars=100)
    assert len(out) > 3
    assert all(len(c) <= 100 for c in out)
    assert " ".join(out).split() == words, "no word lost, split or duplicated"


def test_long_sentence_prefers_clause_boundary() -> None:
    text = (
        "Sea surface temperature shows warm water in the tropics and cold water near the poles, "
        "and the patterns shift with the seasons as the sun moves north and south over the year"
    )
    out = chunks(text, max_chunk_chars=120, first_chunk_min_chars=120)
    assert out[0].endswith("poles,")
    assert " ".join(out) == text


def test_flush_resets_for_the_next_answer() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Half a sent") == []
    assert splitter.flush() == ["Half a sent"]
    assert splitter.flush() == []
    assert splitter.feed("Tsunamis are giant waves, caused by quakes. ") == [
        "Tsunamis are giant waves,"
    ]
    assert splitter.feed("Then") == ["caused by quakes."], "a period waits for the next word"


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(first_chunk_min_chars=0)
    with pytest.raises(ValueError):
        SentenceSplitter(first_chunk_min_chars=50, max_chunk_chars=20)


# ------------------------------------------------------------------------------ speakable


def test_more_information_tail_is_never_spoken(catalog: Catalog) -> None:
    """Real catalog answers: summary + "More information: <catalog url>" for many entries."""
    for entry in list(catalog)[::40]:
        answer = f"{entry.summary(240)}\n\nMore information: {entry.url}"
        spoken = speakable(answer)
        assert spoken, entry.url
        assert "http" not in spoken and "sos.noaa" not in spoken and entry.slug not in spoken
        assert "More information" not in spoken
        assert spoken.split()[:3] == speakable(entry.summary(240)).split()[:3]


def test_splitter_then_speakable_on_a_streamed_answer() -> None:
    spoken = [speakable(c) for c in chunks(ANSWER, 3)]
    assert spoken[-1] == "", "the link chunk says nothing"
    assert spoken[:2] == ["Tsunamis are giant waves,", "caused by earthquakes under the sea."]


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (
            "Tsunamis are **giant** waves. More information: "
            "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014/",
            "Tsunamis are giant waves.",
        ),
        ("For more information, see https://sos.noaa.gov/catalog/datasets/x/.", ""),
        ("Learn more at www.noaa.gov. The sea is deep.", "The sea is deep."),
        ("Visit sos.noaa.gov/catalog/datasets/x for the data.", "for the data."),
        (
            "See [the sea ice dataset](https://sos.noaa.gov/x/) on the globe.",
            "See the sea ice dataset on the globe.",
        ),
        ("It's on the [catalog page](https://sos.noaa.gov/x/).", "It's on the."),
        ("![map](https://x.org/a.png) Arctic sea ice shrinks.", "Arctic sea ice shrinks."),
        (
            "# Ocean Acidification\nThe ocean absorbs CO₂.",
            "Ocean Acidification. The ocean absorbs CO2.",
        ),
        (
            "Key facts:\n- *Fast*: 800 km/h\n- Long `waves`\n",
            "Key facts: Fast: 800 kilometers per hour. Long waves.",
        ),
        (
            "About 30% of CO2 & ~25 °C water",
            "About 30 percent of CO2 and about 25 degrees Celsius water",
        ),
        (
            "It warmed 1.1°C (2°F) since 1880 🌍🔥!",
            "It warmed 1.1 degrees Celsius (2 degrees Fahrenheit) since 1880!",
        ),
        ("El Niño/La Niña — a see-saw", "El Niño or La Niña, a see-saw"),
        ("Seas rise 3.4 mm/yr", "Seas rise 3.4 mm per yr"),
        ("Waves > 10 m, e.g. in Japan", "Waves more than 10 m, for example, in Japan"),
        ("   lots \n\n of   space   ", "lots. of space"),
        ("https://sos.noaa.gov/catalog/datasets/x/", ""),
        ("🌊🌊", ""),
        ("", ""),
    ],
)
def test_speakable(raw: str, said: str) -> None:
    assert speakable(raw) == said
