"""Following the sphere on a real socket: clip changes move the exhibit, unknown clips clear it
(logged once), a host that drops, stalls or errors never stops the follower, and with control
off not one command that changes the sphere is sent."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from catalog.datasets import Catalog
from catalog.retrieval import Retriever
from sphere.commands import recognize
from sphere.simulator import SosSimulator
from tests.sphere.conftest import eventually
from voice.exhibit import Exhibit

pytestmark = pytest.mark.asyncio(loop_scope="session")


def slug(exhibit: Exhibit) -> str | None:
    return exhibit.showing.slug if exhibit.showing else None


async def test_follows_clip_changes(simulator: SosSimulator, make_sphere: Any) -> None:
    sphere = await make_sphere(simulator)
    exhibit = sphere.follower.exhibit
    assert slug(exhibit) == "blue-marble"  # known after start(), before the first question
    assert [c.entry.slug if c.entry else None for c in sphere.follower.playlist] == [
        "blue-marble",
        "hurricane-season-2005",
        "japan-tsunami-wave-propagation-march-11-2011",
        "aurora",
        "sea-surface-temperature-anomalies-1980-1999",
    ]
    changes = []
    exhibit.subscribe(lambda c: changes.append((c.showing.slug if c.showing else None, c.source)))
    simulator.current = 2
    assert await eventually(lambda: slug(exhibit) == "hurricane-season-2005")
    simulator.current = 4
    assert await eventually(lambda: slug(exhibit) == "aurora")
    assert changes == [("hurricane-season-2005", "sos"), ("aurora", "sos")]
    assert "get_all_name_value_pairs 1" in simulator.received  # the documented query first


async def test_an_operator_setting_is_not_undone_while_the_clip_stays(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator)
    exhibit = sphere.follower.exhibit
    exhibit.set("aurora", source="http")
    polls = sphere.follower.polls
    assert await eventually(lambda: sphere.follower.polls >= polls + 3)
    assert slug(exhibit) == "aurora"
    simulator.current = 2
    assert await eventually(lambda: slug(exhibit) == "hurricane-season-2005")


async def test_unknown_clip_clears_the_exhibit_and_is_logged_once(
    make_sphere: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim = SosSimulator(["Blue Marble", "Bob's Holiday Slideshow"], port=0)
    await sim.start()
    try:
        caplog.set_level(logging.WARNING, logger="sphere.follow")
        sphere = await make_sphere(sim)
        exhibit = sphere.follower.exhibit
        assert slug(exhibit) == "blue-marble"
        sim.current = 2
        assert await eventually(lambda: exhibit.showing is None)
        polls = sphere.follower.polls
        assert await eventually(lambda: sphere.follower.polls >= polls + 5)
        unknown = [r for r in caplog.records if "matches no catalog dataset" in r.message]
        assert len(unknown) == 1 and "Bob's Holiday Slideshow" in unknown[0].message
        assert sphere.describe()["current"]["slug"] is None
    finally:
        await sim.stop()


@pytest.mark.parametrize("form", ["comma", "space", "name"])
async def test_clip_info_fallback_in_every_form(make_sphere: Any, form: str) -> None:
    sim = SosSimulator(["Earth_Blue_Marble", "Aurora"], port=0, clip_info_form=form)
    sim.faults.error_commands.add("get_all_name_value_pairs")  # a host without the doc'd query
    await sim.start()
    try:
        sphere = await make_sphere(sim)
        assert [c.name for c in sphere.follower.playlist] == ["Earth_Blue_Marble", "Aurora"]
        assert slug(sphere.follower.exhibit) == "blue-marble"
    finally:
        await sim.stop()


async def test_host_faults_never_stop_the_follower(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator)
    exhibit = sphere.follower.exhibit
    task = sphere._task
    for fault in ("drop", "slow", "errors"):
        if fault == "drop":
            simulator.faults.drop_after = 2
        elif fault == "slow":
            simulator.faults.delay_s = 1.0
        else:
            simulator.faults.error_commands |= {"get_clip_count", "get_clip_number"}
        polls = sphere.follower.polls
        assert await eventually(lambda p=polls: sphere.follower.polls >= p + 3)
        assert slug(exhibit) in ("blue-marble", "hurricane-season-2005")  # last known kept
        assert not task.done()
        simulator.faults.drop_after, simulator.faults.delay_s = 0, 0.0
        simulator.faults.error_commands.clear()
        simulator.current = 2 if simulator.current == 1 else 1
        want = "hurricane-season-2005" if simulator.current == 2 else "blue-marble"
        assert await eventually(lambda w=want: slug(exhibit) == w), fault
    assert simulator.connections >= 3


async def test_dead_host_never_blocks(catalog: Catalog, retriever: Retriever) -> None:
    from sphere.config import SosConfig
    from sphere.service import Sphere

    # 192.0.2.1 (TEST-NET-1) never answers: connecting can only time out.
    config = SosConfig(host="192.0.2.1", connect_timeout_s=0.3, poll_s=0.05)
    sphere = Sphere(config, Exhibit(catalog), retriever)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sphere.start()
    assert loop.time() - started < 1.0
    result = await sphere.perform(recognize("next one"), sphere.limiter())
    assert result.status in ("disabled", "unavailable")
    await asyncio.sleep(0.3)
    assert not sphere._task.done()
    await sphere.aclose()


async def test_no_control_command_when_control_is_off(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator)  # control defaults to off
    limiter = sphere.limiter()
    for text in ("show me hurricanes", "next one", "go back", "pause", "play it again"):
        result = await sphere.perform(recognize(text), limiter)
        assert result.status == "disabled" and "can't" in result.say
    await asyncio.sleep(0.2)
    assert simulator.control_commands() == []
    assert simulator.current == 1 and simulator.animating


async def test_a_reply_out_of_step_resets_the_connection(
    simulator: SosSimulator, make_sphere: Any
) -> None:
    sphere = await make_sphere(simulator)
    connects = sphere.client.connects
    simulator.faults.garbled_commands.add("get_clip_count")
    assert await eventually(lambda: sphere.client.last_error.startswith("unexpected reply"))
    assert not sphere._task.done()
    simulator.faults.garbled_commands.clear()
    simulator.current = 3
    assert await eventually(lambda: (slug(sphere.follower.exhibit) or "").startswith("japan"))
    assert sphere.client.connects > connects
