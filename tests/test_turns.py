"""The Session owns the turn: what happens to each commit, response request and cancel is
decided there and reported as events, on the real models (tiny.en, catalog answerer, Piper).

Includes the visitor who never stops talking: turns cut at ``vad.max_turn_s`` are answered (or
dropped with an event), and the audio handed to Whisper never grows past the longest turn.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.speech import espeak_wav
from tests.test_voice_loop import Recorder, feed_wav
from voice.events import (
    InputCommitted,
    Interrupted,
    Refused,
    ResponseAudio,
    ResponseDone,
    ResponseStarted,
    TranscriptReady,
    TurnDropped,
)
from voice.pipeline import Session, SessionSettings
from voice.services import Services
from voice.turns import BYTES_PER_SECOND

pytestmark = pytest.mark.slow

# About 12 s of speech with no pause near 1.5 s: one visitor who never stops.
MONOLOGUE = (
    "The ocean covers most of our planet, and it carries heat from the warm equator toward "
    "the cold poles, and it takes up carbon dioxide from the air, and it feeds the storms and "
    "the hurricanes along the way, and the sea ice at the top of the world melts every summer"
)


class RecordingTranscriber:
    """The real Whisper, remembering how much audio each call was handed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def transcribe(self, pcm16: bytes, *args: Any, **kwargs: Any) -> str:
        self.seconds.append(len(pcm16) / BYTES_PER_SECOND)
        return self.inner.transcribe(pcm16, *args, **kwargs)


async def test_a_visitor_who_never_stops_talking_is_answered_within_the_turn_limit(
    services: Services, tmp_path: Path
) -> None:
    wav = espeak_wav(MONOLOGUE, tmp_path / "monologue.wav", lead_s=0.3, trail_s=2.0)
    whisper = RecordingTranscriber(services.transcriber)
    vad = dataclasses.replace(services.config.vad, max_turn_s=3.0, end_silence_ms=1500)
    rec = Recorder()
    session = Session(
        dataclasses.replace(services, transcriber=whisper), rec, SessionSettings(vad=vad)
    )
    try:
        await feed_wav(session, wav, realtime=True)  # at a microphone's pace
        await session.wait_idle()
    finally:
        await session.aclose()
    limit_s = vad.max_turn_s + vad.preroll_ms / 1000 + 0.05
    assert whisper.seconds and max(whisper.seconds) <= limit_s, whisper.seconds
    committed = rec.of(InputCommitted)
    assert len(committed) >= 3  # forced cuts at 3 s, 6 s, 9 s, ... and the end
    dropped = {e.item_id: e.reason for e in rec.of(TurnDropped)}
    heard = {e.item_id for e in rec.of(TranscriptReady)}
    done = {e.response_id: e.status for e in rec.of(ResponseDone)}
    for item in committed:
        if item.item_id in dropped:
            assert dropped[item.item_id] in ("overrun", "no_speech"), dropped
            continue
        assert item.item_id in heard
        assert done.get(item.response_id) == "completed", (item, done)
    assert len(dropped) < len(committed)  # the talker does get answers, not only drops
    # What Whisper works on grows with what was said (early transcripts included), not with
    # its square as when every cut turn was carried into the next.
    spoken_s = sum(e.audio_ms for e in committed) / 1000
    assert sum(whisper.seconds) <= 2 * spoken_s + limit_s


async def test_cancel_right_after_respond_ends_that_response(services: Services) -> None:
    rec = Recorder()
    session = Session(services, rec)
    try:
        response_id = session.ask("What causes a tsunami?")
        assert session.cancel() is True
        await session.wait_idle()
    finally:
        await session.aclose()
    (interrupted,) = rec.of(Interrupted)
    assert interrupted.response_id == response_id and interrupted.reason == "client"
    (started,) = rec.of(ResponseStarted)
    (done,) = rec.of(ResponseDone)
    assert started.response_id == done.response_id == response_id
    assert done.status == "cancelled" and done.cancel_reason == "client"
    assert not rec.of(ResponseAudio)


async def test_second_respond_is_refused_and_the_first_answered(services: Services) -> None:
    rec = Recorder()
    session = Session(services, rec)
    try:
        first = session.ask("What is El Nino?")
        assert session.respond() is None
        await session.wait_idle()
        assert session.cancel() is False  # nothing left to cancel
    finally:
        await session.aclose()
    refused = [(e.request, e.reason) for e in rec.of(Refused)]
    assert refused == [("respond", "response_active"), ("cancel", "no_active_response")]
    (done,) = rec.of(ResponseDone)
    assert done.response_id == first and done.status == "completed"


async def test_push_to_talk_silence_then_respond_is_refused_as_no_speech(
    services: Services,
) -> None:
    rec = Recorder()
    session = Session(services, rec, SessionSettings(turn_detection=False, auto_respond=False))
    try:
        assert session.commit_audio() is None  # nothing buffered yet
        session.feed_audio(b"\x00\x00" * 16000)
        item = session.commit_audio()
        assert session.respond() is not None  # answers the audio once it is transcribed
        await session.wait_idle()
    finally:
        await session.aclose()
    refused = [(e.request, e.reason) for e in rec.of(Refused)]
    assert refused == [("commit", "empty_input"), ("respond", "no_speech")]
    assert [e.item_id for e in rec.of(TranscriptReady)] == [item]
    assert not rec.of(ResponseStarted) and not rec.of(ResponseDone)


async def test_half_duplex_from_the_config_reaches_the_session(services: Services) -> None:
    """``[pipeline] half_duplex`` is the default of every Session built from the config."""
    config = services.config
    pipeline = dataclasses.replace(config.pipeline, half_duplex=True)
    half = dataclasses.replace(services, config=dataclasses.replace(config, pipeline=pipeline))
    session = Session(half, Recorder())
    try:
        assert session.settings.half_duplex is True
        assert SessionSettings.from_config(half.config).half_duplex is True
    finally:
        await session.aclose()
