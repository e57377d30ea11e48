"""``[sos]`` in the config, ``--sos-host`` on the real CLI against the simulator, and the
``sos-voice sos-sim`` subcommand an installer runs."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from cli.config import load_config
from settings import ConfigError
from sphere.client import SosClient
from sphere.simulator import SosSimulator

ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")  # the simulator fixture's loop

ROOT = Path(__file__).resolve().parents[2]


def test_sos_section_defaults_and_environment() -> None:
    cfg = load_config(environ={})
    assert cfg.sos.host == "" and cfg.sos.port == 2468 and cfg.sos.control is False
    cfg = load_config(
        environ={
            "SOS_VOICE__SOS__HOST": "10.1.2.3",
            "SOS_VOICE__SOS__CONTROL": "true",
            "SOS_VOICE__SOS__DENY": '["bob*"]',
        }
    )
    assert (cfg.sos.host, cfg.sos.control, cfg.sos.deny) == ("10.1.2.3", True, ["bob*"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("PORT", "0", "sos.port"),
        ("POLL_S", "0", "sos.poll_s"),
        ("BACKOFF_INITIAL_S", "120.0", "sos.backoff_initial_s"),
        ("RATE_LIMIT", "-1", "sos.rate_limit"),
        ("CONTROL", '"yes"', "sos.control"),
    ],
)
def test_bad_sos_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ={f"SOS_VOICE__SOS__{key}": value})


async def run_cli(*args: str, env: dict[str, str], timeout: float = 240) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.slow
@ON_SESSION_LOOP
async def test_cli_sos_host_follows_and_obeys(simulator: SosSimulator) -> None:
    env = {
        "SOS_VOICE__SOS__PORT": str(simulator.port),
        "SOS_VOICE__SOS__CONTROL": "true",
        "SOS_VOICE__CATALOG__RETRIEVAL": "lexical",
    }
    code, out, err = await run_cli(
        "--text", "Show me the aurora", "--sos-host", "127.0.0.1", "--no-play", env=env
    )
    assert code == 0, err
    assert "Showing: Aurora." in out
    assert simulator.control_commands() == ["play 4"]
    # Without control the same words are a question about auroras, and nothing is sent.
    env["SOS_VOICE__SOS__CONTROL"] = "false"
    code, out, err = await run_cli(
        "--text", "Show me the aurora", "--sos-host", "127.0.0.1", "--no-play", env=env
    )
    assert code == 0, err
    assert "Showing:" not in out and "aurora" in out.lower()
    assert simulator.control_commands() == ["play 4"]


@ON_SESSION_LOOP
async def test_sos_sim_subcommand_speaks_the_protocol() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "sos-sim",
        "--port",
        "0",
        "--clip",
        "Aurora",
        "--clip",
        "Blue Marble",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+): 2 clips", line)
        assert match, line
        client = SosClient("127.0.0.1", int(match.group(1)))
        assert (await client.query("get_clip_count")).text == "2"
        assert (await client.query("get_clip_info", 2)).text == "2,Blue Marble"
        await client.aclose()
    finally:
        process.terminate()
        await process.wait()
