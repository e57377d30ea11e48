"""The sphere through the server: a typed or spoken command shows up on a real WebSocket as a
Realtime function call (``sphere_play``), and ``/exhibit/sphere`` drives it over HTTP with the
token; with control off neither sends anything to the SOS host."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from catalog.datasets import Catalog
from cli.config import Config
from server.app import Server
from server.config import ServerConfig
from sphere.service import Sphere
from sphere.simulator import SosSimulator
from tests.server.conftest import TOKEN, ask, client, next_event, until
from voice.exhibit import Exhibit

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@contextlib.asynccontextmanager
async def sphere_server(
    config: Config, services: Any, sphere: Sphere, exhibit: Exhibit
) -> AsyncIterator[Server]:
    server = Server(config, services, ServerConfig(token=TOKEN), exhibit=exhibit, sphere=sphere)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


def _http(server: Server, method: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    url = server.http_url.rstrip("/") + "/exhibit/sphere"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def http(server: Server, method: str, body: Any = None, token: str | None = TOKEN):
    return await asyncio.to_thread(_http, server, method, body, token)


async def test_websocket_sees_the_command_as_a_function_call(
    config: Config,
    services: Any,
    catalog: Catalog,
    simulator: SosSimulator,
    make_sphere: Any,
) -> None:
    exhibit = Exhibit(catalog)
    sphere = await make_sphere(simulator, exhibit=exhibit, control=True)
    async with (
        sphere_server(config, services, sphere, exhibit) as server,
        client(server, token=TOKEN) as ws,
    ):
        assert (await next_event(ws))["type"] == "session.created"
        for message in ask("Show me hurricanes"):
            await ws.send(message)
        done, seen = await until(ws, "response.done", timeout=60)
        events = [e for e in seen if isinstance(e, dict)]
        calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert len(calls) == 1, [e["type"] for e in events]
        call = calls[0]
        assert call["name"] == "sphere_play"
        assert json.loads(call["arguments"]) == {"action": "play", "query": "hurricanes"}
        assert call["response_id"] == done["response"]["id"]
        added = [e for e in events if e["type"] == "response.output_item.added"]
        assert any(e["item"]["type"] == "function_call" for e in added)
        outputs = [
            e["item"]
            for e in events
            if e["type"] == "conversation.item.created"
            and e["item"]["type"] == "function_call_output"
        ]
        assert len(outputs) == 1 and outputs[0]["call_id"] == call["call_id"]
        outcome = json.loads(outputs[0]["output"])
        assert outcome["status"] == "ok" and outcome["clip"]["number"] == 2
        assert simulator.control_commands() == ["play 2"]
        # The exhibit moved, so the session was told what the sphere shows now.
        updated = [e for e in events if e["type"] == "session.updated"]
        assert updated and "hurricane-season-2005" in json.dumps(updated[-1])

        # A question is no function call.
        for message in ask("What causes a tsunami?"):
            await ws.send(message)
        _, seen = await until(ws, "response.done", timeout=60)
        types = [e["type"] for e in seen if isinstance(e, dict)]
        assert "response.function_call_arguments.done" not in types
        assert simulator.control_commands() == ["play 2"]


async def test_http_api_drives_the_sphere_with_the_token(
    config: Config,
    services: Any,
    catalog: Catalog,
    simulator: SosSimulator,
    make_sphere: Any,
) -> None:
    exhibit = Exhibit(catalog)
    sphere = await make_sphere(simulator, exhibit=exhibit, control=True, deny=["aurora"])
    async with sphere_server(config, services, sphere, exhibit) as server:
        status, body = await http(server, "GET", token=None)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, body = await http(server, "POST", {"action": "next"}, token="wrong-token-0123456")
        assert status == 401 and simulator.control_commands() == []
        status, body = await http(server, "GET")
        assert status == 200 and body["control"] is True and len(body["playlist"]) == 5
        assert body["current"]["slug"] == "blue-marble"
        status, body = await http(server, "POST", {"action": "play", "query": "tsunami"})
        assert status == 200 and body["status"] == "ok" and body["clip"]["number"] == 3
        assert simulator.current == 3 and exhibit.showing.slug.startswith("japan-tsunami")
        status, body = await http(server, "POST", {"action": "play", "query": "aurora"})
        assert status == 403 and body["status"] == "denied"
        status, body = await http(server, "POST", {"action": "play", "query": "volcanoes"})
        assert status == 404
        for bad in (b"not json", {"action": "open_playlist"}, {"action": "play"}, [1]):
            status, body = await http(server, "POST", bad)
            assert status == 400, bad
        assert simulator.control_commands() == ["play 3"]


async def test_control_off_sends_nothing_from_websocket_or_http(
    config: Config,
    services: Any,
    catalog: Catalog,
    simulator: SosSimulator,
    make_sphere: Any,
) -> None:
    exhibit = Exhibit(catalog)
    sphere = await make_sphere(simulator, exhibit=exhibit)  # control off
    async with sphere_server(config, services, sphere, exhibit) as server:
        status, body = await http(server, "POST", {"action": "next"})
        assert status == 403 and body["status"] == "disabled"
        async with client(server, token=TOKEN) as ws:
            await next_event(ws)
            for message in ask("Next one"):
                await ws.send(message)
            _, seen = await until(ws, "response.done", timeout=60)
            types = [e["type"] for e in seen if isinstance(e, dict)]
            assert "response.function_call_arguments.done" not in types
    assert simulator.control_commands() == []
