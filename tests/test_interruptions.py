"""A barge-in pauses a kiosk's answer; the interrupting turn's words decide what follows.

Real parts throughout: Piper's answer audio heard back by tiny.en is the kiosk's echo, espeak-ng
is the visitor (a question, a hum, an "oh, wow"), and the answer plays on a real PortAudio
stream into the private PulseAudio server of tests/test_microphone.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from tests.speech import espeak_wav, read_pcm16
from tests.test_microphone import VirtualAudio, until, virtual_audio  # noqa: F401 (fixture)
from tests.test_voice_loop import Recorder
from voice.audio.resample import resample_pcm16
from voice.audio.speaker import PausableSink, SpeakerSink
from voice.events import (
    AnswerResumed,
    Interrupted,
    ResponseAudio,
    ResponseDone,
    TranscriptReady,
)
from voice.interruptions import judge
from voice.pipeline import Session
from voice.services import Services

ANSWER = (
    "Hurricanes form over warm tropical water. They need ocean temperatures of at least "
    "twenty six degrees Celsius."
)
LONG_ANSWER = "Tell me about hurricanes and how they form."
VISITOR = "What causes a tsunami?"
SILENCE_16K = b"\x00\x00" * 16000


# --------------------------------------------------------------------------- the judge alone
@pytest.mark.parametrize(
    ("heard", "verdict"),
    [
        ("", "nothing"),
        ("  ...  ", "nothing"),
        ("hurricane's form over one water", "echo"),  # the leak, misheard a little
        ("They need ocean temperatures.", "echo"),
        ("What causes a tsunami?", "visitor"),  # shares no stretch with the answer
        ("Wait, what about volcanoes?", "visitor"),
        ("Stop.", "visitor"),
        ("What is sea surface temperature?", "visitor"),  # shares "temperature" only
        ("Mm-hmm.", "backchannel"),  # a listener, not a new turn
        ("Oh, wow.", "backchannel"),
        ("Okay, cool.", "backchannel"),
        ("Okay, stop.", "visitor"),
        ("Yeah, but why?", "visitor"),
    ],
)
def test_judge(heard: str, verdict: str) -> None:
    assert judge(heard, ANSWER) == verdict


def test_a_long_stretch_without_words_is_a_visitor_whisper_could_not_hear() -> None:
    assert judge("", ANSWER, speech_ms=500) == "nothing"
    assert judge("", ANSWER, speech_ms=1500) == "visitor"


def test_with_nothing_said_words_are_a_visitor() -> None:
    assert judge("They need ocean temperatures.", "") == "visitor"


@pytest.mark.slow
def test_the_kiosk_heard_back_is_echo_and_a_visitor_is_not(
    services: Services, tmp_path: Path
) -> None:
    """Piper's own answer, heard by tiny.en, is the answer's words; an espeak visitor is not."""
    synth = services.synthesizer
    pcm = b"".join(synth.synthesize(ANSWER))
    echo = resample_pcm16(pcm, synth.sample_rate, 16000)
    heard_echo = services.transcriber.transcribe(SILENCE_16K[:9600] + echo + SILENCE_16K)
    assert heard_echo.strip()
    assert judge(heard_echo, ANSWER) == "echo", heard_echo
    visitor, _ = read_pcm16(espeak_wav(VISITOR, tmp_path / "v.wav", lead_s=0.3, trail_s=1.0))
    heard_visitor = services.transcriber.transcribe(visitor)
    assert judge(heard_visitor, ANSWER) == "visitor", heard_visitor


# --------------------------------------------------------------------------- the speaker
async def test_a_paused_speaker_keeps_its_audio_and_plays_it_on_resume(
    virtual_audio: VirtualAudio,  # noqa: F811
    tmp_path: Path,
) -> None:
    pcm, _ = read_pcm16(espeak_wav(LONG_ANSWER, tmp_path / "l.wav", lead_s=0.0, trail_s=0.0))
    total_s = len(pcm) / 2 / 16000
    sink = SpeakerSink(virtual_audio.device, stall_timeout_s=0.5)
    assert isinstance(sink, PausableSink)
    try:
        await sink.write(pcm, 16000)
        await until(lambda: sink.played_s >= 0.5)
        sink.pause()
        draining = asyncio.create_task(sink.drain())
        at_pause = sink.played_s
        await asyncio.sleep(1.5)  # three stall timeouts: paused is waiting, not stalled
        assert not draining.done()
        assert sink.played_s - at_pause < 0.1  # at most the block in flight at the pause
        sink.resume()
        await asyncio.wait_for(draining, 30)
        assert sink.played_s >= total_s * 0.98  # nothing was lost while it waited
        sink.pause()
        sink.stop()  # a barge-in ends a pause: the next answer must be heard
        assert not sink.paused
    finally:
        await sink.aclose()


# --------------------------------------------------------------------------- a whole session
def _first_sentence_16k(rec: Recorder) -> bytes:
    """What the kiosk has said of its first sentence, at 16 kHz: its own echo."""
    chunks = rec.of(ResponseAudio)
    first = [c for c in chunks if c.sentence == chunks[0].sentence]
    pcm = b"".join(c.pcm for c in first)
    return resample_pcm16(pcm, chunks[0].sample_rate, 16000)


async def _speaking(rec: Recorder, sink: SpeakerSink, after_s: float) -> None:
    start = sink.played_s
    await until(lambda: bool(rec.of(ResponseAudio)) and sink.played_s > start + after_s, 60)


@pytest.mark.slow
async def test_an_answer_goes_on_after_its_echo_a_hum_and_an_oh_wow_and_stops_for_a_visitor(
    services: Services,
    virtual_audio: VirtualAudio,  # noqa: F811
    tmp_path: Path,
) -> None:
    sink = SpeakerSink(virtual_audio.device)
    rec = Recorder()
    session = Session(services, rec, output=sink)
    session.update(barge_in=True, half_duplex=False)

    def spoken(text: str, name: str) -> bytes:
        return read_pcm16(espeak_wav(text, tmp_path / name, lead_s=0.3, trail_s=1.0))[0]

    # A hum the guards reject (tiny.en hears nothing in espeak's "Hmm." for three voices).
    hum, wow, visitor = spoken("Hmm.", "h.wav"), spoken("Oh, wow.", "w.wav"), spoken(VISITOR, "v")
    try:
        # 1. The kiosk hears its own first sentence while it talks: paused, then it goes on.
        session.ask(LONG_ANSWER)
        await _speaking(rec, sink, 1.0)
        session.feed_audio(SILENCE_16K[:9600] + _first_sentence_16k(rec) + SILENCE_16K)
        await until(lambda: len(rec.of(AnswerResumed)) == 1, 30)
        # 2. A hum (voice to the VAD, no words to Whisper), 3. a listener's "oh, wow".
        for n, sound in enumerate([hum, wow], 2):
            assert session.busy and not rec.of(ResponseDone)  # still answering
            session.feed_audio(sound)
            await until(lambda n=n: len(rec.of(AnswerResumed)) == n, 30)
        echo, nothing, backchannel = rec.of(AnswerResumed)
        assert echo.reason == "echo" and echo.heard, echo
        assert nothing.reason == "nothing" and not nothing.heard, nothing
        assert backchannel.reason == "backchannel" and "wow" in backchannel.heard.lower()
        (first,) = await _done(rec, 1)
        assert first.status == "completed", first  # the whole answer, never cut
        assert not rec.of(Interrupted) and not rec.of(TranscriptReady)
        assert not sink.paused
        # 3. A visitor talks over the next answer: it is cut, and the visitor is answered.
        session.ask(LONG_ANSWER)
        await _speaking(rec, sink, 1.0)
        session.feed_audio(visitor)
        _, cut, answered = await _done(rec, 3)
    finally:
        await session.aclose()
        await sink.aclose()
    assert cut.status == "cancelled" and cut.cancel_reason == "barge_in", cut
    (heard,) = rec.of(TranscriptReady)
    assert "tsunami" in heard.text.lower(), heard
    assert answered.status == "completed" and "tsunami" in (answered.link or ""), answered
    assert len(rec.of(AnswerResumed)) == 3


async def _done(rec: Recorder, n: int) -> list[ResponseDone]:
    await until(lambda: len(rec.of(ResponseDone)) >= n, 120)
    return rec.of(ResponseDone)


@pytest.mark.slow
async def test_a_turn_that_can_no_longer_end_lets_the_paused_answer_go_on(
    services: Services,
    virtual_audio: VirtualAudio,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The VAD restarted (new settings) or the input was cleared while an answer waited for
    the turn that paused it: that turn will never end, so the answer must not wait for it."""
    sink = SpeakerSink(virtual_audio.device)
    rec = Recorder()
    session = Session(services, rec, output=sink)
    session.update(barge_in=True, half_duplex=False)
    speech = read_pcm16(espeak_wav(VISITOR, tmp_path / "v.wav", lead_s=0.3, trail_s=0.0))[0]
    try:
        session.ask(LONG_ANSWER)
        for n, stop_listening in enumerate(
            [
                lambda: session.update(
                    vad=dataclasses.replace(session.settings.vad, end_silence_ms=600)
                ),
                session.clear_audio,
            ],
            1,
        ):
            await _speaking(rec, sink, 1.0)
            session.feed_audio(speech)  # still talking: the turn is open, the answer paused
            assert sink.paused
            stop_listening()
            await until(lambda n=n: len(rec.of(AnswerResumed)) == n, 10)
            assert rec.of(AnswerResumed)[-1].reason == "cleared"
            assert not sink.paused
        (done,) = await _done(rec, 1)
    finally:
        await session.aclose()
        await sink.aclose()
    assert done.status == "completed", done
    assert not rec.of(TranscriptReady)
