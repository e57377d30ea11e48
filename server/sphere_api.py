"""The sphere on the server: ``/exhibit/sphere`` over HTTP, and function-call events on the
WebSocket when a visitor's spoken command drives the sphere.

HTTP (token and origin rules as ``/exhibit/showing``)::

    curl http://127.0.0.1:8765/exhibit/sphere -H 'Authorization: Bearer TOKEN'
    curl -X POST http://127.0.0.1:8765/exhibit/sphere -H 'Authorization: Bearer TOKEN' \\
         -d '{"action": "play", "query": "hurricanes"}'

WebSocket: a command is carried out by the server, and the client sees it in the Realtime
vocabulary as a function call ``sphere_play`` inside the response (``response.output_item.added``
/ ``response.function_call_arguments.done`` / ``response.output_item.done``) followed by its
``function_call_output`` item with the outcome, so a client can show what happened without
parsing the spoken words. See docs/protocol.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from server.http import HttpRequest, HttpResponse, error_response, json_response
from server.protocol import new_id
from server.security import origin_ok
from server.session_tokens import Access
from sphere.commands import Command
from sphere.control import FUNCTION_NAME, ActionResult
from sphere.service import Sphere

__all__ = ["SPHERE_PATH", "FunctionCallRelay", "SphereApi", "function_call_events"]

SPHERE_PATH = "/exhibit/sphere"
ACTIONS = ("play", "next", "prev", "pause", "replay")
HTTP_STATUS = {
    "ok": 200,
    "not_found": 404,
    "denied": 403,
    "disabled": 403,
    "rate_limited": 429,
    "unavailable": 503,
}
FUNCTION_OUTPUT_INDEX = 1  # the spoken answer is output item 0 of the response


class SphereApi:
    """GET: what the sphere shows and its playlist. POST: an action (control must be on)."""

    def __init__(self, sphere: Sphere, access: Access, origins: Sequence[str]) -> None:
        self.sphere = sphere
        self._access = access
        self._origins = tuple(origins)
        self._limiter = sphere.limiter()  # the HTTP API counts as one caller

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """GET or POST (the server's router answers other methods with 405, and a body over
        its limit with 413, before this is called)."""
        if not origin_ok(request.headers, self._origins):
            return error_response(403, "origin_not_allowed", "this origin may not drive the sphere")
        if not self._access.ok(request.headers):
            return error_response(
                401, "invalid_api_key", "a valid token is required", WWW_Authenticate="Bearer"
            )
        if request.method.upper() in ("GET", "HEAD"):
            return json_response(200, self.sphere.describe())
        command = _command(request.body)
        if isinstance(command, str):
            return error_response(400, "invalid_request", command)
        result = await self.sphere.perform(command, self._limiter)
        return json_response(HTTP_STATUS.get(result.status, 500), result.describe())


def _command(body: bytes) -> Command | str:
    """The body as a Command, or the message saying what is wrong with it."""
    usage = f'the body must be JSON {{"action": one of {list(ACTIONS)}, "query": "..."}}'
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return usage
    if not isinstance(data, dict) or data.get("action") not in ACTIONS:
        return usage
    query = data.get("query", "")
    if not isinstance(query, str) or len(query) > 200:
        return '"query" must be a string of at most 200 characters'
    if data["action"] == "play" and not query.strip():
        return '"play" needs a "query": what to show'
    return Command(data["action"], query.strip() if data["action"] == "play" else "")


def function_call_events(result: ActionResult, response_id: str | None) -> list[dict[str, Any]]:
    """The Realtime events that show one sphere action as a completed function call."""
    item_id, call_id = new_id("item"), new_id("call")
    arguments = json.dumps(result.arguments, sort_keys=True)
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "name": FUNCTION_NAME,
        "call_id": call_id,
        "arguments": arguments,
    }
    where = {"response_id": response_id, "output_index": FUNCTION_OUTPUT_INDEX}
    output = {
        "id": new_id("item"),
        "object": "realtime.item",
        "type": "function_call_output",
        "call_id": call_id,
        "output": json.dumps(result.describe(), sort_keys=True),
    }
    return [
        {"type": "response.output_item.added", **where, "item": {**item, "arguments": ""}},
        {
            "type": "response.function_call_arguments.done",
            **where,
            "item_id": item_id,
            "call_id": call_id,
            "name": FUNCTION_NAME,
            "arguments": arguments,
        },
        {"type": "response.output_item.done", **where, "item": item},
        {"type": "conversation.item.created", "previous_item_id": item_id, "item": output},
    ]


class FunctionCallRelay:
    """Late-bound: the answerer wrapper is made before its connection exists, so the
    connection is bound after it is created."""

    def __init__(self) -> None:
        self._send: Callable[[dict[str, Any]], None] | None = None
        self._response_id: Callable[[], str | None] = lambda: None

    def bind(
        self, send: Callable[[dict[str, Any]], None], response_id: Callable[[], str | None]
    ) -> None:
        self._send, self._response_id = send, response_id

    def __call__(self, result: ActionResult) -> None:
        if self._send is None:
            return
        for event in function_call_events(result, self._response_id()):
            self._send(event)
