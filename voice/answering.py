"""One response: stream the answer, split it into speakable chunks, synthesize them in order.

The first sentence is spoken while the rest is still being generated. This is the last stage
of a turn (see :mod:`voice.turns`); it knows nothing of queues or other turns, so cancelling
it is cancelling its task: the ``finally`` below always reports one :class:`ResponseDone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable

from llm.base import AnswerEvent, AnswerRequest, Link, TextDelta
from voice.audio.speaker import AudioSink
from voice.events import (
    CancelReason,
    ErrorEvent,
    Event,
    RepromptReason,
    ResponseAudio,
    ResponseDone,
    ResponseLink,
    ResponseStarted,
    ResponseStatus,
    ResponseTextDelta,
    State,
    TurnTimings,
)
from voice.services import Services
from voice.speech_text import SentenceSplitter, speakable

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class AnswerOutcome:
    """What the answer said, for the conversation history (also when it was cut short)."""

    text: str = ""
    link: str | None = None  # the catalog page shown with it
    audio_started: bool = False
    cancel_reason: CancelReason | None = None
    spoken: list[str] = dataclasses.field(default_factory=list)  # chunks sent to speech so far


class Answering:
    """Produces one response's events; ``outcome`` is filled in as it goes."""

    def __init__(
        self,
        services: Services,
        emit: Callable[[Event], None],
        set_state: Callable[[State], None],
        output: AudioSink | None,
        session_id: str,
    ) -> None:
        self._services = services
        self._emit = emit
        self._set_state = set_state
        self._output = output
        self._session_id = session_id
        self.outcome = AnswerOutcome()

    async def run(
        self, response_id: str, request: AnswerRequest, timings: TurnTimings, *, speak: bool = True
    ) -> None:
        """Answer ``request``; on cancellation the task's CancelledError propagates after the
        ResponseDone (status ``cancelled``) has been emitted. ``speak=False``: text only, no
        speech is synthesized (a client that asked for text must not cost the others Piper)."""
        stream = self._services.answerer.stream(request)
        await self._respond(response_id, request.question, stream, timings, None, speak)

    async def reprompt(
        self,
        response_id: str,
        text: str,
        reason: RepromptReason,
        timings: TurnTimings,
        *,
        speak: bool = True,
    ) -> None:
        """Speak ``text`` (e.g. "Sorry, I didn't catch that") as a response of its own: the
        same events, audio path and cancellation as an answer, marked with ``reason``."""
        await self._respond(response_id, "", _said(text), timings, reason, speak)

    async def _respond(
        self,
        response_id: str,
        question: str,
        pieces: AsyncIterator[AnswerEvent],
        timings: TurnTimings,
        reprompt: RepromptReason | None,
        speak: bool,
    ) -> None:
        self._emit(ResponseStarted(response_id=response_id, question=question, reprompt=reprompt))
        self._set_state("thinking")
        parts: list[str] = []
        link: Link | None = None
        marks: dict[str, float] = {}
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(response_id, sentences, marks, speak))
        status: ResponseStatus = "completed"
        error: str | None = None
        try:
            splitter = SentenceSplitter(self._services.config.pipeline.first_chunk_min_chars)
            async with contextlib.aclosing(pieces) as stream:
                async for piece in stream:
                    if isinstance(piece, TextDelta) and piece.text:
                        marks.setdefault("first_text", time.monotonic())
                        parts.append(piece.text)
                        self._emit(ResponseTextDelta(response_id=response_id, text=piece.text))
                        for chunk in splitter.feed(piece.text):
                            marks.setdefault("first_sentence", time.monotonic())
                            sentences.put_nowait(chunk)
                    elif isinstance(piece, Link) and link is None:
                        link = piece
                        self._emit(ResponseLink(response_id, url=piece.url, title=piece.title))
            for chunk in splitter.flush():
                marks.setdefault("first_sentence", time.monotonic())
                sentences.put_nowait(chunk)
            sentences.put_nowait(None)
            await speaker
            if self._output is not None:
                await self._output.drain()
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:  # the answerer or TTS failed: this turn ends, the session lives
            log.exception("session %s: response %s failed", self._session_id, response_id)
            status, error = "failed", str(exc) or type(exc).__name__
            self._emit(ErrorEvent(code="response_failed", message=f"the answer failed: {error}"))
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await speaker
            if status != "completed" and self._output is not None:
                self._output.stop()
            self.outcome.text = "".join(parts).strip()
            self.outcome.link = link.url if link else None
            final = dataclasses.replace(
                timings,
                first_text=marks.get("first_text"),
                first_sentence=marks.get("first_sentence"),
                first_audio=marks.get("first_audio"),
                done=time.monotonic(),
            )
            log.info(
                "session %s turn %s %s: %s",
                self._session_id,
                response_id,
                status,
                final.latencies_ms(),
            )
            self._emit(
                ResponseDone(
                    response_id=response_id,
                    status=status,
                    text=self.outcome.text,
                    link=link.url if link else None,
                    link_title=link.title if link else None,
                    timings=final,
                    error=error,
                    cancel_reason=self.outcome.cancel_reason if status == "cancelled" else None,
                    reprompt=reprompt,
                )
            )

    async def _speak(
        self,
        response_id: str,
        sentences: asyncio.Queue[str | None],
        marks: dict[str, float],
        speak: bool,
    ) -> None:
        """Synthesize chunks in order as they arrive; Piper yields audio per sentence."""
        loop = asyncio.get_running_loop()
        synth = self._services.synthesizer
        while (chunk := await sentences.get()) is not None:
            spoken = speakable(chunk)
            if not spoken or not speak:
                continue
            audio_iter = synth.synthesize(spoken)
            self.outcome.spoken.append(spoken)
            while True:
                pcm = await loop.run_in_executor(
                    self._services.tts_executor, next, audio_iter, None
                )
                if pcm is None:
                    break
                marks.setdefault("first_audio", time.monotonic())
                self.outcome.audio_started = True
                self._set_state("speaking")
                self._emit(
                    ResponseAudio(
                        response_id, pcm=pcm, sample_rate=synth.sample_rate, sentence=spoken
                    )
                )
                if self._output is not None:
                    await self._output.write(pcm, synth.sample_rate)


async def _said(text: str) -> AsyncIterator[AnswerEvent]:
    """A fixed reply as an answer stream."""
    yield TextDelta(text)
