"""Headless Chromium driven over the DevTools protocol, with a WAV file as its microphone.

No Playwright, no browser download: the apt ``chromium`` and the ``websockets`` client that the
project already has are enough for what the page test needs (open a page, click, read the DOM,
take a screenshot). Chromium's fake capture device plays the WAV into getUserMedia.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One page's DevTools session: evaluate JavaScript, click, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"]["args"]
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append("EXCEPTION " + json.dumps(data["params"]["exceptionDetails"]))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{expression!r} not true after {timeout} s; console: {self.console}"
                )
            await asyncio.sleep(0.2)

    async def click(self, selector: str) -> None:
        """A real (trusted) mouse click in the middle of the element: a user gesture."""
        box = await self.eval(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    async def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the whole page, or with ``full_page=False`` of what the screen shows."""
        data = await self.send(
            "Page.captureScreenshot", format="png", captureBeyondViewport=full_page
        )
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    import time

    deadline = time.monotonic() + timeout
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.is_file():
            lines = marker.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


@contextlib.asynccontextmanager
async def open_page(
    url: str, *, fake_mic_wav: Path | None = None, window: tuple[int, int] = (900, 1300)
) -> AsyncIterator[Page]:
    """Start headless Chromium on ``url`` (with ``fake_mic_wav`` as the microphone) in a
    ``window`` of (width, height) CSS pixels."""
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    # Chromium's helper processes may still write to the profile for a moment after the
    # browser exits: a leftover file there must not fail the test that used the page.
    with tempfile.TemporaryDirectory(prefix="sos-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        flags = [
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
        ]
        if fake_mic_wav is not None:
            flags.append(f"--use-file-for-fake-audio-capture={fake_mic_wav}%noloop")
        proc = subprocess.Popen(
            [binary, *flags, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            port = await asyncio.to_thread(_devtools_port, profile, proc, 30.0)
            targets = await asyncio.to_thread(_json, f"http://127.0.0.1:{port}/json/list")
            page_target = next(t for t in targets if t.get("type") == "page")
            async with connect(page_target["webSocketDebuggerUrl"], max_size=None) as ws:
                page = Page(ws)
                await page.send("Runtime.enable")
                await page.send("Page.enable")
                # The window's own size includes (invisible) browser chrome: pin the viewport.
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=window[0],
                    height=window[1],
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await page.send("Page.navigate", url=url)
                # The page may drop its #fragment (the kiosk page removes #token=...).
                loaded = f"location.href.startsWith({json.dumps(url.split('#', 1)[0])})"
                await page.wait_for(f"{loaded} && document.readyState === 'complete'")
                try:
                    yield page
                finally:
                    await page.close()
        finally:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _json(url: str) -> Any:
    for _ in range(50):
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.loads(resp.read())
        if any(t.get("type") == "page" for t in data):
            return data
        import time

        time.sleep(0.1)
    raise RuntimeError("chromium opened no page")
