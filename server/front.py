"""The front of every TCP connection on the service's port: h11 reads the request, WebSocket
handshakes go on to websockets, every other request is answered here.

Why: websockets' own HTTP parser is made for handshakes only (no request bodies, no methods
but GET), and reading bodies by hand inside it failed on large bodies and repeated headers.
h11 is a complete, strict HTTP/1.1 parser without I/O of its own (already installed with the
stack: uvicorn and httpx use it). It rejects what HTTP forbids (a repeated Host, a bad
Content-Length, an oversized head) before any route sees it, and it lets this class stay the
``ServerConnection`` websockets creates, so :mod:`server.connection` keeps the same WebSocket
object it always had. A whole ASGI stack (uvicorn/starlette, aiohttp) would have replaced that
object with its own WebSocket type.

The same class applies the per-connection rate limit (:mod:`server.ratelimit`) to incoming
WebSocket frames, before they are assembled into messages: it is the one place every frame
passes, and an over-limit frame then costs no parsing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import h11
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode

from server.http import HttpRequest, HttpResponse, error_response
from server.ratelimit import RateLimit, Verdict

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024
# A body over the limit is read and thrown away up to this size, so the client is still
# reading when the 413 comes (closing on unread data would reset the connection instead).
MAX_DRAIN_BYTES = 4 * 1024 * 1024
# Headers a request may carry once at most: a second Origin or Authorization would otherwise
# leave it to chance which one a check reads (h11 itself refuses a second Host).
SINGLE_HEADERS = ("origin", "authorization", "upgrade")
CLOSE_POLICY = 1008
LINGER_S = 2.0


class FrontApp(Protocol):
    """What the server provides to the front (see :class:`server.app.Server`)."""

    def wants_websocket(self, request: HttpRequest) -> bool: ...

    def respond(self, request: HttpRequest) -> Awaitable[HttpResponse]: ...

    def rate_limit(self) -> RateLimit | None: ...

    def rate_limited(self, dropped: int, limit: RateLimit) -> str: ...


class FrontConnection(ServerConnection):
    """A websockets ``ServerConnection`` whose requests are read by h11 first.

    Built by websockets' ``serve`` through ``create_connection=front_factory(app)``.
    """

    def __init__(self, *args: Any, app: FrontApp, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = app
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._raw = bytearray()  # what came in before the head was complete
        self._passthrough = False  # a WebSocket: websockets reads everything itself
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._too_large = False
        self._drained = 0
        self._answered = False
        self._task: asyncio.Task[None] | None = None
        self._limit: RateLimit | None = None
        self._dropping = False  # the rest of a dropped fragmented message
        self._cut_off = False  # closing for the rate limit: no message gets through any more

    # ----------------------------------------------------------------- HTTP
    def data_received(self, data: bytes) -> None:
        if self._passthrough:
            super().data_received(data)
            return
        if self._answered:
            return  # draining a refused body, or the client goes on after the response
        if self._request is None:
            self._raw += data
            if len(self._raw) > MAX_HEAD_BYTES and b"\r\n\r\n" not in self._raw[:MAX_HEAD_BYTES]:
                self._reply(error_response(431, "head_too_large", "the request head is too large"))
                return
        try:
            self._h11.receive_data(data)
            self._pump()
        except h11.RemoteProtocolError as exc:
            self._reply(error_response(exc.error_status_hint, "bad_request", str(exc)))
        except Exception:  # a bug here must cost one request, not a traceback and a reset
            log.exception("reading a request failed")
            self._reply(error_response(500, "server_error", "the server could not read that"))

    def eof_received(self) -> bool | None:
        if self._passthrough:
            return super().eof_received()
        # A client that half-closes after its request still gets the answer.
        # After the answer, or while lingering, the connection closes now.
        return True if self._task is not None and not self._task.done() else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()
        super().connection_lost(exc)

    def _pump(self) -> None:
        while not self._answered:
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                if not self._head(event):
                    return
            elif isinstance(event, h11.Data):
                self._drained += len(event.data)
                if self._drained > MAX_DRAIN_BYTES:  # a chunked body that does not end
                    self._reply(_too_large())
                    return
                if len(self._body) + len(event.data) > MAX_BODY_BYTES:
                    self._too_large = True
                    self._body.clear()
                elif not self._too_large:
                    self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._complete()
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _head(self, event: h11.Request) -> bool:
        """A request head is complete; False when it has been dealt with already."""
        self._request = event
        for name in SINGLE_HEADERS:
            if sum(1 for key, _ in event.headers if key == name.encode()) > 1:
                self._reply(
                    error_response(400, "bad_request", f"more than one {name.title()} header")
                )
                return False
        request = _request(event, b"")
        if self._app.wants_websocket(request):
            self._passthrough = True
            self._limit = self._app.rate_limit()
            raw, self._raw = bytes(self._raw), bytearray()
            super().data_received(raw)
            return False
        self._raw = bytearray()
        length = _content_length(event)
        if length is not None and length > MAX_DRAIN_BYTES:
            self._reply(_too_large())
            return False
        if self._h11.they_are_waiting_for_100_continue:  # curl asks before a body over 1 KB
            self.transport.write(
                self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
            )
        return True

    def _complete(self) -> None:
        assert self._request is not None
        if self._too_large:
            self._reply(_too_large())
            return
        request = _request(self._request, bytes(self._body))
        self._task = self.loop.create_task(self._respond(request))

    async def _respond(self, request: HttpRequest) -> None:
        try:
            answer = await self._app.respond(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            answer = error_response(500, "server_error", "the server could not answer")
        self._reply(answer, head_only=request.method == "HEAD")

    def _reply(self, answer: HttpResponse, *, head_only: bool = False) -> None:
        """Send the response and close (one request per connection, as the page needs)."""
        if self._answered:
            return
        self._answered = True
        headers = [(k, v) for k, v in answer.headers if k.lower() not in ("server", "date")]
        if answer.header("Content-Length") is None:
            headers.append(("Content-Length", str(len(answer.body))))
        if answer.header("Connection") is None:
            headers.append(("Connection", "close"))
        headers.append(("Server", "sos-voice"))
        head = h11.Response(status_code=answer.status, headers=headers, reason=answer.reason)
        client_done = self._h11.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
        try:
            out = self._h11.send(head)
        except h11.LocalProtocolError:  # e.g. the request itself was unreadable
            out = _plain_head(answer.status, answer.reason, headers)
        if not head_only:
            out = (out or b"") + answer.body
        if self.transport.is_closing():
            return
        self.transport.write(out or b"")
        if client_done:
            self.transport.close()
            return
        # The client is still sending (a refused body, a broken request): closing now, with its
        # bytes unread, would reset the connection and could destroy the answer before it is
        # read. So: end our side, throw away what comes (data_received), close on its EOF or
        # after LINGER_S.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    # ----------------------------------------------------------------- WebSocket frames
    def process_event(self, event: Any) -> None:
        if self._limit is not None and isinstance(event, Frame):
            if self._cut_off and event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                return
            if event.opcode in (Opcode.TEXT, Opcode.BINARY):
                verdict = self._limit.message(len(event.data))
                self._dropping = verdict is not Verdict.ALLOW and not event.fin
                if verdict is not Verdict.ALLOW:
                    self._over_limit(verdict)
                    return
            elif event.opcode is Opcode.CONT:
                if self._dropping:
                    self._dropping = not event.fin
                    return
                self._limit.continuation(len(event.data))
        super().process_event(event)

    def _over_limit(self, verdict: Verdict) -> None:
        assert self._limit is not None
        if verdict is Verdict.DROP:
            return
        message = self._app.rate_limited(self._limit.notice_sent(), self._limit)
        if verdict is Verdict.CLOSE:
            # Until the client's close frame comes, it may go on flooding: drop it all.
            self._cut_off = True
            self._spawn(self.close(CLOSE_POLICY, "rate limit exceeded"))
        else:
            self._spawn(self._send_quietly(message))

    async def _send_quietly(self, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.send(message)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def front_factory(app: FrontApp) -> Callable[..., FrontConnection]:
    """``create_connection`` for websockets' ``serve``."""

    def create(*args: Any, **kwargs: Any) -> FrontConnection:
        return FrontConnection(*args, app=app, **kwargs)

    return create


def _request(event: h11.Request, body: bytes) -> HttpRequest:
    target = event.target.decode("latin-1")
    path, _, query = target.partition("?")
    headers = Headers(
        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
    )
    return HttpRequest(event.method.decode("ascii").upper(), path, query, headers, body)


def _content_length(event: h11.Request) -> int | None:
    for key, value in event.headers:
        if key == b"content-length":
            return int(value)  # h11 has checked it is one well-formed number
    return None


def _too_large() -> HttpResponse:
    return error_response(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")


def _plain_head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
