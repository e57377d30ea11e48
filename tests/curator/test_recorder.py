"""A real Session on the real offline models, recorded: one row per turn, with what became of
it. Typed and spoken questions, an apology, a barge-in, a cancel() and noise Whisper rejects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from curator.config import CuratorConfig
from curator.recorder import Recorder
from curator.store import CuratorStore, TurnRecord
from tests.speech import espeak_wav, noise
from voice.audio.wav import WavSource
from voice.events import Event, ResponseAudio, ResponseDone, ResponseStarted, SpeechStarted
from voice.exhibit import Exhibit
from voice.pipeline import Session
from voice.services import Services

pytestmark = pytest.mark.slow


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, [type(e).__name__ for e in self.events]
            await asyncio.sleep(0.01)


async def feed_wav(session: Session, path: Path) -> None:
    async for frame in WavSource(path, 30).frames():
        session.feed_audio(frame)
    session.end_of_audio()


@pytest.fixture
def store(tmp_path: Path):
    opened = CuratorStore.open(CuratorConfig(db_path=str(tmp_path / "curator.sqlite3")))
    yield opened
    opened.close()


async def recorded(store: CuratorStore) -> list[TurnRecord]:
    await asyncio.to_thread(store.flush)
    return (await asyncio.to_thread(store.turns))[::-1]


async def test_a_kiosk_session_is_recorded_turn_by_turn(
    services: Services, store: CuratorStore, tmp_path: Path
) -> None:
    exhibit = Exhibit(services.catalog)
    exhibit.set("hurricane-season-2012", source="test")
    showing = exhibit.showing
    assert showing is not None
    events = Events()
    session = Session(services, events, exhibit=exhibit)
    Recorder(store, "kiosk").attach(session)
    try:
        # 1. a typed question, answered with a dataset
        session.ask("What causes a tsunami?")
        await session.wait_idle()
        # 2. a typed question it cannot answer
        session.ask("What is your favourite pizza topping?")
        await session.wait_idle()
        # 3. a spoken question, answered; 4. interrupted by the visitor speaking again
        first = espeak_wav("Tell me about hurricanes.", tmp_path / "a.wav", trail_s=0.8)
        spoken_so_far = len(events.of(ResponseAudio))
        await feed_wav(session, first)
        await events.until(lambda: len(events.of(ResponseAudio)) > spoken_so_far)
        again = espeak_wav("What about volcanoes?", tmp_path / "b.wav", lead_s=0.1)
        await feed_wav(session, again)
        await session.wait_idle()
        # 5. cancelled by the client (not by speech)
        started = len(events.of(ResponseStarted))
        session.ask("How fast is the Arctic sea ice melting?")
        await events.until(lambda: len(events.of(ResponseStarted)) > started)
        assert session.cancel()
        await session.wait_idle()
        # 6. push-to-talk noise that Whisper rejects
        session.update(turn_detection=False)
        hiss = np.clip(noise(16000, -25) * 32768, -32768, 32767).astype("<i2").tobytes()
        session.feed_audio(hiss)
        session.commit_audio()
        await session.wait_idle()
    finally:
        await session.aclose()

    rows = await recorded(store)
    dones = events.of(ResponseDone)
    assert [(r.input, r.outcome) for r in rows] == [
        ("typed", "answered"),
        ("typed", "sorry"),
        ("spoken", "barge_in"),
        ("spoken", "answered"),
        ("typed", "cancelled"),
        ("spoken", "misheard"),
    ], [(r.question, r.outcome) for r in rows]
    assert [r.question for r in rows[:2]] == [
        "What causes a tsunami?",
        "What is your favourite pizza topping?",
    ]
    assert "hurricane" in rows[2].question.lower() and "volcano" in rows[3].question.lower()
    assert rows[5].question == "" and rows[5].answer == ""
    assert all(r.source == "kiosk" and r.session_id == session.id for r in rows)
    assert all(r.showing == showing.title for r in rows)
    # What the session said is what was stored: text, link, latencies.
    answered = rows[0]
    assert answered.answer == dones[0].text and answered.link_url == dones[0].link
    assert "tsunami" in (answered.link_url or "") and answered.link_title
    assert answered.first_audio_ms == dones[0].timings.latencies_ms()["first_audio"]
    assert rows[1].link_url is None and rows[1].answer.startswith("Sorry")
    assert rows[3].transcript_ms is not None and rows[3].first_audio_ms is not None
    assert len(events.of(SpeechStarted)) >= 2


async def test_a_detached_recorder_records_nothing_more(
    services: Services, store: CuratorStore
) -> None:
    session = Session(services, Events())
    detach = Recorder(store, "kiosk").attach(session)
    try:
        session.ask("What causes a tsunami?")
        await session.wait_idle()
        detach()
        session.ask("Tell me about hurricanes.")
        await session.wait_idle()
    finally:
        await session.aclose()
    assert [r.question for r in await recorded(store)] == ["What causes a tsunami?"]


async def test_a_broken_subscriber_never_breaks_the_session(services: Services) -> None:
    events = Events()
    session = Session(services, events)

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    session.subscribe(broken)
    try:
        session.ask("What causes a tsunami?")
        await session.wait_idle()
    finally:
        await session.aclose()
    assert [d.status for d in events.of(ResponseDone)] == ["completed"]
