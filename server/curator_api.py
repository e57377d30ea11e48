"""``/curator`` and ``/curator/turns.csv``: the exhibit staff's view of what visitors asked.

Protected by the server's token like ``/exhibit/showing``. A program sends it as
``Authorization: Bearer TOKEN``; a person opens the page in a browser, which cannot add that
header, so HTTP Basic authentication is accepted too (any user name, the token as password):
the browser asks once and sends it again for the CSV link. With no token configured the
server only binds to loopback, and the page is open there like the rest of the API.

Reading the database happens in a worker thread; the event loop only builds the response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Sequence
from urllib.parse import parse_qs

from curator.page import CSP, render
from curator.recorder import Recorder
from curator.report import summarize
from server.http import HttpRequest, HttpResponse, error_response, response
from server.security import origin_ok
from server.session_tokens import Access

CURATOR_PATH = "/curator"
CSV_PATH = "/curator/turns.csv"
DEFAULT_DAYS = 7
DAY_S = 86400.0

__all__ = ["CSV_PATH", "CURATOR_PATH", "CuratorApi", "basic_token_ok"]


def basic_token_ok(expected: str, authorization: str) -> bool:
    """An ``Authorization: Basic`` header whose password is the token (constant time)."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    password = decoded.partition(":")[2]
    return hmac.compare_digest(password.encode(), expected.encode())


class CuratorApi:
    """The curator routes over one recorder's store."""

    def __init__(self, recorder: Recorder, access: Access, origins: Sequence[str]) -> None:
        self._store = recorder.store
        self._access = access
        self._origins = tuple(origins)

    def _authorized(self, request: HttpRequest) -> bool:
        headers = request.headers
        if self._access.ok(headers):
            return True
        return basic_token_ok(self._access.operator_token, headers.get("Authorization", ""))

    def _days(self, query: str, default: int) -> int:
        """``?days=N`` clamped to 1..retention (a bad value means the default)."""
        raw = parse_qs(query).get("days", [""])[0]
        days = int(raw) if raw.isdigit() else default
        return max(1, min(days, self._store.retention_days))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one GET (or HEAD) of the curator paths; the server's router sends them here."""
        if not origin_ok(request.headers, self._origins):
            return error_response(
                403, "origin_not_allowed", "this origin may not read the curator view"
            )
        if not self._authorized(request):
            return error_response(
                401,
                "invalid_api_key",
                "the curator view needs the server token: 'Authorization: Bearer TOKEN', or "
                "any user name and the token as password",
                WWW_Authenticate='Basic realm="sos-voice curator", charset="UTF-8"',
            )
        now = time.time()
        if request.path == CSV_PATH:
            days = self._days(request.query, self._store.retention_days)
            text = await asyncio.to_thread(self._store.csv_text, now - days * DAY_S)
            stamp = time.strftime("%Y%m%d", time.localtime(now))
            return response(
                200,
                text.encode("utf-8"),
                "text/csv; charset=utf-8",
                {"Content-Disposition": f'attachment; filename="sos-voice-turns-{stamp}.csv"'},
            )
        days = self._days(request.query, min(DEFAULT_DAYS, self._store.retention_days))
        summary = await asyncio.to_thread(summarize, self._store, now - days * DAY_S, now)
        page = render(
            summary,
            days=days,
            retention_days=self._store.retention_days,
            csv_href=f"{CSV_PATH}?days={days}",
        )
        return response(
            200, page.encode("utf-8"), "text/html; charset=utf-8", {"Content-Security-Policy": CSP}
        )
