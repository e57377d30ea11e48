"""How words sound (catalog/sounds.py): espeak-ng's phonemes, compared by edit distance."""

from __future__ import annotations

import logging

import pytest

from catalog.sounds import Pronouncer, sound_similarity


@pytest.fixture(scope="module")
def pronouncer() -> Pronouncer:
    return Pronouncer()


def test_misheard_words_sound_like_what_was_said(pronouncer: Pronouncer) -> None:
    def alike(a: str, b: str) -> float:
        return sound_similarity(*pronouncer.phonemes([a, b]))

    # Whisper's mishearings on the spoken-command set, against the word that was said.
    assert alike("vericanes", "hurricanes") >= 0.75
    assert alike("son", "sun") == 1.0
    assert alike("lager head", "loggerhead") >= 0.8
    assert alike("tires", "fires") >= 0.75
    # and words that only share letters do not
    assert alike("neptune", "saturn") < 0.5
    assert alike("dinosaurs", "volcanoes") < 0.5
    assert alike("vericanes", "hurricanes") > sound_similarity("vericanes", "hurricanes")


def test_one_pronunciation_per_word_whatever_espeak_splits(pronouncer: Pronouncer) -> None:
    words = ["CO2", "U.S. Navy", "El Niño", "", "3D", "aurora"]
    said = pronouncer.phonemes(words)
    assert len(said) == len(words)
    assert said[3] == "" and all(said[i] for i in (0, 1, 2, 4, 5))
    assert pronouncer.phonemes(["aurora"]) == [said[5]]  # cached, the same answer


def test_without_espeak_the_spelling_stands_in(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="catalog.sounds"):
        missing = Pronouncer(executable="/nonexistent/espeak-ng")
        assert missing.phonemes(["Hurricanes", "sun"]) == ["hurricanes", "sun"]
    assert "espeak-ng failed" in caplog.text
    assert sound_similarity("", "sun") == 0.0
