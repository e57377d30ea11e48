"""``/exhibit/showing``: the exhibit controller tells the server what the sphere is playing.

When the playlist moves on, the controller calls (on the server's own port, with the same
bearer token as the WebSocket when one is configured)::

    curl -X POST http://127.0.0.1:8765/exhibit/showing \\
         -H 'Authorization: Bearer TOKEN' -d '{"dataset": "tsunami-locations-2000-bce-2014"}'

``GET`` reads the state, ``POST``/``PUT`` set it (a catalog URL, slug or title; null clears),
``DELETE`` clears it. Every session of the server that has no per-headset override then
answers about the new dataset and gets a ``session.updated`` event.

One wrinkle: the port is a ``websockets`` server, whose HTTP parser only takes requests
without a body (a WebSocket handshake has none). :class:`BodyReadingConnection` therefore
takes the body of a non-GET request off the wire before the parser sees the request, and keeps
it on the connection for :class:`ExhibitApi`. GET requests and WebSocket handshakes pass
through untouched.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from catalog.datasets import CatalogError
from server.http import json_response
from server.security import origin_ok, token_ok
from voice.exhibit import Exhibit

EXHIBIT_PATH = "/exhibit/showing"
MAX_BODY_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024  # beyond this the request goes to websockets, which refuses it
_CONTENT_LENGTH_RE = re.compile(rb"^content-length[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?\n", re.I | re.M)


class BodyReadingConnection(ServerConnection):
    """A ``ServerConnection`` that also accepts a request body (up to MAX_BODY_BYTES) on
    non-GET requests: it holds the incoming bytes until the head and body are complete, keeps
    the body in :attr:`request_body`, and hands websockets the head without its
    Content-Length. A larger body is not read at all (:attr:`body_too_large`); the response
    closes the connection anyway."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_body: bytes | None = None
        self.body_too_large = False
        self._buffer = bytearray()
        self._passthrough = False
        self._head: bytes | None = None  # head without Content-Length, while the body arrives
        self._body_length = 0

    def data_received(self, data: bytes) -> None:
        if self._passthrough:
            super().data_received(data)
            return
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._release(bytes(self._buffer))
                return
            head, rest = bytes(self._buffer[: end + 4]), bytes(self._buffer[end + 4 :])
            length = _body_length(head)
            if length is None:
                self._release(bytes(self._buffer))  # no body: websockets does it all
                return
            head = _CONTENT_LENGTH_RE.sub(b"", head)
            if length > MAX_BODY_BYTES:
                self.body_too_large = True
                self._release(head)
                return
            self._head, self._body_length = head, length
            self._buffer = bytearray(rest)
        if len(self._buffer) >= self._body_length:
            self.request_body = bytes(self._buffer[: self._body_length])
            self._release(self._head)

    def _release(self, data: bytes) -> None:
        """From now on websockets reads the connection itself; ``data`` goes first."""
        self._passthrough = True
        self._buffer = bytearray()
        self._head = None
        super().data_received(data)


def _body_length(head: bytes) -> int | None:
    """The Content-Length of a non-GET request with a body, else None."""
    method = head.split(b" ", 1)[0].upper()
    if method in (b"GET", b"HEAD"):
        return None
    values = _CONTENT_LENGTH_RE.findall(head)
    if len(values) != 1 or not values[0].isdigit():
        return None  # none, repeated or malformed: websockets' own rules apply
    length = int(values[0])
    return length if length > 0 else None


def _error(status: int, code: str, message: str, **extra: str) -> Response:
    response = json_response(status, {"error": {"code": code, "message": message}})
    for name, value in extra.items():
        response.headers[name.replace("_", "-")] = value
    return response


class ExhibitApi:
    """The ``/exhibit/showing`` resource of one server's :class:`Exhibit`."""

    def __init__(self, exhibit: Exhibit, token: str, origins: Sequence[str]) -> None:
        self.exhibit = exhibit
        self._token = token
        self._origins = tuple(origins)

    def state(self) -> dict[str, Any]:
        info = self.exhibit.describe()
        showing = None
        if info["slug"] is not None:
            showing = {k: info[k] for k in ("slug", "url", "title")}
        return {"showing": showing, "version": info["version"]}

    async def handle(self, connection: ServerConnection, request: Request) -> Response:
        """Answer one HTTP request for EXHIBIT_PATH (any method)."""
        headers = request.headers
        if not origin_ok(headers, self._origins):
            # A web page in the kiosk's browser must not move the exhibit (cross-site POST).
            return _error(403, "origin_not_allowed", "this origin may not change the exhibit")
        if not token_ok(self._token, headers):
            return _error(
                401,
                "invalid_api_key",
                "a valid token is required: 'Authorization: Bearer TOKEN'",
                WWW_Authenticate="Bearer",
            )
        method = request.method.upper()
        if method == "GET":
            return json_response(200, self.state())
        if method == "DELETE":
            self.exhibit.clear(source="http")
            return json_response(200, self.state())
        if method not in ("POST", "PUT"):
            return _error(
                405,
                "method_not_allowed",
                f"{method} is not supported here: use GET, POST, PUT or DELETE",
                Allow="GET, POST, PUT, DELETE",
            )
        if getattr(connection, "body_too_large", False):
            return _error(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        body = getattr(connection, "request_body", None) or b""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, "invalid_json", f'the body must be JSON {{"dataset": ...}}: {exc}')
        if not isinstance(data, dict) or "dataset" not in data:
            return _error(
                400,
                "missing_dataset",
                'the body must be a JSON object with "dataset": a catalog URL, slug or title '
                "(null clears it)",
            )
        ref = data["dataset"]
        if ref is not None and (not isinstance(ref, str) or len(ref) > 500):
            return _error(400, "invalid_value", '"dataset" must be a string (or null)')
        if ref is None or not ref.strip():
            self.exhibit.clear(source="http")
            return json_response(200, self.state())
        try:
            entry = await asyncio.to_thread(self.exhibit.resolve, ref)
        except CatalogError as exc:
            return _error(404, "unknown_dataset", str(exc))
        self.exhibit.set(entry, source="http")
        return json_response(200, self.state())
