"""Fixtures: real servers on 127.0.0.1 with a free port, with the real models or a fake Session.

``start_server`` starts a server on the test's own event loop and stops it afterwards; the
real models come from the session-wide ``services`` fixture (loaded once, loop-independent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from llm.catalog import Catalog
from tests.server.fakes import FakeServices, FakeSession
from tests.speech import espeak_wav
from voice.config import Config
from voice.server.app import Server
from voice.server.config import ServerConfig

TOKEN = "test-token-0123456789abcdef"

StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(config, services, **server_settings)`` -> a started Server."""
    started: list[Server] = []

    async def start(config: Config, services: Any, *, fake: bool = False, **settings: Any):
        server = Server(
            config,
            services,
            ServerConfig(**settings),
            session_factory=FakeSession if fake else None,  # type: ignore[arg-type]
        )
        await server.start("127.0.0.1", 0)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def fake_server(
    start_server: StartServer, config: Config, catalog: Catalog
) -> AsyncIterator[Server]:
    """A server whose sessions are scripted fakes (no models): fast protocol tests."""
    yield await start_server(config, FakeServices(config, catalog), fake=True)


@pytest.fixture
async def real_server(start_server: StartServer, config: Config, services: Any) -> Server:
    """A server on the real offline models (catalog answerer, tiny.en, Piper joe)."""
    return await start_server(config, services)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def tsunami_wav(speech_dir: Path) -> Path:
    """espeak-ng asking about tsunamis, at 24 kHz (Realtime's pcm16 rate)."""
    return espeak_wav("What causes a tsunami?", speech_dir / "tsunami24k.wav", rate=24000)


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
