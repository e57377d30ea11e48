"""The vocabulary of the voice loop: small typed events, one direction of flow.

audio -> events -> text -> audio. A :class:`voice.pipeline.Session` consumes audio frames and
text questions, and emits these events; the CLI prints them, the WebSocket server maps them to
OpenAI Realtime events. Keeping them plain frozen dataclasses (no behaviour) means every
transport and every test sees the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

State = Literal["listening", "thinking", "speaking"]
ResponseStatus = Literal["completed", "cancelled", "failed"]


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
    """The VAD decided the turn is over. ``audio`` is the turn's 16 kHz PCM16 incl. pre-roll."""

    audio_ms: int
    audio: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """A user audio turn was closed (by the VAD or an explicit commit) and will be transcribed."""

    item_id: str
    audio_ms: int


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    """Final transcript of one spoken user turn (typed questions need no transcript)."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str
    question: str


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
class ResponseDone:
    """The end of a response, whatever happened. Always emitted once per ResponseStarted."""

    response_id: str
    status: ResponseStatus
    text: str
    link: str | None
    link_title: str | None
    timings: TurnTimings
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something went wrong that the client should know about; the session goes on."""

    code: str
    message: str


Event = (
    StatusChanged
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | TranscriptReady
    | ResponseStarted
    | ResponseTextDelta
    | ResponseLink
    | ResponseAudio
    | ResponseDone
    | ErrorEvent
)
