"""The wire format: OpenAI Realtime client events (beta and GA shapes) in, typed commands out.

Everything here is pure (no I/O, no models) so that each rule of docs/protocol.md can be tested
on its own: parsing and validating client events and the ``error`` event (the session object
and ``session.update`` are in :mod:`server.wire_session`). A bad event becomes a
:class:`ProtocolError` carrying the Realtime error fields; the connection turns it into an
``error`` event and the session goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from voice.events import new_id

ErrorType = Literal["invalid_request_error", "server_error"]

UNSUPPORTED_EVENTS = frozenset({"transcription_session.update"})


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
class ItemDelete(ClientEvent):
    item_id: str


@dataclass(frozen=True)
class ItemRetrieve(ClientEvent):
    item_id: str


@dataclass(frozen=True)
class OutputAudioClear(ClientEvent):
    pass


@dataclass(frozen=True)
class ResponseCreate(ClientEvent):
    """``modalities``: this response's own (``("text",)`` = no audio), None = the session's;
    ``dialect``: ``"ga"`` for ``output_modalities``, ``"beta"`` for ``modalities``."""

    modalities: tuple[str, ...] | None = None
    dialect: str | None = None


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


def _response_modalities(
    response: dict[str, Any], event_id: str | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """A ``response.create``'s own output modalities and the shape they were named in."""
    given = [
        (n, d) for n, d in (("output_modalities", "ga"), ("modalities", "beta")) if n in response
    ]
    if not given:
        return None, None
    if len(given) > 1:
        raise ProtocolError(
            "invalid_value",
            "response: give output_modalities (GA) or modalities (beta), not both",
            param="response.modalities",
            event_id=event_id,
        )
    name, dialect = given[0]
    mods = response[name]
    if not isinstance(mods, list) or not mods or not all(m in ("text", "audio") for m in mods):
        raise ProtocolError(
            "invalid_value",
            f"response.{name} must be a list of 'text' and/or 'audio'",
            param=f"response.{name}",
            event_id=event_id,
        )
    return (("text", "audio") if "audio" in mods else ("text",)), dialect


def _item_id(data: dict[str, Any], event_id: str | None) -> str:
    item_id = data.get("item_id")
    if not isinstance(item_id, str) or not item_id or len(item_id) > 200:
        raise ProtocolError(
            "invalid_value", "item_id must be an item's id", param="item_id", event_id=event_id
        )
    return item_id


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
        return ResponseCreate(event_id, *_response_modalities(response or {}, event_id))
    if kind == "response.cancel":
        rid = data.get("response_id")
        return ResponseCancel(event_id, rid if isinstance(rid, str) else None)
    if kind == "conversation.item.delete":
        return ItemDelete(event_id, _item_id(data, event_id))
    if kind == "conversation.item.retrieve":
        return ItemRetrieve(event_id, _item_id(data, event_id))
    if kind == "output_audio_buffer.clear":
        return OutputAudioClear(event_id)
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
