"""Who may connect: the bearer token, the browser origin, the echoed subprotocol.

Realtime clients send the token as ``Authorization: Bearer TOKEN`` (the openai SDK does);
browsers cannot set headers on a WebSocket, so OpenAI's browser clients put it in the
``Sec-WebSocket-Protocol`` list as ``openai-insecure-api-key.TOKEN`` next to ``realtime``.
Both are accepted. Origins are checked because a kiosk browser visiting any web page could
otherwise drive a server on its own loopback interface (cross-site WebSocket hijacking).
"""

from __future__ import annotations

import hmac
import string
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.datastructures import Headers

from settings import ConfigError

TOKEN_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
PREFERRED_SUBPROTOCOLS = ("realtime", "openai-beta.realtime-v1")
MIN_TOKEN_CHARS = 16
# RFC 7230 "tchar": what a Sec-WebSocket-Protocol entry (and so a browser's token) may contain.
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def validate_token(token: str) -> None:
    """A token must be long enough to guess at nobody's leisure and sendable by a browser."""
    if not token:
        return
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"server.token must have at least {MIN_TOKEN_CHARS} characters; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    bad = sorted(set(token) - TOKEN_CHARS)
    if bad:
        raise ConfigError(
            f"server.token may not contain {''.join(bad)!r}: browsers send it in a "
            "Sec-WebSocket-Protocol header (letters, digits and -._~ are safe)"
        )


def _subprotocols(headers: Headers) -> list[str]:
    values = headers.get_all("Sec-WebSocket-Protocol")
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def presented_tokens(headers: Headers) -> list[str]:
    """Every token the client offers (Authorization header and subprotocol entries)."""
    tokens: list[str] = []
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.append(value.strip())
    for proto in _subprotocols(headers):
        if proto.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            tokens.append(proto[len(TOKEN_SUBPROTOCOL_PREFIX) :])
    return tokens


def token_ok(expected: str, headers: Headers) -> bool:
    """True if no token is required, or one of the presented tokens matches (constant time)."""
    if not expected:
        return True
    want = expected.encode()
    return any(hmac.compare_digest(t.encode(), want) for t in presented_tokens(headers))


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The subprotocol to echo. Chromium fails the handshake if it offered some and none is
    echoed, so when only the token entry is offered, that one is echoed (to its own sender)."""
    for name in PREFERRED_SUBPROTOCOLS:
        if name in offered:
            return name
    for name in offered:
        if not name.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return name
    return offered[0] if offered else None


def _origin_key(url: str) -> str:
    return url.strip().rstrip("/").lower()


def origin_ok(headers: Headers, allowed: Sequence[str]) -> bool:
    """No Origin (not a browser), the page's own origin, or one configured ("*" = any)."""
    origin = headers.get("Origin")
    if origin is None:
        return True
    key = _origin_key(origin)
    if "*" in allowed or key in allowed:
        return True
    parts = urlsplit(key)
    host = headers.get("Host", "").strip().lower()
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host
