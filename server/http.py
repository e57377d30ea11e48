"""Plain HTTP on the WebSocket port: health, metrics and the browser page's static files.

One port for everything keeps a kiosk or a load balancer simple (one TLS certificate, one
firewall rule). Static files are only served from the web root, by an allow-list of types,
with path checks that refuse anything that resolves outside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Response

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
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


def response(
    status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Connection", "close"),
        ]
    )
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, REASONS.get(status, "Error"), headers, body)


def json_response(status: int, data: Any) -> Response:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    return response(status, body, "application/json")


def not_found() -> Response:
    return json_response(404, {"error": "not found"})


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
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return resolved


def read_static(path: Path) -> Response:
    """Blocking read; the caller runs it in a thread."""
    if path.stat().st_size > MAX_STATIC_BYTES:
        return json_response(413, {"error": "file too large"})
    body = path.read_bytes()
    kind = CONTENT_TYPES[path.suffix.lower()]
    extra = {"Content-Security-Policy": CSP} if kind.startswith("text/html") else None
    return response(200, body, kind, extra)
