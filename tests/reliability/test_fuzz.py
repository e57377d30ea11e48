"""Protocol fuzzing: malformed events and audio, thrown at the real server on the real models.

Hypothesis writes the clients: random JSON (any shape, wrong types), Realtime event names
with random or half-plausible payloads, base64 that is not base64 or not whole samples, binary
frames of odd and oversized lengths, invalid UTF-8 in text frames, real speech frames so that
turns really start, and random orders of commit / clear / response.create / response.cancel.
Each client ends by closing, by vanishing, or by waiting for what the server says.

What must hold, whatever the client sent: every server event is well-formed JSON with a type
(errors with a code and a message); the server logs no unexpected exception; once the clients
are gone /healthz counts zero sessions; and a well-behaved client is still answered.

The server runs in its own thread and event loop (as in production, apart from the clients),
so each Hypothesis example can be a plain ``asyncio.run`` of one client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from server.app import Server
from server.config import ServerConfig
from tests.reliability.conftest import SPOKEN, ErrorLog, typed_question
from voice.services import Services

pytestmark = pytest.mark.slow

MAX_MESSAGE = 16_384  # small, so oversized frames are cheap to make
EXAMPLES = int(os.environ.get("SOS_FUZZ_EXAMPLES", "60"))
CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "transcription_session.update",
    "output_audio_buffer.clear",
)


# --------------------------------------------------------------------------- the server
class ThreadedServer:
    """The real Server on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, services: Services, **settings: Any) -> None:
        self._services = services
        self._settings = ServerConfig(serve_web=False, **settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server")
        self.server: Server | None = None

    def __enter__(self) -> ThreadedServer:
        self._thread.start()

        async def start() -> Server:
            server = Server(self._services.config, self._services, self._settings)
            await server.start("127.0.0.1", 0)
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.server is not None:
                asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self.loop.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def alive(self) -> bool:
        return self._thread.is_alive() and self.loop.is_running()

    def health(self) -> dict[str, Any]:
        """GET /healthz, as a load balancer would."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def fuzz_server(services: Services) -> Iterator[ThreadedServer]:
    with ThreadedServer(services, max_message_bytes=MAX_MESSAGE, max_sessions=8) as server:
        yield server


@pytest.fixture(scope="module")
def speech_frames(spoken_16k: dict[str, bytes]) -> list[bytes]:
    """A real question in frames small enough to pass the message limit."""
    pcm = spoken_16k[SPOKEN[0]]
    return [pcm[i : i + 8000] for i in range(0, len(pcm), 8000)]


@pytest.fixture
def logged_errors() -> Iterator[ErrorLog]:
    """ERROR records from the service's own code (server, pipeline, answerer) in any thread."""
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ("voice", "llm")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


# --------------------------------------------------------------------------- strategies
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
odd_pcm = st.binary(min_size=1, max_size=600).filter(lambda b: len(b) % 2 == 1)
base64_audio = st.one_of(
    st.binary(max_size=1200).map(lambda b: base64.b64encode(b).decode()),
    odd_pcm.map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=40),  # not base64
    json_values,  # not a string at all
)
turn_detection = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["server_vad", "semantic_vad", "none", ""])},
        optional={
            "threshold": st.floats(allow_nan=True) | json_values,
            "silence_duration_ms": st.integers(-100, 20_000) | json_values,
            "prefix_padding_ms": st.integers(-100, 5_000),
            "create_response": st.booleans() | json_values,
            "interrupt_response": st.booleans(),
            "eagerness": st.text(max_size=8),
        },
    ),
)
session_object = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "turn_detection": turn_detection,
            "input_audio_sample_rate": st.integers(-1, 200_000) | json_values,
            "output_audio_sample_rate": st.integers(0, 200_000),
            "sos_binary_audio": st.booleans() | json_values,
            "sos_binary_input_sample_rate": st.integers(1, 96_000),
            "audience": st.sampled_from(["kids", "general", "educator", "aliens"]) | json_values,
            "showing": st.one_of(st.none(), st.text(max_size=40), st.just("tsunami"), json_values),
            "instructions": st.text(max_size=60) | json_values,
            "modalities": st.lists(st.sampled_from(["text", "audio", "video"]), max_size=3),
            "voice": st.text(max_size=20) | json_values,
            "input_audio_format": st.sampled_from(["pcm16", "g711_ulaw", "opus"]) | json_values,
            "tools": json_values,
            "temperature": json_values,
        },
    ),
)
item_object = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["message", "function_call", ""]),
            "role": st.sampled_from(["user", "assistant", "system"]) | json_values,
            "content": st.one_of(
                json_values,
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(["input_text", "text", "input_audio"]),
                            "text": st.text(max_size=80) | json_values,
                        }
                    ),
                    max_size=3,
                ),
            ),
        }
    ),
)


@st.composite
def client_event(draw: st.DrawFn) -> str:
    """A JSON text message: an event name the server knows (or not) with a random payload."""
    event: dict[str, Any] = {"type": draw(st.sampled_from(CLIENT_EVENTS) | json_values)}
    kind = event["type"]
    if draw(st.booleans()):
        event["event_id"] = draw(st.text(max_size=10) | json_values)
    if kind == "session.update":
        event["session"] = draw(session_object)
    elif kind == "input_audio_buffer.append":
        event["audio"] = draw(base64_audio)
    elif kind == "conversation.item.create":
        event["item"] = draw(item_object)
    elif kind in ("response.cancel", "conversation.item.truncate"):
        for name in ("response_id", "item_id", "content_index", "audio_end_ms"):
            if draw(st.booleans()):
                event[name] = draw(json_values)
    else:
        event.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    return json.dumps(event, allow_nan=True)


valid_session = st.fixed_dictionaries(
    {},
    optional={
        "turn_detection": st.none()
        | st.fixed_dictionaries(
            {"type": st.just("server_vad")},
            optional={
                "silence_duration_ms": st.integers(100, 1500),
                "threshold": st.floats(0.0, 1.0),
                "create_response": st.booleans(),
                "interrupt_response": st.booleans(),
            },
        ),
        "sos_binary_audio": st.booleans(),
        "sos_binary_input_sample_rate": st.sampled_from([8000, 16000, 22050, 44100, 48000]),
        "input_audio_sample_rate": st.sampled_from([16000, 24000]),
        "audience": st.sampled_from(["kids", "general", "educator"]),
        "modalities": st.sampled_from([["text", "audio"], ["text"]]),
        "instructions": st.text(max_size=40),
        "showing": st.none() | st.just("tsunami"),
    },
).map(lambda session: json.dumps({"type": "session.update", "session": session}))
bare_events = st.sampled_from(
    ["input_audio_buffer.commit", "input_audio_buffer.clear", "response.create", "response.cancel"]
).map(lambda kind: json.dumps({"type": kind}))


@dataclass(frozen=True)
class Ask:
    """A well-formed typed question (item + response.create) in the middle of the noise."""

    text: str


@dataclass(frozen=True)
class RawText:
    """A text frame with arbitrary bytes (invalid UTF-8 included)."""

    data: bytes


@dataclass(frozen=True)
class Speech:
    """The next frames of a real spoken question."""

    frames: int


message = st.one_of(
    client_event(),
    client_event(),
    st.text(max_size=200),  # not JSON, or JSON that is not an object
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.binary(max_size=2000),  # raw PCM of any length (odd, empty)
    st.integers(MAX_MESSAGE - 2, 2 * MAX_MESSAGE + 4).map(lambda n: b"\x01" * n),  # oversized
    st.binary(min_size=1, max_size=40).map(RawText),
    st.integers(1, 24).map(Speech),
    valid_session,
    bare_events,
    st.sampled_from(["What causes a tsunami?", "What is Mars like?", "  ", "x" * 3000]).map(Ask),
)
scripts = st.tuples(
    st.lists(message, min_size=1, max_size=10),
    st.sampled_from(["close", "abort", "listen"]),
)


# --------------------------------------------------------------------------- one client
async def play(port: int, script: list[Any], ending: str, speech: list[bytes]) -> list[Any]:
    """Send the script; return every JSON event the server sent (checked for shape)."""
    received: list[Any] = []
    speech_at = 0

    async def reader(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if isinstance(raw, str):
                    received.append(json.loads(raw))

    async with connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None, open_timeout=20) as ws:
        task = asyncio.create_task(reader(ws))
        try:
            for item in script:
                if isinstance(item, Speech):
                    chunk = speech[speech_at : speech_at + item.frames]
                    speech_at += item.frames
                    for frame in chunk:
                        await ws.send(frame)
                elif isinstance(item, RawText):
                    await ws.send(item.data, text=True)
                elif isinstance(item, Ask):
                    for text in typed_question(item.text):
                        await ws.send(text)
                else:
                    await ws.send(item)
            if ending == "listen":
                await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(0.05)
        except ConnectionClosed:
            pass  # the server may close on an invalid frame (1007) or a huge one (1009)
        finally:
            if ending == "abort":
                ws.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
    return received


def check_events(events: list[Any]) -> None:
    for event in events:
        assert isinstance(event, dict) and isinstance(event.get("type"), str), event
        assert isinstance(event.get("event_id"), str), event
        if event["type"] == "error":
            error = event["error"]
            assert isinstance(error.get("code"), str) and error["code"], event
            assert isinstance(error.get("message"), str) and error["message"], event


async def good_client(port: int) -> dict[str, Any]:
    async with connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        for text in typed_question("Where do hurricanes form?"):
            await ws.send(text)
        while True:
            raw = await asyncio.wait_for(ws.recv(), 120)
            if isinstance(raw, str) and (event := json.loads(raw))["type"] == "response.done":
                return event["response"]


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


# --------------------------------------------------------------------------- the test
def test_fuzzed_clients_never_crash_or_leak_the_server(
    fuzz_server: ThreadedServer, speech_frames: list[bytes], logged_errors: ErrorLog
) -> None:
    examples = 0
    seen: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # The same clients on every run: the coverage check below (the clients reached the
        # session and the pipeline) must not depend on a lucky draw (a CI run drew 60 clients
        # and none asked for a response).
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scripts)
    def one_client(case: tuple[list[Any], str]) -> None:
        nonlocal examples
        examples += 1
        script, ending = case
        try:
            events = asyncio.run(play(fuzz_server.port, script, ending, speech_frames))
        except InvalidMessage:
            pytest.fail("the server did not complete the WebSocket handshake")
        check_events(events)
        seen.update(e["error"]["code"] if e["type"] == "error" else e["type"] for e in events)
        assert fuzz_server.alive()
        assert not logged_errors.messages(), logged_errors.messages()
        # Sessions end asynchronously after the client goes; none may stay behind for long.
        assert wait_for(lambda: fuzz_server.health()["sessions"] == 0), fuzz_server.health()

    one_client()
    print(f"\nfuzz: {examples} clients; server said {dict(seen.most_common())}")
    assert examples >= min(EXAMPLES, 10)
    # The clients reached past the JSON parser into the session and the pipeline.
    assert {"invalid_json", "session.updated", "response.created"} <= set(seen), seen
    health = fuzz_server.health()
    assert health["ok"] and health["sessions"] == 0, health
    response = asyncio.run(good_client(fuzz_server.port))
    assert response["status"] == "completed" and response["sos_link"], response
    assert not logged_errors.messages(), logged_errors.messages()
