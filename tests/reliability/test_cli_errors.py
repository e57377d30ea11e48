"""The real ``sos-voice`` command, run as a subprocess with mistakes a kiosk operator makes:
each ends with one line on stderr and exit status 2, never a traceback, and the mistakes that
need no model (address, port, output file, empty question, missing token) are reported before
any model loads: the command runs with ``-v``, which logs every model it loads, and nothing
about loading may appear.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sos_voice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environ = {
        k: v for k, v in environ.items() if not k.startswith("SOS_VOICE__") or k in (env or {})
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "-v"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("sos-voice: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--serve", "--port", "99999"), ("--port", "99999")),
        (("--serve", "--port", "-1"), ("--port", "-1")),
        (("--serve", "--host", "0.0.0.0"), ("without a token",)),
        (("--text", ""), ("--text",)),
        (("--text", "   "), ("--text",)),
        (("--text", "hi", "--out", "."), ("--out", "folder")),
        (("--text", "hi", "--out", "no/such/folder/a.wav"), ("--out", "no such folder")),
        (("--wav", "no-such-file.wav"), ("--wav", "no such file")),
        (("--config", "."), ("folder",)),
    ],
)
def test_mistakes_are_one_line_before_the_models(
    args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    result = sos_voice(*args)
    assert_one_line_error(result, *words)


def test_a_port_in_use_is_one_line_before_the_models(busy_port: int) -> None:
    result = sos_voice("--serve", "--port", str(busy_port))
    assert_one_line_error(result, f"port {busy_port}", "in use")


def test_an_unknown_address_is_one_line_before_the_models() -> None:
    token = {"SOS_VOICE__SERVER__TOKEN": "cli-test-token-0123456789"}
    result = sos_voice("--serve", "--host", "no-such-host.invalid", "--port", "0", env=token)
    assert_one_line_error(result, "cannot listen", "no-such-host.invalid")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("SOS_VOICE__STT__MODEL", "nonsense-model", ("stt.model", "nonsense-model")),
        ("SOS_VOICE__STT__MODEL", "/no/such/model", ("stt.model", "/no/such/model")),
        ("SOS_VOICE__TTS__VOICE", "/no/such/voice.onnx", ("tts.voice", "/no/such/voice.onnx")),
        ("SOS_VOICE__TTS__VOICE", "voice.txt", ("tts.voice",)),
    ],
)
def test_bad_models_are_one_line(key: str, value: str, words: tuple[str, ...]) -> None:
    result = sos_voice("--text", "What causes a tsunami?", "--no-play", env={key: value})
    assert_one_line_error(result, *words)
