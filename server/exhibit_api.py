"""``/exhibit/showing``: the exhibit controller tells the server what the sphere is playing.

When the playlist moves on, the controller calls (on the server's own port, with the same
bearer token as the WebSocket when one is configured, or a session token minted from it)::

    curl -X POST http://127.0.0.1:8765/exhibit/showing \\
         -H 'Authorization: Bearer TOKEN' -d '{"dataset": "tsunami-locations-2000-bce-2014"}'

``GET`` reads the state, ``POST``/``PUT`` set it (a catalog URL, slug or title; null clears),
``DELETE`` clears it. Every session of the server that has no per-headset override then
answers about the new dataset and gets a ``session.updated`` event. A name several datasets
match ("sea surface temperature") changes nothing and gets 409 with the candidates, so the
controller can send one of their slugs instead of the server silently picking one.

Requests reach it through :mod:`server.front` (h11), body and all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from catalog.datasets import AmbiguousDataset, CatalogError
from server.http import HttpRequest, HttpResponse, error_response, json_response
from server.security import origin_ok
from server.session_tokens import Access
from voice.exhibit import Exhibit

EXHIBIT_PATH = "/exhibit/showing"
METHODS = ("GET", "POST", "PUT", "DELETE")


class ExhibitApi:
    """The ``/exhibit/showing`` resource of one server's :class:`Exhibit`."""

    def __init__(self, exhibit: Exhibit, access: Access, origins: Sequence[str]) -> None:
        self.exhibit = exhibit
        self._access = access
        self._origins = tuple(origins)

    def state(self) -> dict[str, Any]:
        info = self.exhibit.describe()
        showing = None
        if info["slug"] is not None:
            showing = {k: info[k] for k in ("slug", "url", "title")}
        return {"showing": showing, "version": info["version"]}

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request for EXHIBIT_PATH (the router has checked the method)."""
        headers = request.headers
        if not origin_ok(headers, self._origins):
            # A web page in the kiosk's browser must not move the exhibit (cross-site POST).
            return error_response(
                403, "origin_not_allowed", "this origin may not change the exhibit"
            )
        if not self._access.ok(headers):
            return error_response(
                401,
                "invalid_api_key",
                "a valid token is required: 'Authorization: Bearer TOKEN'",
                WWW_Authenticate="Bearer",
            )
        method = request.method.upper()
        if method in ("GET", "HEAD"):
            return json_response(200, self.state())
        if method == "DELETE":
            self.exhibit.clear(source="http")
            return json_response(200, self.state())
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return error_response(
                400, "invalid_json", f'the body must be JSON {{"dataset": ...}}: {exc}'
            )
        except RecursionError:  # e.g. [[[[...]]]] thousands deep: the parser gives up
            return error_response(400, "invalid_json", "the body is nested too deeply")
        if not isinstance(data, dict) or "dataset" not in data:
            return error_response(
                400,
                "missing_dataset",
                'the body must be a JSON object with "dataset": a catalog URL, slug or title '
                "(null clears it)",
            )
        ref = data["dataset"]
        if ref is not None and (not isinstance(ref, str) or len(ref) > 500):
            return error_response(400, "invalid_value", '"dataset" must be a string (or null)')
        if ref is None or not ref.strip():
            self.exhibit.clear(source="http")
            return json_response(200, self.state())
        try:
            entry = await asyncio.to_thread(self.exhibit.resolve, ref)
        except AmbiguousDataset as exc:
            return ambiguous_response(exc)
        except CatalogError as exc:
            return error_response(404, "unknown_dataset", str(exc))
        self.exhibit.set(entry, source="http")
        return json_response(200, self.state())


def ambiguous_response(exc: AmbiguousDataset) -> HttpResponse:
    """409 with the candidates, best first: ``{"error": {"code": "ambiguous_dataset",
    "message", "total", "candidates": [{"slug", "title", "url"}, ...]}}``."""
    candidates = [{"slug": e.slug, "title": e.title, "url": e.url} for e in exc.candidates]
    error = {
        "code": "ambiguous_dataset",
        "message": str(exc),
        "total": exc.total,
        "candidates": candidates,
    }
    return json_response(409, {"error": error})
