"""Who may connect: the bearer token, the browser origin, the echoed subprotocol.

Realtime clients send the token as ``Authorization: Bearer TOKEN`` (the openai SDK does);
browsers cannot set headers on a WebSocket, so OpenAI's browser clients put it in the
``Sec-WebSocket-Protocol`` list as ``openai-insecure-api-key.TOKEN`` next to ``realtime``.
Both are accepted. Origins are checked because a kiosk browser visiting any web page could
otherwise drive a server on its own loopback interface (cross-site WebSocket hijacking).

The Host header is checked too, because an Origin equal to the Host proves nothing when the
attacker owns the name: a page on ``evil.example`` whose DNS record is switched to 127.0.0.1
(DNS rebinding) sends ``Host: evil.example:PORT`` and ``Origin: http://evil.example:PORT``.
Only names that mean this server are accepted: loopback names and addresses, the address it is
bound to (any IP address when bound to all interfaces: an address cannot be rebound), and the
names in ``server.allowed_hosts``.
"""

from __future__ import annotations

import hmac
import ipaddress
import string
from collections.abc import Sequence
from urllib.parse import urlsplit

from websockets.datastructures import Headers

from server.config import LOOPBACK_NAMES
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


def _single(headers: Headers, name: str) -> str | None:
    """The header's value; a repeated header counts as absent-and-invalid (None, "")."""
    values = headers.get_all(name)
    if not values:
        return None
    return values[0] if len(values) == 1 else ""


def presented_tokens(headers: Headers) -> list[str]:
    """Every token the client offers (Authorization header and subprotocol entries)."""
    tokens: list[str] = []
    auth = _single(headers, "Authorization") or ""
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
    origin = _single(headers, "Origin")
    if origin is None:
        return True
    key = _origin_key(origin)
    if not key:
        return False
    if "*" in allowed or key in allowed:
        return True
    parts = urlsplit(key)
    host = (_single(headers, "Host") or "").strip().lower()
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


def host_name(value: str) -> str | None:
    """The name in a Host header without the port: ``Example.ORG:80`` -> ``example.org``,
    ``[::1]:8765`` -> ``::1``; None if it is not a well-formed host[:port]."""
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
    else:
        name, sep, port = text.partition(":")
        rest = sep + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    name = name.rstrip(".")
    return name or None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_ok(headers: Headers, bind_host: str, allowed: Sequence[str]) -> bool:
    """True if the request's Host names this server (see the module docstring).

    ``allowed``: the configured names, lower case; ``"*"`` = any, ``".example.org"`` = that
    domain and its subdomains. No Host header (HTTP/1.0, not a browser) is accepted.
    """
    values = headers.get_all("Host")
    if not values:
        return True
    if len(values) > 1:
        return False
    name = host_name(values[0])
    if name is None:
        return False
    if "*" in allowed or name in allowed:
        return True
    if any(a.startswith(".") and (name == a[1:] or name.endswith(a)) for a in allowed):
        return True
    address = _ip(name)
    if name in LOOPBACK_NAMES or (address is not None and address.is_loopback):
        return True
    bound = bind_host.strip().strip("[]").lower().rstrip(".")
    if name == bound:
        return True
    wildcard = bound in ("", "0.0.0.0", "::")
    return wildcard and address is not None
