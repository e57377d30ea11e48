"""`sos-voice --serve` records its sessions and the record outlives the process: the real
command, started twice on the same database, with a real WebSocket client in between."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.server.conftest import TOKEN, ask

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def serving(config: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`sos-voice --serve` until healthy; SIGTERM (what systemd sends) on the way out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--serve", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def typed(port: int, question: str) -> str:
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        for message in ask(question):
            await ws.send(message)
        while True:
            message = await asyncio.wait_for(ws.recv(), 120)
            if isinstance(message, str) and json.loads(message)["type"] == "response.done":
                return json.loads(message)["response"]["status"]


def test_serve_records_turns_that_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "staff" / "curator.sqlite3"
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'[server]\nport = {port}\ntoken = "{TOKEN}"\n\n[curator]\ndb_path = "{db}"\n'
    )
    log = tmp_path / "serve.log"
    csv_url = f"http://127.0.0.1:{port}/curator/turns.csv"
    staff = "Basic " + base64.b64encode(f"staff:{TOKEN}".encode()).decode()

    with serving(config, port, log) as proc:
        assert asyncio.run(typed(port, "What causes a tsunami?")) == "completed"
    assert proc.returncode == 0, log.read_text()
    assert db.is_file()

    with serving(config, port, log):
        assert get(csv_url)[0] == 401
        status, body = get(csv_url, staff)
        assert status == 200
        assert "What causes a tsunami?,answered" in body.decode()
        status, page = get(f"http://127.0.0.1:{port}/curator", staff)
        assert status == 200 and b"What causes a tsunami?" in page
