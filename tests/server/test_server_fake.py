"""The server's protocol, security and flow control against scripted sessions (no models).

Fast and deterministic: everything the server decides by itself (shapes and order of events,
errors, auth, limits, backpressure, cancellation) without waiting on Whisper or Piper. The same
flows on the real models are in test_realtime.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from llm.catalog import Catalog
from tests.server.conftest import (
    TOKEN,
    StartServer,
    ask,
    client,
    eventually,
    next_event,
    until,
)
from tests.server.fakes import FakeServices
from voice.config import Config, ConfigError
from voice.server.app import Server

pytestmark = pytest.mark.asyncio(loop_scope="session")


def tone(seconds: float, rate: int, loud: bool = True) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 300 * t) * (9000 if loud else 0)).astype("<i2").tobytes()


async def test_typed_question_gets_the_realtime_event_sequence(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        created = await next_event(ws)
        assert created["type"] == "session.created"
        assert created["session"]["input_audio_format"] == "pcm16"
        assert created["session"]["turn_detection"]["type"] == "server_vad"
        for message in ask("What causes a tsunami?"):
            await ws.send(message)
        done, seen = await until(ws, "response.done")
        types = [e["type"] for e in seen if isinstance(e, dict)]
        assert types[:5] == [
            "conversation.item.created",
            "response.created",
            "response.output_item.added",
            "conversation.item.created",
            "response.content_part.added",
        ]
        text = "".join(e["delta"] for e in seen if e["type"] == "response.audio_transcript.delta")
        assert text.strip() == "You asked: What causes a tsunami?"
        assert any(e["type"] == "response.audio.delta" for e in seen)
        assert done["response"]["status"] == "completed"
        assert "tsunami" in done["response"]["sos_link"]["url"]
        assert set(done["response"]["sos_timings_ms"]) >= {"first_audio", "done"}


async def test_push_to_talk_commit_then_response_create(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        await next_event(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        updated = await next_event(ws)
        assert updated["type"] == "session.updated" and updated["session"]["turn_detection"] is None
        audio = base64.b64encode(tone(0.5, 24000)).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        await ws.send(json.dumps({"type": "response.create"}))  # before the transcript exists
        _, seen = await until(ws, "response.done")
        types = [e["type"] for e in seen if isinstance(e, dict)]
        assert "error" not in types, seen
        assert types.index("conversation.item.input_audio_transcription.completed") < types.index(
            "response.created"
        )
        session = fake_server.services.sessions[-1]
        assert session.fed_bytes == pytest.approx(16000, abs=64)  # 0.5 s at 24 kHz -> 16 kHz


async def test_binary_audio_in_and_out(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        await next_event(ws)
        update = {
            "sos_binary_audio": True,
            "sos_binary_input_sample_rate": 16000,
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
        }
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        assert (await next_event(ws))["session"]["sos_binary_audio"] is True
        for pcm in (tone(0.6, 16000), tone(0.4, 16000, loud=False)):
            for i in range(0, len(pcm), 640):
                await ws.send(pcm[i : i + 640])
        done, seen = await until(ws, "response.done")
        types = [e["type"] if isinstance(e, dict) else "binary" for e in seen]
        assert types[0] == "input_audio_buffer.speech_started"
        assert "input_audio_buffer.speech_stopped" in types and "binary" in types
        assert "response.audio.delta" not in types
        audio = b"".join(e for e in seen if isinstance(e, bytes))
        assert len(audio) == 2 * 22050  # 1 s at the voice's own rate
        assert done["response"]["status"] == "completed"


async def test_bad_input_gets_errors_and_the_session_goes_on(fake_server: Server) -> None:
    async with client(fake_server) as bad, client(fake_server) as good:
        await next_event(bad)
        await next_event(good)
        for message in ask("Where do hurricanes form?"):
            await good.send(message)
        cases: list[tuple[Any, str]] = [
            ("{oops", "invalid_json"),
            (json.dumps({"type": "nope", "event_id": "c1"}), "unknown_event_type"),
            (b"\x01\x02\x03", "invalid_audio"),
            (b"\x00" * (fake_server.settings.max_message_bytes + 2), "message_too_large"),
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
                json.dumps({"type": "session.update", "session": {"showing": "zzqx nonsense"}}),
                "unknown_dataset",
            ),
            (json.dumps({"type": "response.cancel"}), "response_cancel_not_active"),
            (json.dumps({"type": "response.create"}), "nothing_to_answer"),
        ]
        for message, code in cases:
            await bad.send(message)
            event = await next_event(bad)
            assert event["type"] == "error", event
            assert event["error"]["code"] == code
            if isinstance(message, str) and '"event_id": "c' in message:
                assert event["error"]["event_id"] == json.loads(message)["event_id"]
        for message in ask("What causes a tsunami?"):
            await bad.send(message)
        done, _ = await until(bad, "response.done")
        assert done["response"]["status"] == "completed"
        done, _ = await until(good, "response.done")
        assert done["response"]["status"] == "completed"


async def test_showing_resolves_against_the_catalog(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        await next_event(ws)
        await ws.send(
            json.dumps({"type": "session.update", "session": {"showing": "tsunami locations"}})
        )
        updated = await next_event(ws)
        assert "tsunami-locations" in updated["session"]["showing"]["url"]
        session = fake_server.services.sessions[-1]
        assert session.settings.showing.url == updated["session"]["showing"]["url"]


async def test_token_header_subprotocol_and_rejections(
    start_server: StartServer, config: Config, catalog: Catalog
) -> None:
    server = await start_server(config, FakeServices(config, catalog), fake=True, token=TOKEN)
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


async def test_no_token_refused_off_loopback(config: Config, catalog: Catalog) -> None:
    server = Server(config, FakeServices(config, catalog))
    with pytest.raises(ConfigError, match="without a token"):
        await server.start("0.0.0.0", 0)


async def test_origin_checked(fake_server: Server) -> None:
    async with client(fake_server, origin="https://evil.example") as ws:  # type: ignore[arg-type]
        assert (await next_event(ws))["error"]["code"] == "origin_not_allowed"
    own = fake_server.http_url.rstrip("/")
    async with client(fake_server, origin=own) as ws:  # type: ignore[arg-type]
        assert (await next_event(ws))["type"] == "session.created"


async def test_max_sessions_and_idle_timeout(
    start_server: StartServer, config: Config, catalog: Catalog
) -> None:
    server = await start_server(
        config, FakeServices(config, catalog), fake=True, max_sessions=2, idle_timeout_s=0.5
    )
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


async def test_client_that_never_reads_is_dropped_with_bounded_memory(
    start_server: StartServer, config: Config, catalog: Catalog
) -> None:
    services = FakeServices(config, catalog, answer_audio_s=120.0)  # ~7 MB of base64 audio
    limit = 256 * 1024
    server = await start_server(config, services, fake=True, send_queue_bytes=limit)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel buffers little
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            "GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    for message in ask("What causes a tsunami?"):
        payload = message.encode()
        mask = b"\x00\x00\x00\x00"
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask
        sock.sendall(header + payload)
    async with client(server) as good:  # another client is served meanwhile
        await next_event(good)
        for message in ask("Where do hurricanes form?"):
            await good.send(message)
        await until(good, "response.done")
    assert await eventually(lambda: server.metrics.closed["slow_client"] == 1, 20)
    sock.close()
    assert server.metrics.send_queue_peak_bytes <= limit
    assert services.sessions[0].cancelled >= 1  # its answer was stopped, not left running


async def test_client_vanishing_mid_answer_cancels_its_response(fake_server: Server) -> None:
    fake_server.services.answer_audio_s = 30.0
    ws = await connect(fake_server.ws_url)
    await next_event(ws)
    for message in ask("What causes a tsunami?"):
        await ws.send(message)
    await until(ws, "response.audio.delta")
    ws.transport.abort()  # no close frame: the client just vanished
    session = fake_server.services.sessions[-1]
    assert await eventually(lambda: session.closed, 5)
    assert session.cancelled == 1 and session.closed
    assert fake_server.metrics.turns["cancelled"] == 1


async def test_response_cancel_stops_the_audio(fake_server: Server) -> None:
    fake_server.services.answer_audio_s = 30.0
    async with client(fake_server) as ws:
        await next_event(ws)
        for message in ask("What causes a tsunami?"):
            await ws.send(message)
        await until(ws, "response.audio.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        done, _ = await until(ws, "response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_health_metrics_and_page(fake_server: Server) -> None:
    base = fake_server.http_url
    status, _, body = await asyncio.to_thread(_get, base + "healthz")
    health = json.loads(body)
    assert status == 200 and health["ok"] and health["sessions"] == 0 and health["models"]
    status, _, body = await asyncio.to_thread(_get, base + "metrics")
    assert status == 200 and "latency_ms" in json.loads(body)
    status, headers, body = await asyncio.to_thread(_get, base)
    assert status == 200 and b"<html" in body.lower()
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, _ = await asyncio.to_thread(_get, base + "..%2f..%2fetc%2fpasswd")
    assert status == 404


async def test_cancel_then_new_question_back_to_back(fake_server: Server) -> None:
    fake_server.services.answer_audio_s = 30.0
    async with client(fake_server) as ws:
        await next_event(ws)
        for message in ask("What causes a tsunami?"):
            await ws.send(message)
        await until(ws, "response.audio.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        for message in ask("Where do hurricanes form?"):  # before the cancel has unwound
            await ws.send(message)
        first, _ = await until(ws, "response.done")
        assert first["response"]["status"] == "cancelled"
        _, seen = await until(ws, "response.created")
        assert not any(isinstance(e, dict) and e["type"] == "error" for e in seen), seen
        second, seen = await until(ws, "response.done")
        text = "".join(e["delta"] for e in seen if e["type"] == "response.audio_transcript.delta")
        assert "hurricanes" in text and second["response"]["status"] == "completed"


async def test_session_settings_reach_the_session(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        await next_event(ws)
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
        settings = fake_server.services.sessions[-1].settings
        assert settings.audience == "kids" and settings.instructions == "Be brief."
        assert settings.vad.end_silence_ms == 900 and settings.vad.preroll_ms == 200
        assert settings.vad.aggressiveness == 3 and settings.auto_respond is False
        assert settings.vad.max_turn_s <= fake_server.settings.max_turn_audio_s


async def test_message_far_over_the_limit_closes_with_1009(fake_server: Server) -> None:
    async with client(fake_server) as ws:
        await next_event(ws)
        await ws.send(b"\x00" * (2 * fake_server.settings.max_message_bytes + 2))
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert info.value.rcvd.code == 1009


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
async def test_tls(
    start_server: StartServer, config: Config, catalog: Catalog, tmp_path: Path
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
    server = await start_server(
        config, FakeServices(config, catalog), fake=True, tls_cert=str(cert), tls_key=str(key)
    )
    assert server.ws_url.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))
    async with client(server, ssl=context) as ws:
        assert (await next_event(ws))["type"] == "session.created"
