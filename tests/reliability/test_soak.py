"""Soak: hundreds of turns over many sessions on the real models; every turn is answered and
memory stops growing once the process is warm.

Two paths, as the service runs them: Sessions driven directly (the kiosk and CLI), and
clients of the WebSocket server (headsets), each with typed questions and some spoken ones.
Sessions run a few at a time, so the shared executors and models see concurrent work.

Why both tracemalloc and RSS: tracemalloc sees every Python object a leak would keep (a
session's history, a queue, a task) but not native memory; RSS sees ONNX Runtime and
CTranslate2 too, but moves with allocator arenas. ONNX Runtime's arena for Piper grows for the
first hundred or so syntheses (new input lengths) and then levels off (its memory pattern,
which never levelled off, is off: voice/tts.py), so the Python heap is bounded from the end of
a warm-up round, and RSS is bounded over the second half of the soak: a leak grows in both
halves, an arena that has reached its working size does not. Before each RSS sample glibc
returns its free pages to the system (``malloc_trim``): otherwise a heap that happens to be
fragmented at the sample reads as growth that nothing holds.

Speech: the real Piper voice, at double speed (its own ``length_scale`` option). Synthesis
time grows with the length of the speech, and the soak is about sessions, queues and memory,
not voice quality; double speed halves its cost so the turn count can stay high.

Scale: ``SOS_SOAK_SCALE`` multiplies the turn counts (default 1 keeps the module within a
few minutes on a 2-core CI machine; try 5 for a longer soak).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import itertools
import json
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bench.common import rss_bytes
from tests.reliability.conftest import (
    Recorder,
    eventually,
    read_until,
    running_server,
    typed_question,
    with_faults,
    ws_client,
)
from voice.events import ResponseDone, ResponseStarted, TranscriptReady
from voice.pipeline import Session
from voice.services import Services

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SCALE = max(1, int(os.environ.get("SOS_SOAK_SCALE", "1")))
QUESTIONS = (
    "What causes a tsunami?",
    "Where do hurricanes form?",
    "Why is the ocean getting more acidic?",
    "What is El Nino?",
    "How fast is the Arctic sea ice melting?",
    "Where are the volcanoes on Earth?",
    "What is Mars like?",
    "What is happening to coral reefs?",
    "Where do earthquakes happen?",
    "What is the ozone hole?",
    "How do ocean currents move?",
    "Where do wildfires burn?",
)
# Mostly kids: one short sentence per answer keeps Piper's share of the soak small, so the
# turn count can be high; every fourth visitor gets the longer general/educator answers.
AUDIENCES = ("kids", "kids", "kids", "general", "kids", "kids", "kids", "educator")
CONCURRENCY = 4
# Bounds on growth after warm-up. A leak of one answer's text per turn would be a few MB of
# Python objects over the soak; a leaked session (history, queues, tasks) much more.
MAX_PY_GROWTH_MB = 4.0
MAX_RSS_GROWTH_MB = 64.0
WARM_CONVERSATIONS = 8


class MemoryWatch:
    """Python heap (tracemalloc) and RSS, measured after a full garbage collection."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, float, float]] = []

    def sample(self, label: str) -> tuple[float, float]:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        py = tracemalloc.get_traced_memory()[0] / 2**20
        rss = rss_bytes() / 2**20
        self.samples.append((label, py, rss))
        return py, rss

    def value(self, label: str) -> tuple[float, float]:
        _, py, rss = next(s for s in self.samples if s[0] == label)
        return py, rss

    def check(self) -> None:
        """Python heap: flat from warm to end; RSS: flat over the second half."""
        py_growth = self.value("end")[0] - self.value("warm")[0]
        rss_growth = self.value("end")[1] - self.value("half")[1]
        assert py_growth < MAX_PY_GROWTH_MB, self.report()
        assert rss_growth < MAX_RSS_GROWTH_MB, self.report()

    def report(self) -> str:
        return "; ".join(
            f"{lbl}: py {py:.1f} MB, rss {rss:.0f} MB" for lbl, py, rss in self.samples
        )


@pytest.fixture(scope="module")
def soak_services(services: Services) -> Services:
    """The shared models, with Piper speaking at double speed (see the module docstring)."""
    return with_faults(services, synthesizer=services.synthesizer.with_options(length_scale=0.5))


@pytest.fixture
def memory() -> Any:
    tracemalloc.start(1)
    try:
        yield MemoryWatch()
    finally:
        tracemalloc.stop()


async def in_batches(jobs: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    """Run the jobs ``concurrency`` at a time (as sessions that overlap in a busy hall)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


async def soak_in_halves(
    jobs: list[Callable[[], Awaitable[Any]]], memory: MemoryWatch
) -> list[Any]:
    """Warm-up conversations, then the rest in two halves, sampling memory between them."""
    warm, rest = jobs[:WARM_CONVERSATIONS], jobs[WARM_CONVERSATIONS:]
    results = await in_batches(warm, CONCURRENCY)
    memory.sample("warm")
    results += await in_batches(rest[: len(rest) // 2], CONCURRENCY)
    memory.sample("half")
    results += await in_batches(rest[len(rest) // 2 :], CONCURRENCY)
    memory.sample("end")
    return results


# --------------------------------------------------------------------------- Session path
async def session_conversation(
    services: Services, questions: list[str], audience: str, spoken: bytes | None
) -> list[tuple[str, ResponseDone]]:
    """One visitor: a spoken question (optional) then typed ones, in one Session. Returns
    (question as the session understood it, its ResponseDone) per turn."""
    rec = Recorder()
    session = Session(services, rec)
    session.update(audience=audience)
    try:
        expected = 0
        if spoken is not None:
            session.feed_audio(spoken)
            session.end_of_audio()
            expected += 1
            await rec.wait_done(expected)
        for question in questions:
            assert session.ask(question) is not None
            expected += 1
            await rec.wait_done(expected)
    finally:
        await session.aclose()
    asked = {e.response_id: e.question for e in rec.of(ResponseStarted)}
    for d in rec.done():
        assert rec.audio_bytes(d.response_id) > 0, (asked[d.response_id], d)
    if spoken is not None:
        assert rec.of(TranscriptReady)[0].text.strip()
    return [(asked[d.response_id], d) for d in rec.done()]


async def test_soak_sessions(
    soak_services: Services, spoken_16k: dict[str, bytes], memory: MemoryWatch
) -> None:
    services = soak_services
    sessions, turns_each = 30 * SCALE, 4
    questions = itertools.cycle(QUESTIONS)
    spoken = itertools.cycle(spoken_16k.values())

    def conversation(i: int) -> Callable[[], Awaitable[list[tuple[str, ResponseDone]]]]:
        asked = [next(questions) for _ in range(turns_each)]
        audio = next(spoken) if i % 6 == 0 else None  # one visitor in six speaks
        return lambda: session_conversation(services, asked, AUDIENCES[i % len(AUDIENCES)], audio)

    results = await soak_in_halves([conversation(i) for i in range(sessions)], memory)
    done = [turn for conv in results for turn in conv]
    assert len(done) >= sessions * turns_each
    failed = [(q, d.status, d.error) for q, d in done if d.status != "completed"]
    assert not failed, failed
    # Every answer has text; typed questions (no mishearing possible) also have their link.
    assert all(d.text for _, d in done)
    unanswered = [(q, d.text) for q, d in done if q in QUESTIONS and not d.link]
    assert not unanswered, unanswered
    print(f"\nsoak sessions: {len(done)} turns; {memory.report()}")
    memory.check()


# --------------------------------------------------------------------------- WebSocket path
async def ws_conversation(
    server: Any, questions: list[str], audience: str, spoken: bytes | None
) -> list[dict[str, Any]]:
    """One headset: session.update, an optional spoken question (binary frames), typed ones."""
    responses = []
    async with ws_client(server) as ws:
        await read_until(ws, "session.created")
        update = {"audience": audience, "sos_binary_audio": True}
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        await read_until(ws, "session.updated")
        if spoken is not None:
            for i in range(0, len(spoken), 6400):
                await ws.send(spoken[i : i + 6400])
            done, seen = await read_until(ws, "response.done", 120)
            assert any(isinstance(m, bytes) for m in seen), "no audio for the spoken question"
            responses.append({**done["response"], "spoken": True})
        for question in questions:
            for message in typed_question(question):
                await ws.send(message)
            done, seen = await read_until(ws, "response.done", 120)
            errors = [m for m in seen if isinstance(m, dict) and m["type"] == "error"]
            assert not errors, errors
            assert any(isinstance(m, bytes) for m in seen), "no audio"
            responses.append(done["response"])
    return responses


def answer_text(response: dict[str, Any]) -> str:
    """The spoken answer's text in a response.done (for failure messages)."""
    for item in response.get("output") or []:
        for part in item.get("content") or []:
            if part.get("transcript") or part.get("text"):
                return str(part.get("transcript") or part.get("text"))
    return ""


async def test_soak_websocket(
    soak_services: Services, spoken_16k: dict[str, bytes], memory: MemoryWatch
) -> None:
    services = soak_services
    clients, turns_each = 20 * SCALE, 4
    questions = itertools.cycle(reversed(QUESTIONS))
    spoken = itertools.cycle(spoken_16k.values())
    async with running_server(services, max_sessions=CONCURRENCY * 2) as server:

        def conversation(i: int) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
            asked = [next(questions) for _ in range(turns_each)]
            audio = next(spoken) if i % 4 == 0 else None
            audience = AUDIENCES[(i + 1) % len(AUDIENCES)]
            return lambda: ws_conversation(server, asked, audience, audio)

        results = await soak_in_halves([conversation(i) for i in range(clients)], memory)
        responses = [r for conv in results for r in conv]
        assert len(responses) >= clients * turns_each
        failed = [r["status_details"] for r in responses if r["status"] != "completed"]
        assert not failed, failed
        assert all(answer_text(r) for r in responses)
        unanswered = [answer_text(r) for r in responses if not (r["sos_link"] or "spoken" in r)]
        assert not unanswered, unanswered
        assert server.metrics.turns["completed"] == len(responses)
        # Each connection's handler finishes just after its client has gone.
        assert await eventually(lambda: server.health()["sessions"] == 0), server.health()
    print(f"\nsoak websocket: {len(responses)} turns; {memory.report()}")
    memory.check()
