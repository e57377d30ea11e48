"""The server's protocol, security and flow control, against the real Session and models.

Everything the server decides by itself (shapes and order of events, errors, auth, origins,
limits, backpressure, cancellation, health) checked on the pipeline it ships with: real typed
answers from the catalog answerer, real Piper audio (22,050 Hz, tens of seconds per answer,
plenty to fill a small send queue), real espeak-ng speech through the real VAD and tiny.en.
Tests that only talk share one server (``module_server``); a test that changes server settings
or counts metrics starts its own. The SDK, binary-path and 20-client flows are in
test_realtime.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cli.config import Config
from server.app import Server
from settings import ConfigError
from tests.server.conftest import (
    TOKEN,
    StartServer,
    append,
    ask,
    chunks,
    client,
    eventually,
    link_matches,
    next_event,
    session_of,
    spoken_client,
    transcript_of,
    typed_client,
    until,
)
from tests.speech import read_pcm16

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

HURRICANE_WORDS = ("hurrican", "tropical", "cyclone", "storm")
# A question whose answer runs several sentences (about 20 s of speech): a response that is
# certainly still being synthesized when the first audio reaches the client.
LONG_QUESTION = "Tell me about the history of tsunamis, how they form and where they strike."


def types_of(events: list[dict[str, Any] | bytes]) -> list[str]:
    return [e["type"] if isinstance(e, dict) else "<binary>" for e in events]


async def test_typed_question_gets_the_realtime_event_sequence(module_server: Server) -> None:
    async with client(module_server) as ws:
        created = await next_event(ws)
        assert created["type"] == "session.created"
        assert created["session"]["input_audio_format"] == "pcm16"
        assert created["session"]["turn_detection"]["type"] == "server_vad"
        for message in ask("What causes a tsunami?"):
            await ws.send(message)
        done, seen = await until(ws, "response.done")
    types = types_of(seen)
    assert types[:5] == [
        "conversation.item.created",
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
    ]
    assert "error" not in types, seen
    # The deltas add up to the final answer, and it is about what was asked.
    text = transcript_of(seen)
    assert text.strip() == done["response"]["output"][0]["content"][0]["transcript"]
    assert "tsunami" in text.lower() and len(text) > 40
    audio = b"".join(
        base64.b64decode(e["delta"])
        for e in seen
        if isinstance(e, dict) and e["type"] == "response.audio.delta"
    )
    assert len(audio) / 2 / 24000 > 1.0  # seconds of speech at Realtime's 24 kHz
    for closing in ("response.audio.done", "response.audio_transcript.done"):
        assert closing in types
    assert done["response"]["status"] == "completed"
    assert "tsunami" in done["response"]["sos_link"]["url"]
    assert set(done["response"]["sos_timings_ms"]) >= {"first_text", "first_audio", "done"}


async def test_push_to_talk_commit_then_response_create(
    module_server: Server, tsunami_wav: Path
) -> None:
    pcm, rate = read_pcm16(tsunami_wav)
    assert rate == 24000
    async with client(module_server) as ws:
        await next_event(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        updated = await next_event(ws)
        assert updated["type"] == "session.updated" and updated["session"]["turn_detection"] is None
        for piece in chunks(pcm, rate):
            await ws.send(append(piece))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await ws.send(json.dumps({"type": "response.create"}))  # before the transcript exists
        done, seen = await until(ws, "response.done", timeout=60)
    types = types_of(seen)
    assert "error" not in types, seen
    assert "input_audio_buffer.speech_started" not in types  # push-to-talk: no server VAD
    heard = types.index("conversation.item.input_audio_transcription.completed")
    assert types.index("input_audio_buffer.committed") < heard < types.index("response.created")
    assert "tsunami" in seen[heard]["transcript"].lower()  # type: ignore[index]
    assert done["response"]["status"] == "completed"
    assert link_matches(done["response"]["sos_link"], ("tsunami",))


async def test_bad_input_gets_errors_and_the_session_goes_on(
    module_server: Server, tsunami_wav: Path
) -> None:
    """Each bad message gets its error; the bad client then gets its answer, and a good
    client speaking at the same time never notices."""
    good = asyncio.create_task(spoken_client(module_server, tsunami_wav))
    cases: list[tuple[Any, str]] = [
        ("{oops", "invalid_json"),
        (json.dumps({"type": "nope", "event_id": "c1"}), "unknown_event_type"),
        (b"\x01\x02\x03", "invalid_audio"),
        (b"\x00" * (module_server.settings.max_message_bytes + 2), "message_too_large"),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "event_id": "c2",
                    "session": {"input_audio_format": "g711_ulaw"},
                }
            ),
            "unsupported_audio_format",
        ),
        (
            json.dumps({"type": "session.update", "session": {"output_audio_format": "g711_alaw"}}),
            "unsupported_audio_format",
        ),
        (
            json.dumps({"type": "session.update", "session": {"showing": "zzqx nonsense"}}),
            "unknown_dataset",
        ),
        (json.dumps({"type": "response.cancel"}), "response_cancel_not_active"),
        (json.dumps({"type": "response.create"}), "nothing_to_answer"),
    ]
    async with client(module_server) as bad:
        await next_event(bad)
        for message, code in cases:
            await bad.send(message)
            event = await next_event(bad)
            assert event["type"] == "error", event
            assert event["error"]["code"] == code
            if isinstance(message, str) and '"event_id": "c' in message:
                assert event["error"]["event_id"] == json.loads(message)["event_id"]
        for message in ask("Where do hurricanes form?"):
            await bad.send(message)
        done, seen = await until(bad, "response.done")
        assert "error" not in types_of(seen), seen
        assert done["response"]["status"] == "completed"
        assert link_matches(done["response"]["sos_link"], HURRICANE_WORDS)
    # A token the loopback server does not need is harmless.
    async with client(module_server, token="not-needed-but-harmless-0123") as also_fine:
        assert (await next_event(also_fine))["type"] == "session.created"
    result = await asyncio.wait_for(good, 120)
    assert "tsunami" in result["transcript"].lower()
    assert result["response"]["status"] == "completed"
    assert link_matches(result["response"]["sos_link"], ("tsunami",))


async def test_showing_resolves_against_the_catalog(module_server: Server) -> None:
    async with client(module_server) as ws:
        created = await next_event(ws)
        await ws.send(
            json.dumps({"type": "session.update", "session": {"showing": "tsunami locations"}})
        )
        updated = await next_event(ws)
        assert "tsunami-locations" in updated["session"]["showing"]["url"]
        session = session_of(module_server, created["session"]["id"])
        assert session.settings.showing is not None
        assert session.settings.showing.url == updated["session"]["showing"]["url"]


async def test_token_header_subprotocol_and_rejections(
    start_server: StartServer, config: Config, services: Any
) -> None:
    server = await start_server(config, services, token=TOKEN)
    for token in (None, "wrong-token-0123456789"):
        async with client(server, token=token) as ws:
            error = await next_event(ws)
            assert error["error"]["code"] == "invalid_api_key"
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1008 and "token" in info.value.rcvd.reason
    async with client(server, token=TOKEN) as ws:
        assert (await next_event(ws))["type"] == "session.created"
    protocols = ["realtime", f"openai-insecure-api-key.{TOKEN}"]
    async with client(server, subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        assert (await next_event(ws))["type"] == "session.created"
    assert server.metrics.rejected["invalid_api_key"] == 2


async def test_no_token_refused_off_loopback(config: Config, services: Any) -> None:
    server = Server(config, services, config.server)
    with pytest.raises(ConfigError, match="without a token"):
        await server.start("0.0.0.0", 0)


async def test_origin_checked(module_server: Server) -> None:
    async with client(module_server, origin="https://evil.example") as ws:  # type: ignore[arg-type]
        assert (await next_event(ws))["error"]["code"] == "origin_not_allowed"
    own = module_server.http_url.rstrip("/")
    async with client(module_server, origin=own) as ws:  # type: ignore[arg-type]
        assert (await next_event(ws))["type"] == "session.created"


async def test_max_sessions_and_idle_timeout(
    start_server: StartServer, config: Config, services: Any
) -> None:
    server = await start_server(config, services, max_sessions=2, idle_timeout_s=0.5)
    async with client(server) as a, client(server) as b:
        await next_event(a)
        await next_event(b)
        async with client(server) as c:
            assert (await next_event(c))["error"]["code"] == "server_full"
            with pytest.raises(ConnectionClosed) as info:
                await c.recv()
            assert info.value.rcvd.code == 1013
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(a.recv(), 5)
        assert info.value.rcvd.code == 1001 and "idle" in info.value.rcvd.reason
    assert await eventually(lambda: server.metrics.closed["idle"] >= 1)


def raw_client(server: Server) -> socket.socket:
    """A WebSocket client on a bare socket that will never read a byte.

    Its receive buffer is tiny and its MSS is Ethernet's: on loopback's 64 KiB segments the
    server's kernel would size its send buffer at megabytes and soak up whole answers, where on
    a real network it holds tens of kilobytes; the server's own queue must do the bounding.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            "GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def raw_send(sock: socket.socket, messages: list[str]) -> None:
    """Send text frames (masked, as a client must) on a :func:`raw_client` socket."""
    for message in messages:
        payload = message.encode()
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0"
        sock.sendall(header + payload)


async def test_client_that_never_reads_is_dropped_with_bounded_memory(
    start_server: StartServer, config: Config, services: Any
) -> None:
    """A client that asks and never reads is dropped once 2 MiB wait for it, and its answer is
    cancelled; a client asking for the same audio at the same time, and reading it, is served.

    Piper hands over a sentence at a time (up to ~0.7 MB of base64 at 24 kHz), so the bound
    sits well above one sentence and below two unread answers (~1.7 MB each)."""
    limit = 2 << 20
    server = await start_server(config, services, send_queue_bytes=limit)
    turns = server.metrics.turns

    def dropped() -> bool:
        return server.metrics.closed["slow_client"] == 1

    sock = raw_client(server)
    try:
        raw_send(sock, ask(LONG_QUESTION))
        # Usually the first answer is produced in full, most of it still waiting for the
        # client, and the second one overflows the queue (a longer answer could do it alone).
        assert await eventually(lambda: turns["completed"] == 1 or dropped(), 60)
        first_answered = turns["completed"]
        if not dropped():
            raw_send(sock, ask("Where do hurricanes form?"))
        good = await typed_client(server, "Where do hurricanes form?")  # served meanwhile
        assert good["response"]["status"] == "completed"
        assert link_matches(good["response"]["sos_link"], HURRICANE_WORDS)
        assert await eventually(dropped, 60)
    finally:
        sock.close()
    assert server.metrics.send_queue_peak_bytes <= limit
    # The answer it was dropped in was stopped, not left running on the shared models.
    assert await eventually(lambda: turns["cancelled"] == 1, 10)
    assert turns["completed"] == first_answered + 1  # + the other client's
    assert await eventually(lambda: server.sessions == 0, 10)


async def test_client_vanishing_mid_answer_cancels_its_response(real_server: Server) -> None:
    ws = await connect(real_server.ws_url)
    await next_event(ws)
    for message in ask(LONG_QUESTION):
        await ws.send(message)
    await until(ws, "response.audio.delta", timeout=60)
    ws.transport.abort()  # no close frame: the client just vanished
    assert await eventually(lambda: real_server.metrics.turns["cancelled"] == 1, 10)
    assert real_server.metrics.turns["completed"] == 0
    assert await eventually(lambda: real_server.sessions == 0, 10)  # its Session is closed
    assert await eventually(lambda: real_server.metrics.closed["client"] == 1, 10)


async def test_response_cancel_stops_the_audio(module_server: Server) -> None:
    async with client(module_server) as ws:
        await next_event(ws)
        for message in ask(LONG_QUESTION):
            await ws.send(message)
        await until(ws, "response.audio.delta", timeout=60)
        await ws.send(json.dumps({"type": "response.cancel"}))
        done, _ = await until(ws, "response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        # Nothing of the cancelled answer follows its response.done.
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_health_metrics_and_page(real_server: Server) -> None:
    base = real_server.http_url
    status, _, body = await asyncio.to_thread(_get, base + "healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] and health["sessions"] == 0
    assert {"answerer", "stt", "tts"} <= set(health["models"])
    status, _, body = await asyncio.to_thread(_get, base + "metrics.json")
    assert status == 200 and "latency_ms" in json.loads(body)
    status, headers, body = await asyncio.to_thread(_get, base + "metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE sos_voice_sessions_active gauge" in body
    status, headers, body = await asyncio.to_thread(_get, base)
    assert status == 200 and b"<html" in body.lower()
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, _ = await asyncio.to_thread(_get, base + "..%2f..%2fetc%2fpasswd")
    assert status == 404


async def test_cancel_then_new_question_back_to_back(module_server: Server) -> None:
    async with client(module_server) as ws:
        await next_event(ws)
        for message in ask(LONG_QUESTION):
            await ws.send(message)
        await until(ws, "response.audio.delta", timeout=60)
        await ws.send(json.dumps({"type": "response.cancel"}))
        for message in ask("Where do hurricanes form?"):  # before the cancel has unwound
            await ws.send(message)
        first, _ = await until(ws, "response.done")
        assert first["response"]["status"] == "cancelled"
        _, seen = await until(ws, "response.created")
        assert "error" not in types_of(seen), seen
        second, seen = await until(ws, "response.done")
    assert "error" not in types_of(seen), seen
    assert second["response"]["status"] == "completed"
    assert "hurricane" in transcript_of(seen).lower()
    assert link_matches(second["response"]["sos_link"], HURRICANE_WORDS)


async def test_session_settings_reach_the_session(module_server: Server) -> None:
    async with client(module_server) as ws:
        created = await next_event(ws)
        update = {
            "audience": "kids",
            "instructions": "Be brief.",
            "turn_detection": {
                "type": "server_vad",
                "silence_duration_ms": 900,
                "prefix_padding_ms": 200,
                "threshold": 0.9,
                "create_response": False,
            },
        }
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        updated = await next_event(ws)
        assert updated["session"]["audience"] == "kids"
        settings = session_of(module_server, created["session"]["id"]).settings
        assert settings.audience == "kids" and settings.instructions == "Be brief."
        assert settings.vad.end_silence_ms == 900 and settings.vad.preroll_ms == 200
        assert settings.vad.aggressiveness == 3 and settings.auto_respond is False
        assert settings.turn_detection is True
        assert settings.vad.max_turn_s <= module_server.settings.max_turn_audio_s


async def test_message_far_over_the_limit_closes_with_1009(
    start_server: StartServer, config: Config, services: Any
) -> None:
    # A small limit: the client is closed while it still writes a message of a few MB at the
    # default limit, and the websockets client then fails in its own close (not the server).
    server = await start_server(config, services, max_message_bytes=65536)
    async with client(server) as ws:
        await next_event(ws)
        await ws.send(b"\x00" * (2 * server.settings.max_message_bytes + 2))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert info.value.rcvd.code == 1009


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
async def test_tls(
    start_server: StartServer, config: Config, services: Any, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = await start_server(config, services, tls_cert=str(cert), tls_key=str(key))
    assert server.ws_url.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))
    async with client(server, ssl=context) as ws:
        assert (await next_event(ws))["type"] == "session.created"
