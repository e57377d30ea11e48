"""The sound device disappears mid-conversation: a clear error for that turn, and the service
goes on once the device is back.

The device is a private PulseAudio server with a null sink (the fixture from
tests/test_microphone.py, which skips where PulseAudio is missing); freezing it with SIGSTOP
is what an unplugged USB speaker or a hung sound server looks like to PortAudio: the stream
stays open and no audio moves.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest
from rapidfuzz import fuzz

from tests.reliability.conftest import Recorder, eventually
from tests.speech import espeak_wav
from tests.test_microphone import SINK, VirtualAudio
from voice.audio.devices import AudioDeviceError
from voice.audio.microphone import MicrophoneSource
from voice.audio.speaker import SpeakerSink
from voice.events import ErrorEvent, ResponseAudio, ResponseDone, TranscriptReady
from voice.pipeline import Session
from voice.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

QUESTION = "What causes a tsunami?"


def _similarity(expected: str, heard: str) -> float:
    """Character similarity (0-100) of two sentences, ignoring case and punctuation."""

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())

    return fuzz.ratio(norm(expected), norm(heard))


async def _freeze_speaker_mid_answer(
    session: Session, rec: Recorder, sink: SpeakerSink, audio: VirtualAudio
) -> ResponseDone:
    """Ask, let the answer start playing, freeze the sound server until the turn ends."""
    session.ask("Tell me about hurricanes and how they form.")
    assert await eventually(lambda: sink.played_s > 0.3, 60)
    os.kill(audio.server_pid, signal.SIGSTOP)
    try:
        (failed,) = await rec.wait_done(1, timeout=90)
    finally:
        os.kill(audio.server_pid, signal.SIGCONT)
    return failed


async def test_speaker_vanishing_mid_answer_is_a_clear_error_for_that_turn(
    services: Services, virtual_audio: VirtualAudio
) -> None:
    sink = SpeakerSink(virtual_audio.device, stall_timeout_s=1.0)
    rec = Recorder()
    session = Session(services, rec, output=sink)
    try:
        failed = await _freeze_speaker_mid_answer(session, rec, sink, virtual_audio)
        assert failed.status == "failed"
        assert failed.error and "stopped playing" in failed.error
        assert "sos-voice --list-devices" in failed.error
        assert failed.text and failed.link  # the answer and its link were still shown
        assert [e.code for e in rec.of(ErrorEvent)] == ["response_failed"]
        # The session itself goes on: the next question gets its answer and link.
        session.ask(QUESTION)
        _, second = await rec.wait_done(2, timeout=90)
        assert second.text and second.link
        assert session.state == "listening"
    finally:
        await session.aclose()
        await sink.aclose()


async def test_speaker_plays_again_once_the_device_is_back(
    services: Services, virtual_audio: VirtualAudio
) -> None:
    sink = SpeakerSink(virtual_audio.device, stall_timeout_s=1.0)
    rec = Recorder()
    session = Session(services, rec, output=sink)
    try:
        await _freeze_speaker_mid_answer(session, rec, sink, virtual_audio)
        await asyncio.sleep(1.0)  # the sound server is running again
        session.ask(QUESTION)
        _, answered = await rec.wait_done(2, timeout=90)
    finally:
        await session.aclose()
        await sink.aclose()
    assert answered.status == "completed", answered.error
    assert any(e.response_id == answered.response_id for e in rec.of(ResponseAudio))


async def _play(audio: VirtualAudio, wav: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "paplay", f"--device={SINK}", str(wav), env=audio.env
    )
    assert await proc.wait() == 0


async def _listen(mic: MicrophoneSource, session: Session) -> None:
    """The kiosk loop: every microphone frame into the session."""
    async for frame in mic.frames():
        session.feed_audio(frame)


async def test_microphone_vanishing_is_a_clear_error_and_the_session_goes_on(
    services: Services, virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    wav = espeak_wav(QUESTION, tmp_path / "q.wav", lead_s=0.3, trail_s=1.2)
    rec = Recorder()
    session = Session(services, rec)
    frozen = False
    try:
        async with MicrophoneSource(virtual_audio.device, stall_timeout_s=1.0) as mic:
            listening = asyncio.create_task(_listen(mic, session))
            await _play(virtual_audio, wav)
            (first,) = await rec.wait_done(1, timeout=90)
            assert first.status == "completed", first.error
            os.kill(virtual_audio.server_pid, signal.SIGSTOP)
            frozen = True
            with pytest.raises(AudioDeviceError, match="delivered no audio") as err:
                await asyncio.wait_for(listening, 30)
            assert "sos-voice --list-devices" in str(err.value)
            # Without a microphone the session still answers (typed questions, the server).
            session.ask("Where do hurricanes form?")
            _, typed = await rec.wait_done(2, timeout=90)
            assert typed.status == "completed", typed.error
            # The device comes back before the microphone is closed: closing it while the
            # sound server is still hung blocks the event loop for 60 s in PortAudio's abort
            # (reported; not what this test is about).
            os.kill(virtual_audio.server_pid, signal.SIGCONT)
            frozen = False
        # The device is back: a reopened microphone hears the next question.
        async with MicrophoneSource(virtual_audio.device, stall_timeout_s=1.0) as mic:
            listening = asyncio.create_task(_listen(mic, session))
            try:
                await _play(virtual_audio, wav)
                *_, spoken = await rec.wait_done(3, timeout=90)
            finally:
                listening.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await listening
        assert spoken.status == "completed", spoken.error
    finally:
        if frozen:
            os.kill(virtual_audio.server_pid, signal.SIGCONT)
        await session.aclose()
    heard = [e.text for e in rec.of(TranscriptReady)]
    # Both microphones heard the question. tiny.en's ear on espeak-ng through the sound
    # server varies per run ("a tsunamis", "us to army"), so this compares characters, not
    # one word: the question scores ~75-100, another question or noise scores under 45.
    assert len(heard) == 2 and all(_similarity(QUESTION, h) >= 65 for h in heard), heard
