"""One client: a WebSocket, its own Session (own history), an outgoing queue and a writer.

The reader applies client events to the Session in the order they arrive; the Session's events
come back through ``emit`` (synchronous, on the loop), are mapped to Realtime events and put on
a byte-bounded queue that a writer task drains into the socket. Nothing here waits on a model:
the Session runs models on the shared executors, so a slow client or a slow turn never holds up
another connection. When the client goes away, its response is cancelled at once so the shared
models stop working for nobody.

The Session owns the turn: it decides what happens to each commit, response request and cancel
and says so in events. This class only translates (client events -> Session calls, Session
events -> Realtime events via :class:`server.mapper.RealtimeMapper`) and guards the connection
with an idle timeout that counts only meaningful activity (the per-connection rate limit sits in
front of it, in :mod:`server.front`, before a message is even parsed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from catalog.datasets import CatalogEntry, CatalogError
from server.config import ServerConfig
from server.ga_session import parse_update, session_object
from server.mapper import REFUSAL_CODES, Outgoing, RealtimeMapper
from server.metrics import Metrics
from server.protocol import (
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientEvent,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    OutputAudioClear,
    ProtocolError,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    check_pcm16,
    dumps,
    error_from,
    parse_client_event,
)
from server.sendqueue import SendQueue
from server.wire_session import (
    SessionPatch,
    TurnDetection,
    WireSession,
    aggressiveness_to_threshold,
    threshold_to_aggressiveness,
)
from voice.audio.format import SAMPLE_RATE
from voice.audio.resample import PcmStream
from voice.config import TtsConfig
from voice.events import (
    ErrorEvent,
    Event,
    InputCommitted,
    Interrupted,
    Refused,
    ResponseDone,
    SpeechStarted,
)
from voice.exhibit import Exhibit
from voice.pipeline import Session, SessionSettings
from voice.tts import TtsError, resolve_voice

if TYPE_CHECKING:
    from voice.services import Services

log = logging.getLogger(__name__)

# Close codes (RFC 6455) and the reasons sent with them; see docs/protocol.md.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # idle timeout, server shutting down
CLOSE_POLICY = 1008  # bad token, origin not allowed, client not reading
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013  # server full
CLOSE_TIMEOUT_S = 3.0


class Connection:
    """Serves one accepted WebSocket until it closes; see the module docstring."""

    def __init__(
        self,
        ws: ServerConnection,
        *,
        services: Services,
        settings: ServerConfig,
        metrics: Metrics,
        model: str,
        exhibit: Exhibit | None = None,
    ) -> None:
        self.ws = ws
        self._services = services
        self._settings = settings
        self._metrics = metrics
        cfg = services.config
        self._base_vad = dataclasses.replace(
            cfg.vad, max_turn_s=min(cfg.vad.max_turn_s, settings.max_turn_audio_s)
        )
        self.session = Session(
            services,
            self._emit,
            SessionSettings.from_config(cfg, vad=self._base_vad),
            exhibit=exhibit,
        )
        self.wire = WireSession(
            id=self.session.id,
            model=model,
            voice=_voice_name(cfg.tts),
            binary_output_sample_rate=int(services.synthesizer.sample_rate),
            turn_detection=TurnDetection(
                threshold=aggressiveness_to_threshold(cfg.vad.aggressiveness),
                prefix_padding_ms=cfg.vad.preroll_ms,
                silence_duration_ms=cfg.vad.end_silence_ms,
                create_response=True,
                interrupt_response=cfg.pipeline.barge_in,
            ),
            showing_entry=_showing_entry(self.session.showing),
        )
        self.mapper = RealtimeMapper(lambda: self.wire)
        self.queue = SendQueue(settings.send_queue_bytes)
        self._inputs = {
            "json": PcmStream(self.wire.input_audio_sample_rate, SAMPLE_RATE),
            "binary": PcmStream(self.wire.binary_input_sample_rate, SAMPLE_RATE),
        }
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._closing = False
        self.close_reason = "client"
        self._tasks: list[asyncio.Task[None]] = []
        self._close_task: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        """Serve until the client leaves, is dropped or the server stops."""
        self._put_event({"type": "session.created", "session": session_object(self.wire)})
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"writer-{self.wire.id}"),
            asyncio.create_task(self._idle_watch(), name=f"idle-{self.wire.id}"),
        ]
        try:
            async for message in self.ws:
                if self._closing:
                    continue
                await self._handle(message)
        except ConnectionClosed as exc:
            log.info("session %s: connection closed: %s", self.wire.id, exc)
        finally:
            self._closing = True
            # A vanished client must not keep the shared models busy: cancel now, not after
            # the writer has given up.
            self.session.interrupt("closed")
            self.queue.close()
            self.queue.clear()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task
            if self._close_task is not None:
                with contextlib.suppress(Exception):
                    await self._close_task
            await self.session.aclose()
            self._metrics.session_closed(self.close_reason, self.queue.peak_bytes)

    def shutdown(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close from the server's side (shutdown); the reader loop then ends."""
        self.drop(code, reason, "server_shutdown")

    def drop(self, code: int, reason: str, why: str, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Close this client with ``code``/``reason``; cancels its work at once. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self.close_reason = why
        self.session.interrupt("closed")
        self.queue.close()
        self.queue.clear()
        log.info("session %s: closing (%d %s)", self.wire.id, code, reason)
        self._close_task = asyncio.create_task(self._close(code, reason, timeout))

    async def _close(self, code: int, reason: str, timeout: float) -> None:
        """The closing handshake, bounded: a client that does not read never completes it (the
        close frame waits behind unread data), so after CLOSE_TIMEOUT_S the socket is cut."""
        try:
            await asyncio.wait_for(self.ws.close(code, reason), timeout)
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        finally:
            if self.ws.state is not State.CLOSED:
                self.ws.transport.abort()

    async def _writer(self) -> None:
        while (item := await self.queue.get()) is not None:
            try:
                await self.ws.send(item.data)
            except ConnectionClosed:
                return

    async def _idle_watch(self) -> None:
        timeout = self._settings.idle_timeout_s
        while not self._closing:
            remaining = self._last_activity + timeout - self._loop.time()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self.session.busy or len(self.queue):
                self._last_activity = self._loop.time()  # answering is not idling
                continue
            self.drop(CLOSE_GOING_AWAY, f"idle timeout ({timeout:g} s)", "idle")
            return

    def _active(self) -> None:
        """Something meaningful happened (speech heard, a request carried out): the idle
        timeout starts again. Audio without speech and rejected events do not count."""
        self._last_activity = self._loop.time()

    # ----------------------------------------------------------------- output
    def _emit(self, event: Event) -> None:
        """The Session's ``emit``: called synchronously on the loop, in order."""
        match event:
            case SpeechStarted() | InputCommitted():
                self._active()
            case Interrupted():
                self.queue.purge_audio(event.response_id)
            case ResponseDone():
                self._metrics.turn(event.status, event.timings.latencies_ms())
                if event.status == "failed":  # half a sentence then an error: drop the rest
                    self.queue.purge_audio(event.response_id)
            case ErrorEvent():
                self._metrics.error(event.code)
            case Refused():
                self._metrics.error(REFUSAL_CODES[event.reason])
        if self._closing:
            return
        for item in self.mapper.map(event):
            self._put(item)

    def _put(self, item: Outgoing) -> None:
        if self._closing:
            return
        if not self.queue.put(item):
            self._metrics.error("send_queue_full")
            self.drop(
                CLOSE_POLICY,
                f"send queue full ({self._settings.send_queue_bytes} bytes): client not reading",
                "slow_client",
                timeout=1.0,  # the close frame is stuck behind the unread data anyway
            )

    def send_event(self, event: dict[str, Any]) -> None:
        """Send a server event that does not come from the Session (sphere function calls)."""
        self._put_event(event)

    def _put_event(self, event: dict[str, Any]) -> None:
        """A beta-shaped event, sent in the shape the session speaks (see server.dialect)."""
        for item in self.mapper.render(event):
            self._put(item)

    def _error(self, exc: ProtocolError) -> None:
        self._metrics.error(exc.code)
        self._put(Outgoing(dumps(error_from(exc))))

    # ----------------------------------------------------------------- input
    async def _handle(self, message: str | bytes) -> None:
        limit = self._settings.max_message_bytes
        if len(message) > limit:
            kind = "binary frame" if isinstance(message, bytes) else "message"
            self._error(
                ProtocolError(
                    "message_too_large",
                    f"{kind} of {len(message)} bytes is over the limit of {limit} bytes",
                )
            )
            return
        try:
            if isinstance(message, bytes):
                self._binary(message)
                return
            event = parse_client_event(message)
            self.mapper.client_event_id = event.event_id
            try:
                await self._dispatch(event)
            finally:
                self.mapper.client_event_id = None
        except ProtocolError as exc:
            self._error(exc)

    def _binary(self, pcm: bytes) -> None:
        if not pcm:
            raise ProtocolError("invalid_audio", "empty binary frame")
        check_pcm16(pcm, "binary frame")
        self._feed("binary", pcm)

    def _feed(self, path: str, pcm: bytes) -> None:
        stream = self._inputs[path]
        self.session.feed_audio(stream.convert(pcm))

    async def _dispatch(self, event: ClientEvent) -> None:
        match event:
            case SessionUpdate():
                patch = parse_update(event.session, self.wire, event.event_id)
                await self._apply(patch, event.event_id)
            case AudioAppend():
                if event.pcm:
                    self._feed("json", event.pcm)
            case AudioCommit():
                self._commit()
            case AudioClear():
                for stream in self._inputs.values():
                    stream.reset()
                self.session.clear_audio()
                self._put_event({"type": "input_audio_buffer.cleared"})
            case ItemCreate():
                try:
                    item = self.session.add_user_text(event.text)
                except ValueError as exc:
                    raise ProtocolError(
                        "invalid_value", str(exc), param="item.content", event_id=event.event_id
                    ) from None
                self._active()
                for message in self.mapper.user_text_item(item, event.text):
                    self._put(message)
            case ItemTruncate():
                self._put_event(
                    {
                        "type": "conversation.item.truncated",
                        "item_id": event.item_id,
                        "content_index": event.content_index,
                        "audio_end_ms": event.audio_end_ms,
                    }
                )
            case ResponseCreate():
                if event.dialect is not None and event.dialect != self.wire.dialect:
                    self.wire = dataclasses.replace(self.wire, dialect=event.dialect)
                speak = None if event.modalities is None else "audio" in event.modalities
                response_id = self.session.respond(speak)
                if response_id is not None:
                    if event.modalities is not None:
                        self.mapper.expect_modality(response_id, event.modalities)
                    self._active()
            case ItemRetrieve():
                retrieved = self.mapper.retrieve(event.item_id)
                if retrieved is None:
                    raise _item_not_found(event.item_id, event.event_id)
                for message in retrieved:
                    self._put(message)
            case ItemDelete():
                forgotten = self.mapper.forget(event.item_id)
                if forgotten is None:
                    raise _item_not_found(event.item_id, event.event_id)
                self.session.forget(*forgotten)  # the answerer's history loses it too
                self._put_event({"type": "conversation.item.deleted", "item_id": event.item_id})
            case OutputAudioClear():
                response_id = self.mapper.clear_output_audio()
                if response_id is not None:
                    self.queue.purge_audio(response_id)
                self._put_event({"type": "output_audio_buffer.cleared", "response_id": response_id})
            case ResponseCancel():
                if self.session.cancel(event.response_id):
                    self._active()

    async def _apply(self, patch: SessionPatch, event_id: str | None) -> None:
        """Apply a validated session.update to the Session, all or nothing."""
        new = patch.session
        changes: dict[str, Any] = {}
        if patch.turn_detection_changed:
            changes.update(self._turn_settings(new.turn_detection))
        if patch.instructions_changed:
            changes["instructions"] = new.instructions
        if patch.audience_changed:
            changes["audience"] = new.audience
        if new.wants_audio != self.session.settings.speak:
            changes["speak"] = new.wants_audio  # a text-only session costs no speech synthesis
        if patch.showing_given:
            entry: CatalogEntry | None = None
            if patch.showing is not None:
                try:
                    entry = await asyncio.to_thread(self._services.catalog.resolve, patch.showing)
                except CatalogError as exc:
                    raise ProtocolError(
                        "unknown_dataset", str(exc), param="session.showing", event_id=event_id
                    ) from None
            changes["showing"] = entry
        if self._closing:
            return
        if changes:
            try:
                self.session.update(**changes)
            except ValueError as exc:
                raise ProtocolError("invalid_value", str(exc), event_id=event_id) from None
        # The effective dataset: this headset's own, else the installation's (null = follow it).
        new = dataclasses.replace(new, showing_entry=_showing_entry(self.session.showing))
        if new.input_audio_sample_rate != self.wire.input_audio_sample_rate:
            self._inputs["json"] = PcmStream(new.input_audio_sample_rate, SAMPLE_RATE)
        if new.binary_input_sample_rate != self.wire.binary_input_sample_rate:
            self._inputs["binary"] = PcmStream(new.binary_input_sample_rate, SAMPLE_RATE)
        if new != self.wire:
            self._active()
        self.wire = new
        self._put_event({"type": "session.updated", "session": session_object(new)})

    def exhibit_changed(self) -> None:
        """The installation's sphere moved on: a session without its own dataset now answers
        about the new one (the Session reads the exhibit per question), and its client is told
        with ``session.updated``."""
        if self._closing or self.session.settings.showing is not None:
            return
        showing = _showing_entry(self.session.showing)
        if showing != self.wire.showing_entry:
            self.wire = dataclasses.replace(self.wire, showing_entry=showing)
            self._put_event({"type": "session.updated", "session": session_object(self.wire)})

    def _turn_settings(self, td: TurnDetection | None) -> dict[str, Any]:
        if td is None:  # push-to-talk: the client commits and asks for the response
            return {"turn_detection": False, "auto_respond": False, "vad": self._base_vad}
        vad = dataclasses.replace(
            self._base_vad,
            aggressiveness=threshold_to_aggressiveness(td.threshold),
            preroll_ms=td.prefix_padding_ms,
            end_silence_ms=td.silence_duration_ms,
            # semantic_vad names the eagerness; server_vad keeps the config's [vad] eagerness
            eagerness=td.eagerness if td.type == "semantic_vad" else self._base_vad.eagerness,
        )
        return {
            "turn_detection": True,
            "auto_respond": td.create_response,
            "barge_in": td.interrupt_response,
            "vad": vad,
        }

    def _commit(self) -> None:
        for stream in self._inputs.values():
            tail = stream.flush()
            if tail:
                self.session.feed_audio(tail)
        if self.session.commit_audio() is not None:  # else the Session reported why not
            self._active()


def _item_not_found(item_id: str, event_id: str | None) -> ProtocolError:
    return ProtocolError(
        "item_not_found",
        f"no item {item_id[:80]!r} in this conversation",
        param="item_id",
        event_id=event_id,
    )


def _showing_entry(entry: CatalogEntry | None) -> tuple[str, str, str] | None:
    """What the client is told of the showing dataset: its page, title and thumbnail image."""
    return (entry.url, entry.title, entry.thumbnail) if entry is not None else None


def _voice_name(tts: TtsConfig) -> str:
    """The Piper voice's name (its model file's stem) for the session object."""
    try:
        return resolve_voice(tts)[0].stem
    except TtsError:  # it loaded at start-up; its file may have moved since
        return tts.voice
