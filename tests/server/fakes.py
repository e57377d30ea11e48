"""A scripted stand-in for voice.pipeline.Session, for fast server tests without models.

It follows the Session contract of docs/TEAM-NOTES.md closely enough to exercise the server's
protocol layer: push-to-talk commits, typed questions, responses that stream text, a link and
audio with awaits in between (so cancellation and backpressure are real), and barge-in-free
server VAD driven by the audio's loudness. The real pipeline is tested in test_realtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from llm.catalog import Catalog
from voice.config import Config, VadConfig
from voice.events import (
    ErrorEvent,
    Event,
    InputCommitted,
    ResponseAudio,
    ResponseDone,
    ResponseLink,
    ResponseStarted,
    ResponseTextDelta,
    SpeechStarted,
    SpeechStopped,
    TranscriptReady,
    TurnTimings,
)

FAKE_RATE = 22050
TSUNAMI_URL = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"


@dataclasses.dataclass(frozen=True)
class FakeSettings:
    vad: VadConfig
    barge_in: bool = True
    turn_detection: bool = True
    auto_respond: bool = True
    audience: str = "general"
    showing: Any = None
    instructions: str = ""


class FakeSynth:
    sample_rate = FAKE_RATE
    description = "fake"


class FakeServices:
    def __init__(self, config: Config, catalog: Catalog, *, answer_audio_s: float = 1.0) -> None:
        self.config = config
        self.catalog = catalog
        self.synthesizer = FakeSynth()
        self.answer_audio_s = answer_audio_s
        self.sessions: list[FakeSession] = []

    def describe(self) -> dict[str, str]:
        return {"answerer": "fake", "stt": "fake", "tts": "fake"}


class FakeSession:
    """Emits what the real Session would, on a timer instead of models."""

    def __init__(
        self, services: FakeServices, emit: Callable[[Event], None], vad: VadConfig, barge_in: bool
    ) -> None:
        self.id = f"sess_fake{len(services.sessions)}"
        self.settings = FakeSettings(vad=vad, barge_in=barge_in)
        self._services = services
        self._emit = emit
        self._buffer = bytearray()
        self._question: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._speaking = False
        self._silence = 0
        self.fed_bytes = 0
        self.cancelled = 0
        self.closed = False
        services.sessions.append(self)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def update(self, **changes: object) -> FakeSettings:
        new = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        if new.audience not in ("kids", "general", "educator"):
            raise ValueError("bad audience")
        self.settings = new
        return new

    def feed_audio(self, pcm16: bytes) -> None:
        self.fed_bytes += len(pcm16)
        self._buffer += pcm16
        if not self.settings.turn_detection:
            return
        loud = bool(len(pcm16)) and np.abs(np.frombuffer(pcm16, "<i2")).mean() > 500
        if loud and not self._speaking:
            self._speaking, self._silence = True, 0
            self._emit(SpeechStarted(audio_ms=0))
        elif self._speaking and not loud:
            self._silence += len(pcm16)
            if self._silence >= 16000 * 2 * self.settings.vad.end_silence_ms // 1000:
                self._speaking = False
                self._emit(SpeechStopped(audio_ms=0, audio=bytes(self._buffer)))
                self._turn(self.settings.auto_respond)

    def commit_audio(self) -> str | None:
        if self.settings.turn_detection:
            return None
        if not self._buffer:
            self._emit(ErrorEvent("input_audio_buffer_commit_empty", "empty"))
            return None
        return self._turn(self.settings.auto_respond)

    def _turn(self, respond: bool) -> str:
        item = f"item_{time.monotonic_ns()}"
        self._emit(InputCommitted(item_id=item, audio_ms=len(self._buffer) // 32))
        self._buffer.clear()
        self._task = asyncio.create_task(self._transcribe(item, respond))
        return item

    async def _transcribe(self, item: str, respond: bool) -> None:
        await asyncio.sleep(0.02)
        self._question = "What causes a tsunami?"
        self._emit(TranscriptReady(item_id=item, text=self._question))
        if respond:
            await self._answer("resp_auto")

    def clear_audio(self) -> None:
        self._buffer.clear()

    def add_user_text(self, text: str) -> str:
        if not text.strip():
            raise ValueError("the question is empty")
        self._question = text
        return f"item_{time.monotonic_ns()}"

    def respond(self) -> str | None:
        if self.busy:
            self._emit(ErrorEvent("conversation_already_has_active_response", "busy"))
            return None
        rid = f"resp_{time.monotonic_ns()}"
        self._task = asyncio.create_task(self._answer(rid))
        return rid

    async def _answer(self, rid: str) -> None:
        question = self._question or ""
        start = time.monotonic()
        self._emit(ResponseStarted(response_id=rid, question=question))
        status = "completed"
        text = f"You asked: {question}"
        try:
            for word in text.split():
                await asyncio.sleep(0.005)
                self._emit(ResponseTextDelta(response_id=rid, text=word + " "))
            self._emit(ResponseLink(rid, url=TSUNAMI_URL, title="Tsunami Locations"))
            t = np.arange(FAKE_RATE // 2) / FAKE_RATE
            chunk = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()  # 0.5 s
            for _ in range(round(self._services.answer_audio_s * 2)):  # like sentences
                await asyncio.sleep(0.01)
                self._emit(ResponseAudio(rid, pcm=chunk, sample_rate=FAKE_RATE))
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            self._question = None
            now = time.monotonic()
            timings = TurnTimings(speech_end=start, first_text=now, first_audio=now, done=now)
            self._emit(ResponseDone(rid, status, text, TSUNAMI_URL, "Tsunami Locations", timings))  # type: ignore[arg-type]

    def cancel(self) -> bool:
        if self.busy:
            assert self._task is not None
            self._task.cancel()
            self.cancelled += 1
            return True
        return False

    async def wait_idle(self) -> None:
        while self.busy:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        self.closed = True
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
