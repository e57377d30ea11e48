"""Fixtures and client helpers: real servers on 127.0.0.1 (free port) on the real models.

Every server serves real :class:`voice.pipeline.Session` objects over the session-wide
``services`` fixture (catalog answerer, tiny.en, Piper; loaded once, loop-independent), so the
transport is tested against the pipeline it ships with, never a scripted stand-in. Starting a
:class:`Server` is cheap: a test that needs its own settings or clean metrics starts its own
(``start_server`` / ``real_server``); tests that only talk share one per module
(``module_server``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from cli.config import Config
from server.app import Server
from server.config import ServerConfig
from tests.speech import espeak_wav, read_pcm16
from voice.pipeline import Session

TOKEN = "test-token-0123456789abcdef"

StartServer = Callable[..., Awaitable[Server]]


@contextlib.asynccontextmanager
async def running(config: Config, services: Any, **settings: Any) -> AsyncIterator[Server]:
    """A started Server with ``settings`` (ServerConfig fields), stopped on exit."""
    server = Server(config, services, ServerConfig(**settings))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(config, services, **server_settings)`` -> a started Server, stopped
    after the test: for tests that need their own settings (token, limits, TLS) or metrics."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(config: Config, services: Any, **settings: Any) -> Server:
            return await stack.enter_async_context(running(config, services, **settings))

        yield start


@pytest.fixture
async def real_server(start_server: StartServer, config: Config, services: Any) -> Server:
    """A server of its own on the real offline models, default settings, fresh metrics."""
    return await start_server(config, services)


@pytest.fixture(scope="module")
async def module_server(config: Config, services: Any) -> AsyncIterator[Server]:
    """One default server shared by a module's tests that neither change server settings nor
    count metrics: each connection is its own Session anyway, and sharing saves the restarts."""
    async with running(config, services) as server:
        yield server


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def tsunami_wav(speech_dir: Path) -> Path:
    """espeak-ng asking about tsunamis, at 24 kHz (Realtime's pcm16 rate)."""
    return espeak_wav("What causes a tsunami?", speech_dir / "tsunami24k.wav", rate=24000)


def session_of(server: Server, session_id: str) -> Session:
    """The real Session behind ``session.created``'s id, to check what a session.update set.

    Reads the server's private connection set: the settings a Session runs with are not on the
    wire, and a test of the mapping must look at the Session itself.
    """
    for conn in server._connections:
        if conn.session.id == session_id:
            return conn.session
    raise LookupError(f"no live session {session_id!r}")


def link_matches(link: dict[str, Any] | None, words: tuple[str, ...]) -> bool:
    """The catalog link (``sos_link``) names one of ``words`` in its URL or title."""
    if not link:
        return False
    text = (link["url"] + " " + link["title"]).lower()
    return any(w in text for w in words)


def chunks(pcm: bytes, rate: int, ms: int = 100) -> list[bytes]:
    """``pcm`` cut into pieces of ``ms``, as a microphone would stream it."""
    step = rate * ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def append(pcm: bytes) -> str:
    """An ``input_audio_buffer.append`` event carrying ``pcm``."""
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


@contextlib.asynccontextmanager
async def client(
    server: Server, *, token: str | None = None, path: str = "/v1/realtime?model=test", **kw: Any
) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    url = server.ws_url.rsplit("/v1/realtime", 1)[0] + path
    async with connect(url, additional_headers=headers, max_size=None, **kw) as ws:
        yield ws


async def next_event(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON event (binary frames are skipped)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(message, str):
            return json.loads(message)


async def until(
    ws: ClientConnection, kind: str, timeout: float = 30.0
) -> tuple[dict[str, Any], list[dict[str, Any] | bytes]]:
    """Read until an event of type ``kind``; returns it and everything read before it."""
    seen: list[dict[str, Any] | bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            types = [m["type"] if isinstance(m, dict) else "<binary>" for m in seen]
            raise TimeoutError(f"no {kind} within {timeout} s; got {types}")
        message = await asyncio.wait_for(ws.recv(), remaining)
        event: dict[str, Any] | bytes = json.loads(message) if isinstance(message, str) else message
        if isinstance(event, dict) and event.get("type") == kind:
            return event, seen
        seen.append(event)


def ask(text: str) -> list[str]:
    """The two client events of a typed question."""
    item = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }
    return [json.dumps(item), json.dumps({"type": "response.create"})]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; returns its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return condition()


def transcript_of(events: list[dict[str, Any] | bytes]) -> str:
    """The answer text a client assembled from its ``response.audio_transcript.delta`` events."""
    return "".join(
        e["delta"]
        for e in events
        if isinstance(e, dict) and e["type"] == "response.audio_transcript.delta"
    )


async def typed_client(server: Server, question: str, timeout: float = 60.0) -> dict[str, Any]:
    """Connect, ask ``question`` typed; returns ``response`` (of response.done) and
    ``first_audio_s``. Any error event fails."""
    async with client(server) as ws:
        await next_event(ws)
        start = asyncio.get_running_loop().time()
        for message in ask(question):
            await ws.send(message)
        first_audio = None
        while True:
            event = await next_event(ws, timeout=timeout)
            if event["type"] == "response.audio.delta" and first_audio is None:
                first_audio = asyncio.get_running_loop().time() - start
            if event["type"] == "error":
                raise AssertionError(f"{question}: {event}")
            if event["type"] == "response.done":
                return {"response": event["response"], "first_audio_s": first_audio}


async def spoken_client(server: Server, wav: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Connect, stream ``wav`` (24 kHz) as JSON appends, server VAD ends the turn; returns
    ``response``, ``transcript`` and ``first_audio_s``. Any error event fails."""
    pcm, rate = read_pcm16(wav)
    assert rate == 24000, f"{wav.name}: JSON audio is at Realtime's 24 kHz, not {rate} Hz"
    async with client(server) as ws:
        await next_event(ws)
        for piece in chunks(pcm, rate):
            await ws.send(append(piece))
        start = asyncio.get_running_loop().time()
        transcript, first_audio = "", None
        while True:
            event = await next_event(ws, timeout=timeout)
            if event["type"].endswith("transcription.completed"):
                transcript = event["transcript"]
            if event["type"] == "response.audio.delta" and first_audio is None:
                first_audio = asyncio.get_running_loop().time() - start
            if event["type"] == "error":
                raise AssertionError(f"{wav.name}: {event}")
            if event["type"] == "response.done":
                return {
                    "response": event["response"],
                    "transcript": transcript,
                    "first_audio_s": first_audio,
                }
