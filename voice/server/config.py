"""Settings of the WebSocket service: the ``[server]`` section lives in voice/config.py with
the rest of the schema; this module adds the address check the security rules need."""

from __future__ import annotations

import ipaddress

from voice.config import ServerConfig

__all__ = ["ServerConfig", "is_loopback"]

LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    """True only for addresses no other machine can reach (the token may be off there)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a hostname or "" (all interfaces): assume reachable
