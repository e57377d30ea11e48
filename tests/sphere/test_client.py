"""The client against a real socket: a dead, slow, dropping or erroring host never hangs or
crashes it, it reconnects with capped back-off, and control commands need control on."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from sphere.client import ControlDisabled, SosClient, SosError, SosUnavailable
from sphere.simulator import SosSimulator

pytestmark = pytest.mark.asyncio(loop_scope="session")


def client_for(sim: SosSimulator, **kw: float) -> SosClient:
    options = {"connect_timeout_s": 0.5, "read_timeout_s": 0.3, "backoff_initial_s": 0.05}
    return SosClient("127.0.0.1", sim.port, **{**options, **kw})


async def test_one_connection_enable_first(simulator: SosSimulator) -> None:
    client = client_for(simulator)
    assert (await client.query("get_clip_count")).text == "5"
    assert (await client.query("get_clip_number")).text == "1"
    assert simulator.received == ["enable", "get_clip_count", "get_clip_number"]
    assert simulator.connections == 1
    await client.aclose()


async def test_error_reply_is_an_error_not_a_disconnect(simulator: SosSimulator) -> None:
    simulator.faults.error_commands.add("get_clip_number")
    client = client_for(simulator)
    with pytest.raises(SosError) as err:
        await client.query("get_clip_number")
    assert err.value.code == 4
    assert client.connected
    assert (await client.query("get_clip_count")).text == "5"
    await client.aclose()


async def test_slow_host_times_out_and_the_late_reply_is_never_misread(
    simulator: SosSimulator,
) -> None:
    client = client_for(simulator, read_timeout_s=0.2)
    await client.query("get_clip_count")
    simulator.faults.delay_s = 0.5
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SosUnavailable):
        await client.query("get_clip_number")
    assert loop.time() - started < 0.45  # bounded by the read time-out, not the host
    assert not client.connected  # the late "1" must not answer the next question
    simulator.faults.delay_s = 0.0
    await asyncio.sleep(0.2)  # past the back-off
    assert (await client.query("get_clip_count")).text == "5"
    assert simulator.connections == 2
    await client.aclose()


async def test_dropped_connection_reconnects(simulator: SosSimulator) -> None:
    simulator.faults.drop_after = 3  # enable + two queries per connection
    client = client_for(simulator)
    answers = []
    for _ in range(8):
        try:
            answers.append((await client.query("get_clip_count")).text)
        except SosUnavailable:
            answers.append("down")
            await asyncio.sleep(0.15)
    assert answers.count("5") >= 4 and "down" in answers
    assert simulator.connections >= 3
    await client.aclose()


async def test_dead_host_fails_fast_and_backs_off() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = [0.0]
    client = SosClient(
        "127.0.0.1",
        port,
        backoff_initial_s=1.0,
        backoff_max_s=8.0,
        clock=lambda: now[0],
        rng=random.Random(1),
    )
    delays = []
    for _ in range(7):
        with pytest.raises(SosUnavailable):
            await client.query("get_clip_count")
        with pytest.raises(SosUnavailable, match="retrying"):
            await client.query("get_clip_count")  # backing off: refused without connecting
        delays.append(client._retry_at - now[0])
        now[0] = client._retry_at
    assert all(0.5 * min(8.0, 2.0**k) <= d <= min(8.0, 2.0**k) for k, d in enumerate(delays))
    assert delays[-1] >= 4.0  # grew to the cap, jittered below it
    assert len(set(delays)) == len(delays)
    assert not client.connected


async def test_control_commands_are_refused_unless_enabled(simulator: SosSimulator) -> None:
    client = client_for(simulator)
    for command in ("play", "next_clip", "pause"):
        with pytest.raises(ControlDisabled):
            await client.control(command)
    with pytest.raises(ValueError):
        await client.query("play", 2)  # a control command cannot sneak in as a query
    assert simulator.control_commands() == []
    client.control_enabled = True
    await client.control("play", 2)
    assert simulator.control_commands() == ["play 2"] and simulator.current == 2
    await client.aclose()
