"""The wire format: OpenAI Realtime (beta) client events in, typed commands out.

Everything here is pure (no I/O, no models) so that each rule of docs/protocol.md can be tested
on its own: parsing and validating client events, the session object as the server reports it,
and the ``error`` event. A bad event becomes a :class:`ProtocolError` carrying the Realtime
error fields; the connection turns it into an ``error`` event and the session goes on.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from voice.events import new_id

ErrorType = Literal["invalid_request_error", "server_error"]

PCM16 = "pcm16"
REALTIME_PCM16_RATE = 24000
"""Realtime's ``pcm16`` is 24 kHz: the default for base64 audio, so unchanged clients work."""
BINARY_INPUT_RATE = 16000
"""Default rate of binary input frames: the pipeline's own rate, so nothing is resampled."""
MIN_RATE, MAX_RATE = 8000, 48000
AUDIENCES = ("kids", "general", "educator")
MODALITIES = (("text", "audio"), ("audio", "text"), ("text",))

# Realtime session fields we accept for compatibility but that change nothing here (the
# speech-to-text model, sampling temperature, tools, ...). They are echoed where sensible.
IGNORED_SESSION_FIELDS = frozenset(
    {
        "client_secret",
        "input_audio_noise_reduction",
        "input_audio_transcription",
        "max_response_output_tokens",
        "model",
        "speed",
        "temperature",
        "tool_choice",
        "tools",
        "tracing",
    }
)
SESSION_FIELDS = frozenset(
    {
        "voice",
        "instructions",
        "modalities",
        "input_audio_format",
        "output_audio_format",
        "turn_detection",
        # SOS extensions
        "input_audio_sample_rate",
        "output_audio_sample_rate",
        "sos_binary_audio",
        "sos_binary_input_sample_rate",
        "sos_binary_output_sample_rate",
        "audience",
        "showing",
    }
)
TURN_DETECTION_FIELDS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "eagerness",
    }
)
UNSUPPORTED_EVENTS = frozenset(
    {
        "conversation.item.delete",
        "conversation.item.retrieve",
        "output_audio_buffer.clear",
        "transcription_session.update",
    }
)


class ProtocolError(Exception):
    """A client event that cannot be served. The fields are those of a Realtime error."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        type: ErrorType = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id
        self.type = type


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    type: ErrorType = "invalid_request_error",
) -> dict[str, Any]:
    """A Realtime ``error`` event; ``client_event_id`` names the client event it answers."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def error_from(exc: ProtocolError) -> dict[str, Any]:
    return error_event(
        exc.code, exc.message, param=exc.param, client_event_id=exc.event_id, type=exc.type
    )


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- session state
@dataclass(frozen=True)
class TurnDetection:
    """Realtime ``server_vad`` settings; mapped onto our webrtcvad endpointer by the caller."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {"type": "server_vad", **dataclasses.asdict(self)}


def threshold_to_aggressiveness(threshold: float) -> int:
    """Realtime's VAD threshold (0..1, higher = needs louder speech) -> webrtcvad 0..3."""
    return 0 if threshold < 0.2 else 1 if threshold < 0.4 else 2 if threshold < 0.65 else 3


def aggressiveness_to_threshold(aggressiveness: int) -> float:
    return {0: 0.1, 1: 0.3, 2: 0.5, 3: 0.8}.get(aggressiveness, 0.5)


@dataclass(frozen=True)
class WireSession:
    """The session as the client sees it (``session.created`` / ``session.updated``).

    ``showing`` is what the client asked for; the connection resolves it against the catalog
    and stores the entry's (url, title) in ``showing_entry``.
    """

    id: str
    model: str
    voice: str
    binary_output_sample_rate: int
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    instructions: str = ""
    modalities: tuple[str, ...] = ("text", "audio")
    input_audio_sample_rate: int = REALTIME_PCM16_RATE
    output_audio_sample_rate: int = REALTIME_PCM16_RATE
    binary_audio: bool = False
    binary_input_sample_rate: int = BINARY_INPUT_RATE
    audience: str = "general"
    showing_entry: tuple[str, str] | None = None
    temperature: float = 0.8
    max_response_output_tokens: int | str = "inf"

    @property
    def wants_audio(self) -> bool:
        return "audio" in self.modalities

    def to_wire(self) -> dict[str, Any]:
        showing = None
        if self.showing_entry is not None:
            showing = {"url": self.showing_entry[0], "title": self.showing_entry[1]}
        return {
            "id": self.id,
            "object": "realtime.session",
            "model": self.model,
            "modalities": list(self.modalities),
            "instructions": self.instructions,
            "voice": self.voice,
            "input_audio_format": PCM16,
            "output_audio_format": PCM16,
            "input_audio_transcription": {"model": "whisper"},
            "turn_detection": self.turn_detection.to_wire() if self.turn_detection else None,
            "tools": [],
            "tool_choice": "none",
            "temperature": self.temperature,
            "max_response_output_tokens": self.max_response_output_tokens,
            "input_audio_sample_rate": self.input_audio_sample_rate,
            "output_audio_sample_rate": self.output_audio_sample_rate,
            "sos_binary_audio": self.binary_audio,
            "sos_binary_input_sample_rate": self.binary_input_sample_rate,
            "sos_binary_output_sample_rate": self.binary_output_sample_rate,
            "audience": self.audience,
            "showing": showing,
        }


_UNSET: Any = object()


@dataclass(frozen=True)
class SessionPatch:
    """A validated ``session.update``: the new wire session plus what the pipeline must change.

    ``showing`` is ``_UNSET`` when not given, None to clear it, or the client's reference
    (URL, slug or title) still to be resolved against the catalog.
    """

    session: WireSession
    turn_detection_changed: bool
    instructions_changed: bool
    audience_changed: bool
    showing: Any = _UNSET

    @property
    def showing_given(self) -> bool:
        return self.showing is not _UNSET


def _rate(value: Any, param: str, event_id: str | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_RATE <= value <= MAX_RATE:
        raise ProtocolError(
            "invalid_value",
            f"{param} must be a whole number of Hz between {MIN_RATE} and {MAX_RATE}",
            param=param,
            event_id=event_id,
        )
    return value


def _audio_format(value: Any, param: str, event_id: str | None) -> None:
    if value != PCM16:
        raise ProtocolError(
            "unsupported_audio_format",
            f"{param} {value!r} is not supported: only 'pcm16' (16-bit little-endian mono)",
            param=param,
            event_id=event_id,
        )


def _number(value: Any, lo: float, hi: float, param: str, event_id: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ProtocolError(
            "invalid_value",
            f"{param} must be a number in {lo:g}..{hi:g}",
            param=param,
            event_id=event_id,
        )
    return value


def _bool(value: Any, param: str, event_id: str | None) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(
            "invalid_value", f"{param} must be true or false", param=param, event_id=event_id
        )
    return value


def _turn_detection(
    value: Any, current: TurnDetection | None, event_id: str | None
) -> TurnDetection | None:
    if value is None:
        return None
    param = "session.turn_detection"
    if not isinstance(value, dict):
        raise ProtocolError(
            "invalid_value", f"{param} must be an object or null", param=param, event_id=event_id
        )
    unknown = set(value) - TURN_DETECTION_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise ProtocolError(
            "unknown_parameter",
            f"unknown parameter {param}.{name}",
            param=f"{param}.{name}",
            event_id=event_id,
        )
    kind = value.get("type", "server_vad")
    if kind != "server_vad":
        raise ProtocolError(
            "unsupported_turn_detection",
            f"{param}.type {kind!r} is not supported: use 'server_vad' or null (push-to-talk)",
            param=f"{param}.type",
            event_id=event_id,
        )
    base = current or TurnDetection()
    changes: dict[str, Any] = {}
    if "threshold" in value:
        changes["threshold"] = float(
            _number(value["threshold"], 0.0, 1.0, f"{param}.threshold", event_id)
        )
    for name, hi in (("prefix_padding_ms", 2000), ("silence_duration_ms", 10000)):
        if name in value:
            number = _number(value[name], 0, hi, f"{param}.{name}", event_id)
            changes[name] = int(number)
    for name in ("create_response", "interrupt_response"):
        if name in value:
            changes[name] = _bool(value[name], f"{param}.{name}", event_id)
    return dataclasses.replace(base, **changes)


def parse_session_update(session: Any, current: WireSession, event_id: str | None) -> SessionPatch:
    """Validate a ``session.update``'s ``session`` object against ``current``, all or nothing."""
    if not isinstance(session, dict):
        raise ProtocolError(
            "invalid_value", "session must be an object", param="session", event_id=event_id
        )
    unknown = set(session) - SESSION_FIELDS - IGNORED_SESSION_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise ProtocolError(
            "unknown_parameter",
            f"unknown parameter session.{name}",
            param=f"session.{name}",
            event_id=event_id,
        )
    changes: dict[str, Any] = {}
    for name in ("input_audio_format", "output_audio_format"):
        if name in session:
            _audio_format(session[name], f"session.{name}", event_id)
    if "voice" in session:
        voice = session["voice"]
        if not isinstance(voice, str) or not voice.strip() or len(voice) > 200:
            raise ProtocolError(
                "invalid_value",
                "session.voice must be a name",
                param="session.voice",
                event_id=event_id,
            )
        changes["voice"] = voice
    if "instructions" in session:
        text = session["instructions"]
        if not isinstance(text, str):
            raise ProtocolError(
                "invalid_value",
                "session.instructions must be a string",
                param="session.instructions",
                event_id=event_id,
            )
        changes["instructions"] = text
    if "modalities" in session:
        mods = session["modalities"]
        if not isinstance(mods, list) or tuple(mods) not in MODALITIES:
            raise ProtocolError(
                "invalid_value",
                "session.modalities must be ['text', 'audio'] or ['text']",
                param="session.modalities",
                event_id=event_id,
            )
        changes["modalities"] = tuple(mods)
    rate_fields = {
        "input_audio_sample_rate": "input_audio_sample_rate",
        "output_audio_sample_rate": "output_audio_sample_rate",
        "sos_binary_input_sample_rate": "binary_input_sample_rate",
        "sos_binary_output_sample_rate": "binary_output_sample_rate",
    }
    for wire, attr in rate_fields.items():
        if wire in session:
            changes[attr] = _rate(session[wire], f"session.{wire}", event_id)
    if "sos_binary_audio" in session:
        changes["binary_audio"] = _bool(
            session["sos_binary_audio"], "session.sos_binary_audio", event_id
        )
    if "audience" in session:
        if session["audience"] not in AUDIENCES:
            raise ProtocolError(
                "invalid_value",
                f"session.audience must be one of {', '.join(AUDIENCES)}",
                param="session.audience",
                event_id=event_id,
            )
        changes["audience"] = session["audience"]
    showing: Any = _UNSET
    if "showing" in session:
        showing = session["showing"]
        if showing is not None and (not isinstance(showing, str) or len(showing) > 500):
            raise ProtocolError(
                "invalid_value",
                "session.showing must be a catalog URL, slug or title, or null",
                param="session.showing",
                event_id=event_id,
            )
        if showing is not None and not showing.strip():
            showing = None
    if session.get("tools"):
        raise ProtocolError(
            "unsupported_parameter",
            "tools (function calling) are not supported",
            param="session.tools",
            event_id=event_id,
        )
    if "temperature" in session:
        changes["temperature"] = float(
            _number(session["temperature"], 0.0, 2.0, "session.temperature", event_id)
        )
    if "turn_detection" in session:
        changes["turn_detection"] = _turn_detection(
            session["turn_detection"], current.turn_detection, event_id
        )
    new = dataclasses.replace(current, **changes)
    return SessionPatch(
        session=new,
        turn_detection_changed=new.turn_detection != current.turn_detection,
        instructions_changed=new.instructions != current.instructions,
        audience_changed=new.audience != current.audience,
        showing=showing,
    )


# --------------------------------------------------------------------------- client events
@dataclass(frozen=True)
class ClientEvent:
    """Base of the parsed client events; ``event_id`` is the client's own, if it sent one."""

    event_id: str | None


@dataclass(frozen=True)
class SessionUpdate(ClientEvent):
    session: dict[str, Any]


@dataclass(frozen=True)
class AudioAppend(ClientEvent):
    pcm: bytes


@dataclass(frozen=True)
class AudioCommit(ClientEvent):
    pass


@dataclass(frozen=True)
class AudioClear(ClientEvent):
    pass


@dataclass(frozen=True)
class ItemCreate(ClientEvent):
    text: str


@dataclass(frozen=True)
class ItemTruncate(ClientEvent):
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class ResponseCreate(ClientEvent):
    pass


@dataclass(frozen=True)
class ResponseCancel(ClientEvent):
    response_id: str | None


def check_pcm16(pcm: bytes, where: str, event_id: str | None = None) -> None:
    """PCM16 is whole 16-bit samples: an odd byte count means a broken client or format."""
    if len(pcm) % 2:
        raise ProtocolError(
            "invalid_audio",
            f"{where}: PCM16 audio must have an even number of bytes, got {len(pcm)}",
            event_id=event_id,
        )


def _item_text(item: Any, event_id: str | None) -> str:
    if not isinstance(item, dict):
        raise ProtocolError(
            "invalid_value", "item must be an object", param="item", event_id=event_id
        )
    if item.get("type", "message") != "message":
        raise ProtocolError(
            "unsupported_item",
            f"item.type {item.get('type')!r} is not supported: only 'message'",
            param="item.type",
            event_id=event_id,
        )
    if item.get("role", "user") != "user":
        raise ProtocolError(
            "unsupported_item",
            f"item.role {item.get('role')!r} is not supported: only 'user' (use "
            "session.instructions for system instructions)",
            param="item.role",
            event_id=event_id,
        )
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError(
            "invalid_value",
            "item.content must be a non-empty list",
            param="item.content",
            event_id=event_id,
        )
    texts: list[str] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "text") or not isinstance(part.get("text"), str):
            raise ProtocolError(
                "unsupported_content",
                f"item.content[{index}] must be {{'type': 'input_text', 'text': ...}}; send "
                "audio with input_audio_buffer.append",
                param=f"item.content[{index}]",
                event_id=event_id,
            )
        texts.append(part["text"])
    text = " ".join(t.strip() for t in texts).strip()
    if not text:
        raise ProtocolError(
            "invalid_value", "the question is empty", param="item.content", event_id=event_id
        )
    return text


def parse_client_event(message: str) -> ClientEvent:
    """One JSON text message -> a typed event, or ProtocolError with the Realtime error code."""
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("invalid_json", f"the message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", "a client event must be a JSON object")
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= 200 else None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(
            "missing_type", "the event has no 'type'", param="type", event_id=event_id
        )
    if kind == "session.update":
        return SessionUpdate(event_id, data.get("session"))
    if kind == "input_audio_buffer.append":
        audio = data.get("audio")
        if not isinstance(audio, str):
            raise ProtocolError(
                "invalid_audio", "audio must be a base64 string", param="audio", event_id=event_id
            )
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "invalid_audio", "audio is not valid base64", param="audio", event_id=event_id
            ) from None
        check_pcm16(pcm, "input_audio_buffer.append", event_id)
        return AudioAppend(event_id, pcm)
    if kind == "input_audio_buffer.commit":
        return AudioCommit(event_id)
    if kind == "input_audio_buffer.clear":
        return AudioClear(event_id)
    if kind == "conversation.item.create":
        return ItemCreate(event_id, _item_text(data.get("item"), event_id))
    if kind == "conversation.item.truncate":
        item_id, index, end = (
            data.get("item_id"),
            data.get("content_index", 0),
            data.get("audio_end_ms", 0),
        )
        if not isinstance(item_id, str) or not isinstance(index, int) or not isinstance(end, int):
            raise ProtocolError(
                "invalid_value",
                "truncate needs item_id, content_index and audio_end_ms",
                event_id=event_id,
            )
        return ItemTruncate(event_id, item_id, index, end)
    if kind == "response.create":
        response = data.get("response")
        if response is not None and not isinstance(response, dict):
            raise ProtocolError(
                "invalid_value", "response must be an object", param="response", event_id=event_id
            )
        return ResponseCreate(event_id)
    if kind == "response.cancel":
        rid = data.get("response_id")
        return ResponseCancel(event_id, rid if isinstance(rid, str) else None)
    if kind in UNSUPPORTED_EVENTS:
        raise ProtocolError(
            "unsupported_event",
            f"{kind} is not supported by this server",
            param="type",
            event_id=event_id,
        )
    raise ProtocolError(
        "unknown_event_type",
        f"unknown client event type {kind[:80]!r}",
        param="type",
        event_id=event_id,
    )
