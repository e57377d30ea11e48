"""Faults at the edges of the real pipeline: each ends its turn with a clear error, and the
service answers the next question.

The answerer breaking mid-stream and Piper failing on one sentence are injected by wrapping the
real models (see conftest); the client vanishing is a real socket abort; the sound device
disappearing is a private PulseAudio server frozen with SIGSTOP (as in tests/test_microphone.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.reliability.conftest import (
    INJECTED,
    FaultyAnswerer,
    FaultySynthesizer,
    Recorder,
    ask_over_ws,
    audio_append,
    eventually,
    read_until,
    running_server,
    typed_question,
    with_faults,
    ws_client,
)
from voice.events import ErrorEvent, ResponseAudio, ResponseDone, ResponseTextDelta
from voice.pipeline import Session
from voice.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

QUESTION = "What causes a tsunami?"
NEXT_QUESTION = "Where do hurricanes form?"


def assert_answered(done: ResponseDone) -> None:
    assert done.status == "completed", done.error
    assert done.text and done.link and done.error is None


# --------------------------------------------------------------------------- answerer
async def test_answerer_raising_mid_stream_fails_that_turn_only(services: Services) -> None:
    answerer = FaultyAnswerer(services.answerer, fail_calls={1}, after_deltas=2)
    rec = Recorder()
    session = Session(with_faults(services, answerer=answerer), rec)
    try:
        session.ask(QUESTION)
        (failed,) = await rec.wait_done(1)
        session.ask(NEXT_QUESTION)
        _, answered = await rec.wait_done(2)
    finally:
        await session.aclose()
    assert failed.status == "failed"
    assert failed.error is not None and INJECTED in failed.error
    errors = rec.of(ErrorEvent)
    assert [e.code for e in errors] == ["response_failed"]
    assert INJECTED in errors[0].message
    # What was said before the fault was shown; nothing was invented after it.
    deltas = [e for e in rec.of(ResponseTextDelta) if e.response_id == failed.response_id]
    assert len(deltas) == 2
    assert_answered(answered)
    assert rec.audio_bytes(answered.response_id) > 0
    assert session.state == "listening"


async def test_answerer_raising_over_websocket_is_an_error_event(services: Services) -> None:
    answerer = FaultyAnswerer(services.answerer, fail_calls={1}, after_deltas=1)
    async with running_server(with_faults(services, answerer=answerer)) as server:
        async with ws_client(server) as ws:
            await read_until(ws, "session.created")
            for message in typed_question(QUESTION):
                await ws.send(message)
            done, seen = await read_until(ws, "response.done")
            assert done["response"]["status"] == "failed"
            errors = [e for e in seen if isinstance(e, dict) and e["type"] == "error"]
            assert errors and INJECTED in errors[0]["error"]["message"]
            for message in typed_question(NEXT_QUESTION):  # same connection goes on
                await ws.send(message)
            done, _ = await read_until(ws, "response.done")
            assert done["response"]["status"] == "completed"
            assert done["response"]["sos_link"]
        assert await eventually(lambda: server.sessions == 0)


# --------------------------------------------------------------------------- TTS
async def test_tts_failing_on_one_sentence_fails_that_turn_only(services: Services) -> None:
    synth = FaultySynthesizer(services.synthesizer, fail_sentences={2})
    rec = Recorder()
    session = Session(with_faults(services, synthesizer=synth), rec)
    try:
        session.ask(QUESTION)
        (failed,) = await rec.wait_done(1)
        session.ask(NEXT_QUESTION)
        _, answered = await rec.wait_done(2)
    finally:
        await session.aclose()
    assert failed.status == "failed"
    assert failed.error is not None and INJECTED in failed.error
    assert [e.code for e in rec.of(ErrorEvent)] == ["response_failed"]
    # The first sentence was spoken before the second one failed.
    first_audio = [e for e in rec.of(ResponseAudio) if e.response_id == failed.response_id]
    assert first_audio and {e.sentence for e in first_audio} == {first_audio[0].sentence}
    assert failed.link is not None  # the link was still shown
    assert_answered(answered)
    assert rec.audio_bytes(answered.response_id) > 0


async def test_tts_failing_on_the_first_sentence_gives_no_audio_and_an_error(
    services: Services,
) -> None:
    synth = FaultySynthesizer(services.synthesizer, fail_sentences={1})
    rec = Recorder()
    session = Session(with_faults(services, synthesizer=synth), rec)
    try:
        session.ask(QUESTION)
        (failed,) = await rec.wait_done(1)
        session.ask(NEXT_QUESTION)
        _, answered = await rec.wait_done(2)
    finally:
        await session.aclose()
    assert failed.status == "failed" and INJECTED in (failed.error or "")
    assert failed.timings.first_audio is None
    assert rec.audio_bytes(failed.response_id) == 0
    assert_answered(answered)


# --------------------------------------------------------------------------- clients
async def test_clients_vanishing_at_any_point_free_their_sessions(
    services: Services, spoken_16k: dict[str, bytes], server_errors: Any
) -> None:
    """Abort the socket right after connecting, mid-utterance, while transcribing and
    mid-answer; the server cancels their work, forgets them, and answers the next client."""
    pcm = spoken_16k[QUESTION]
    async with running_server(services) as server:

        async def connected(ws: Any) -> None:
            await read_until(ws, "session.created")

        async def mid_utterance(ws: Any) -> None:
            await connected(ws)
            half = len(pcm) // 2 // 2 * 2
            for i in range(0, half, 3200):
                await ws.send(pcm[i : i + 3200])
            await read_until(ws, "input_audio_buffer.speech_started")

        async def transcribing(ws: Any) -> None:
            await connected(ws)
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i : i + 3200])
            await read_until(ws, "input_audio_buffer.committed")

        async def mid_answer(ws: Any) -> None:
            await connected(ws)
            for message in typed_question("Tell me everything about hurricanes."):
                await ws.send(message)
            await read_until(ws, "response.audio.delta")

        for stage in (connected, mid_utterance, transcribing, mid_answer):
            async with ws_client(server) as ws:
                await stage(ws)
                ws.transport.abort()
            assert await eventually(lambda: server.sessions == 0), stage.__name__
        assert await eventually(lambda: server.metrics.turns["completed"] == 0)
        done, _ = await ask_over_ws(server, NEXT_QUESTION)
        assert done["response"]["status"] == "completed"
        assert server.metrics.turns["completed"] == 1
    assert not server_errors.messages()


async def test_client_sending_json_audio_then_vanishing_mid_append(
    services: Services, spoken_16k: dict[str, bytes]
) -> None:
    """A base64 client that dies between appends leaves nothing behind."""
    pcm = spoken_16k[NEXT_QUESTION]
    async with running_server(services) as server:
        async with ws_client(server) as ws:
            await read_until(ws, "session.created")
            update = {"input_audio_sample_rate": 16000}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            await read_until(ws, "session.updated")
            for i in range(0, len(pcm) // 3 // 2 * 2, 4800):
                await ws.send(audio_append(pcm[i : i + 4800]))
            await asyncio.sleep(0.05)
            ws.transport.abort()
        assert await eventually(lambda: server.sessions == 0)
        done, _ = await ask_over_ws(server, QUESTION)
        assert done["response"]["status"] == "completed"
