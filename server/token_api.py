"""``POST /session-tokens``: trade the operator token for a short-lived session token.

::

    curl -X POST http://127.0.0.1:8765/session-tokens -H 'Authorization: Bearer OPERATOR_TOKEN'
    -> 200 {"token": "sst1....", "expires_at": 1767225600, "expires_in": 600}

The shape of the hosted Realtime API's ephemeral keys (a value and an ``expires_at`` in Unix
seconds), which is what the Unity client (``clients/unity/Runtime/TokenSource.cs``) reads. Only
the operator token mints; a session token gets 401. Why signed tokens and not a table:
:mod:`server.session_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.http import HttpRequest, HttpResponse, error_response, json_response
from server.security import origin_ok
from server.session_tokens import Access

__all__ = ["METHODS", "TOKENS_PATH", "TokenApi"]

TOKENS_PATH = "/session-tokens"
METHODS = ("POST",)


class TokenApi:
    """Mints session tokens for the holder of the operator token."""

    def __init__(self, access: Access, origins: Sequence[str]) -> None:
        self._access = access
        self._origins = tuple(origins)

    def handle(self, request: HttpRequest) -> HttpResponse:
        """One POST (the router answers other methods with 405). The body is ignored: there
        is nothing to choose yet, and ``{}`` or nothing are both fine."""
        if not origin_ok(request.headers, self._origins):
            return error_response(403, "origin_not_allowed", "this origin may not mint tokens")
        tokens = self._access.tokens
        if not tokens.enabled:
            return error_response(
                404,
                "session_tokens_disabled",
                "this server has no server.token, so it needs no tokens: connect without one",
            )
        if not self._access.operator(request.headers):
            return error_response(
                401,
                "invalid_api_key",
                "minting a session token needs the operator token (server.token) as "
                "'Authorization: Bearer TOKEN'; a session token cannot mint another",
                WWW_Authenticate="Bearer",
            )
        token, expires_at = tokens.mint()
        return json_response(
            200, {"token": token, "expires_at": expires_at, "expires_in": int(tokens.ttl_s)}
        )
