"""The session as a Realtime client sees it, and ``session.update`` validated all or nothing.

Pure, like :mod:`server.protocol`: the connection applies a :class:`SessionPatch` to its
Session; this module only knows the wire's fields, ranges and defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from llm.base import AUDIENCES
from server.protocol import ProtocolError

PCM16 = "pcm16"
REALTIME_PCM16_RATE = 24000
"""Realtime's ``pcm16`` is 24 kHz: the default for base64 audio, so unchanged clients work."""
BINARY_INPUT_RATE = 16000
"""Default rate of binary input frames: the pipeline's own rate, so nothing is resampled."""
MIN_RATE, MAX_RATE = 8000, 48000
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
        "idle_timeout_ms",
    }
)
TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")
EAGERNESS_SILENCE_MS = {"high": 300, "auto": 700, "medium": 700, "low": 1200}
"""``semantic_vad``'s eagerness is the session's ``vad.eagerness`` (turn-taking on the early
transcript's words, :mod:`voice.turn_end`) and also sets the end-of-turn silence the words
fall back on (``high`` answers after a short pause, ``low`` waits through a long one; ``auto``
is ``medium``, as in Realtime)."""


# --------------------------------------------------------------------------- session state
@dataclass(frozen=True)
class TurnDetection:
    """Realtime ``server_vad`` / ``semantic_vad`` settings; mapped onto our webrtcvad
    endpointer by the caller (``semantic_vad``'s eagerness sets ``silence_duration_ms`` and
    the session's ``vad.eagerness``)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    type: str = "server_vad"
    eagerness: str = "auto"

    def to_wire(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        if self.type == "semantic_vad":  # the fields Realtime shows for semantic_vad
            keep = ("type", "eagerness", "create_response", "interrupt_response")
            return {name: fields[name] for name in keep}
        del fields["eagerness"]
        return {"type": fields.pop("type"), **fields}


def threshold_to_aggressiveness(threshold: float) -> int:
    """Realtime's VAD threshold (0..1, higher = needs louder speech) -> webrtcvad 0..3."""
    return 0 if threshold < 0.2 else 1 if threshold < 0.4 else 2 if threshold < 0.65 else 3


def aggressiveness_to_threshold(aggressiveness: int) -> float:
    return {0: 0.1, 1: 0.3, 2: 0.5, 3: 0.8}.get(aggressiveness, 0.5)


@dataclass(frozen=True)
class WireSession:
    """The session as the client sees it (``session.created`` / ``session.updated``).

    ``showing`` is what the client asked for; the connection resolves it against the catalog
    and stores the entry's (url, title, thumbnail) in ``showing_entry``.
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
    showing_entry: tuple[str, str, str] | None = None  # url, title, thumbnail (may be "")
    temperature: float = 0.8
    max_response_output_tokens: int | str = "inf"
    dialect: str | None = None
    """Which Realtime shape the client speaks: ``"beta"``, ``"ga"`` or None (not shown yet:
    beta event names, session objects in both shapes); see :mod:`server.dialect`."""

    @property
    def wants_audio(self) -> bool:
        return "audio" in self.modalities

    def to_wire(self) -> dict[str, Any]:
        showing = None
        if self.showing_entry is not None:
            url, title, thumbnail = self.showing_entry
            showing = {"url": url, "title": title}
            if thumbnail:
                showing["thumbnail"] = thumbnail
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
    if kind not in TURN_DETECTION_TYPES:
        raise ProtocolError(
            "unsupported_turn_detection",
            f"{param}.type {kind!r} is not supported: use 'server_vad', 'semantic_vad' or null "
            "(push-to-talk)",
            param=f"{param}.type",
            event_id=event_id,
        )
    base = current or TurnDetection()
    changes: dict[str, Any] = {"type": kind}
    if kind == "semantic_vad":
        eagerness = value.get("eagerness", "auto")
        if not isinstance(eagerness, str) or eagerness not in EAGERNESS_SILENCE_MS:
            raise ProtocolError(
                "invalid_value",
                f"{param}.eagerness must be one of low, medium, high, auto",
                param=f"{param}.eagerness",
                event_id=event_id,
            )
        changes["eagerness"] = eagerness
        changes["silence_duration_ms"] = EAGERNESS_SILENCE_MS[eagerness]
    elif base.type == "semantic_vad":  # back to server_vad: its own default silence
        changes["silence_duration_ms"] = TurnDetection.silence_duration_ms
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
