"""Short-lived session tokens on real servers on 127.0.0.1: minted with the operator token,
accepted by the WebSocket handshake and the HTTP APIs until they expire, never able to mint."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from cli.config import Config
from server.app import Server
from server.session_tokens import SessionTokens
from tests.server.conftest import TOKEN, StartServer, client, next_event

OTHER_TOKEN = "another-operator-token-0123456789"


def test_tokens_expire_and_cannot_be_forged() -> None:
    now = [1_000_000.0]
    tokens = SessionTokens(TOKEN, ttl_s=600, clock=lambda: now[0])
    token, expires_at = tokens.mint()
    assert expires_at == 1_000_600 and tokens.valid(token)
    now[0] = 1_000_599.0
    assert tokens.valid(token)
    now[0] = 1_000_600.0
    assert not tokens.valid(token)  # expired at expires_at, not a second later
    now[0] = 1_000_000.0
    prefix, expiry, nonce, signature = token.split(".")
    assert not tokens.valid(f"{prefix}.{int(expiry) + 3600}.{nonce}.{signature}")  # extended
    assert not tokens.valid(token[:-2])
    assert not SessionTokens(OTHER_TOKEN, ttl_s=600, clock=lambda: now[0]).valid(token)
    assert not SessionTokens("", ttl_s=600).enabled
    # Tokens travel in a Sec-WebSocket-Protocol entry: only RFC 7230 token characters.
    assert all(c.isalnum() or c in "._-" for c in token)


def _post(server: Server, token: str | None, path: str = "/session-tokens", method: str = "POST"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = server.http_url.rstrip("/") + path
    body = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def http(server: Server, token: str | None, **kw: Any) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(_post, server, token, **kw)


async def refused(server: Server, token: str) -> bool:
    """The WebSocket handshake with ``token`` ends in invalid_api_key and close 1008."""
    async with client(server, token=token) as ws:
        error = await next_event(ws)
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    return error["error"]["code"] == "invalid_api_key" and info.value.rcvd.code == 1008


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_minted_token_opens_the_websocket_and_the_apis(
    start_server: StartServer, config: Config, services: Any
) -> None:
    server = await start_server(config, services, token=TOKEN, session_token_ttl_s=300)
    status, minted = await http(server, TOKEN)
    assert status == 200 and set(minted) == {"token", "expires_at", "expires_in"}
    assert minted["expires_in"] == 300 and isinstance(minted["expires_at"], int)
    token = minted["token"]
    async with client(server, token=token) as ws:  # the openai SDK's way: a bearer header
        assert (await next_event(ws))["type"] == "session.created"
    protocols = ["realtime", f"openai-insecure-api-key.{token}"]  # a browser's way
    async with client(server, subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert (await next_event(ws))["type"] == "session.created"
    status, state = await http(server, token, path="/exhibit/showing", method="GET")
    assert status == 200 and state["showing"] is None

    # Only the operator token mints; a session token cannot renew itself.
    for bad in (token, None, "wrong-token-0123456789"):
        status, body = await http(server, bad)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
    status, body = await http(server, TOKEN, method="GET")
    assert status == 405

    # Expired (issued an hour ago): refused everywhere, like a wrong token.
    expired, _ = server.access.tokens.mint(now=time.time() - 3600)
    assert await refused(server, expired)
    status, _ = await http(server, expired, path="/exhibit/showing", method="GET")
    assert status == 401


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_tokens_outlive_a_restart_but_not_a_new_operator_token(
    start_server: StartServer, config: Config, services: Any
) -> None:
    first = await start_server(config, services, token=TOKEN)
    _, minted = await http(first, TOKEN)
    await first.stop()
    # The same operator token after a restart: a client's cached token still connects.
    restarted = await start_server(config, services, token=TOKEN)
    async with client(restarted, token=minted["token"]) as ws:
        assert (await next_event(ws))["type"] == "session.created"
    # A new operator token revokes every session token minted with the old one.
    rotated = await start_server(config, services, token=OTHER_TOKEN)
    assert await refused(rotated, minted["token"])


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_server_without_a_token_mints_none(real_server: Server) -> None:
    status, body = await http(real_server, None)
    assert status == 404 and body["error"]["code"] == "session_tokens_disabled"
