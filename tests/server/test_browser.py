"""The browser page in real headless Chromium: loads, asks, shows the answer and the link.

The fake microphone is Chromium's file capture device playing an espeak-ng question, so the
page's real capture path (getUserMedia -> AudioWorklet -> 16 kHz PCM16 binary frames) runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.app import Server
from tests.server.browser import chromium_path, open_page
from tests.speech import espeak_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed"),
]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "web-screenshot.png"

ANSWER = "document.querySelector('#turns .answer')?.textContent.trim()"
TRANSCRIPT = "document.querySelector('#turns .transcript')?.textContent.trim()"
CARD = (
    "(() => { const c = document.querySelector('#turns .card');"
    " return c && !c.hidden ? c.href : ''; })()"
)


@pytest.mark.slow
async def test_page_typed_question(real_server: Server) -> None:
    async with open_page(real_server.http_url) as page:
        await page.wait_for("document.readyState === 'complete'")
        await page.eval("document.querySelector('#question').value = 'What causes a tsunami?'")
        await page.click("#ask")
        await page.wait_for(CARD, timeout=60)
        answer = await page.eval(ANSWER)
        assert "tsunami" in answer.lower() and len(answer) > 40
        assert "tsunami" in await page.eval(CARD)


@pytest.mark.slow
async def test_page_fake_mic_real_models(real_server: Server, tmp_path: Path) -> None:
    """The kiosk flow: the page streams the microphone as 16 kHz PCM16 (a transcript that
    names the question proves the rate); saves docs/web-screenshot.png."""
    wav = espeak_wav("What causes a tsunami?", tmp_path / "q.wav", rate=48000, trail_s=2.0)
    async with open_page(real_server.http_url, fake_mic_wav=wav) as page:
        await page.click("#handsfree")
        await page.wait_for(CARD, timeout=90)
        assert "tsunami" in (await page.eval(TRANSCRIPT)).lower()
        assert len(await page.eval(ANSWER)) > 40
        assert "tsunami" in (await page.eval(CARD)).lower()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(SCREENSHOT)
    assert real_server.metrics.turns["completed"] == 1
