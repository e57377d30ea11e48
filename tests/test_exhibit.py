"""The installation's showing dataset: the Exhibit state, sessions following it, the CLI.

The pipeline tests run the real offline models (tiny.en Whisper, the catalog answerer with
the educator modes, Piper) on espeak-ng speech, as a visitor at the sphere would be heard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from catalog.datasets import Catalog, CatalogError
from tests.speech import espeak_wav
from tests.test_voice_loop import Recorder, feed_wav
from voice.events import ResponseDone, TranscriptReady
from voice.exhibit import Exhibit, ExhibitChange
from voice.pipeline import Session, SessionSettings
from voice.services import Services

TSUNAMI = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"
HURRICANES = "https://sos.noaa.gov/catalog/datasets/hurricane-season-2012"
SEA_ICE = "https://sos.noaa.gov/catalog/datasets/sea-ice-extent-arctic-only-1850-present"


# ------------------------------------------------------------------------------ Exhibit state
def test_exhibit_resolves_url_slug_and_title_and_tells_subscribers(catalog: Catalog) -> None:
    exhibit = Exhibit(catalog)
    seen: list[ExhibitChange] = []
    unsubscribe = exhibit.subscribe(seen.append)
    assert exhibit.showing is None and exhibit.version == 0

    assert exhibit.set("tsunami locations", source="test").url == TSUNAMI  # type: ignore[union-attr]
    assert exhibit.set(TSUNAMI + "/") is not None  # same dataset again: nobody is told twice
    exhibit.set("hurricane-season-2012", source="http")
    exhibit.clear()
    assert [(c.showing.url if c.showing else None) for c in seen] == [TSUNAMI, HURRICANES, None]
    assert [c.previous.url if c.previous else None for c in seen] == [None, TSUNAMI, HURRICANES]
    assert [c.source for c in seen] == ["test", "http", ""]
    assert [c.version for c in seen] == [1, 2, 3]

    unsubscribe()
    unsubscribe()  # harmless twice
    exhibit.set(TSUNAMI)
    assert len(seen) == 3 and exhibit.showing is not None
    assert exhibit.describe() == {
        "slug": "tsunami-locations-2000-bce-2014",
        "url": TSUNAMI,
        "title": exhibit.showing.title,
        "version": 4,
    }


def test_unknown_dataset_is_a_clear_error_and_changes_nothing(catalog: Catalog) -> None:
    exhibit = Exhibit(catalog)
    exhibit.set("tsunami-locations-2000-bce-2014")
    seen: list[ExhibitChange] = []
    exhibit.subscribe(seen.append)
    with pytest.raises(CatalogError, match=r"no SOS dataset matches 'zzqx florble'.*slug"):
        exhibit.set("zzqx florble")
    assert exhibit.showing is not None and exhibit.showing.url == TSUNAMI
    assert not seen


def test_a_failing_subscriber_does_not_stop_the_others(catalog: Catalog) -> None:
    exhibit = Exhibit(catalog)
    seen: list[str] = []

    def broken(change: ExhibitChange) -> None:
        raise RuntimeError("listener bug")

    exhibit.subscribe(broken)
    exhibit.subscribe(lambda c: seen.append(c.showing.slug if c.showing else ""))
    exhibit.set(HURRICANES)
    assert seen == ["hurricane-season-2012"]


# ------------------------------------------------------------------------------ sessions


@pytest.mark.slow
async def test_spoken_what_does_this_animation_show_gets_the_showing_dataset(
    services: Services, tmp_path: Path
) -> None:
    """The issue's check: the exhibit shows tsunami locations; a visitor says "What does this
    animation show?"; the answer is about tsunami locations, with exactly its link."""
    exhibit = Exhibit(services.catalog)
    exhibit.set("tsunami-locations-2000-bce-2014", source="test")
    wav = espeak_wav("What does this animation show?", tmp_path / "q.wav", noise_db=-45.0)
    rec = Recorder()
    session = Session(services, rec, exhibit=exhibit)
    await feed_wav(session, wav)
    await session.wait_idle()
    await session.aclose()

    (transcript,) = rec.of(TranscriptReady)
    assert "animation" in transcript.text.lower() and "this" in transcript.text.lower()
    (done,) = rec.of(ResponseDone)
    assert done.status == "completed", done.error
    assert done.link == TSUNAMI
    assert "tsunami locations" in done.text.lower()
    assert "http" not in done.text


@pytest.mark.slow
async def test_sessions_follow_the_exhibit_unless_they_override_it(services: Services) -> None:
    """Each question reads the exhibit at the moment it is asked; a per-session override
    wins for that session only and clearing it follows the exhibit again."""
    exhibit = Exhibit(services.catalog)
    exhibit.set(TSUNAMI)
    first, second = Recorder(), Recorder()
    kiosk = Session(services, first, exhibit=exhibit)
    headset = Session(services, second, exhibit=exhibit)

    async def ask(session: Session, rec: Recorder) -> str | None:
        session.ask("What is this about?")
        await session.wait_idle()
        return rec.of(ResponseDone)[-1].link

    assert await ask(kiosk, first) == TSUNAMI
    exhibit.set(HURRICANES)  # the playlist moves on between two questions
    assert kiosk.showing is not None and kiosk.showing.url == HURRICANES
    assert await ask(kiosk, first) == HURRICANES

    headset.update(showing=services.catalog.by_url(SEA_ICE))
    assert await ask(headset, second) == SEA_ICE
    assert await ask(kiosk, first) == HURRICANES  # the override is the headset's alone
    exhibit.set(TSUNAMI)
    assert await ask(headset, second) == SEA_ICE
    headset.update(showing=None)
    assert await ask(headset, second) == TSUNAMI

    alone = Session(services, Recorder(), SessionSettings())  # no exhibit: nothing showing
    assert alone.showing is None
    for session in (kiosk, headset, alone):
        await session.aclose()


# ------------------------------------------------------------------------------ CLI
def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1"},
    )


def test_cli_unknown_showing_dataset_exits_2_before_loading_models() -> None:
    result = run_cli("--showing", "zzqx florble", "--text", "What is this?", timeout=60)
    assert result.returncode == 2
    assert "no SOS dataset matches 'zzqx florble'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not result.stdout


@pytest.mark.slow
def test_cli_showing_answers_this_about_the_dataset() -> None:
    result = run_cli("--showing", "Tsunami Locations", "--text", "What am I looking at?")
    assert result.returncode == 0, result.stderr
    assert f"More information: {TSUNAMI}" in result.stdout
    assert "tsunami locations" in result.stdout.lower()
