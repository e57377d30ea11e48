"""The turn queue: the one owner of what happens to each committed turn, response and cancel.

Turns are handled one at a time per session, in order: an audio turn is transcribed and (if a
response belongs to it) answered, a typed question's response is answered. Every request gets
its outcome as an event, decided here and nowhere else: a commit is an :class:`InputCommitted`
(later a :class:`TranscriptReady`, or a :class:`TurnDropped` when it will get no answer); a
response request ends in exactly one :class:`ResponseDone` or one :class:`Refused` / error; a
cancel is an :class:`Interrupted` followed by that response's ResponseDone, or a Refused. A
transport only translates these events; it never has to guess by counting them.

Cancellation is one path for every cause (the client, a barge-in, the session closing): the
response's task is cancelled, its speaker stops, and the :class:`Interrupted` event tells the
stages outside the Session (e.g. a send queue holding its audio) to drop what they hold.

One visitor never holds more than one spoken turn waiting to be answered: a newer one replaces
it (dropped with an event), so a visitor who never stops talking costs one transcription at a
time and cannot take the shared models from the other sessions. (Push-to-talk commits without
auto-response are kept: each is an item the client made on purpose.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llm.base import AnswerRequest, ChatMessage
from voice.answering import Answering
from voice.audio.format import SAMPLE_RATE
from voice.audio.speaker import AudioSink
from voice.events import (
    CancelReason,
    ErrorEvent,
    Event,
    InputCommitted,
    Interrupted,
    Refused,
    ResponseDone,
    ResponseStarted,
    State,
    StatusChanged,
    TranscriptReady,
    TurnDropped,
    TurnTimings,
    new_id,
)
from voice.services import Services

log = logging.getLogger(__name__)

BYTES_PER_SECOND = SAMPLE_RATE * 2


@dataclass(eq=False)
class Turn:
    """A unit of work: a spoken turn (``audio``) or a response to a typed question."""

    item_id: str | None
    audio: bytes | None
    speech_end: float
    response_id: str | None  # the response that answers it; None: transcribe only
    requested: bool = False  # asked for explicitly: ends in a ResponseDone or a Refused
    forced: bool = False  # cut at the longest turn while the visitor went on talking
    early: asyncio.Future[str] | None = None  # transcript started during the end silence
    # A typed question, compared by identity: a cancelled response clears only its own
    # question, even if the visitor types the same words again right after the cancel.
    question: list[str] | None = None
    transcribed: bool = False
    speak: bool | None = None  # this response's own choice of speech (None: the session's)
    started: bool = False  # its ResponseStarted was emitted
    cancelled: bool = False


class TurnQueue:
    """One session's turns, conversation history and state; see the module docstring."""

    def __init__(
        self,
        services: Services,
        emit: Callable[[Event], None],
        make_request: Callable[[str, tuple[ChatMessage, ...]], AnswerRequest],
        *,
        output: AudioSink | None,
        session_id: str,
        speaks: Callable[[], bool] = lambda: True,
    ) -> None:
        self._services = services
        self._speaks = speaks  # the session's current choice: answers are spoken, or text only
        self._emit = emit
        self._make_request = make_request
        self._output = output
        self._session_id = session_id
        self._waiting: deque[Turn] = deque()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._current: Turn | None = None
        self._task: asyncio.Task[None] | None = None
        self._answering: Answering | None = None
        self._unanswered: list[str] | None = None
        self._history: list[ChatMessage] = []
        self._state: State = "listening"
        self._closed = False
        self._reprompted_at: float | None = None  # monotonic time of the last reprompt

    # ----------------------------------------------------------------- state
    @property
    def state(self) -> State:
        return self._state

    @property
    def busy(self) -> bool:
        """True while a turn is being transcribed, answered or spoken, or is waiting."""
        return (self._task is not None and not self._task.done()) or bool(self._waiting)

    @property
    def history(self) -> tuple[ChatMessage, ...]:
        return tuple(self._history)

    @property
    def current_forced(self) -> bool:
        """The turn in flight (or the newest waiting one) was cut at the longest turn."""
        turns = [*self._waiting, self._current] if self._current else list(self._waiting)
        return any(t.forced for t in turns if t.audio is not None)

    def unheard_audio(self) -> tuple[str, bytes] | None:
        """The turn in flight's audio if nothing of its answer was heard yet and it was not cut
        at the longest turn: a barge-in carries it into the next turn (same question)."""
        turn = self._current
        if turn is None or turn.audio is None or turn.forced or turn.item_id is None:
            return None
        if self._answering is not None and self._answering.outcome.audio_started:
            return None
        return turn.item_id, turn.audio

    def speaking(self) -> tuple[str, str] | None:
        """(response id, what it has spoken so far) of the answer being heard, or None when
        no answer's audio has started."""
        turn, answering = self._current, self._answering
        if turn is None or answering is None or turn.response_id is None or turn.cancelled:
            return None
        if self._task is None or self._task.done() or not answering.outcome.audio_started:
            return None
        return turn.response_id, " ".join(answering.outcome.spoken)

    # ----------------------------------------------------------------- requests
    def add_question(self, text: str) -> None:
        self._unanswered = [text]

    def submit_audio(
        self,
        audio: bytes,
        *,
        respond: bool,
        forced: bool = False,
        early: asyncio.Future[str] | None = None,
    ) -> str:
        """A finished audio turn: announced (InputCommitted) and queued. Returns its item id."""
        item_id = new_id("item")
        response_id = new_id("resp") if respond else None
        audio_ms = len(audio) * 1000 // BYTES_PER_SECOND
        self._emit(InputCommitted(item_id=item_id, audio_ms=audio_ms, response_id=response_id))
        auto = [
            t for t in self._waiting if t.audio is not None and t.response_id and not t.requested
        ]
        for waiting in auto:  # a newer spoken turn replaces one that was waiting to be answered
            self._waiting.remove(waiting)
            self._drop(waiting, "overrun", "a newer turn replaced it before it was transcribed")
        turn = Turn(item_id, audio, time.monotonic(), response_id, forced=forced, early=early)
        self._enqueue(turn)
        return item_id

    def request_response(self, speak: bool | None = None) -> str | None:
        """Answer the latest user question (or the committed audio still being transcribed).
        Returns the response id, or None after a Refused event. ``speak``: this response's
        own choice (text only when False); None follows the session."""
        if self._closed:
            return None
        if self._active() is not None:
            self._refuse("respond", "response_active", "a response is already in progress")
            return None
        response_id = new_id("resp")
        pending = [
            t
            for t in self._turns()
            if t.audio is not None and not t.transcribed and t.response_id is None
        ]
        if pending:  # commit + response.create: answer the audio once it is transcribed
            turn = pending[-1]
            turn.response_id, turn.requested, turn.speak = response_id, True, speak
            return response_id
        if not self._unanswered:
            self._refuse(
                "respond",
                "nothing_to_answer",
                "there is no user question to answer: send audio or a question first",
            )
            return None
        turn = Turn(None, None, time.monotonic(), response_id, requested=True, speak=speak)
        turn.question = self._unanswered
        self._enqueue(turn)
        return response_id

    def cancel_response(self, response_id: str | None = None) -> bool:
        """The client cancels the active response (the one queued or running)."""
        active = self._active()
        if active is None:
            self._refuse("cancel", "no_active_response", "there is no response to cancel")
            return False
        if response_id and response_id != active.response_id:
            self._refuse(
                "cancel",
                "unknown_response",
                f"response {response_id!r} is not the one in progress ({active.response_id})",
            )
            return False
        self._cancel(active, "client")
        return True

    def interrupt(self, reason: CancelReason) -> bool:
        """Cancel everything in flight or waiting (barge-in, session closing). True if anything
        was cancelled. Waiting audio turns are dropped with an event."""
        cancelled = False
        while self._waiting:
            turn = self._waiting.popleft()
            if turn.audio is not None:
                self._drop(turn, "interrupted", "the visitor spoke again before it was answered")
            self._end_unstarted(turn, reason)
            cancelled = True
        current = self._current
        if current is not None and self._task is not None and not self._task.done():
            self._cancel(current, reason)
            cancelled = True
        return cancelled

    async def wait_idle(self) -> None:
        """Until every queued turn is finished (or cancelled)."""
        while self.busy:
            task = self._task
            if task is not None and not task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            else:
                await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        self._closed = True
        self.interrupt("closed")
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # ----------------------------------------------------------------- bookkeeping
    def _turns(self) -> list[Turn]:
        live = self._current if self._task is not None and not self._task.done() else None
        return [*([live] if live is not None else []), *self._waiting]

    def _active(self) -> Turn | None:
        """The response queued or running that is not cancelled: at most one at a time."""
        return next(
            (t for t in self._turns() if t.response_id is not None and not t.cancelled), None
        )

    def _enqueue(self, turn: Turn) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        self._waiting.append(turn)
        self._wake.set()

    def _cancel(self, turn: Turn, reason: CancelReason) -> None:
        """One cancellation for every stage this turn reached."""
        turn.cancelled = True
        if turn is self._current and turn.started:
            assert self._task is not None and turn.response_id is not None
            if self._answering is not None:
                self._answering.outcome.cancel_reason = reason
            self._emit(Interrupted(turn.response_id, reason))
            self._task.cancel()  # Answering emits the ResponseDone while it unwinds
            if self._output is not None:
                self._output.stop()
        elif turn.audio is not None and not turn.transcribed and reason == "client":
            # The client cancels the answer, not what was said: transcription goes on.
            self._end_unstarted(turn, reason)
            turn.response_id, turn.requested, turn.cancelled = None, False, False
        else:
            if turn is self._current and self._task is not None:
                self._task.cancel()
            elif turn in self._waiting:
                self._waiting.remove(turn)
            self._end_unstarted(turn, reason)

    def _end_unstarted(self, turn: Turn, reason: CancelReason) -> None:
        """A response cancelled before it began still ends in one ResponseDone when it was asked
        for (``response.create``) or the client cancelled it; one the VAD started and a barge-in
        or closing ended was never news to the client."""
        if turn.started or turn.response_id is None or not (turn.requested or reason == "client"):
            return
        turn.started = True
        rid = turn.response_id
        self._emit(Interrupted(rid, reason))
        self._emit(ResponseStarted(response_id=rid, question=""))
        self._emit(
            ResponseDone(
                response_id=rid,
                status="cancelled",
                text="",
                link=None,
                link_title=None,
                timings=TurnTimings(speech_end=turn.speech_end, done=time.monotonic()),
                cancel_reason=reason,
            )
        )

    def _drop(self, turn: Turn, reason: str, message: str) -> None:
        assert turn.item_id is not None
        self._emit(TurnDropped(turn.item_id, reason, message))  # type: ignore[arg-type]

    def _refuse(self, request: str, reason: str, message: str) -> None:
        self._emit(Refused(request, reason, message))  # type: ignore[arg-type]

    def _set_state(self, state: State) -> None:
        if state != self._state:
            self._state = state
            self._emit(StatusChanged(state))

    # ----------------------------------------------------------------- the worker
    async def _run(self) -> None:
        while not self._closed:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            turn = self._waiting.popleft()
            self._current = turn
            self._task = asyncio.create_task(self._process(turn))
            try:
                await asyncio.wait({self._task})
            finally:
                self._current = None
                self._answering = None
                if not self._waiting:
                    self._set_state("listening")

    async def _process(self, turn: Turn) -> None:
        timings = TurnTimings(speech_end=turn.speech_end)
        question = turn.question
        if turn.audio is not None:
            text = await self._transcribe(turn)
            if text is None:
                return
            timings = TurnTimings(speech_end=turn.speech_end, transcript=time.monotonic())
            if not text.strip():
                if turn.requested:
                    self._refuse("respond", "no_speech", "nothing was heard in the committed audio")
                elif turn.item_id is not None:
                    self._drop(turn, "no_speech", "nothing was heard in the turn")
                    if turn.response_id is not None and self._may_reprompt():
                        await self._reprompt(turn, timings)
                return
            question = self._unanswered = [text.strip()]
        if turn.response_id is None or not question:
            return
        answering = self._start_answering(turn)
        request = self._make_request(question[0], tuple(self._history))
        try:
            speak = self._speaks() if turn.speak is None else turn.speak
            await answering.run(turn.response_id, request, timings, speak=speak)
        finally:
            self._remember(question[0], answering.outcome.text, answering.outcome.link)
            if self._unanswered is question:
                self._unanswered = None

    def _start_answering(self, turn: Turn) -> Answering:
        """The response stage for ``turn``, registered as the one a cancel reaches."""
        self._answering = Answering(
            self._services, self._emit, self._set_state, self._output, self._session_id
        )
        turn.started = True
        return self._answering

    def _may_reprompt(self) -> bool:
        """A reprompt is configured and none was spoken in the last ``reprompt_interval_s``."""
        now = time.monotonic()
        if not self._services.config.pipeline.reprompt.strip():
            return False
        interval = self._services.config.pipeline.reprompt_interval_s
        if self._reprompted_at is not None and now - self._reprompted_at < interval:
            return False
        self._reprompted_at = now
        return True

    async def _reprompt(self, turn: Turn, timings: TurnTimings) -> None:
        """Say "Sorry, I didn't catch that" in the response the turn would have had.

        Why: a turn Whisper rejects used to end in silence, and the visitor could not tell a
        mumble that was not understood from a kiosk that was not listening.
        """
        assert turn.response_id is not None
        answering = self._start_answering(turn)
        text = self._services.config.pipeline.reprompt.strip()
        await answering.reprompt(turn.response_id, text, "no_speech", timings, speak=self._speaks())

    async def _transcribe(self, turn: Turn) -> str | None:
        """The turn's transcript (announced with TranscriptReady), or None if it failed."""
        assert turn.audio is not None
        self._set_state("thinking")
        services = self._services
        try:
            if turn.early is not None:
                text = await turn.early
            else:
                text = await asyncio.get_running_loop().run_in_executor(
                    services.stt_executor, services.transcriber.transcribe, turn.audio
                )
        except Exception as exc:  # a broken model call ends this turn only
            log.exception("session %s: transcription failed", self._session_id)
            self._emit(
                ErrorEvent(code="transcription_failed", message=f"speech-to-text failed: {exc}")
            )
            return None
        turn.transcribed = True
        self._emit(TranscriptReady(item_id=turn.item_id or new_id("item"), text=text))
        return text

    def forget(self, role: str, text: str) -> bool:
        """Drop the latest history message of ``role`` whose text is ``text``."""
        wanted = text.strip()
        for i in range(len(self._history) - 1, -1, -1):
            message = self._history[i]
            if message.role == role and message.content.strip() == wanted:
                del self._history[i]
                return True
        return False

    def _remember(self, question: str, answer: str, link: str | None) -> None:
        self._history.append(ChatMessage("user", question))
        if answer:
            self._history.append(ChatMessage("assistant", answer, link))
        keep = 2 * self._services.config.pipeline.max_history_turns
        del self._history[: max(0, len(self._history) - keep)]
