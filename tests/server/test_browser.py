"""The browser page in real headless Chromium, on a real server with the real offline models.

The kiosk tests run at 1280x900 (a landscape kiosk screen) with ``?kiosk=1`` and check what a
visitor sees: the answer above the fold, the status following the audio that is playing (not
``response.done``), captions that light up as the answer is spoken, the link card only for
answers with a link, the dataset on the sphere, the idle reset to the attract screen, and no
operator controls. They save the screenshots in docs/.

The fake microphone is Chromium's file capture device playing an espeak-ng question, so the
page's real capture path (getUserMedia -> AudioWorklet -> 16 kHz PCM16 binary frames) runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.app import Server
from server.config import ServerConfig
from tests.server.browser import Page, chromium_path, open_page
from tests.server.conftest import TOKEN, StartServer, eventually
from tests.speech import espeak_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed"),
]

DOCS = Path(__file__).resolve().parents[2] / "docs"
KIOSK = (1280, 900)

ANSWER = "document.querySelector('#turns .answer')?.textContent.trim()"
SPOKEN = "document.querySelector('#turns .spoken')?.textContent.trim()"
TRANSCRIPT = "document.querySelector('#turns .transcript')?.textContent.trim()"
STATE = "document.body.dataset.state"
CARD = (
    "(() => { const c = document.querySelector('#turns .turn:first-child .card');"
    " return c && getComputedStyle(c).display !== 'none' ? c.href : ''; })()"
)


def visible(selector: str) -> str:
    """JS: the element exists, is rendered and has a size."""
    return (
        f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
        " if (!e) return false; const r = e.getBoundingClientRect();"
        " return getComputedStyle(e).display !== 'none' && r.width > 0 && r.height > 0; })()"
    )


def rect(selector: str) -> str:
    return (
        f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
        ".getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; })()"
    )


def sessions(server: Server) -> set[str]:
    """The ids of the server's live sessions (its private connection set, as conftest's
    session_of reads it: which session a page talks to is not on the wire)."""
    return {conn.session.id for conn in server._connections}


async def record_states(page: Page) -> None:
    """Keep every change of body[data-state] in window.__states, from now on."""
    await page.eval(
        "window.__states = []; new MutationObserver(() => {"
        " const s = document.body.dataset.state;"
        " if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);"
        "}).observe(document.body, {attributes: true, attributeFilter: ['data-state']}); true"
    )


async def ask_typed(page: Page, question: str) -> None:
    await page.eval(f"document.querySelector('#question').value = {json.dumps(question)}")
    await page.click("#ask")


@pytest.mark.slow
async def test_kiosk_answer_follows_playback_and_resets_when_idle(
    real_server: Server, services: Any
) -> None:
    """One visitor at the kiosk, start to finish; saves docs/kiosk-answer.png and
    docs/kiosk-attract.png."""
    real_server.exhibit.set(services.catalog.resolve("hurricane season 2017"), source="test")
    showing = real_server.exhibit.showing
    assert showing is not None
    url = real_server.http_url + "?kiosk=1&idle=6"
    async with open_page(url, window=KIOSK) as page:
        assert await page.eval("[innerWidth, innerHeight]") == list(KIOSK)
        await page.wait_for(f"{STATE} === 'ready'")
        # The dataset on the sphere, with the globe placeholder: no broken image offline.
        await page.wait_for(visible("#sphere"))
        assert await page.eval("document.querySelector('#sphere-title').textContent") == (
            showing.title
        )
        assert await page.eval(visible(".sphere-placeholder"))
        assert not await page.eval(visible("#sphere-img"))
        # A visitor sees no operator controls and the attract screen.
        assert not await page.eval(visible("#handsfree"))
        assert not await page.eval(visible("#token-form"))
        assert await page.eval(visible("#attract"))
        assert await page.eval("document.querySelector('link[rel=icon]').href.endsWith('.svg')")

        await record_states(page)
        await page.click(".example")  # "What causes a tsunami?", a real click (audio unlocks)
        await page.wait_for(f"{STATE} === 'speaking'", timeout=60)
        # Captions: while it speaks, only part of the answer is lit.
        partial = await page.wait_for(
            f"(() => {{ const s = {SPOKEN} || ''; const a = {ANSWER} || '';"
            " return s.length > 0 && s.length < a.length ? [s.length, a.length] : null; })()",
            timeout=60,
        )
        assert partial[0] < partial[1]
        await page.wait_for(CARD, timeout=90)
        # response.done has arrived (the card is its sos_link) but the audio is still playing.
        assert await page.eval(STATE) == "speaking"
        assert await page.eval(f"{SPOKEN}.length < {ANSWER}.length")
        assert "tsunami" in (await page.eval(CARD)).lower()
        assert "tsunami" in (await page.eval(ANSWER)).lower()
        answer_box = await page.eval(rect("#turns .turn:first-child .answer"))
        card_box = await page.eval(rect("#turns .turn:first-child .card"))
        assert answer_box["top"] < 300 and card_box["bottom"] <= KIOSK[1], (answer_box, card_box)
        await page.screenshot(DOCS / "kiosk-answer.png", full_page=False)

        await page.wait_for(f"{STATE} === 'ready'", timeout=90)
        assert await page.eval(SPOKEN) == await page.eval(ANSWER)
        assert await page.eval("window.__states") == ["thinking", "speaking", "ready"]
        assert await page.eval("document.querySelector('#stop').disabled")

        # An answer without a catalog link shows no link card; the newest answer is on top.
        await ask_typed(page, "What is your favourite pizza topping?")
        await page.wait_for(f"{STATE} === 'speaking'", timeout=60)
        await page.wait_for(f"{STATE} === 'ready'", timeout=90)
        assert "sorry" in (await page.eval(ANSWER)).lower()
        assert not await page.eval(CARD)
        assert await page.eval("document.querySelectorAll('#turns .turn').length") == 2

        # Nobody there: the page starts over for the next visitor, with a new session (the
        # server forgets this visitor's conversation).
        visitor = sessions(real_server)
        assert len(visitor) == 1
        await page.wait_for(visible("#attract"), timeout=20)
        assert await page.eval("document.querySelectorAll('#turns .turn').length") == 0
        await page.wait_for(f"{STATE} === 'ready'")
        assert await eventually(lambda: len(sessions(real_server)) == 1)
        assert sessions(real_server).isdisjoint(visitor)
        assert await page.eval(visible("#sphere"))
        await page.screenshot(DOCS / "kiosk-attract.png", full_page=False)
    assert real_server.metrics.turns["completed"] == 2


@pytest.mark.slow
async def test_page_fake_mic_real_models(real_server: Server, tmp_path: Path) -> None:
    """The hands-free flow on the operator page: the page streams the microphone as 16 kHz
    PCM16 (a transcript that names the question proves the rate); saves
    docs/web-screenshot.png."""
    wav = espeak_wav("What causes a tsunami?", tmp_path / "q.wav", rate=48000, trail_s=2.0)
    async with open_page(real_server.http_url, fake_mic_wav=wav) as page:
        await page.wait_for(f"{STATE} === 'ready'")
        ptt_help = await page.eval("document.querySelector('#talk-help').textContent")
        assert "hold" in ptt_help.lower()
        await page.click("#handsfree")
        help_text = await page.eval("document.querySelector('#talk-help').textContent")
        assert "hold" not in help_text.lower() and "ask out loud" in help_text.lower()
        assert await page.eval("document.querySelector('#talk').disabled")
        await page.wait_for(CARD, timeout=90)
        assert "tsunami" in (await page.eval(TRANSCRIPT)).lower()
        assert len(await page.eval(ANSWER)) > 40
        assert "tsunami" in (await page.eval(CARD)).lower()
        await page.screenshot(DOCS / "web-screenshot.png")
    assert real_server.metrics.turns["completed"] == 1


async def test_kiosk_never_asks_visitors_for_a_token(
    start_server: StartServer, config: Any, services: Any
) -> None:
    """Without the token the operator page asks for it; the kiosk page tells the visitor to
    ask staff and shows no form. With #token= in the address it connects."""
    server = await start_server(config, services, token=TOKEN)
    async with open_page(server.http_url + "?kiosk=1", window=KIOSK) as page:
        await page.wait_for(f"{STATE} === 'offline'")
        assert "staff" in await page.eval("document.querySelector('#status-text').textContent")
        assert not await page.eval(visible("#token-form"))
    async with open_page(server.http_url) as page:
        await page.wait_for(visible("#token-form"))
    async with open_page(server.http_url + f"?kiosk=1#token={TOKEN}", window=KIOSK) as page:
        await page.wait_for(f"{STATE} === 'ready'")
        assert "token" not in await page.eval("location.href")


async def test_page_reconnects_after_a_server_restart(config: Any, services: Any) -> None:
    """A server restart (or a network drop) shows "Reconnecting…" and the page comes back by
    itself on the same address, with its audience choice."""
    first = Server(config, services, ServerConfig())
    await first.start("127.0.0.1", 0)
    port = int(first.http_url.rstrip("/").rsplit(":", 1)[1])
    second: Server | None = None
    try:
        async with open_page(first.http_url + "?kiosk=1", window=KIOSK) as page:
            await page.wait_for(f"{STATE} === 'ready'")
            await page.click(".segments input[value=kids] + span")
            await first.stop()
            await page.wait_for(f"{STATE} === 'offline'")
            second = Server(config, services, ServerConfig())
            await second.start("127.0.0.1", port)
            await page.wait_for(f"{STATE} === 'ready'", timeout=30)
            conn = next(iter(second._connections))
            assert conn.wire.audience == "kids"
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
