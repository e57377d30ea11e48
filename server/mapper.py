"""Session events (voice/events.py) -> Realtime server events, for one connection.

A Realtime client expects more structure than the voice loop produces: every response has an
output item and a content part that are "added" before any delta and "done" before
``response.done``, user turns are conversation items with ids known from ``speech_started`` on,
and audio arrives at the rate the client asked for. This class keeps exactly that per-connection
bookkeeping and nothing else, so it is testable without a socket or a model.

Events are built in the beta shape; a session that speaks GA gets each one translated by
:mod:`server.dialect` as it is serialized. The items the client was told about are kept (the
last :data:`MAX_ITEMS`) so that ``conversation.item.retrieve`` can answer.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.dialect import to_ga
from server.protocol import ErrorType, dumps, error_event
from server.wire_session import WireSession
from voice.audio.resample import PcmStream
from voice.events import (
    ErrorEvent,
    Event,
    InputCommitted,
    Interrupted,
    RefusalReason,
    Refused,
    ResponseAudio,
    ResponseDone,
    ResponseLink,
    ResponseStarted,
    ResponseTextDelta,
    SpeechStarted,
    SpeechStopped,
    StatusChanged,
    TranscriptReady,
    TurnDropped,
    new_id,
)

AUDIO_CHUNK_S = 0.25
"""Longest audio piece per message: small enough for any client's frame limit and to start
playback early, large enough that base64 JSON overhead stays negligible."""

# The Realtime error code for each outcome the Session reports in its own terms.
REFUSAL_CODES: dict[RefusalReason, str] = {
    "empty_input": "input_audio_buffer_commit_empty",
    "input_too_long": "input_audio_buffer_too_long",
    "response_active": "conversation_already_has_active_response",
    "nothing_to_answer": "nothing_to_answer",
    "no_speech": "no_speech",
    "no_active_response": "response_cancel_not_active",
    "unknown_response": "response_not_found",
}
REFUSAL_PARAMS: dict[RefusalReason, str] = {"unknown_response": "response_id"}
# Dropped turns the client is told about (a silent turn or a barge-in is not news to it).
DROP_CODES = {"overrun": "input_audio_turn_dropped", "too_long": "input_audio_turn_dropped"}
CANCEL_REASONS = {"client": "client_cancelled", "barge_in": "turn_detected", "closed": "closed"}
MAX_ITEMS = 200
"""Items kept for ``conversation.item.retrieve``: far more than the answerer's history."""
MAX_PENDING_MODALITIES = 8
# Events whose ``item`` is remembered (the latest state of each item wins).
ITEM_EVENTS = frozenset({"conversation.item.created", "response.output_item.done"})


@dataclass(slots=True)
class Outgoing:
    """One message for the client. ``audio`` marks pieces dropped if the response is cancelled."""

    data: str | bytes
    response_id: str | None = None
    audio: bool = False

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class _Response:
    id: str
    item_id: str
    modality: str  # "audio" or "text": which delta events carry the text
    binary: bool
    rate: int
    resampler: PcmStream | None = None
    parts: list[str] = field(default_factory=list)
    link: dict[str, str] | None = None
    interrupted: bool = False
    reprompt: str | None = None  # why this response is the "didn't catch that" reply


class RealtimeMapper:
    """Turns each Session event into the Realtime events a client expects, in order."""

    def __init__(self, wire: Callable[[], WireSession]) -> None:
        self._wire = wire
        self._item_ids: dict[str, str] = {}  # session item id -> wire item id
        self._pending_item: str | None = None  # announced by speech_started, not yet committed
        self._audio_s: dict[str, float] = {}  # wire item id -> its audio's length (usage)
        self._last_item: str | None = None
        self._responses: dict[str, _Response] = {}
        self._modalities: dict[str, str] = {}  # response id -> its own modality (response.create)
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._last_response: str | None = None
        self.client_event_id: str | None = None
        """Set by the connection while it handles a client event, for synchronous errors."""

    # ----------------------------------------------------------------- helpers for the caller
    @property
    def active_response(self) -> str | None:
        """The response the client is being sent now (a sphere action belongs to it)."""
        return next(iter(self._responses), None)

    def render(self, event: dict[str, Any]) -> list[Outgoing]:
        """A server event made elsewhere (sphere calls, acknowledgements) in the session's
        shape, ready to send."""
        return self._json(event)

    def expect_modality(self, response_id: str, modalities: tuple[str, ...]) -> None:
        """``response.create`` asked for its own output modalities: ``("text",)`` streams no
        audio for that response, whatever the session's modalities."""
        self._modalities[response_id] = "audio" if "audio" in modalities else "text"
        while len(self._modalities) > MAX_PENDING_MODALITIES:  # asked for, never started
            del self._modalities[next(iter(self._modalities))]

    def retrieve(self, item_id: str) -> list[Outgoing] | None:
        """``conversation.item.retrieved`` for an item the client was told about, else None.
        Items carry no audio (the server keeps none); a spoken item has its transcript."""
        item = self._items.get(item_id)
        if item is None:
            return None
        return self._json({"type": "conversation.item.retrieved", "item": item})

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._items

    def forget(self, item_id: str) -> tuple[str, str] | None:
        """``conversation.item.delete``: drop the item; returns its (role, text) so the Session
        can drop the same message from the history the answerer sees, or None if unknown."""
        item = self._items.pop(item_id, None)
        if item is None:
            return None
        content = item.get("content") or [{}]
        text = content[0].get("transcript") or content[0].get("text") or ""
        return str(item.get("role", "")), str(text)

    def clear_output_audio(self) -> str | None:
        """``output_audio_buffer.clear``: no more audio of the response being sent (its text
        and ``response.done`` still come). Returns that response's id, else the last one's."""
        rid = self.active_response
        if rid is not None:
            self._responses[rid].interrupted = True
        return rid or self._last_response

    def user_text_item(self, session_item_id: str, text: str) -> list[Outgoing]:
        """``conversation.item.created`` for a typed question (the Session emits nothing)."""
        item_id = new_id("item")
        previous, self._last_item = self._last_item, item_id
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        return self._json(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": item}
        )

    # ----------------------------------------------------------------- mapping
    def map(self, event: Event) -> list[Outgoing]:
        match event:
            case SpeechStarted():
                self._pending_item = new_id("item")
                return self._json(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": event.audio_ms,
                        "item_id": self._pending_item,
                    }
                )
            case SpeechStopped():
                self._pending_item = self._pending_item or new_id("item")
                return self._json(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": event.audio_ms,
                        "item_id": self._pending_item,
                    }
                )
            case InputCommitted():
                return self._committed(event)
            case TranscriptReady():
                item_id = self._item_ids.pop(event.item_id, None)
                if item_id is None:  # a typed question: its item was announced already
                    return []
                if item_id in self._items:
                    self._items[item_id]["content"][0]["transcript"] = event.text
                seconds = self._audio_s.pop(item_id, 0.0)
                return self._json(
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item_id,
                        "content_index": 0,
                        "transcript": event.text,
                        "usage": {"type": "duration", "seconds": seconds},
                    }
                )
            case ResponseStarted():
                return self._started(event)
            case ResponseTextDelta():
                return self._text_delta(event)
            case ResponseLink():
                response = self._responses.get(event.response_id)
                if response is not None:
                    response.link = {"url": event.url, "title": event.title}
                return []
            case ResponseAudio():
                return self._audio(event)
            case Interrupted():
                response = self._responses.get(event.response_id)
                if response is not None:
                    response.interrupted = True  # no more audio: it is being cut off
                return []
            case ResponseDone():
                return self._done(event)
            case ErrorEvent():  # a model call failed: the server's fault, not the client's
                return self._error(event.code, event.message, "server_error")
            case Refused():
                param = REFUSAL_PARAMS.get(event.reason)
                return self._error(REFUSAL_CODES[event.reason], event.message, param=param)
            case TurnDropped():
                self._audio_s.pop(self._item_ids.pop(event.item_id, ""), None)
                code = DROP_CODES.get(event.reason)
                return self._error(code, event.message) if code else []
            case StatusChanged():
                return []  # no Realtime equivalent; clients infer it from the events above
        return []

    def _error(
        self,
        code: str,
        message: str,
        type: ErrorType = "invalid_request_error",
        param: str | None = None,
    ) -> list[Outgoing]:
        return self._json(
            error_event(code, message, param=param, client_event_id=self.client_event_id, type=type)
        )

    def _json(
        self, event: dict[str, Any], response_id: str | None = None, *, audio: bool = False
    ) -> list[Outgoing]:
        """One beta-shaped event -> the messages in the session's shape (GA: renamed, and an
        item event may become two)."""
        if event["type"] in ITEM_EVENTS and "id" in event["item"]:
            self._remember(event["item"])
        wire = self._wire()
        events = [event] if wire.dialect != "ga" else to_ga(event, _output_rate(wire))
        return [
            Outgoing(dumps({"event_id": new_id("event"), **e}), response_id, audio) for e in events
        ]

    def _remember(self, item: dict[str, Any]) -> None:
        self._items[item["id"]] = item
        self._items.move_to_end(item["id"])
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)

    def _committed(self, event: InputCommitted) -> list[Outgoing]:
        item_id = self._pending_item or new_id("item")
        self._pending_item = None
        self._item_ids[event.item_id] = item_id
        self._audio_s[item_id] = event.audio_ms / 1000
        previous, self._last_item = self._last_item, item_id
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        return [
            *self._json(
                {
                    "type": "input_audio_buffer.committed",
                    "previous_item_id": previous,
                    "item_id": item_id,
                }
            ),
            *self._json(
                {"type": "conversation.item.created", "previous_item_id": previous, "item": item}
            ),
        ]

    def _started(self, event: ResponseStarted) -> list[Outgoing]:
        wire = self._wire()
        rid = event.response_id
        response = _Response(
            id=rid,
            item_id=new_id("item"),
            modality=self._modalities.pop(rid, "audio" if wire.wants_audio else "text"),
            binary=wire.binary_audio,
            rate=wire.binary_output_sample_rate
            if wire.binary_audio
            else wire.output_audio_sample_rate,
            reprompt=event.reprompt,
        )
        self._responses[rid] = response
        self._last_response = rid
        previous, self._last_item = self._last_item, response.item_id
        item = self._item(response, "in_progress", with_content=False)
        part = self._part(response)
        body = self._response(response, wire)
        return [
            *self._json({"type": "response.created", "response": body}, rid),
            *self._json(
                {
                    "type": "response.output_item.added",
                    "response_id": rid,
                    "output_index": 0,
                    "item": item,
                },
                rid,
            ),
            *self._json(
                {"type": "conversation.item.created", "previous_item_id": previous, "item": item},
                rid,
            ),
            *self._json(
                {"type": "response.content_part.added", **self._where(response), "part": part},
                rid,
            ),
        ]

    def _text_delta(self, event: ResponseTextDelta) -> list[Outgoing]:
        response = self._responses.get(event.response_id)
        if response is None:
            return []
        response.parts.append(event.text)
        kind = (
            "response.audio_transcript.delta"
            if response.modality == "audio"
            else ("response.text.delta")
        )
        return self._json({"type": kind, **self._where(response), "delta": event.text}, response.id)

    def _audio(self, event: ResponseAudio) -> list[Outgoing]:
        response = self._responses.get(event.response_id)
        if response is None or response.modality != "audio" or response.interrupted:
            return []
        if not event.pcm:
            return []
        pcm = self._resample(response, event.pcm, event.sample_rate)
        return self._audio_messages(response, pcm)

    def _resample(self, response: _Response, pcm: bytes, rate: int) -> bytes:
        if rate == response.rate:
            return pcm
        if response.resampler is None or response.resampler.from_rate != rate:
            response.resampler = PcmStream(rate, response.rate)
        return response.resampler.convert(pcm)

    def _audio_messages(self, response: _Response, pcm: bytes) -> list[Outgoing]:
        step = max(2, int(response.rate * AUDIO_CHUNK_S) * 2)
        out: list[Outgoing] = []
        for start in range(0, len(pcm), step):
            piece = pcm[start : start + step]
            if response.binary:
                out.append(Outgoing(piece, response.id, audio=True))
            else:
                message = {
                    "type": "response.audio.delta",
                    **self._where(response),
                    "delta": base64.b64encode(piece).decode("ascii"),
                }
                out.extend(self._json(message, response.id, audio=True))
        return out

    def _done(self, event: ResponseDone) -> list[Outgoing]:
        response = self._responses.pop(event.response_id, None)
        reason = CANCEL_REASONS[event.cancel_reason or "barge_in"]
        if response is None:
            return []
        rid = response.id
        out: list[Outgoing] = []
        if event.status == "completed" and response.resampler and not response.interrupted:
            tail = response.resampler.flush()
            out.extend(self._audio_messages(response, tail))
        text = event.text or "".join(response.parts).strip()
        where = self._where(response)
        if response.modality == "audio":
            out.extend(self._json({"type": "response.audio.done", **where}, rid))
            out.extend(
                self._json(
                    {"type": "response.audio_transcript.done", **where, "transcript": text}, rid
                )
            )
        else:
            out.extend(self._json({"type": "response.text.done", **where, "text": text}, rid))
        status = "completed" if event.status == "completed" else "incomplete"
        item = self._item(response, status, text=text)
        out.extend(
            self._json(
                {"type": "response.content_part.done", **where, "part": self._part(response, text)},
                rid,
            )
        )
        out.extend(
            self._json(
                {
                    "type": "response.output_item.done",
                    "response_id": rid,
                    "output_index": 0,
                    "item": item,
                },
                rid,
            )
        )
        details: dict[str, Any] | None = None
        if event.status == "cancelled":
            details = {"type": "cancelled", "reason": reason}
        elif event.status == "failed":
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "response_failed",
                    "message": event.error or "the answer failed",
                },
            }
        body = self._response(
            response, self._wire(), status=event.status, details=details, items=[item]
        )
        link = None
        if event.link:
            link = {"url": event.link, "title": event.link_title or event.link}
        body["sos_link"] = link
        body["sos_timings_ms"] = event.timings.latencies_ms()
        out.extend(self._json({"type": "response.done", "response": body}, rid))
        return out

    # ----------------------------------------------------------------- shapes
    @staticmethod
    def _where(response: _Response) -> dict[str, Any]:
        return {
            "response_id": response.id,
            "item_id": response.item_id,
            "output_index": 0,
            "content_index": 0,
        }

    @staticmethod
    def _part(response: _Response, text: str = "") -> dict[str, Any]:
        if response.modality == "audio":
            return {"type": "audio", "transcript": text}
        return {"type": "text", "text": text}

    def _item(
        self, response: _Response, status: str, *, text: str = "", with_content: bool = True
    ) -> dict[str, Any]:
        return {
            "id": response.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [self._part(response, text)] if with_content else [],
        }

    @staticmethod
    def _response(
        response: _Response,
        wire: WireSession,
        *,
        status: str = "in_progress",
        details: dict[str, Any] | None = None,
        items: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        # A reprompt says so in the response's metadata (a Realtime field clients may read).
        metadata = (
            {"metadata": {"sos_voice_reprompt": response.reprompt}} if response.reprompt else {}
        )
        return {
            **metadata,
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": items or [],
            "usage": None,
            "conversation_id": wire.id.replace("sess_", "conv_", 1),
            "modalities": ["text", "audio"] if response.modality == "audio" else ["text"],
            "voice": wire.voice,
            "output_audio_format": "pcm16",
        }


def _output_rate(wire: WireSession) -> int:
    """The rate the client gets audio at (the GA response object names it)."""
    return wire.binary_output_sample_rate if wire.binary_audio else wire.output_audio_sample_rate
