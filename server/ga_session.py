"""The session object in the GA Realtime shape, both ways, and which shape an update is in.

Why a module of its own: the GA API (``client.realtime``) nests what the beta one
(``client.beta.realtime``) kept flat (``audio.input.format {type: "audio/pcm", rate}`` instead
of ``input_audio_format`` + a rate, ``audio.input.turn_detection`` instead of
``turn_detection``, ``output_modalities`` instead of ``modalities``). Rather than validate two
shapes, a GA ``session.update`` is rewritten into the beta form and validated once by
:func:`server.wire_session.parse_session_update`; errors are then reported under the GA names
the client sent. The reverse, :func:`session_object`, renders ``session.created`` /
``session.updated`` in the shape the session speaks (both shapes while it is not known yet).
Field names follow the ``openai`` SDK's ``types/realtime`` (GA) and ``types/beta/realtime``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from server.protocol import ProtocolError
from server.wire_session import SessionPatch, WireSession, parse_session_update

GA_PCM = "audio/pcm"
# Keys only the GA session has, and keys only the beta one has (or that GA nests elsewhere).
GA_ONLY = frozenset(
    {
        "type",
        "audio",
        "output_modalities",
        "max_output_tokens",
        "include",
        "prompt",
        "truncation",
        "parallel_tool_calls",
        "reasoning",
    }
)
BETA_ONLY = frozenset(
    {
        "modalities",
        "voice",
        "input_audio_format",
        "output_audio_format",
        "input_audio_sample_rate",
        "output_audio_sample_rate",
        "turn_detection",
        "input_audio_transcription",
        "input_audio_noise_reduction",
        "max_response_output_tokens",
        "temperature",
        "speed",
        "client_secret",
    }
)
# GA keys that change nothing here (accepted so GA clients work unchanged).
GA_IGNORED = frozenset({"include", "prompt", "truncation", "parallel_tool_calls", "reasoning"})
# Beta parameter names (as validation errors carry them) -> the GA names the client used.
GA_PARAMS = (
    ("session.modalities", "session.output_modalities"),
    ("session.turn_detection", "session.audio.input.turn_detection"),
    ("session.input_audio_sample_rate", "session.audio.input.format.rate"),
    ("session.output_audio_sample_rate", "session.audio.output.format.rate"),
    ("session.voice", "session.audio.output.voice"),
    ("session.max_response_output_tokens", "session.max_output_tokens"),
)


def update_dialect(session: Any) -> str | None:
    """``"ga"``, ``"beta"`` or None (only keys both shapes share) for a ``session`` object."""
    if not isinstance(session, dict):
        return None
    if GA_ONLY & session.keys():
        return "ga"
    if BETA_ONLY & session.keys():
        return "beta"
    return None


def parse_update(session: Any, current: WireSession, event_id: str | None) -> SessionPatch:
    """Validate a ``session.update`` in either shape; the patch's session speaks that shape."""
    dialect = update_dialect(session) or current.dialect
    if update_dialect(session) != "ga":
        patch = parse_session_update(session, current, event_id)
    else:
        beta = _beta_form(session, event_id)
        try:
            patch = parse_session_update(beta, current, event_id)
        except ProtocolError as exc:  # named in the beta form: say it the client's way
            exc.param, exc.message = _ga_name(exc.param), _ga_name(exc.message) or exc.message
            exc.args = (exc.message,)
            raise
    new = dataclasses.replace(patch.session, dialect=dialect)
    return dataclasses.replace(patch, session=new)


def _ga_name(text: str | None) -> str | None:
    if text is None:
        return None
    for beta, ga in GA_PARAMS:
        text = text.replace(beta, ga)
    return text


def _fail(code: str, message: str, param: str, event_id: str | None) -> ProtocolError:
    return ProtocolError(code, message, param=param, event_id=event_id)


def _object(value: Any, param: str, keys: frozenset[str], event_id: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("invalid_value", f"{param} must be an object", param, event_id)
    for name in sorted(value):
        if name not in keys:
            raise _fail(
                "unknown_parameter",
                f"unknown parameter {param}.{name}",
                f"{param}.{name}",
                event_id,
            )
    return value


def _format(value: Any, param: str, event_id: str | None) -> int | None:
    """``{type: "audio/pcm", rate}`` -> the rate (None: unchanged); other formats refused."""
    fmt = _object(value, param, frozenset({"type", "rate"}), event_id)
    kind = fmt.get("type", GA_PCM)
    if kind != GA_PCM:
        raise _fail(
            "unsupported_audio_format",
            f"{param}.type {kind!r} is not supported: only 'audio/pcm' (16-bit little-endian "
            "mono; rate 24000 by default, 8000..48000 as an extension)",
            f"{param}.type",
            event_id,
        )
    return fmt.get("rate")


def _beta_form(session: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    """A GA ``session`` object rewritten with the beta names (values still unchecked)."""
    if session.get("type", "realtime") != "realtime":
        raise _fail(
            "unsupported_session_type",
            f"session.type {session.get('type')!r} is not supported: only 'realtime'",
            "session.type",
            event_id,
        )
    out: dict[str, Any] = {}
    for name, value in session.items():
        if name in BETA_ONLY:
            raise _fail(
                "unknown_parameter",
                f"unknown parameter session.{name} (a beta field; this update is in the GA "
                "shape: see session.audio and session.output_modalities)",
                f"session.{name}",
                event_id,
            )
        if name not in GA_ONLY:
            out[name] = value  # shared keys and SOS extensions; checked by the beta parser
    if "output_modalities" in session:
        mods = session["output_modalities"]
        if not isinstance(mods, list) or not mods or not all(m in ("text", "audio") for m in mods):
            raise _fail(
                "invalid_value",
                "session.output_modalities must be ['audio'] or ['text']",
                "session.output_modalities",
                event_id,
            )
        out["modalities"] = ["text", "audio"] if "audio" in mods else ["text"]
    if "max_output_tokens" in session:
        out["max_response_output_tokens"] = session["max_output_tokens"]
    audio = _object(session.get("audio"), "session.audio", frozenset({"input", "output"}), event_id)
    keys_in = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
    audio_in = _object(audio.get("input"), "session.audio.input", keys_in, event_id)
    if "format" in audio_in:
        rate = _format(audio_in["format"], "session.audio.input.format", event_id)
        out["input_audio_format"] = "pcm16"
        if rate is not None:
            out["input_audio_sample_rate"] = rate
    if "turn_detection" in audio_in:
        out["turn_detection"] = audio_in["turn_detection"]
    keys_out = frozenset({"format", "voice", "speed"})
    audio_out = _object(audio.get("output"), "session.audio.output", keys_out, event_id)
    if "format" in audio_out:
        rate = _format(audio_out["format"], "session.audio.output.format", event_id)
        out["output_audio_format"] = "pcm16"
        if rate is not None:
            out["output_audio_sample_rate"] = rate
    if "voice" in audio_out:
        voice = audio_out["voice"]
        out["voice"] = voice.get("id") if isinstance(voice, dict) else voice
    return out


# --------------------------------------------------------------------------- server side
def session_object(wire: WireSession) -> dict[str, Any]:
    """The session for ``session.created`` / ``session.updated`` in the session's shape."""
    beta = wire.to_wire()
    if wire.dialect == "beta":
        return beta
    ga = _ga_object(wire, beta)
    return ga if wire.dialect == "ga" else {**beta, **ga}


def _ga_object(wire: WireSession, beta: dict[str, Any]) -> dict[str, Any]:
    extensions = {k: v for k, v in beta.items() if k.startswith("sos_")}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": wire.id,
        "model": wire.model,
        "output_modalities": ["audio"] if wire.wants_audio else ["text"],
        "instructions": wire.instructions,
        "audio": {
            "input": {
                "format": {"type": GA_PCM, "rate": wire.input_audio_sample_rate},
                "transcription": {"model": "whisper"},
                "noise_reduction": None,
                "turn_detection": beta["turn_detection"],
            },
            "output": {
                "format": {"type": GA_PCM, "rate": wire.output_audio_sample_rate},
                "voice": wire.voice,
                "speed": 1.0,
            },
        },
        "tools": [],
        "tool_choice": "none",
        "max_output_tokens": wire.max_response_output_tokens,
        "tracing": None,
        "truncation": "auto",
        **extensions,
        "audience": wire.audience,
        "showing": beta["showing"],
    }
