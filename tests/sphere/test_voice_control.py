"""Voice control end to end: espeak-ng speaks the command, the real VAD and Whisper hear it in
a real Session, the sphere wrapper plays the clip on the simulated SOS host, real Piper says
what it did; questions are still answered as questions, and with control off nothing is sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bench.common import word_error_rate
from catalog.datasets import Catalog
from sphere.simulator import SosSimulator
from tests.speech import espeak_wav
from voice.audio.resample import resample_pcm16
from voice.audio.wav import WavSource
from voice.events import Event, ResponseAudio, ResponseDone, TranscriptReady
from voice.exhibit import Exhibit
from voice.pipeline import Session

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def say(session: Session, rec: Recorder, text: str, path: Path) -> ResponseDone:
    """Speak ``text`` into the session; the response it gave."""
    before = len(rec.of(ResponseDone))
    async for frame in WavSource(espeak_wav(text, path, trail_s=1.0), 30).frames():
        session.feed_audio(frame)
    await session.wait_idle()
    done = rec.of(ResponseDone)
    assert len(done) == before + 1, [e.text for e in rec.of(TranscriptReady)]
    return done[-1]


def spoken(services: Any, rec: Recorder, done: ResponseDone) -> str:
    """What Whisper hears in the assistant's own (Piper) answer."""
    chunks = [e for e in rec.of(ResponseAudio) if e.response_id == done.response_id]
    assert chunks, "the answer was not spoken"
    pcm = b"".join(c.pcm for c in chunks)
    return services.transcriber.transcribe(resample_pcm16(pcm, chunks[0].sample_rate, 16000))


async def test_spoken_commands_drive_the_sphere(
    services: Any, catalog: Catalog, simulator: SosSimulator, make_sphere: Any, tmp_path: Path
) -> None:
    exhibit = Exhibit(catalog)
    sphere = await make_sphere(simulator, exhibit=exhibit, control=True, rate_limit=10)
    rec = Recorder()
    session = Session(sphere.session_services(services), rec, exhibit=exhibit)
    try:
        done = await say(session, rec, "Show me the hurricanes.", tmp_path / "a.wav")
        heard_q = [e.text for e in rec.of(TranscriptReady)]
        assert done.status == "completed", done.error
        assert done.text == "Showing: Hurricane Season - 2005.", heard_q
        assert simulator.control_commands() == ["play 2"] and simulator.current == 2
        assert exhibit.showing is not None and exhibit.showing.slug == "hurricane-season-2005"
        # Piper samples its prosody and tiny.en mishears a word now and then ("her cane",
        # "chowing"): the confirmation is real speech of the answer, a word or two aside.
        heard = spoken(services, rec, done)
        assert word_error_rate(done.text, heard) <= 0.5, heard
        assert done.link is None  # an action, not an answer with a catalog page

        done = await say(session, rec, "Next one.", tmp_path / "b.wav")
        assert done.text.startswith("Showing: Japan Tsunami")
        assert simulator.control_commands() == ["play 2", "play 3"]

        done = await say(session, rec, "Go back.", tmp_path / "c.wav")
        assert simulator.control_commands()[-1] == "play 2"

        done = await say(session, rec, "Pause.", tmp_path / "d.wav")
        assert done.text == "Pausing the sphere." and not simulator.animating

        done = await say(session, rec, "Play it again.", tmp_path / "e.wav")
        assert done.text.startswith("Playing it again") and simulator.animating

        # A question is still a question: answered from the catalog, nothing sent.
        sent = len(simulator.control_commands())
        done = await say(session, rec, "What causes a tsunami?", tmp_path / "f.wav")
        assert done.status == "completed" and done.link and catalog.is_catalog_url(done.link)
        assert len(done.text) > 40 and len(simulator.control_commands()) == sent
    finally:
        await session.aclose()


async def test_spoken_command_with_control_off_is_answered_not_obeyed(
    services: Any, catalog: Catalog, simulator: SosSimulator, make_sphere: Any, tmp_path: Path
) -> None:
    exhibit = Exhibit(catalog)
    sphere = await make_sphere(simulator, exhibit=exhibit)  # [sos] control = false
    rec = Recorder()
    session = Session(sphere.session_services(services), rec, exhibit=exhibit)
    try:
        done = await say(session, rec, "Show me the hurricanes.", tmp_path / "a.wav")
        await say(session, rec, "Next one.", tmp_path / "b.wav")
    finally:
        await session.aclose()
    assert done.status == "completed" and done.link  # the catalog answerer's answer
    assert re.search(r"hurricane", done.text, re.I)
    assert simulator.control_commands() == [] and simulator.current == 1
