"""What an installation runs every day: the systemd units in deploy/, the Dockerfile, and
``sos-voice --version``.

The units are checked by systemd's own ``systemd-analyze verify`` (apt ``systemd``), with the
install prefix /opt/sos-voice pointed at this checkout so the ``ExecStart`` binaries it checks
exist. Docker needs a daemon; where there is none (these build machines have only the client),
the image build is skipped with that reason and the Dockerfile is checked against the tree and
the CLI instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PREFIX = "/opt/sos-voice"

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt install systemd; make system-test does)",
)


def verify(unit: Path, tmp_path: Path, *, user: bool) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze [--user] verify`` on ``unit`` as installed from this checkout."""
    installed = tmp_path / unit.name
    installed.write_text(unit.read_text().replace(PREFIX, str(ROOT)))
    runtime = tmp_path / "runtime"  # a user manager needs a runtime folder, even offline
    runtime.mkdir(mode=0o700, exist_ok=True)
    cmd = ["systemd-analyze", *(["--user"] if user else []), "verify", "--man=no", str(installed)]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)},
    )


@needs_systemd
@pytest.mark.parametrize(
    ("name", "user"), [("sos-voice.service", False), ("sos-voice-kiosk.service", True)]
)
def test_units_verify_clean(name: str, user: bool, tmp_path: Path) -> None:
    result = verify(DEPLOY / name, tmp_path, user=user)
    assert result.returncode == 0, result.stderr
    # Unknown keys, bad escapes and the like are only warnings: none may mention the unit.
    complaints = [line for line in result.stderr.splitlines() if name in line]
    assert not complaints, complaints


@needs_systemd
def test_verify_catches_a_mistake(tmp_path: Path) -> None:
    """The check reads the unit: a misspelled key and a missing binary are reported."""
    broken = tmp_path / "src" / "sos-voice.service"
    broken.parent.mkdir()
    text = (DEPLOY / "sos-voice.service").read_text()
    broken.write_text(
        text.replace("RestartSec=", "RestartSek=").replace(".venv/bin/sos-voice", ".venv/bin/nope")
    )
    result = verify(broken, tmp_path, user=False)
    assert result.returncode != 0
    assert "RestartSek" in result.stderr and "nope" in result.stderr


def test_units_start_what_the_cli_accepts() -> None:
    """ExecStart of the server unit is a command line `sos-voice` parses."""
    text = (DEPLOY / "sos-voice.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+)(.*)$", text, re.M)
    assert exec_start and exec_start[1] == f"{PREFIX}/.venv/bin/sos-voice"
    args = build_parser().parse_args(exec_start[2].split())
    assert args.serve


def test_dockerfile_copies_what_exists_and_runs_the_server() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the tree"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert source not in ignored, f"{source} is copied but .dockerignore drops it"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M)[1])
    assert cmd[0] == "sos-voice"
    args = build_parser().parse_args(cmd[1:])
    assert args.serve and args.host == "0.0.0.0"


def _docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.slow
def test_docker_image_builds(tmp_path: Path) -> None:
    if not _docker_daemon():
        pytest.skip("no Docker daemon here (the docker client is installed, dockerd is not)")
    result = subprocess.run(
        ["docker", "build", "-q", "-t", "sos-voice:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    version = subprocess.run(
        ["docker", "run", "--rm", "sos-voice:test", "sos-voice", "--version"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert version.stdout.startswith("sos-voice ")


def test_version_is_the_installed_distribution() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout.strip() == f"sos-voice {expected}"
