"""The curator page in headless Chromium, on real data: real WebSocket sessions on the real
models through a real server with a token, recorded into a real SQLite file.

Saves docs/curator-screenshot.png (the 24-hour view of what the sessions asked).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.config import Config
from curator.config import CuratorConfig
from curator.recorder import Recorder
from curator.store import CuratorStore
from server.app import Server
from server.config import ServerConfig
from tests.server.browser import chromium_path, open_page
from tests.server.conftest import TOKEN, append, ask, chunks, client, next_event, until
from tests.speech import espeak_wav, noise, read_pcm16

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed"),
]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "curator-screenshot.png"
TYPED = [
    "What causes a tsunami?",
    "Tell me about hurricanes.",
    "How fast is the Arctic sea ice melting?",
    "What causes a tsunami",
    "What is your favourite pizza topping?",
    "Why is the ocean getting more acidic?",
]


@pytest.fixture
async def curator_server(
    config: Config, services: Any, tmp_path: Path
) -> AsyncIterator[tuple[Server, CuratorStore]]:
    store = CuratorStore.open(CuratorConfig(db_path=str(tmp_path / "curator.sqlite3")))
    server = Server(config, services, ServerConfig(token=TOKEN), curator=Recorder(store, "server"))
    await server.start("127.0.0.1", 0)
    try:
        yield server, store
    finally:
        await server.stop()
        store.close()


async def typed(server: Server, question: str) -> dict[str, Any]:
    async with client(server, token=TOKEN) as ws:
        await next_event(ws)
        for message in ask(question):
            await ws.send(message)
        done, _ = await until(ws, "response.done", 60)
        return done["response"]


async def interrupted(server: Server, tmp_path: Path) -> list[str]:
    """A spoken question, and the visitor talking over its answer: statuses of both answers."""
    first, _ = read_pcm16(espeak_wav("Tell me about volcanoes.", tmp_path / "a.wav", rate=24000))
    second, _ = read_pcm16(
        espeak_wav("What about earthquakes?", tmp_path / "b.wav", rate=24000, lead_s=0.1)
    )
    async with client(server, token=TOKEN) as ws:
        await next_event(ws)
        for piece in chunks(first, 24000):
            await ws.send(append(piece))
        await until(ws, "response.audio.delta", 60)
        for piece in chunks(second, 24000):
            await ws.send(append(piece))
        statuses = [(await until(ws, "response.done", 60))[0]["response"]["status"]]
        statuses.append((await until(ws, "response.done", 60))[0]["response"]["status"])
        return statuses


async def hiss(server: Server) -> str:
    """Push-to-talk noise: Whisper rejects it (an empty transcript, no answer)."""
    pcm = np.clip(noise(24000, -25) * 32768, -32768, 32767).astype("<i2").tobytes()
    async with client(server, token=TOKEN) as ws:
        await next_event(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        await until(ws, "session.updated")
        await ws.send(append(pcm))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        done, _ = await until(ws, "conversation.item.input_audio_transcription.completed", 60)
        return done["transcript"]


def get(
    url: str, auth: str | None = None, post: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` (POST ``post`` if given) -> status, headers, body."""
    request = urllib.request.Request(
        url, data=post, headers={"Authorization": auth} if auth else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"staff:{password}".encode()).decode()


async def test_curator_page_in_chromium_on_real_sessions(
    curator_server: tuple[Server, CuratorStore], tmp_path: Path
) -> None:
    server, store = curator_server
    answers = [await typed(server, q) for q in TYPED]
    assert all(a["status"] == "completed" for a in answers)
    assert await interrupted(server, tmp_path) == ["cancelled", "completed"]
    assert await hiss(server) == ""
    await asyncio.to_thread(store.flush)

    base = server.http_url.rstrip("/")
    # The token is required: none, a wrong Bearer and a wrong password are all refused.
    for auth in (None, "Bearer wrong-token-0123456789", basic("wrong-token-0123456789")):
        status, headers, body = await asyncio.to_thread(get, f"{base}/curator", auth)
        assert status == 401, auth
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert b"What causes a tsunami" not in body
    status, _, _ = await asyncio.to_thread(get, f"{base}/curator/turns.csv")
    assert status == 401
    status, _, body = await asyncio.to_thread(get, f"{base}/curator", f"Bearer {TOKEN}", b"{}")
    assert status == 405 and b"use GET, HEAD" in body

    # CSV with the Bearer token, as a program would fetch it.
    status, headers, body = await asyncio.to_thread(
        get, f"{base}/curator/turns.csv", f"Bearer {TOKEN}"
    )
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["question"] for r in rows[: len(TYPED)]] == TYPED
    outcomes = [r["outcome"] for r in rows]
    assert outcomes.count("barge_in") == 1 and outcomes[-1] == "misheard"
    assert {r["source"] for r in rows} == {"server"}

    # A person in a browser: without the token Chromium gets only the challenge (it would ask
    # for a password; headless, it stays where it was), with it (typed into the prompt, here
    # in the URL) the page.
    netloc = base.split("://", 1)[1]
    async with open_page("about:blank") as page:
        await page.send("Page.navigate", url=f"{base}/curator")
        await asyncio.sleep(2.0)
        assert "Curator" not in await page.eval("document.title")
        assert "tsunami" not in (await page.eval("document.documentElement.outerHTML")).lower()
        await page.send("Page.navigate", url=f"http://staff:{TOKEN}@{netloc}/curator?days=1")
        await page.wait_for("document.querySelector('.kpis') !== null", timeout=30)
        kpis = await page.eval(
            "[...document.querySelectorAll('.kpi')].map(k => k.textContent.trim())"
        )
        assert kpis[0] == f"{len(rows)}questions"
        text = await page.eval("document.querySelector('main').innerText")
        for question in ("What is your favourite pizza topping?", "Tell me about volcanoes"):
            assert question.lower() in text.lower()
        assert "interrupted (barge-in)" in text and "(no words heard)" in text
        # The charts are SVG, drawn from the data: a bar per outcome present, a dot per
        # answered turn on the latency plot, a bar per dataset visitors were sent to.
        bars = await page.eval("document.querySelectorAll('svg.chart rect title').length")
        assert bars >= 4
        dots = await page.eval(
            "document.querySelectorAll('svg[aria-label=\"latency over time\"] circle').length"
        )
        assert dots >= sum(1 for r in rows if r["first_audio_ms"])
        datasets = await page.eval(
            "[...document.querySelectorAll('section')].find(s => s.textContent.includes("
            "'Datasets visitors were sent to')).querySelectorAll('a').length"
        )
        assert datasets >= 3
        href = await page.eval("document.querySelector('a.csv').getAttribute('href')")
        assert href == "/curator/turns.csv?days=1"
        assert not [line for line in page.console if "EXCEPTION" in line]
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=1100,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(SCREENSHOT)
        # The browser sends the credentials again for the CSV link: a download, not a 401.
        csv_nav = await page.send("Page.navigate", url=f"{base}{href}")
        assert csv_nav.get("isDownload") is True, csv_nav
