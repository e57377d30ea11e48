"""The service end to end on the real offline models (catalog answerer, tiny.en, Piper joe).

Clients: the openai SDK's beta realtime client (unchanged, pointed at the server with
``websocket_base_url``), a raw binary-path client, 20 concurrent clients, and misbehaving
clients next to a well-behaved one. Speech comes from espeak-ng.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.server.conftest import (
    TOKEN,
    StartServer,
    ask,
    client,
    eventually,
    next_event,
    until,
)
from tests.speech import espeak_wav, read_pcm16
from voice.config import Config
from voice.server.app import Server

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


def link_matches(link: dict[str, Any] | None, words: tuple[str, ...]) -> bool:
    if not link:
        return False
    text = (link["url"] + " " + link["title"]).lower()
    return any(w in text for w in words)


def chunks(pcm: bytes, rate: int, ms: int = 100) -> list[bytes]:
    step = rate * ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


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
        start = time.monotonic()
        first_audio_s = None
        async for event in conn:
            seen.append(event.type)
            if event.type == "conversation.item.input_audio_transcription.completed":
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
    pcm, rate = read_pcm16(spoken_wavs["Tell me about hurricanes."][16000])
    async with client(real_server) as ws:
        created = await next_event(ws)
        native = created["session"]["sos_binary_output_sample_rate"]
        update = {"sos_binary_audio": True, "turn_detection": {"type": "server_vad"}}
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        await until(ws, "session.updated")
        for piece in chunks(pcm, rate, 20):
            await ws.send(piece)
        done, seen = await until(ws, "response.done", timeout=60)
    events = [e for e in seen if isinstance(e, dict)]
    audio = b"".join(e for e in seen if isinstance(e, bytes))
    assert not any(e["type"] in ("error", "response.audio.delta") for e in events), events
    heard = [e for e in events if e["type"].endswith("transcription.completed")]
    assert "hurricane" in heard[0]["transcript"].lower()
    assert len(audio) / 2 / native > 1.0
    assert done["response"]["status"] == "completed"
    assert link_matches(done["response"]["sos_link"], SPOKEN[1][1])


async def _typed_client(server: Server, question: str) -> dict[str, Any]:
    async with client(server) as ws:
        await next_event(ws)
        start = time.monotonic()
        for message in ask(question):
            await ws.send(message)
        first_audio = None
        while True:
            event = await next_event(ws, timeout=CONCURRENT_TIMEOUT_S)
            if event["type"] == "response.audio.delta" and first_audio is None:
                first_audio = time.monotonic() - start
            if event["type"] == "error":
                raise AssertionError(f"{question}: {event}")
            if event["type"] == "response.done":
                return {"response": event["response"], "first_audio_s": first_audio}


async def _spoken_client(server: Server, wav: Path) -> dict[str, Any]:
    pcm, rate = read_pcm16(wav)
    async with client(server) as ws:
        await next_event(ws)
        for piece in chunks(pcm, rate):
            await ws.send(
                json.dumps(
                    {"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()}
                )
            )
        start = time.monotonic()
        transcript, first_audio = "", None
        while True:
            event = await next_event(ws, timeout=CONCURRENT_TIMEOUT_S)
            if event["type"].endswith("transcription.completed"):
                transcript = event["transcript"]
            if event["type"] == "response.audio.delta" and first_audio is None:
                first_audio = time.monotonic() - start
            if event["type"] == "error":
                raise AssertionError(f"{wav.name}: {event}")
            if event["type"] == "response.done":
                return {
                    "response": event["response"],
                    "transcript": transcript,
                    "first_audio_s": first_audio,
                }


async def test_twenty_concurrent_clients_each_get_their_own_answer(
    real_server: Server, spoken_wavs: dict[str, dict[int, Path]]
) -> None:
    typed = [_typed_client(real_server, q) for q, _ in TOPICS]
    spoken = [_spoken_client(real_server, spoken_wavs[q][24000]) for q, _ in SPOKEN]
    started = time.monotonic()
    results = await asyncio.gather(*typed, *spoken)
    wall = time.monotonic() - started
    assert len(results) == 20
    wrong = []
    for (question, words), result in zip([*TOPICS, *SPOKEN], results, strict=True):
        response = result["response"]
        assert response["status"] == "completed", question
        if not link_matches(response["sos_link"], words):
            wrong.append((question, response["sos_link"]))
        transcript = response["output"][0]["content"][0]["transcript"]
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


async def test_bad_clients_do_not_disturb_a_good_one(
    real_server: Server, spoken_wavs: dict[str, dict[int, Path]]
) -> None:
    good = asyncio.create_task(
        _spoken_client(real_server, spoken_wavs["What causes a tsunami?"][24000])
    )
    async with client(real_server) as bad:
        await next_event(bad)
        for message, code in [
            ("{oops", "invalid_json"),
            (json.dumps({"type": "nope"}), "unknown_event_type"),
            (b"\x01\x02\x03", "invalid_audio"),
            (b"\x00" * (real_server.settings.max_message_bytes + 2), "message_too_large"),
            (
                json.dumps(
                    {"type": "session.update", "session": {"output_audio_format": "g711_alaw"}}
                ),
                "unsupported_audio_format",
            ),
        ]:
            await bad.send(message)
            event = await next_event(bad)
            assert event["type"] == "error" and event["error"]["code"] == code
    async with client(real_server, token="not-needed-but-harmless-0123") as also_fine:
        assert (await next_event(also_fine))["type"] == "session.created"
    result = await asyncio.wait_for(good, 120)
    assert "tsunami" in result["transcript"].lower()
    assert link_matches(result["response"]["sos_link"], ("tsunami",))


async def test_non_reading_client_is_dropped_and_its_answer_cancelled(
    start_server: StartServer, config: Config, services: Any
) -> None:
    limit = 65536
    server = await start_server(config, services, send_queue_bytes=limit)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            "GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    question = "Tell me about the history of tsunamis, how they form and where they strike."
    for message in ask(question):
        payload = message.encode()
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0"
        sock.sendall(header + payload)
    try:
        assert await eventually(lambda: server.metrics.closed["slow_client"] == 1, 60)
    finally:
        sock.close()
    assert server.metrics.send_queue_peak_bytes <= limit
    assert await eventually(lambda: server.metrics.turns["cancelled"] == 1, 10)
    assert server.metrics.turns["completed"] == 0
    print(f"\nnon-reading client: dropped, queue peak {server.metrics.send_queue_peak_bytes} B")


async def test_client_vanishing_mid_answer_frees_the_models(real_server: Server) -> None:
    from websockets.asyncio.client import connect

    ws = await connect(real_server.ws_url)
    await next_event(ws)
    for message in ask("Tell me everything about hurricanes and how they form."):
        await ws.send(message)
    await until(ws, "response.audio.delta", timeout=60)
    ws.transport.abort()
    assert await eventually(lambda: real_server.metrics.turns["cancelled"] == 1, 10)
    assert real_server.metrics.turns["completed"] == 0
    assert await eventually(lambda: real_server.sessions == 0, 10)
