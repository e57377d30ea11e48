"""Short-lived session tokens, and :class:`Access`: who may use this server.

A Unity build or a kiosk page should not carry the operator's token (``server.token``): a build
is copied, a page is read. Like the hosted Realtime API's ephemeral keys, the holder of the
operator token mints a token that expires in minutes (``POST /session-tokens``, see
:mod:`server.token_api`) and hands that to the client; the WebSocket handshake and the HTTP
APIs accept it like the operator token until it expires.

The tokens are HMAC-signed, not kept in memory: ``sst1.<expires_at>.<nonce>.<signature>``,
signed with a key derived from the operator token. Why signed:

- A server restart (an update, a crash) does not log out the clients holding a fresh token;
  the Unity client reconnects after a restart with the token it cached.
- Nothing grows with the number of tokens minted, so minting needs no cap or clean-up, and
  servers sharing one operator token accept each other's tokens.
- Changing ``server.token`` revokes every session token at once, the one lever an operator
  needs when a token leaks; a single token cannot be revoked before it expires, which is why
  they are short (``server.session_token_ttl_s``).

Only the operator token mints: a session token cannot be renewed by its holder. The expiry is
checked when a connection is made or a request is answered; an open WebSocket is not closed
when its token expires, as with the hosted API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from websockets.datastructures import Headers

from server.security import presented_tokens, token_ok

__all__ = ["PREFIX", "Access", "SessionTokens"]

PREFIX = "sst1"
_KEY_CONTEXT = b"sos-voice session tokens v1"


def _b64(data: bytes) -> str:
    """URL-safe base64 without padding: only characters a browser may send in a subprotocol."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SessionTokens:
    """Mints and checks session tokens for one operator token (none = minting is off)."""

    def __init__(
        self, operator_token: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        key = hmac.new(operator_token.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self._key = key if operator_token else b""

    @property
    def enabled(self) -> bool:
        return bool(self._key)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def mint(self, now: float | None = None) -> tuple[str, int]:
        """A new token and its expiry (Unix seconds). ``now``: the issuing time (tests)."""
        if not self.enabled:
            raise RuntimeError("session tokens need server.token")
        issued = self._clock() if now is None else now
        expires_at = int(issued + self.ttl_s)
        payload = f"{PREFIX}.{expires_at}.{_b64(secrets.token_bytes(12))}"
        return f"{payload}.{self._sign(payload)}", expires_at

    def valid(self, token: str, now: float | None = None) -> bool:
        """Signed by this server's key and not expired (the signature compared in constant
        time, before the expiry is trusted)."""
        if not self.enabled or not token.startswith(PREFIX + "."):
            return False
        payload, _, signature = token.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        expires = payload.split(".")[1]
        if not expires.isdigit():
            return False
        return (self._clock() if now is None else now) < int(expires)


class Access:
    """The server's credentials: the operator token (everything, and minting) or a session
    token (everything but minting). With no operator token everything is open: the server
    then only listens on loopback (:func:`server.app.check_settings`)."""

    def __init__(self, operator_token: str, tokens: SessionTokens) -> None:
        self.operator_token = operator_token
        self.tokens = tokens

    def operator(self, headers: Headers) -> bool:
        return token_ok(self.operator_token, headers)

    def ok(self, headers: Headers) -> bool:
        """The operator token or an unexpired session token is presented (or none is needed)."""
        if self.operator(headers):
            return True
        return any(self.tokens.valid(t) for t in presented_tokens(headers))
