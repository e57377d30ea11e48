"""One conversation: audio frames in, events and speech out.

A :class:`Session` is the whole voice loop for one visitor (one kiosk microphone or one
WebSocket connection). Audio is cut into frames and run through the VAD right on the event
loop (microseconds per frame); each finished turn goes through a per-session queue to a worker
that transcribes it, streams the answer, splits it into speakable chunks and synthesizes them,
so the first sentence is spoken while the rest is still being generated. Every blocking model
call runs on the shared executors in :class:`voice.services.Services`.

Turns are handled one at a time per session, in order. Barge-in (speech while the assistant is
busy) cancels the turn in flight at the VAD frame that detects it; a cancelled turn that had not
produced any audio yet is carried into the next one, because a visitor who pauses mid-question
and goes on is still asking the same question.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from catalog.datasets import CatalogEntry
from llm.base import AnswerRequest, Audience, ChatMessage, Link, TextDelta
from voice.audio import SAMPLE_RATE, AudioSink, Framer
from voice.config import VadConfig
from voice.events import (
    ErrorEvent,
    Event,
    InputCommitted,
    ResponseAudio,
    ResponseDone,
    ResponseLink,
    ResponseStarted,
    ResponseStatus,
    ResponseTextDelta,
    SpeechStarted,
    SpeechStopped,
    State,
    StatusChanged,
    TranscriptReady,
    TurnTimings,
)
from voice.exhibit import Exhibit
from voice.services import Services
from voice.speech_text import SentenceSplitter, speakable
from voice.vad import Endpointer

log = logging.getLogger(__name__)

AUDIENCES: tuple[Audience, ...] = ("kids", "general", "educator")
MAX_QUESTION_CHARS = 2000
BYTES_PER_SECOND = SAMPLE_RATE * 2


def _consume_exception(future: asyncio.Future[str]) -> None:
    """An early transcription nobody awaits must not log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class SessionSettings:
    """Per-session behaviour; the process-wide defaults come from the config."""

    vad: VadConfig = field(default_factory=VadConfig)
    turn_detection: bool = True
    barge_in: bool = True
    half_duplex: bool = False
    audience: Audience = "general"
    showing: CatalogEntry | None = None
    instructions: str = ""
    auto_respond: bool = True

    def validate(self) -> None:
        self.vad.validate()
        if self.audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {AUDIENCES}, not {self.audience!r}")
        if len(self.instructions) > 4000:
            raise ValueError("instructions are limited to 4000 characters")


@dataclass
class _Turn:
    """A unit of work for the session worker: a spoken turn, a typed question or a response."""

    item_id: str | None
    audio: bytes | None
    speech_end: float
    respond: bool
    response_id: str | None = None
    released: bool = False  # its response no longer counts as in progress (cancelled)
    early: asyncio.Future[str] | None = None  # transcript started during the end silence


class Session:
    """The voice loop for one conversation. See the module docstring for the flow."""

    def __init__(
        self,
        services: Services,
        emit: Callable[[Event], None],
        settings: SessionSettings | None = None,
        *,
        output: AudioSink | None = None,
        session_id: str | None = None,
        exhibit: Exhibit | None = None,
    ) -> None:
        cfg = services.config
        self.exhibit = exhibit  # the installation's sphere; settings.showing overrides it
        self.id = session_id or new_id("sess")
        self.settings = settings or SessionSettings(vad=cfg.vad, barge_in=cfg.pipeline.barge_in)
        self.settings.validate()
        self._services = services
        self._owner_emit = emit
        self._subscribers: list[Callable[[Event], None]] = []
        self._output = output
        self._frame_ms = cfg.audio.frame_ms
        self._framer = Framer(self._frame_ms)
        self._vad = Endpointer(self.settings.vad, self._frame_ms)
        self._ptt = bytearray()
        self._ptt_overflow = False
        self._history: list[ChatMessage] = []
        # The latest user question not yet answered. A one-element list, compared by identity:
        # a cancelled response must clear only its own question, even if the visitor types the
        # same words again right after the cancel.
        self._unanswered: list[str] | None = None
        self._carry_audio: bytes | None = None
        self._queue: asyncio.Queue[_Turn] = asyncio.Queue()
        self._pending_responses = 0  # queued or running turns that will answer
        # (turn audio, its transcription) started while the end-of-turn silence runs.
        self._early: tuple[bytes, asyncio.Future[str]] | None = None
        self.stats = {"early_stt_used": 0, "early_stt_discarded": 0}
        self._worker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._current_turn: _Turn | None = None
        self._current_audio_started = False
        self._state: State = "listening"
        self._closed = False

    # ----------------------------------------------------------------- public API
    @property
    def state(self) -> State:
        return self._state

    @property
    def busy(self) -> bool:
        """True while a turn is being transcribed, answered or spoken, or is queued."""
        return (self._current is not None and not self._current.done()) or not self._queue.empty()

    @property
    def showing(self) -> CatalogEntry | None:
        """The dataset this session's questions are about: its own override
        (``settings.showing``), else what the installation's sphere shows right now."""
        if self.settings.showing is not None or self.exhibit is None:
            return self.settings.showing
        return self.exhibit.showing

    @property
    def history(self) -> tuple[ChatMessage, ...]:
        return tuple(self._history)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Also tell ``callback`` every event, after the owner's ``emit`` (synchronously, on the
        loop). For observers that are not the transport, e.g. the curator's recorder: the
        server or CLI that created the session attaches them without wrapping ``emit``.
        Returns the function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def update(self, **changes: object) -> SessionSettings:
        """Change settings (validated; ValueError on a bad value). VAD state restarts."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(SessionSettings)}
        if unknown:
            raise ValueError(f"unknown session setting(s): {', '.join(sorted(unknown))}")
        new = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        new.validate()
        if new.vad != self.settings.vad or new.turn_detection != self.settings.turn_detection:
            self._vad = Endpointer(new.vad, self._frame_ms)
            self._ptt.clear()
        self.settings = new
        return new

    def feed_audio(self, pcm16: bytes) -> None:
        """Take microphone audio: 16 kHz mono PCM16, any length. Never blocks."""
        if self._closed:
            return
        if self.settings.half_duplex and self.busy:
            # An open speaker without echo cancellation would hear itself: ignore the mic.
            self._vad.reset()
            return
        for frame in self._framer.push(pcm16):
            if self.settings.turn_detection:
                for event in self._vad.process(frame):
                    self._on_vad(event)
                if self._services.config.pipeline.early_stt:
                    self._maybe_transcribe_early()
            else:
                self._buffer_ptt(frame)

    def end_of_audio(self) -> None:
        """The input stream ended (e.g. end of a WAV file): close any open turn."""
        tail = self._framer.flush()
        if not self.settings.turn_detection:
            if tail is not None:
                self._buffer_ptt(tail)
            return
        events = self._vad.process(tail) if tail is not None else []
        for event in [*events, *self._vad.flush()]:
            self._on_vad(event)

    def commit_audio(self) -> str | None:
        """Push-to-talk: the buffered audio is a finished turn. Returns its item id."""
        if self.settings.turn_detection:
            for event in self._vad.flush():
                self._on_vad(event)
            return None
        tail = self._framer.flush()
        if tail is not None:
            self._buffer_ptt(tail)
        if not self._ptt:
            self._error("input_audio_buffer_commit_empty", "the input audio buffer is empty")
            return None
        audio = bytes(self._ptt)
        self._ptt.clear()
        self._ptt_overflow = False
        item_id = new_id("item")
        self._emit(InputCommitted(item_id=item_id, audio_ms=len(audio) * 1000 // BYTES_PER_SECOND))
        self._enqueue(_Turn(item_id, audio, time.monotonic(), self.settings.auto_respond))
        return item_id

    def clear_audio(self) -> None:
        self._early = None
        self._ptt.clear()
        self._ptt_overflow = False
        self._framer = Framer(self._frame_ms)
        self._vad.reset()

    def add_user_text(self, text: str) -> str:
        """A typed question (ValueError if empty or too long). Returns its item id."""
        text = text.strip()
        if not text:
            raise ValueError("the question is empty")
        if len(text) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        self._unanswered = [text]
        return new_id("item")

    def respond(self) -> str | None:
        """Answer the latest user item. Returns the response id, or None (error emitted)."""
        if self._closed:
            return None
        if self._response_queued():
            self._error(
                "conversation_already_has_active_response",
                "a response is already in progress; cancel it first",
            )
            return None
        response_id = new_id("resp")
        self._enqueue(_Turn(None, None, time.monotonic(), True, response_id))
        return response_id

    def _response_queued(self) -> bool:
        """A response is being produced or waits in the queue.

        A turn that is only being transcribed (push-to-talk without auto-response) does not
        count: ``commit`` then ``response.create`` queues the answer right behind it.
        """
        return self._pending_responses > 0

    def ask(self, text: str) -> str | None:
        """A typed question answered at once (the CLI's --text and the WebSocket's typed path)."""
        self.add_user_text(text)
        return self.respond()

    def cancel(self) -> bool:
        """Cancel the turn in flight (and any queued). True if something was cancelled."""
        cancelled = False
        while not self._queue.empty():
            if self._queue.get_nowait().respond:
                self._pending_responses -= 1
            cancelled = True
        if self._current is not None and not self._current.done():
            self._current.cancel()
            cancelled = True
            turn = self._current_turn
            if turn is not None and turn.respond and not turn.released:
                # The cancelled answer is over for the client: a new response.create may
                # queue now, behind the unwinding task, instead of being refused.
                turn.released = True
                self._pending_responses -= 1
        if self._output is not None:
            self._output.stop()
        return cancelled

    async def wait_idle(self) -> None:
        """Until every queued turn is finished (or cancelled)."""
        while self.busy:
            current = self._current
            if current is not None and not current.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(current)
            else:
                await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        """Stop everything this session runs; shared models stay loaded."""
        self._closed = True
        self.cancel()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._current is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._current

    # ----------------------------------------------------------------- input side
    def _buffer_ptt(self, frame: bytes) -> None:
        limit = int(self.settings.vad.max_turn_s * BYTES_PER_SECOND)
        if len(self._ptt) + len(frame) > limit:
            if not self._ptt_overflow:
                self._ptt_overflow = True
                self._error(
                    "input_audio_buffer_too_long",
                    f"turn longer than {self.settings.vad.max_turn_s:g} s; extra audio dropped",
                )
            return
        self._ptt += frame

    def _on_vad(self, event: SpeechStarted | SpeechStopped) -> None:
        self._emit(event)
        if isinstance(event, SpeechStarted):
            if self.settings.barge_in and self.busy:
                turn = self._current_turn
                if turn is not None and turn.audio is not None and not self._current_audio_started:
                    self._carry_audio = turn.audio
                if self.cancel():
                    log.info("session %s: barge-in cancelled the answer", self.id)
            return
        audio = event.audio
        early = self._take_early(audio)
        if self._carry_audio is not None:
            gap = b"\x00\x00" * (SAMPLE_RATE // 5)
            audio = self._carry_audio + gap + audio
            self._carry_audio = None
        item_id = new_id("item")
        self._emit(InputCommitted(item_id=item_id, audio_ms=event.audio_ms))
        turn = _Turn(item_id, audio, time.monotonic(), self.settings.auto_respond)
        if audio is event.audio:  # not merged with a carried-over turn
            turn.early = early
        self._enqueue(turn)

    def _maybe_transcribe_early(self) -> None:
        """Start transcribing the turn as soon as the VAD hears it may be over.

        The end-of-turn silence (``vad.end_silence_ms``) is dead time for the visitor; running
        Whisper inside it instead of after it takes most of the transcription off the critical
        path. If the visitor goes on talking, the result is simply not used.
        """
        audio = self._vad.early_audio()
        if audio is None:
            return
        if self._early is not None:
            self.stats["early_stt_discarded"] += 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._services.stt_executor, self._services.transcriber.transcribe, audio
        )
        future.add_done_callback(_consume_exception)
        self._early = (audio, future)

    def _take_early(self, audio: bytes) -> asyncio.Future[str] | None:
        """The early transcription if it was of exactly this turn's audio."""
        early, self._early = self._early, None
        if early is None:
            return None
        if early[0] == audio:
            self.stats["early_stt_used"] += 1
            return early[1]
        self.stats["early_stt_discarded"] += 1
        return None

    def _enqueue(self, turn: _Turn) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run_turns())
        if turn.respond:
            self._pending_responses += 1
        self._queue.put_nowait(turn)

    async def _run_turns(self) -> None:
        while not self._closed:
            turn = await self._queue.get()
            self._current_turn = turn
            self._current_audio_started = False
            self._current = asyncio.create_task(self._process(turn))
            try:
                await asyncio.wait({self._current})
            finally:
                self._current_turn = None
                if turn.respond and not turn.released:
                    self._pending_responses -= 1
                if self._queue.empty():
                    self._set_state("listening")

    async def _process(self, turn: _Turn) -> None:
        timings = TurnTimings(speech_end=turn.speech_end)
        asked = self._unanswered
        if turn.audio is not None:
            self._set_state("thinking")
            loop = asyncio.get_running_loop()
            services = self._services
            try:
                if turn.early is not None:
                    text = await turn.early
                else:
                    text = await loop.run_in_executor(
                        services.stt_executor, services.transcriber.transcribe, turn.audio
                    )
            except Exception as exc:  # a broken model call ends this turn only
                log.exception("session %s: transcription failed", self.id)
                self._error("transcription_failed", f"speech-to-text failed: {exc}")
                return
            timings = dataclasses.replace(timings, transcript=time.monotonic())
            self._emit(TranscriptReady(item_id=turn.item_id or new_id("item"), text=text))
            if not text.strip():
                return
            asked = self._unanswered = [text.strip()]
        if not turn.respond or not asked:
            return
        await self._respond(turn.response_id or new_id("resp"), asked, timings)

    # ----------------------------------------------------------------- output side
    async def _respond(self, response_id: str, asked: list[str], timings: TurnTimings) -> None:
        question = asked[0]
        self._emit(ResponseStarted(response_id=response_id, question=question))
        self._set_state("thinking")
        request = AnswerRequest(
            question=question,
            history=tuple(self._history),
            showing=self.showing,
            audience=self.settings.audience,
            instructions=self.settings.instructions,
        )
        parts: list[str] = []
        link: Link | None = None
        marks: dict[str, float] = {}
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak(response_id, sentences, marks))
        status: ResponseStatus = "completed"
        error: str | None = None
        try:
            splitter = SentenceSplitter(self._services.config.pipeline.first_chunk_min_chars)
            async with contextlib.aclosing(self._services.answerer.stream(request)) as stream:
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
            log.exception("session %s: response %s failed", self.id, response_id)
            status, error = "failed", str(exc) or type(exc).__name__
            self._error("response_failed", f"the answer failed: {error}")
        finally:
            if not speaker.done():
                speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await speaker
            if status != "completed" and self._output is not None:
                self._output.stop()
            text = "".join(parts).strip()
            self._remember(question, text)
            if self._unanswered is asked:
                # Only this question: one typed after a cancel() must survive the unwinding.
                self._unanswered = None
            final = dataclasses.replace(
                timings,
                first_text=marks.get("first_text"),
                first_sentence=marks.get("first_sentence"),
                first_audio=marks.get("first_audio"),
                done=time.monotonic(),
            )
            log.info(
                "session %s turn %s %s: %s", self.id, response_id, status, final.latencies_ms()
            )
            self._emit(
                ResponseDone(
                    response_id=response_id,
                    status=status,
                    text=text,
                    link=link.url if link else None,
                    link_title=link.title if link else None,
                    timings=final,
                    error=error,
                )
            )

    async def _speak(
        self, response_id: str, sentences: asyncio.Queue[str | None], marks: dict[str, float]
    ) -> None:
        """Synthesize chunks in order as they arrive; Piper yields audio per sentence."""
        loop = asyncio.get_running_loop()
        synth = self._services.synthesizer
        while (chunk := await sentences.get()) is not None:
            spoken = speakable(chunk)
            if not spoken:
                continue
            audio_iter = synth.synthesize(spoken)
            while True:
                pcm = await loop.run_in_executor(
                    self._services.tts_executor, next, audio_iter, None
                )
                if pcm is None:
                    break
                marks.setdefault("first_audio", time.monotonic())
                self._current_audio_started = True
                self._set_state("speaking")
                self._emit(
                    ResponseAudio(
                        response_id, pcm=pcm, sample_rate=synth.sample_rate, sentence=spoken
                    )
                )
                if self._output is not None:
                    await self._output.write(pcm, synth.sample_rate)

    # ----------------------------------------------------------------- helpers
    def _remember(self, question: str, answer: str) -> None:
        self._history.append(ChatMessage("user", question))
        if answer:
            self._history.append(ChatMessage("assistant", answer))
        keep = 2 * self._services.config.pipeline.max_history_turns
        del self._history[: max(0, len(self._history) - keep)]

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            self._emit(StatusChanged(state))

    def _emit(self, event: Event) -> None:
        self._owner_emit(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # an observer's bug must not end a visitor's turn
                log.exception("session %s: subscriber %r failed", self.id, subscriber)

    def _error(self, code: str, message: str) -> None:
        self._emit(ErrorEvent(code=code, message=message))
