"""Fixtures for the reliability tests: the real models, with faults injected at their edges.

Why wrappers and not fakes: a fault test is only worth something if everything around the
fault is the code that runs at the kiosk. So the answerer and the synthesizer stay the real
ones (catalog answerer, Piper), wrapped so that they break at a chosen moment, and every other
part (VAD, Whisper, the Session, the WebSocket server) is untouched. ``with_faults`` gives a
copy of the shared :class:`voice.services.Services` whose models are wrapped; the copy shares
the loaded models and executors, so it must never be closed itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from llm.base import AnswerError, AnswerEvent, AnswerRequest, TextDelta
from server.app import Server
from server.config import ServerConfig
from tests.server.conftest import ask, until
from tests.speech import espeak_wav, read_pcm16
from tests.test_microphone import virtual_audio  # noqa: F401 (the private PulseAudio fixture)
from voice.events import Event, ResponseAudio, ResponseDone
from voice.services import Services
from voice.tts import TtsError

INJECTED = "injected fault"


# --------------------------------------------------------------------------- fault wrappers
class FaultyAnswerer:
    """The real answerer, breaking mid-stream on chosen calls.

    Call number ``n`` (1-based, counted over every question asked) raises
    :class:`llm.base.AnswerError` after ``after_deltas`` text pieces when ``n`` is in
    ``fail_calls``; every other call is the real answer, untouched.
    """

    def __init__(self, inner: Any, *, fail_calls: set[int], after_deltas: int = 2) -> None:
        self.inner = inner
        self.name = f"faulty({inner.name})"
        self.generative = inner.generative
        self.fail_calls = fail_calls
        self.after_deltas = after_deltas
        self.calls = 0

    async def stream(self, request: AnswerRequest) -> AsyncIterator[AnswerEvent]:
        self.calls += 1
        failing = self.calls in self.fail_calls
        deltas = 0
        async with contextlib.aclosing(self.inner.stream(request)) as stream:
            async for piece in stream:
                if failing and isinstance(piece, TextDelta):
                    if deltas >= self.after_deltas:
                        raise AnswerError(f"{INJECTED}: the answerer broke after {deltas} pieces")
                    deltas += 1
                yield piece

    async def aclose(self) -> None:
        """The wrapped answerer belongs to the shared Services; nothing to close here."""


class FaultySynthesizer:
    """The real Piper voice, failing on chosen sentences.

    Sentence number ``n`` (1-based, over every ``synthesize`` call) raises
    :class:`voice.tts.TtsError` instead of producing audio when ``n`` is in ``fail_sentences``.
    """

    def __init__(self, inner: Any, *, fail_sentences: set[int]) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.description = f"faulty({inner.description})"
        self.fail_sentences = fail_sentences
        self.sentences = 0

    def synthesize(self, text: str) -> Iterator[bytes]:
        self.sentences += 1
        if self.sentences in self.fail_sentences:
            raise TtsError(f"{INJECTED}: the voice failed on sentence {self.sentences}")
        yield from self.inner.synthesize(text)


def with_faults(services: Services, *, answerer: Any = None, synthesizer: Any = None) -> Services:
    """A Services sharing every loaded model, with some of them wrapped. Never aclose() it."""
    changes: dict[str, Any] = {}
    if answerer is not None:
        changes["answerer"] = answerer
    if synthesizer is not None:
        changes["synthesizer"] = synthesizer
    return dataclasses.replace(services, **changes)


# --------------------------------------------------------------------------- session helpers
class Recorder:
    """A Session's ``emit``: keeps every event, and wakes waiters on each ResponseDone."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._done = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, ResponseDone):
            self._done.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def done(self) -> list[ResponseDone]:
        return self.of(ResponseDone)

    def audio_bytes(self, response_id: str) -> int:
        return sum(len(e.pcm) for e in self.of(ResponseAudio) if e.response_id == response_id)

    async def wait_done(self, count: int, timeout: float = 120.0) -> list[ResponseDone]:
        """Until ``count`` responses have finished (whatever their status)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.done()) < count:
            self._done.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.done())} of {count} responses finished")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), remaining)
        return self.done()


# --------------------------------------------------------------------------- server helpers
@contextlib.asynccontextmanager
async def running_server(services: Any, **settings: Any) -> AsyncIterator[Server]:
    """The real Server on 127.0.0.1 (any free port) on this loop; stopped afterwards."""
    server = Server(services.config, services, ServerConfig(**{"serve_web": False, **settings}))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def ws_client(server: Server, **kw: Any) -> AsyncIterator[ClientConnection]:
    async with connect(server.ws_url, max_size=None, compression=None, **kw) as ws:
        yield ws


async def read_until(
    ws: ClientConnection, kind: str, timeout: float = 60.0
) -> tuple[dict[str, Any], list[dict[str, Any] | bytes]]:
    """The server tests' ``until`` with a soak-sized default timeout."""
    return await until(ws, kind, timeout)


# The two client events of a typed question (Realtime: item, then response.create).
typed_question = ask


def audio_append(pcm: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


async def ask_over_ws(
    server: Server, question: str, timeout: float = 90.0
) -> tuple[dict[str, Any], list[dict[str, Any] | bytes]]:
    """A well-behaved client: one typed question, read to response.done."""
    async with ws_client(server) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        for message in typed_question(question):
            await ws.send(message)
        return await read_until(ws, "response.done", timeout)


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return condition()


class ErrorLog(logging.Handler):
    """Collects ERROR records (tracebacks the server logged instead of answering cleanly)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


@pytest.fixture
def server_errors() -> Iterator[ErrorLog]:
    """ERROR log records from the server's code during the test."""
    handler = ErrorLog()
    logger = logging.getLogger("server")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# --------------------------------------------------------------------------- speech
SPOKEN = ("What causes a tsunami?", "Where do hurricanes form?", "What is El Nino?")


@pytest.fixture(scope="session")
def spoken_16k(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """espeak-ng questions as 16 kHz PCM16 with silence around them (the pipeline's rate)."""
    folder: Path = tmp_path_factory.mktemp("reliability-speech")
    out = {}
    for i, text in enumerate(SPOKEN):
        wav = espeak_wav(text, folder / f"q{i}.wav", lead_s=0.4, trail_s=1.0)
        out[text] = read_pcm16(wav)[0]
    return out
