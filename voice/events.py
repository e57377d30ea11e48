"""The vocabulary of the voice loop: small typed events, one direction of flow.

audio -> events -> text -> audio. A :class:`voice.pipeline.Session` consumes audio frames and
text questions, and emits these events; the CLI prints them, the WebSocket server maps them to
OpenAI Realtime events. Keeping them plain frozen dataclasses (no behaviour) means every
transport and every test sees the same facts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

State = Literal["listening", "thinking", "speaking"]
ResponseStatus = Literal["completed", "cancelled", "failed"]
CancelReason = Literal["client", "barge_in", "closed"]
"""Who ended a response early: the client asked, the visitor spoke over it, or the session
closed (the client went away, the server shuts down)."""
Request = Literal["commit", "audio", "respond", "cancel"]
RefusalReason = Literal[
    "empty_input",  # commit with nothing buffered (push-to-talk) or no speech in progress
    "input_too_long",  # push-to-talk audio past the longest turn; the extra was dropped
    "response_active",  # a response is queued or running: cancel it first
    "nothing_to_answer",  # no user question waits for an answer
    "no_speech",  # the committed audio a response was asked for held no words
    "no_active_response",  # cancel with no response queued or running
    "unknown_response",  # cancel naming a response that is not the active one
]
DropReason = Literal["no_speech", "overrun", "too_long", "interrupted"]
FailureCode = Literal["transcription_failed", "response_failed"]


def new_id(prefix: str) -> str:
    """A random id (``item_…``, ``resp_…``, ``event_…``): no counter state is shared, and every
    layer (Session, Realtime mapper) writes ids in this one format."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


@dataclass(frozen=True, slots=True)
class TurnTimings:
    """Monotonic timestamps (seconds) of one turn's milestones; None where not reached.

    ``speech_end`` is when the VAD decided the turn ended (or the text/commit arrived), and all
    latencies are measured from it: that is the pause the visitor hears.
    """

    speech_end: float | None = None
    transcript: float | None = None
    first_text: float | None = None
    first_sentence: float | None = None
    first_audio: float | None = None
    done: float | None = None

    def latencies_ms(self) -> dict[str, float]:
        """Milliseconds from end of speech to each milestone that was reached."""
        if self.speech_end is None:
            return {}
        out: dict[str, float] = {}
        for name in ("transcript", "first_text", "first_sentence", "first_audio", "done"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round((value - self.speech_end) * 1000.0, 1)
        return out


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The session's state, for a status line: listening / thinking / speaking."""

    state: State


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The VAD heard speech begin. ``audio_ms`` is its offset in the input stream."""

    audio_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The VAD decided the turn is over. ``audio`` is the turn's 16 kHz PCM16 incl. pre-roll.

    ``forced`` means the turn hit ``vad.max_turn_s`` while the visitor was still talking: the
    speech that follows continues it and does not barge in on its answer.
    """

    audio_ms: int
    audio: bytes = field(repr=False)
    forced: bool = False


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """A user audio turn was closed (by the VAD or an explicit commit) and will be transcribed.

    ``audio_ms`` is the length of the audio handed to speech-to-text (incl. any carried-over
    start of the question); ``response_id`` is the answer it will get, None if it only waits to
    be transcribed (push-to-talk without auto-response).
    """

    item_id: str
    audio_ms: int
    response_id: str | None = None


@dataclass(frozen=True, slots=True)
class TurnDropped:
    """A committed audio turn will get no answer: no words in it (``no_speech``), a newer turn
    replaced it while it waited (``overrun``: one visitor never holds more than one turn in the
    queue), its audio could not be merged into the next turn within the longest turn
    (``too_long``), or the visitor spoke again while it waited (``interrupted``)."""

    item_id: str
    reason: DropReason
    message: str


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    """Final transcript of one spoken user turn (typed questions need no transcript)."""

    item_id: str
    text: str


RepromptReason = Literal["no_speech"]
"""Why a response is the short spoken reprompt rather than an answer: the visitor's turn
held no words Whisper would accept."""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str
    question: str
    reprompt: RepromptReason | None = None


@dataclass(frozen=True, slots=True)
class ResponseTextDelta:
    """A piece of the answer's text as it is generated (links already removed)."""

    response_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseLink:
    """The answer's "More information" catalog page: shown, never spoken."""

    response_id: str
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class ResponseAudio:
    """A chunk of synthesized speech, PCM16 mono at ``sample_rate``."""

    response_id: str
    pcm: bytes = field(repr=False)
    sample_rate: int = 22050
    sentence: str = ""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A response was cancelled (one event for every stage: the Session stops its answer and
    speech, a transport drops the response's unsent audio). Its ResponseDone follows."""

    response_id: str
    reason: CancelReason


ResumeReason = Literal["nothing", "echo", "backchannel", "cleared"]
"""Why a paused answer went on: the interrupting turn held no words Whisper accepts, its words
were the answer's own (the kiosk heard itself), it was only a listener's "mm-hmm" or "oh wow",
or the input audio was cleared before the turn ended."""


@dataclass(frozen=True, slots=True)
class AnswerResumed:
    """An answer paused by speech went on: it was not a barge-in (voice/interruptions.py).
    ``heard`` is what Whisper made of the interrupting turn ("" if nothing)."""

    response_id: str
    reason: ResumeReason
    heard: str = ""


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """The end of a response, whatever happened. Always emitted once per ResponseStarted."""

    response_id: str
    status: ResponseStatus
    text: str
    link: str | None
    link_title: str | None
    timings: TurnTimings
    error: str | None = None
    cancel_reason: CancelReason | None = None
    reprompt: RepromptReason | None = None  # the "didn't catch that" reply, not an answer


@dataclass(frozen=True, slots=True)
class Refused:
    """A request the Session did not carry out, and why (in the Session's own terms; a
    transport names its protocol's error code). Nothing changed; the session goes on."""

    request: Request
    reason: RefusalReason
    message: str


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A model call failed (transcription or answer): that turn ends, the session goes on."""

    code: FailureCode
    message: str


Event = (
    StatusChanged
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | TurnDropped
    | TranscriptReady
    | ResponseStarted
    | ResponseTextDelta
    | ResponseLink
    | ResponseAudio
    | Interrupted
    | AnswerResumed
    | ResponseDone
    | Refused
    | ErrorEvent
)
