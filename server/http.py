"""Plain HTTP on the WebSocket port: requests, responses, the route table and static files.

One port for everything keeps a kiosk or a load balancer simple (one TLS certificate, one
firewall rule). Requests are parsed by h11 in :mod:`server.front`; this module is what the
routes see: an :class:`HttpRequest` in, an :class:`HttpResponse` out, and a :class:`Router`
that answers unknown paths with 404, other methods with 405 and ``Allow``, and ``HEAD`` like
``GET`` without the body. Static files are only served from the web root, by an allow-list of
types, with path checks that refuse anything that resolves outside it.
"""

from __future__ import annotations

import http
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.datastructures import Headers

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}
MAX_STATIC_BYTES = 2 * 1024 * 1024
# The page talks only to its own origin; inline scripts/styles are not used.
CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: https:; "
    "media-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class HttpRequest:
    """One complete request (head and body). ``headers`` is websockets' multi-dict, the same
    type a WebSocket handshake has, so the security checks serve both."""

    method: str
    path: str  # without the query
    query: str
    headers: Headers
    body: bytes = b""


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


def response(
    status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
) -> HttpResponse:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Connection", "close"),
    ]
    headers += list((extra or {}).items())
    return HttpResponse(status, body, headers)


def json_response(status: int, data: Any, extra: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    return response(status, body, "application/json", extra)


def error_response(status: int, code: str, message: str, **extra: str) -> HttpResponse:
    """``{"error": {"code", "message"}}``; ``extra`` become headers (``WWW_Authenticate`` ->
    ``WWW-Authenticate``)."""
    headers = {name.replace("_", "-"): value for name, value in extra.items()}
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def not_found() -> HttpResponse:
    return error_response(404, "not_found", "no such page")


class Router:
    """Exact paths to handlers per method, plus an optional fallback for other paths (the
    static page). Handlers may be plain functions or coroutines. To add a route::

        router.add("/curator", page_handler)                       # GET and HEAD
        router.add("/sphere/play", play_handler, methods=("POST",))
    """

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}
        self._fallback: Handler | None = None

    def add(self, path: str, handler: Handler, methods: Iterable[str] = ("GET",)) -> None:
        table = self._routes.setdefault(path, {})
        for method in methods:
            table[method.upper()] = handler

    def fallback(self, handler: Handler) -> None:
        """GET/HEAD on any path without a route; it answers 404 itself for what it lacks."""
        self._fallback = handler

    async def dispatch(self, request: HttpRequest) -> HttpResponse:
        table = self._routes.get(request.path)
        if table is None and self._fallback is not None:
            table = {"GET": self._fallback}
        if table is None:
            return not_found()
        method = request.method
        handler = table.get(method) or (table.get("GET") if method == "HEAD" else None)
        if handler is None:
            allowed = sorted(set(table) | ({"HEAD"} if "GET" in table else set()))
            return error_response(
                405,
                "method_not_allowed",
                f"{method} is not supported here: use {', '.join(allowed)}",
                Allow=", ".join(allowed),
            )
        result = handler(request)
        return await result if inspect.isawaitable(result) else result


def static_path(root: Path, url_path: str) -> Path | None:
    """The file under ``root`` for a URL path, or None if it is not a servable file.

    ``root`` must already be resolved. Refuses: encoded or literal ``..`` segments, backslashes,
    NUL bytes, hidden files, types outside the allow-list, symlinks leading out of the root.
    """
    path = unquote(url_path.split("?", 1)[0].split("#", 1)[0])
    if "\\" in path or "\x00" in path:
        return None
    parts = [p for p in path.split("/") if p]
    if not parts:
        parts = ["index.html"]
    if any(p in (".", "..") or p.startswith(".") for p in parts):
        return None
    candidate = root.joinpath(*parts)
    if candidate.suffix.lower() not in CONTENT_TYPES:
        return None
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved


def read_static(path: Path) -> HttpResponse:
    """Blocking read; the caller runs it in a thread."""
    if path.stat().st_size > MAX_STATIC_BYTES:
        return error_response(413, "file_too_large", "file too large")
    body = path.read_bytes()
    kind = CONTENT_TYPES[path.suffix.lower()]
    extra = {"Content-Security-Policy": CSP} if kind.startswith("text/html") else None
    return response(200, body, kind, extra)
