"""The service end to end on the real offline models (catalog answerer, tiny.en, Piper joe).

Clients: the openai SDK's beta realtime client (unchanged, pointed at the server with
``websocket_base_url``), a raw binary-path client and 20 concurrent clients. Speech comes from
espeak-ng. Misbehaving clients (bad input, never reading, vanishing) and the rest of the
transport are in test_server_transport.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from cli.config import Config
from server.app import Server
from tests.server.conftest import (
    TOKEN,
    StartServer,
    chunks,
    client,
    link_matches,
    next_event,
    spoken_client,
    typed_client,
    until,
)
from tests.speech import backwards_speech, espeak_wav, read_pcm16, speech_bounds_ms

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

# (question, words one of which the catalog link must contain)
TOPICS = [
    ("What causes a tsunami?", ("tsunami",)),
    ("Where do hurricanes form?", ("hurrican", "tropical", "cyclone", "storm")),
    ("Why is the ocean getting more acidic?", ("acidi",)),
    ("How fast is the Arctic sea ice melting?", ("sea-ice", "ice")),
    ("Where do earthquakes happen?", ("earthquake", "seismic", "quake")),
    ("Where are the volcanoes on Earth?", ("volcan",)),
    ("What is happening to coral reefs?", ("coral", "reef")),
    ("What is El Nino?", ("nino", "enso")),
    ("What is the ozone hole?", ("ozone",)),
    ("How much carbon dioxide is in the air?", ("carbon", "co2")),
    ("How warm is the sea surface?", ("sea-surface", "sst", "temperature")),
    ("What is on the Moon?", ("moon", "lunar")),
    ("What is Mars like?", ("mars",)),
    ("Where do wildfires burn?", ("fire",)),
    ("How do tectonic plates move?", ("plate", "tecton")),
    ("What is Jupiter like?", ("jupiter",)),
    ("How do ocean currents move?", ("current", "circulation")),
]
# Questions tiny.en transcribes right from espeak-ng at 16 and 24 kHz (checked: "Where do
# hurricanes form?" and "What is a volcano?" come out garbled).
SPOKEN = [
    ("What causes a tsunami?", ("tsunami",)),
    ("Tell me about hurricanes.", ("hurrican", "tropical", "cyclone", "storm")),
    ("Tell me about the Moon.", ("moon", "lunar")),
]
HEARD = ("tsunami", "hurricane", "moon")  # the word each transcript must contain
# 20 clients share 2 CPU cores for Whisper and Piper here: generous, but bounded.
CONCURRENT_TIMEOUT_S = 300
# How far the VAD's speech offsets may lie from where the recording has its speech: a few 30 ms
# frames. Audio at a wrong rate would be off by a third of a second or more.
VAD_SLACK_MS = 150


def assert_speech_where_recorded(pcm: bytes, rate: int, start_ms: int, end_ms: int) -> None:
    """The server VAD's offsets (counted in 16 kHz frames after the server's resampling) match
    where the ``rate`` recording has its speech: the input rate conversion is right."""
    begin, end = speech_bounds_ms(pcm, rate)
    assert abs(start_ms - begin) <= VAD_SLACK_MS, (start_ms, begin)
    assert abs(end_ms - end) <= VAD_SLACK_MS, (end_ms, end)


@pytest.fixture(scope="module")
def spoken_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[int, Path]]:
    """Each spoken question at 24 kHz (Realtime's rate) and 16 kHz (binary default)."""
    folder = tmp_path_factory.mktemp("spoken")
    out: dict[str, dict[int, Path]] = {}
    for i, (question, _) in enumerate(SPOKEN):
        out[question] = {
            rate: espeak_wav(question, folder / f"q{i}-{rate}.wav", rate=rate, trail_s=1.0)
            for rate in (24000, 16000)
        }
    return out


async def test_openai_sdk_speech_round_trip(
    start_server: StartServer, config: Config, services: Any, tsunami_wav: Path
) -> None:
    server = await start_server(config, services, token=TOKEN)
    base = server.ws_url.rsplit("/realtime", 1)[0]  # ws://127.0.0.1:PORT/v1
    openai_client = AsyncOpenAI(api_key=TOKEN, websocket_base_url=base)
    pcm, rate = read_pcm16(tsunami_wav)
    assert rate == 24000
    async with openai_client.beta.realtime.connect(model="sos-voice") as conn:
        first = await conn.recv()
        assert first.type == "session.created"
        await conn.session.update(
            session={"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}
        )
        for piece in chunks(pcm, rate):
            await conn.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        seen: list[str] = []
        transcript, text, audio = "", "", bytearray()
        speech_ms = [-1, -1]
        start = time.monotonic()
        first_audio_s = None
        async for event in conn:
            seen.append(event.type)
            if event.type == "input_audio_buffer.speech_started":
                speech_ms[0] = event.audio_start_ms
            elif event.type == "input_audio_buffer.speech_stopped":
                speech_ms[1] = event.audio_end_ms
            elif event.type == "conversation.item.input_audio_transcription.completed":
                transcript = event.transcript
            elif event.type == "response.audio_transcript.delta":
                text += event.delta
            elif event.type == "response.audio.delta":
                first_audio_s = first_audio_s or time.monotonic() - start
                audio += base64.b64decode(event.delta)
            elif event.type == "error":
                pytest.fail(f"error event: {event.error}")
            elif event.type == "response.done":
                done = event.response
                break
    for expected in (
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.audio.done",
    ):
        assert expected in seen
    assert_speech_where_recorded(pcm, rate, *speech_ms)  # 24 kHz JSON audio -> 16 kHz
    assert "tsunami" in transcript.lower()
    assert len(text) > 40
    assert len(audio) / 2 / 24000 > 1.0  # seconds of speech at Realtime's 24 kHz
    assert done.status == "completed"
    assert link_matches(done.sos_link, ("tsunami",)), done.sos_link
    assert set(done.sos_timings_ms) >= {"transcript", "first_text", "first_audio", "done"}
    print(f"\nSDK speech: timings {done.sos_timings_ms}; first audio {first_audio_s:.2f} s")


async def test_binary_path_round_trip(
    real_server: Server, spoken_wavs: dict[str, dict[int, Path]]
) -> None:
    """Raw PCM16 frames in (16 kHz, 20 ms, as Unity sends them), raw PCM16 out at the voice's
    own rate, and nothing of it as base64 JSON."""
    pcm, rate = read_pcm16(spoken_wavs["Tell me about hurricanes."][16000])
    async with client(real_server) as ws:
        created = await next_event(ws)
        native = created["session"]["sos_binary_output_sample_rate"]
        assert native == real_server.services.synthesizer.sample_rate == 22050
        update = {
            "sos_binary_audio": True,
            "sos_binary_input_sample_rate": 16000,
            "turn_detection": {"type": "server_vad"},
        }
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        assert (await until(ws, "session.updated"))[0]["session"]["sos_binary_audio"] is True
        for piece in chunks(pcm, rate, 20):
            await ws.send(piece)
        done, seen = await until(ws, "response.done", timeout=60)
    types = [e["type"] if isinstance(e, dict) else "<binary>" for e in seen]
    events = [e for e in seen if isinstance(e, dict)]
    audio = b"".join(e for e in seen if isinstance(e, bytes))
    assert types[0] == "input_audio_buffer.speech_started"
    assert "input_audio_buffer.speech_stopped" in types and "<binary>" in types
    assert not any(e["type"] in ("error", "response.audio.delta") for e in events), events
    started = events[0]  # speech_started, checked above
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    assert_speech_where_recorded(pcm, rate, started["audio_start_ms"], stopped["audio_end_ms"])
    heard = [e for e in events if e["type"].endswith("transcription.completed")]
    assert "hurricane" in heard[0]["transcript"].lower()
    assert len(audio) % 2 == 0 and len(audio) / 2 / native > 1.0
    assert done["response"]["status"] == "completed"
    assert link_matches(done["response"]["sos_link"], SPOKEN[1][1])


async def test_a_turn_with_no_words_gets_a_spoken_reprompt_marked_in_metadata(
    real_server: Server, tmp_path: Path
) -> None:
    """Server VAD hears a turn Whisper finds no words in: the client gets a normal response
    saying "Sorry, I didn't catch that" out loud, with metadata that says it is a reprompt."""
    wav = backwards_speech("What causes a tsunami?", tmp_path / "m.wav", rate=24000)
    result = await spoken_client(real_server, wav)
    response = result["response"]
    assert result["transcript"] == ""
    assert response["status"] == "completed"
    assert response["metadata"] == {"sos_voice_reprompt": "no_speech"}
    (content,) = response["output"][0]["content"]
    assert content["transcript"] == real_server.config.pipeline.reprompt
    assert result["first_audio_s"] is not None


async def test_twenty_concurrent_clients_each_get_their_own_answer(
    real_server: Server, spoken_wavs: dict[str, dict[int, Path]]
) -> None:
    typed = [typed_client(real_server, q, CONCURRENT_TIMEOUT_S) for q, _ in TOPICS]
    spoken = [
        spoken_client(real_server, spoken_wavs[q][24000], CONCURRENT_TIMEOUT_S) for q, _ in SPOKEN
    ]
    started = time.monotonic()
    results = await asyncio.gather(*typed, *spoken)
    wall = time.monotonic() - started
    assert len(results) == 20
    wrong = []
    for (question, words), result in zip([*TOPICS, *SPOKEN], results, strict=True):
        response = result["response"]
        assert response["status"] == "completed", question
        transcript = response["output"][0]["content"][0]["transcript"]
        if not link_matches(response["sos_link"], words):
            heard = result.get("transcript", "(typed)")
            wrong.append((question, heard, transcript[:120], response["sos_link"]))
        assert len(transcript) > 20, question
    assert not wrong, wrong
    for word, result in zip(HEARD, results[len(TOPICS) :], strict=True):
        assert word in result["transcript"].lower()
    firsts = sorted(r["first_audio_s"] for r in results)
    print(
        f"\n20 clients: wall {wall:.1f} s; first audio p50 {firsts[9]:.2f} s, "
        f"max {firsts[-1]:.2f} s; server metrics {real_server.metrics.latency_summary()}"
    )
    assert real_server.metrics.turns["completed"] == 20
