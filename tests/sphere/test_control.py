"""Driving the sphere on a real socket: clips only from the open playlist, the operator's
allow/deny lists, the per-session rate limit, and a host that fails mid-command."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm.base import AnswerRequest, TextDelta
from sphere.answerer import SphereAnswerer
from sphere.commands import Command, recognize
from sphere.control import RateLimiter
from sphere.simulator import SosSimulator
from tests.sphere.conftest import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def run(sphere: Any, text: str, limiter: RateLimiter | None = None) -> Any:
    command = recognize(text)
    assert command is not None, text
    return await sphere.perform(command, limiter or sphere.limiter())


async def test_spoken_actions_play_clips_of_the_open_playlist(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator, control=True, rate_limit=20)
    limiter = sphere.limiter()
    expected = [
        ("show me hurricanes", "play 2", 2, "Hurricane Season - 2005"),
        ("next one", "play 3", 3, "Japan Tsunami"),
        ("go back", "play 2", 2, "Hurricane Season"),
        ("play it again", "play 2", 2, "Playing it again"),
        ("show me the aurora", "play 4", 4, "Aurora"),
        ("next one", "play 5", 5, "Sea Surface"),
        ("next one", "play 1", 1, "Blue Marble"),  # wraps around the playlist
    ]
    for text, sent, clip, said in expected:
        result = await run(sphere, text, limiter)
        assert result.ok, (text, result)
        assert said in result.say and len(result.say.split()) <= 12
        assert simulator.control_commands()[-1] == sent
        assert simulator.current == clip
        await eventually(lambda c=clip: sphere.follower.current.number == c)
    result = await run(sphere, "pause", limiter)
    assert result.ok and simulator.control_commands()[-1] == "pause" and not simulator.animating
    # Nothing in the playlist: no command at all, and no other playlist is ever opened.
    before = list(simulator.control_commands())
    result = await run(sphere, "show me volcanoes", limiter)
    assert result.status == "not_found" and "playlist" in result.say
    assert simulator.control_commands() == before
    assert not any(c.startswith("open_playlist") for c in simulator.received)


async def test_allowlist_and_denylist(simulator: SosSimulator, make_sphere: Any) -> None:
    sphere = await make_sphere(
        simulator, control=True, allow=["hurricane*", "aurora", "blue-marble"], deny=["aurora"]
    )
    limiter = RateLimiter(100, 60)
    denied = await run(sphere, "show me the aurora", limiter)  # allowed, but deny wins
    assert denied.status == "denied" and "isn't available" in denied.say
    not_allowed = await run(sphere, "show me tsunamis", limiter)
    assert not_allowed.status == "denied"
    assert simulator.control_commands() == []
    assert (await run(sphere, "show me hurricanes", limiter)).ok
    # "next" skips clips the operator did not allow: 2 -> (3 no, 4 denied, 5 no) -> 1.
    assert (await run(sphere, "next one", limiter)).ok
    assert simulator.control_commands() == ["play 2", "play 1"]
    assert (await run(sphere, "go back", limiter)).ok
    assert simulator.control_commands()[-1] == "play 2"


async def test_rate_limit_is_per_session(simulator: SosSimulator, make_sphere: Any) -> None:
    sphere = await make_sphere(simulator, control=True, rate_limit=2, rate_window_s=60)
    first, second = sphere.limiter(), sphere.limiter()
    statuses = [(await run(sphere, "next one", first)).status for _ in range(3)]
    assert statuses == ["ok", "ok", "rate_limited"]
    assert len(simulator.control_commands()) == 2
    assert (await run(sphere, "next one", second)).ok  # another visitor's session
    assert len(simulator.control_commands()) == 3


async def test_host_failing_mid_command_is_said_not_raised(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator, control=True)
    simulator.faults.error_commands.add("play")
    result = await run(sphere, "next one")
    assert result.status == "unavailable" and "isn't answering" in result.say
    simulator.faults.error_commands.clear()
    simulator.faults.delay_s = 1.0
    result = await sphere.perform(Command("play", "aurora"), sphere.limiter())
    assert result.status == "unavailable"
    simulator.faults.delay_s = 0.0
    await asyncio.sleep(0.3)
    assert (await run(sphere, "show me the aurora")).ok


async def test_with_control_off_a_misheard_command_is_asked_about_its_clip(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    """Control off: "show me my vericanes" (Whisper's "the hurricanes") is a question about
    the playlist's hurricane clip, by title; a command for nothing on the playlist and a
    question go to the answerer as they were said."""
    sphere = await make_sphere(simulator)  # [sos] control = false
    asked: list[str] = []

    class Inner:
        name = "recording"

        async def stream(self, request: AnswerRequest) -> AsyncIterator[TextDelta]:
            asked.append(request.question)
            yield TextDelta("an answer")

        async def aclose(self) -> None:
            return None

    answerer = SphereAnswerer(Inner(), sphere.control, sphere.limiter())
    for text in ("Show me my vericanes.", "Show me the dinosaurs.", "What causes a tsunami?"):
        [event] = [e async for e in answerer.stream(AnswerRequest(text))]
        assert event == TextDelta("an answer")
    assert asked == [
        'What is "Hurricane Season - 2005" about?',
        "Show me the dinosaurs.",
        "What causes a tsunami?",
    ]
    assert simulator.control_commands() == []
