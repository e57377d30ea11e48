"""One conversation: audio frames in, events and speech out.

A :class:`Session` is the whole voice loop for one visitor (one kiosk microphone or one
WebSocket connection). This module is its audio intake: audio is cut into frames and run
through the VAD right on the event loop (microseconds per frame), and each finished turn goes
to the session's :class:`voice.turns.TurnQueue`, which transcribes it, answers it and speaks the
answer (:mod:`voice.answering`), and decides (and reports as events) what happens to every
commit, response request and cancel. Every blocking model call runs on the shared executors in
:class:`voice.services.Services`.

Barge-in (speech while the assistant is busy) cancels the turn in flight at the VAD frame that
detects it. With a speaker in the room (a :class:`PausableSink`) and an answer being heard,
that frame pauses the answer instead, and the interrupting turn's words decide: a visitor's
words cancel it, no words or the answer's own words (the kiosk hearing itself) resume it
(:mod:`voice.interruptions`). A cancelled turn that had not produced any audio yet is carried
into the next one,
because a visitor who pauses mid-question and goes on is still asking the same question. The
carried audio never makes a turn longer than ``vad.max_turn_s``. A turn the VAD cut at
``vad.max_turn_s`` while the visitor kept talking is answered: the speech that continues it is
the next turn, not a barge-in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from catalog.datasets import CatalogEntry
from llm.base import AUDIENCES, AnswerRequest, Audience, ChatMessage
from voice.audio.format import SAMPLE_RATE
from voice.audio.framing import Framer
from voice.audio.speaker import AudioSink, PausableSink
from voice.config import VadConfig, VoiceConfig
from voice.events import (
    AnswerResumed,
    CancelReason,
    Event,
    Refused,
    ResumeReason,
    SpeechStarted,
    SpeechStopped,
    State,
    TurnDropped,
    new_id,
)
from voice.exhibit import Exhibit
from voice.interruptions import judge
from voice.services import Services
from voice.turn_end import TurnEndPolicy
from voice.turns import BYTES_PER_SECOND, TurnQueue
from voice.vad import Endpointer

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
LIVE_PACE = 0.7
"""Audio arriving at least this fraction of real time counts as live (network jitter)."""
CARRY_GAP = b"\x00\x00" * (SAMPLE_RATE // 5)  # 200 ms between a carried turn and the next


def _consume_exception(future: asyncio.Future[str]) -> None:
    """An early transcription nobody awaits must not log "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class SessionSettings:
    """Per-session behaviour; the process-wide defaults come from the config."""

    vad: VadConfig = field(default_factory=VadConfig)
    turn_detection: bool = True
    barge_in: bool = True
    half_duplex: bool = False
    resume_false_interruptions: bool = True  # with a speaker that can pause: the words decide
    audience: Audience = "general"
    showing: CatalogEntry | None = None
    instructions: str = ""
    auto_respond: bool = True
    speak: bool = True  # answers are synthesized; False: text only (a Realtime text session)

    @classmethod
    def from_config(cls, config: VoiceConfig, **overrides: object) -> SessionSettings:
        """The defaults every front end starts from: ``[vad]`` and ``[pipeline]``."""
        values: dict[str, object] = {
            "vad": config.vad,
            "barge_in": config.pipeline.barge_in,
            "half_duplex": config.pipeline.half_duplex,
            "resume_false_interruptions": config.pipeline.resume_false_interruptions,
            **overrides,
        }
        return cls(**values)  # type: ignore[arg-type]

    def validate(self) -> None:
        self.vad.validate()
        if self.audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {AUDIENCES}, not {self.audience!r}")
        if len(self.instructions) > 4000:
            raise ValueError("instructions are limited to 4000 characters")


@dataclass(eq=False)
class _PausedAnswer:
    """An answer held silent while the turn that interrupted it is heard."""

    response_id: str
    checks: int = 0  # interrupting turns still being transcribed


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
        self.settings = settings or SessionSettings.from_config(cfg)
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
        self._carry: tuple[str, bytes] | None = None  # (item id, audio) of a barged-in turn
        self._continuing = False  # the open turn continues one cut at vad.max_turn_s
        self._paused: _PausedAnswer | None = None  # held while its interruption is heard
        self._speech_from_ms = 0  # where the open turn's speech began (SpeechStarted.audio_ms)
        self._checks: set[asyncio.Task[None]] = set()  # transcribing interrupting turns
        # (turn audio, its transcription) started while the end-of-turn silence runs.
        self._early: tuple[bytes, asyncio.Future[str]] | None = None
        # When the last second of frames arrived (is the audio live? see _live).
        self._arrivals: deque[float] = deque(maxlen=max(2, 1000 // self._frame_ms))
        self.stats = {"early_stt_used": 0, "early_stt_discarded": 0}
        self._turns = TurnQueue(
            services,
            self._emit,
            self._answer_request,
            output=output,
            session_id=self.id,
            speaks=lambda: self.settings.speak,
        )
        self._closed = False

    # ----------------------------------------------------------------- public API
    @property
    def state(self) -> State:
        return self._turns.state

    @property
    def busy(self) -> bool:
        """True while a turn is being transcribed, answered or spoken, or is queued."""
        return self._turns.busy

    @property
    def showing(self) -> CatalogEntry | None:
        """The dataset this session's questions are about: its own override
        (``settings.showing``), else what the installation's sphere shows right now."""
        if self.settings.showing is not None or self.exhibit is None:
            return self.settings.showing
        return self.exhibit.showing

    @property
    def history(self) -> tuple[ChatMessage, ...]:
        return self._turns.history

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
        restart = new.vad != self.settings.vad or new.turn_detection != self.settings.turn_detection
        if restart:
            self._vad = Endpointer(new.vad, self._frame_ms)
            self._ptt.clear()
        self.settings = new
        if restart:
            self._resume_unheard()  # the turn that paused an answer will not end now
        return new

    def feed_audio(self, pcm16: bytes) -> None:
        """Take microphone audio: 16 kHz mono PCM16, any length. Never blocks."""
        if self._closed:
            return
        if self.settings.half_duplex and self.busy and self._paused is None:
            # An open speaker without echo cancellation would hear itself: ignore the mic.
            # (A paused answer is silent: the turn that paused it is still heard to its end,
            # even if the kiosk stopped trusting its canceller meanwhile.)
            self._vad.reset()
            return
        now = time.monotonic()
        for frame in self._framer.push(pcm16):
            self._arrivals.append(now)
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
        """The buffered audio is a finished turn (push-to-talk), or the open VAD turn ends now.
        Returns its item id; with nothing to commit, a Refused event says so and None."""
        if self.settings.turn_detection:
            committed: str | None = None
            for event in self._vad.flush():
                committed = self._on_vad(event)
            if committed is None:
                self._emit(Refused("commit", "empty_input", "no speech in progress to commit"))
            return committed
        tail = self._framer.flush()
        if tail is not None:
            self._buffer_ptt(tail)
        if not self._ptt:
            self._emit(Refused("commit", "empty_input", "the input audio buffer is empty"))
            return None
        audio = bytes(self._ptt)
        self._ptt.clear()
        self._ptt_overflow = False
        return self._turns.submit_audio(audio, respond=self.settings.auto_respond)

    def clear_audio(self) -> None:
        self._early = None
        self._ptt.clear()
        self._ptt_overflow = False
        self._framer = Framer(self._frame_ms)
        self._vad.reset()
        self._continuing = False
        self._resume_unheard()

    def add_user_text(self, text: str) -> str:
        """A typed question (ValueError if empty or too long). Returns its item id."""
        text = text.strip()
        if not text:
            raise ValueError("the question is empty")
        if len(text) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        self._turns.add_question(text)
        return new_id("item")

    def forget(self, role: str, text: str) -> bool:
        """Take a message out of the conversation history the answerer sees (the Realtime
        ``conversation.item.delete``): the latest one of ``role`` saying ``text``. True if one
        was there; a turn still being answered is not affected."""
        return self._turns.forget(role, text)

    def respond(self, speak: bool | None = None) -> str | None:
        """Answer the latest user item. Returns the response id, or None (Refused emitted).
        ``speak``: this response alone in speech (True) or text only (False); None: the
        session's ``settings.speak``."""
        if self._closed:
            return None
        return self._turns.request_response(speak)

    def ask(self, text: str) -> str | None:
        """A typed question answered at once (the CLI's --text and the WebSocket's typed path)."""
        self.add_user_text(text)
        return self.respond()

    def cancel(self, response_id: str | None = None) -> bool:
        """Cancel the response queued or running (the client asked). True if one was; else a
        Refused event says why not."""
        cancelled = self._turns.cancel_response(response_id)
        if self._output is not None:
            self._output.stop()  # also ends a pause
            self._paused = None
        return cancelled

    def interrupt(self, reason: CancelReason = "closed") -> bool:
        """Stop everything in flight or waiting, silently if there is nothing."""
        cancelled = self._turns.interrupt(reason)
        if self._output is not None:
            self._output.stop()
            self._paused = None
        return cancelled

    async def wait_idle(self) -> None:
        """Until every queued turn is finished (or cancelled)."""
        await self._turns.wait_idle()

    async def aclose(self) -> None:
        """Stop everything this session runs; shared models stay loaded."""
        self._closed = True
        self._paused = None
        if self._output is not None:
            self._output.stop()
        for check in list(self._checks):
            check.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        await self._turns.aclose()

    # ----------------------------------------------------------------- input side
    def _answer_request(self, question: str, history: tuple[ChatMessage, ...]) -> AnswerRequest:
        return AnswerRequest(
            question=question,
            history=history,
            showing=self.showing,
            audience=self.settings.audience,
            instructions=self.settings.instructions,
        )

    def _buffer_ptt(self, frame: bytes) -> None:
        limit = int(self.settings.vad.max_turn_s * BYTES_PER_SECOND)
        if len(self._ptt) + len(frame) > limit:
            if not self._ptt_overflow:
                self._ptt_overflow = True
                self._emit(
                    Refused(
                        "audio",
                        "input_too_long",
                        f"turn longer than {self.settings.vad.max_turn_s:g} s; extra audio dropped",
                    )
                )
            return
        self._ptt += frame

    def _on_vad(self, event: SpeechStarted | SpeechStopped) -> str | None:
        """Pass a VAD event on; a SpeechStopped becomes a queued turn (its item id returned)."""
        self._emit(event)
        if isinstance(event, SpeechStarted):
            self._speech_from_ms = event.audio_ms
            continuing, self._continuing = self._continuing, False
            if continuing or not self.settings.barge_in or not self.busy:
                return None  # a cut turn goes on: it is the next turn, not a barge-in
            if self._paused is not None or self._pause_answer():
                return None  # the turn's words decide (_settle_interruption)
            unheard = self._turns.unheard_audio()
            if self._turns.interrupt("barge_in"):
                self._carry = unheard
                log.info("session %s: barge-in cancelled the answer", self.id)
            return None
        self._continuing = event.forced
        if self._paused is not None:
            self._check_interruption(event)
            return None
        return self._submit(event, self._take_early(event.audio))

    def _submit(self, event: SpeechStopped, early: asyncio.Future[str] | None) -> str | None:
        """Queue the turn ``event`` ended (with a barged-in turn's audio carried in front)."""
        audio = event.audio
        carry, self._carry = self._carry, None
        if carry is not None:
            limit = int(self.settings.vad.max_turn_s * BYTES_PER_SECOND)
            if len(carry[1]) + len(CARRY_GAP) + len(audio) <= limit:
                audio = carry[1] + CARRY_GAP + audio
                early = None  # it was of the new audio alone
            else:
                message = f"with the next turn it would pass {self.settings.vad.max_turn_s:g} s"
                self._emit(TurnDropped(carry[0], "too_long", message))
        return self._turns.submit_audio(
            audio, respond=self.settings.auto_respond, forced=event.forced, early=early
        )

    # ------------------------------------------------------- a paused answer
    def _pause_answer(self) -> bool:
        """Pause the answer being heard, if the output can pause and the session is set to
        resume false interruptions. True if it paused."""
        output = self._output
        if not self.settings.resume_false_interruptions:
            return False
        if not isinstance(output, PausableSink):
            return False
        speaking = self._turns.speaking()
        if speaking is None:
            return False  # nothing heard yet: cancel (and carry the turn) as before
        output.pause()
        self._paused = _PausedAnswer(speaking[0])
        log.info("session %s: speech while answering; the answer waits for its words", self.id)
        return True

    def _check_interruption(self, event: SpeechStopped) -> None:
        """Transcribe the turn that interrupted the paused answer, off the event loop."""
        assert self._paused is not None
        self._paused.checks += 1
        transcript = self._take_early(event.audio) or self._transcription(event.audio)
        speech_ms = event.audio_ms - self._speech_from_ms
        task = asyncio.get_running_loop().create_task(
            self._settle_interruption(event, transcript, self._paused, speech_ms)
        )
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _settle_interruption(
        self,
        event: SpeechStopped,
        transcript: asyncio.Future[str],
        paused: _PausedAnswer,
        speech_ms: int,
    ) -> None:
        """Cancel the paused answer and queue the turn (a visitor), or resume the answer."""
        heard: str | None
        try:
            heard = await transcript
        except asyncio.CancelledError:
            raise
        except Exception:  # cannot tell: a visitor (the queue transcribes again, reports it)
            heard = None
        finally:
            paused.checks -= 1
        if self._closed:
            return
        speaking = self._turns.speaking()
        said = speaking[1] if speaking is not None and speaking[0] == paused.response_id else ""
        verdict = "visitor" if heard is None else judge(heard, said, speech_ms)
        if verdict == "visitor":
            if self._paused is paused:
                self._paused = None
                if self._turns.interrupt("barge_in"):
                    log.info(
                        "session %s: barge-in cancelled the answer: %r (%d ms of speech)",
                        self.id,
                        heard,
                        speech_ms,
                    )
                if isinstance(self._output, PausableSink):
                    self._output.resume()  # nothing of the cancelled answer is left to play
            transcript: asyncio.Future[str] | None = None
            if heard is not None:
                transcript = asyncio.get_running_loop().create_future()
                transcript.set_result(heard)
            self._submit(event, transcript)
            return
        if self._paused is paused and not paused.checks and not self._vad.in_speech:
            self._resume(verdict, heard or "", speech_ms)  # else a later turn, still open, decides

    def _resume_unheard(self) -> None:
        """The input was cleared (or the VAD restarted) while an answer waited for the turn
        that paused it: no turn will end, so the answer goes on."""
        if self._paused is not None and not self._paused.checks:
            self._resume("cleared", "", 0)

    def _resume(self, reason: ResumeReason, heard: str, speech_ms: int) -> None:
        paused, self._paused = self._paused, None
        if paused is None:
            return
        if isinstance(self._output, PausableSink):
            self._output.resume()
        log.info(
            "session %s: not a barge-in (%s: %r, %d ms of speech); the answer goes on",
            self.id,
            reason,
            heard,
            speech_ms,
        )
        self._emit(AnswerResumed(paused.response_id, reason, heard))

    # ------------------------------------------------------- early transcription
    def _maybe_transcribe_early(self) -> None:
        """Start transcribing the turn as soon as the VAD hears it may be over.

        The end-of-turn silence (``vad.end_silence_ms``) is dead time for the visitor; running
        Whisper inside it instead of after it takes most of the transcription off the critical
        path. If the visitor goes on talking, the result is simply not used, and one not yet
        started is withdrawn: a visitor pausing often must not queue transcriptions nobody
        awaits in front of the other sessions' turns.
        """
        audio = self._vad.early_audio()
        if audio is None:
            return
        if self._early is not None:
            self._early[1].cancel()  # frees its place in the executor if it has not started
            self.stats["early_stt_discarded"] += 1
        future = self._transcription(audio)
        self._early = (audio, future)
        if not self._live():
            return  # read faster than real time (a WAV at full speed): the silence decides
        silence_from_ms = self._vad.silence_from_ms
        TurnEndPolicy(self.settings.vad.eagerness).transcribing(self._vad, self.settings.vad)  # type: ignore[arg-type]
        future.add_done_callback(lambda done: self._on_early_transcript(done, silence_from_ms))

    def _transcription(self, audio: bytes) -> asyncio.Future[str]:
        """Whisper on ``audio`` in the shared executor, started now (an early transcript, or
        the turn that paused an answer)."""
        future = asyncio.get_running_loop().run_in_executor(
            self._services.stt_executor, self._services.transcriber.transcribe, audio
        )
        future.add_done_callback(_consume_exception)
        return future

    def _live(self) -> bool:
        """Whether audio arrives at about real-time pace (a microphone, a streaming client).

        Turn-taking on the words races Whisper against the audio clock; when a whole recording
        arrives at once its silence is over before any transcript exists, so only the silence
        rule can decide, exactly as without it.
        """
        arrivals = self._arrivals
        if len(arrivals) < (arrivals.maxlen or 0):
            return False
        span_s = (len(arrivals) - 1) * self._frame_ms / 1000.0
        return arrivals[-1] - arrivals[0] >= LIVE_PACE * span_s

    def _on_early_transcript(
        self, future: asyncio.Future[str], silence_from_ms: int | None
    ) -> None:
        """Turn-taking on the words (:mod:`voice.turn_end`): the early transcript of a turn
        whose visitor is still silent ends it at once when its words sound complete, or holds
        it open up to ``vad.unfinished_silence_ms`` when they sound unfinished.

        A transcript that arrives after the silence rule already ended the turn, or once the
        visitor spoke again, changes nothing (the turn it was of is gone).
        """
        if self._closed or future.cancelled() or future.exception() is not None:
            return
        if self._early is None or self._early[1] is not future:
            return
        if silence_from_ms is None or self._vad.silence_from_ms != silence_from_ms:
            return
        vad = self.settings.vad
        policy = TurnEndPolicy(vad.eagerness)  # type: ignore[arg-type]
        for event in policy.heard(self._vad, vad, future.result()):
            self._on_vad(event)

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

    def _emit(self, event: Event) -> None:
        """Every event of this session, in order: the owner first, then the subscribers."""
        self._owner_emit(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # an observer's bug must not end a visitor's turn
                log.exception("session %s: subscriber %r failed", self.id, subscriber)
