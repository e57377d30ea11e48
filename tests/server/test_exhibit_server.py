"""The exhibit controller's HTTP endpoint and per-headset overrides, on a real server with the
real offline models: what the sphere shows reaches every session of the installation.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from cli.config import Config
from server.app import Server
from tests.server.conftest import TOKEN, StartServer, ask, client, next_event, until

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

TSUNAMI = "https://sos.noaa.gov/catalog/datasets/tsunami-locations-2000-bce-2014"
HURRICANES = "https://sos.noaa.gov/catalog/datasets/hurricane-season-2012"
SEA_ICE = "https://sos.noaa.gov/catalog/datasets/sea-ice-extent-arctic-only-1850-present"
TEXT_ONLY = json.dumps({"type": "session.update", "session": {"modalities": ["text"]}})


def _http(
    server: Server,
    method: str,
    body: bytes | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One blocking HTTP request to /exhibit/showing: (status, JSON body, headers)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    url = server.http_url.rstrip("/") + "/exhibit/showing"
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


async def http(server: Server, method: str, data: Any = None, **kw: Any):
    body = None if data is None else json.dumps(data).encode()
    return await asyncio.to_thread(_http, server, method, body, **kw)


async def show(server: Server, dataset: str, **kw: Any) -> dict[str, Any]:
    status, body, _ = await http(server, "POST", {"dataset": dataset}, **kw)
    assert status == 200, body
    return body


async def link_for(ws: ClientConnection, question: str) -> str | None:
    for message in ask(question):
        await ws.send(message)
    done, _ = await until(ws, "response.done", timeout=120)
    assert done["response"]["status"] == "completed", done
    link = done["response"]["sos_link"]
    return link["url"] if link else None


async def showing_of(ws: ClientConnection) -> str | None:
    updated, _ = await until(ws, "session.updated", timeout=10)
    showing = updated["session"]["showing"]
    return showing["url"] if showing else None


async def no_event(ws: ClientConnection, wait_s: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), wait_s)
    except TimeoutError:
        return True
    return False


async def test_switching_the_exhibit_over_http_changes_every_session(real_server: Server) -> None:
    async with client(real_server) as kiosk, client(real_server) as headset:
        for ws in (kiosk, headset):
            created = await next_event(ws)
            assert created["type"] == "session.created"
            assert created["session"]["showing"] is None
            await ws.send(TEXT_ONLY)
            await until(ws, "session.updated")

        state = await show(real_server, "tsunami-locations-2000-bce-2014")
        assert state["showing"]["url"] == TSUNAMI and state["version"] == 1
        assert [await showing_of(kiosk), await showing_of(headset)] == [TSUNAMI, TSUNAMI]
        assert await link_for(kiosk, "What is this about?") == TSUNAMI
        assert await link_for(headset, "What am I looking at?") == TSUNAMI

        await show(real_server, HURRICANES)  # the playlist moves on
        assert [await showing_of(kiosk), await showing_of(headset)] == [HURRICANES, HURRICANES]
        assert await link_for(kiosk, "What is this about?") == HURRICANES
        assert await link_for(headset, "What does this animation show?") == HURRICANES

        # A question about something else still gets its own dataset.
        other = await link_for(kiosk, "How fast is the Arctic sea ice melting?")
        assert other is not None and "ice" in other

        # Setting what is already showing tells nobody again.
        await show(real_server, "Hurricane Season - 2012")
        assert await no_event(kiosk) and await no_event(headset)

        status, body, _ = await http(real_server, "DELETE")
        assert status == 200 and body["showing"] is None
        assert [await showing_of(kiosk), await showing_of(headset)] == [None, None]

        # A session opened now starts with the installation's dataset.
        await show(real_server, TSUNAMI)
        async with client(real_server) as late:
            created = await next_event(late)
            assert created["session"]["showing"]["url"] == TSUNAMI
            # With the catalog's thumbnail, for the kiosk page's header.
            entry = real_server.services.catalog.resolve(TSUNAMI)
            assert entry.thumbnail.startswith("https://")
            assert created["session"]["showing"]["thumbnail"] == entry.thumbnail


async def test_a_headset_override_applies_to_that_headset_only(real_server: Server) -> None:
    await show(real_server, TSUNAMI)
    async with client(real_server) as mine, client(real_server) as theirs:
        for ws in (mine, theirs):
            await next_event(ws)
            await ws.send(TEXT_ONLY)
            await until(ws, "session.updated")
        await mine.send(json.dumps({"type": "session.update", "session": {"showing": SEA_ICE}}))
        assert await showing_of(mine) == SEA_ICE
        assert await link_for(mine, "What is this about?") == SEA_ICE
        assert await link_for(theirs, "What is this about?") == TSUNAMI

        await show(real_server, HURRICANES)
        assert await showing_of(theirs) == HURRICANES
        assert await no_event(mine)  # it has its own dataset: nothing changed for it
        assert await link_for(mine, "What is this about?") == SEA_ICE
        assert await link_for(theirs, "What is this about?") == HURRICANES

        # null: back to the installation's dataset.
        await mine.send(json.dumps({"type": "session.update", "session": {"showing": None}}))
        assert await showing_of(mine) == HURRICANES
        assert await link_for(mine, "What is this about?") == HURRICANES

        await mine.send(
            json.dumps(
                {
                    "type": "session.update",
                    "event_id": "evt_1",
                    "session": {"showing": "zzqx florble"},
                }
            )
        )
        error, _ = await until(mine, "error")
        assert error["error"]["code"] == "unknown_dataset"
        assert "no SOS dataset matches 'zzqx florble'" in error["error"]["message"]
        assert error["error"]["event_id"] == "evt_1"
        assert await link_for(mine, "What is this about?") == HURRICANES  # nothing changed


async def test_http_errors_are_clear_json(real_server: Server) -> None:
    await show(real_server, TSUNAMI)
    status, body, _ = await http(real_server, "POST", {"dataset": "zzqx florble"})
    assert status == 404 and body["error"]["code"] == "unknown_dataset"
    assert "no SOS dataset matches 'zzqx florble'" in body["error"]["message"]

    status, body, _ = await asyncio.to_thread(_http, real_server, "POST", b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, body, _ = await http(real_server, "POST", {"slug": "tsunami"})
    assert status == 400 and body["error"]["code"] == "missing_dataset"
    status, body, _ = await http(real_server, "POST", {"dataset": 7})
    assert status == 400 and body["error"]["code"] == "invalid_value"
    status, body, _ = await asyncio.to_thread(
        _http, real_server, "POST", b'{"dataset": "' + b"x" * 20000 + b'"}'
    )
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body, headers = await http(real_server, "PATCH", {"dataset": "tsunami"})
    assert status == 405 and "POST" in headers["Allow"]
    status, body, _ = await http(
        real_server, "POST", {"dataset": HURRICANES}, headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"

    status, body, _ = await http(real_server, "GET")
    assert status == 200 and body["showing"]["url"] == TSUNAMI  # none of that changed it
    # PUT works like POST; a title is fuzzy-matched.
    status, body, _ = await http(real_server, "PUT", {"dataset": "hurricane season 2012"})
    assert status == 200 and body["showing"]["slug"] == "hurricane-season-2012"


async def test_an_ambiguous_name_answers_with_the_candidates(real_server: Server) -> None:
    await show(real_server, TSUNAMI)
    async with client(real_server) as ws:
        await next_event(ws)  # session.created
        status, body, _ = await http(real_server, "POST", {"dataset": "sea surface temperature"})
        assert status == 409 and body["error"]["code"] == "ambiguous_dataset"
        candidates = body["error"]["candidates"]
        assert 2 <= len(candidates) <= 10 and body["error"]["total"] >= len(candidates)
        assert all(set(c) == {"slug", "title", "url"} for c in candidates)
        words = {"sea", "surface", "temperature"}
        assert all(words <= set(c["title"].lower().replace("-", " ").split()) for c in candidates)
        assert "sea-surface-temperature-real-time" in {c["slug"] for c in candidates}
        # Nothing changed, and no session heard of a change.
        assert (await http(real_server, "GET"))[1]["showing"]["url"] == TSUNAMI
        assert await no_event(ws)
        # One of the candidates, by slug, URL or exact title, is shown.
        pick = candidates[1]
        for ref in (pick["slug"], pick["url"], pick["title"]):
            assert (await show(real_server, ref))["showing"]["slug"] == pick["slug"]
        assert await showing_of(ws) == pick["url"]
        state = await show(real_server, "Sea Surface Temperature - Real-time")
        assert state["showing"]["slug"] == "sea-surface-temperature-real-time"


async def test_the_endpoint_needs_the_token_when_one_is_set(
    start_server: StartServer, config: Config, services: Any
) -> None:
    server = await start_server(config, services, token=TOKEN)
    status, body, headers = await http(server, "POST", {"dataset": TSUNAMI})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert headers["WWW-Authenticate"] == "Bearer"
    status, body, _ = await http(server, "GET", token="wrong-token-0123456789")
    assert status == 401
    state = await show(server, TSUNAMI, token=TOKEN)
    assert state["showing"]["url"] == TSUNAMI
    status, body, _ = await http(server, "GET", token=TOKEN)
    assert status == 200 and body["showing"]["url"] == TSUNAMI
    async with client(server, token=TOKEN) as ws:
        created = await next_event(ws)
        assert created["session"]["showing"]["url"] == TSUNAMI


async def test_a_body_split_across_packets_and_a_websocket_after_it(real_server: Server) -> None:
    """The body reader must not depend on how TCP cuts the request, and must leave the
    WebSocket handshake on the same port alone."""
    body = json.dumps({"dataset": SEA_ICE}).encode()
    head = (
        f"POST /exhibit/showing HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    def send_slowly() -> bytes:
        with socket.create_connection((real_server.host, real_server.port), timeout=10) as sock:
            for piece in (head[:20], head[20:], body[:5], body[5:]):
                sock.sendall(piece)
                time.sleep(0.05)  # separate TCP segments, read separately by the server
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    reply = await asyncio.to_thread(send_slowly)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["showing"]["url"] == SEA_ICE
    async with client(real_server) as ws:
        created = await next_event(ws)
        assert created["session"]["showing"]["url"] == SEA_ICE
