"""Fixtures: a real SOS simulator on 127.0.0.1 (free port) and a Sphere following it.

The simulator is the only stand-in in these tests, because a real SOS host cannot exist here;
the client, follower and control talk to it over a real TCP socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from catalog.datasets import Catalog
from catalog.retrieval import Retriever
from sphere.config import SosConfig
from sphere.service import Sphere
from sphere.simulator import DEFAULT_CLIPS, SosSimulator
from voice.exhibit import Exhibit

FAST = {
    "poll_s": 0.05,
    "connect_timeout_s": 0.5,
    "read_timeout_s": 0.3,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.2,
}


@pytest.fixture(scope="session")
def retriever(catalog: Catalog) -> Retriever:
    return Retriever(catalog)  # lexical: no encoder load in these tests


@pytest.fixture
async def simulator() -> AsyncIterator[SosSimulator]:
    sim = SosSimulator(DEFAULT_CLIPS, port=0)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def make_sphere(catalog: Catalog, retriever: Retriever) -> AsyncIterator[Callable[..., Any]]:
    """``await make_sphere(sim, control=True, **sos_keys)`` -> a started Sphere over a fresh
    Exhibit (or ``exhibit=``), closed after the test."""
    made: list[Sphere] = []

    async def make(sim: SosSimulator, exhibit: Exhibit | None = None, **keys: Any) -> Sphere:
        config = SosConfig(**{"host": "127.0.0.1", "port": sim.port, **FAST, **keys})
        sphere = Sphere(config, exhibit or Exhibit(catalog), retriever)
        await sphere.start()
        made.append(sphere)
        return sphere

    yield make
    for sphere in made:
        await sphere.aclose()


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; returns its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return condition()
