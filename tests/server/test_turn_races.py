"""Requests racing each other over a real socket, and clients that flood or only chatter.

Every ``response.create`` ends in exactly one ``response.done`` or one error, whatever follows
it; a ``response.cancel`` sent right after it is not lost. A client flooding the socket is
rate-limited without slowing another client, and a client that only chatters (unknown events,
silent audio) does not keep its session slot past the idle timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from cli.config import Config
from server.app import Server
from tests.server.conftest import (
    StartServer,
    append,
    ask,
    client,
    next_event,
    session_of,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

CREATE = json.dumps({"type": "response.create"})
CANCEL = json.dumps({"type": "response.cancel"})


async def drain(ws: Any, quiet_s: float = 2.0) -> list[dict[str, Any]]:
    """Every JSON event until the server has been quiet for ``quiet_s``."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.append(await next_event(ws, timeout=quiet_s))
        except TimeoutError:
            return events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_cancel_right_after_create_cancels_that_response(module_server: Server) -> None:
    async with client(module_server) as ws:
        await next_event(ws)
        item, _ = ask("What causes a tsunami?")
        await ws.send(item)
        await ws.send(CREATE)
        await ws.send(CANCEL)
        done, seen = await until(ws, "response.done")
        events = [e for e in seen if isinstance(e, dict)] + [done] + await drain(ws)
    assert not of(events, "error"), of(events, "error")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    assert len(of(events, "response.done")) == 1
    assert len(of(events, "response.created")) == 1
    assert not of(events, "response.audio.delta")  # the answer was not sent after all


async def test_second_create_gets_an_error_and_the_first_its_answer(module_server: Server) -> None:
    async with client(module_server) as ws:
        await next_event(ws)
        item, _ = ask("Where do hurricanes form?")
        await ws.send(item)
        await ws.send(CREATE)
        await ws.send(CREATE)
        done, seen = await until(ws, "response.done", timeout=60)
        events = [e for e in seen if isinstance(e, dict)] + [done] + await drain(ws)
    errors = of(events, "error")
    assert [e["error"]["code"] for e in errors] == ["conversation_already_has_active_response"]
    assert len(of(events, "response.done")) == 1
    assert done["response"]["status"] == "completed"


async def test_cancel_of_nothing_and_of_another_response_are_refused(
    module_server: Server,
) -> None:
    async with client(module_server) as ws:
        await next_event(ws)
        await ws.send(CANCEL)
        error, _ = await until(ws, "error")
        assert error["error"]["code"] == "response_cancel_not_active"
        item, _ = ask("What is the ozone hole?")
        await ws.send(item)
        await ws.send(CREATE)
        created, _ = await until(ws, "response.created")
        await ws.send(json.dumps({"type": "response.cancel", "response_id": "resp_other"}))
        error, _ = await until(ws, "error")
        assert error["error"]["code"] == "response_not_found"
        assert error["error"]["param"] == "response_id"
        await ws.send(
            json.dumps({"type": "response.cancel", "response_id": created["response"]["id"]})
        )
        done, _ = await until(ws, "response.done")
        assert done["response"]["status"] == "cancelled"


async def test_chatter_without_speech_does_not_keep_the_session(
    start_server: StartServer, config: Config, services: Any
) -> None:
    """Unknown events and silent audio every 0.1 s: still idle, closed with 1001."""
    server = await start_server(config, services, idle_timeout_s=1.5)
    silence = append(b"\x00\x00" * 2400)
    async with client(server) as ws:
        await next_event(ws)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionClosed) as closed:
            while loop.time() - started < 20:
                await ws.send(json.dumps({"type": "no.such.event"}))
                await ws.send(silence)
                await asyncio.sleep(0.1)
                while True:  # read what came back so the socket never backs up
                    try:
                        await asyncio.wait_for(ws.recv(), 0.001)
                    except TimeoutError:
                        break
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert "idle" in closed.value.rcvd.reason


async def test_half_duplex_from_the_config_reaches_every_session(
    start_server: StartServer, services: Any
) -> None:
    """``[pipeline] half_duplex`` was read but never given to a connection's Session."""
    pipeline = dataclasses.replace(services.config.pipeline, half_duplex=True)
    half = dataclasses.replace(
        services, config=dataclasses.replace(services.config, pipeline=pipeline)
    )
    server = await start_server(half.config, half)
    async with client(server) as ws:
        created = await next_event(ws)
        assert session_of(server, created["session"]["id"]).settings.half_duplex is True
        # The session object names the Piper voice that speaks (not a placeholder).
        assert created["session"]["voice"] == "en_US-joe-medium"
