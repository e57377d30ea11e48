"""KioskListener: full or half duplex, from what the echo canceller shows (voice/listening.py).

A real Session on the shared models and WebRTC's real canceller; the speaker and room are the
simulation of tests/test_echo.py (the real sound-server path is
tests/reliability/test_echo_path.py).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from tests.test_echo import BLOCK_MS, DEVICE_RATE, RATE, _noise, _room, _speech
from voice.audio.resample import resample
from voice.listening import KioskListener
from voice.pipeline import Session
from voice.services import Services

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _session(services: Services, *, half_duplex: bool = False) -> Session:
    pipeline = dataclasses.replace(services.config.pipeline, half_duplex=half_duplex)
    config = dataclasses.replace(services.config, pipeline=pipeline)
    return Session(dataclasses.replace(services, config=config), lambda event: None)


def _play_into(listener: KioskListener, played: np.ndarray, mic: np.ndarray) -> None:
    """The speaker plays ``played`` while the microphone hears ``mic`` (16 kHz floats)."""
    far = resample(played.astype(np.float32), RATE, DEVICE_RATE)
    far_pcm = np.clip(np.round(far * 32767), -32768, 32767).astype(np.int16)
    near_pcm = np.clip(np.round(mic * 32767), -32768, 32767).astype(np.int16)
    block, device_block = RATE * BLOCK_MS // 1000, DEVICE_RATE * BLOCK_MS // 1000
    assert listener.canceller is not None
    for n in range(len(near_pcm) // block):
        listener.canceller.reference.push(
            far_pcm[n * device_block : (n + 1) * device_block], DEVICE_RATE
        )
        listener.feed(near_pcm[n * block : (n + 1) * block].tobytes())


async def test_half_duplex_until_the_echo_is_shown_gone_then_full_duplex(
    services: Services, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    session = _session(services)
    reference = KioskListener.reference_for("webrtc", speaker=True)
    listener = KioskListener.create(session, "webrtc", reference, speaker=True, delay_ms=40)
    try:
        assert session.settings.half_duplex and not listener.listening_while_talking
        speech = _speech(
            "Sea ice grows every winter and melts back every summer around the poles.",
            tmp_path / "a.wav",
        )
        # Three times over: trust needs a clean 99th percentile over the canceller's first
        # seconds too (it leaks while it learns), so about ten seconds of talking.
        answer = np.concatenate([np.zeros(RATE), *[0.6 * speech] * 3])
        with caplog.at_level(logging.INFO, logger="voice.listening"):
            _play_into(listener, answer, _room(answer) + _noise(len(answer)))
        assert listener.listening_while_talking and not session.settings.half_duplex
        assert "a visitor can interrupt" in caplog.text and "removed" in caplog.text
    finally:
        await session.aclose()


async def test_the_operators_half_duplex_always_wins(services: Services, tmp_path) -> None:
    session = _session(services, half_duplex=True)
    reference = KioskListener.reference_for("webrtc", speaker=True)
    listener = KioskListener.create(session, "webrtc", reference, speaker=True)
    try:
        speech = _speech("Hurricanes form over warm ocean water.", tmp_path / "a.wav")
        answer = np.concatenate([np.zeros(RATE), *[0.6 * speech] * 6])
        _play_into(listener, answer, _room(answer) + _noise(len(answer)))
        assert listener.canceller is not None and listener.canceller.converged
        assert session.settings.half_duplex and not listener.listening_while_talking
    finally:
        await session.aclose()


@pytest.mark.parametrize(
    ("mode", "speaker", "half_duplex"),
    [
        ("off", True, True),  # an open speaker and nothing to cancel it: half duplex
        ("headset", True, False),  # the microphone cannot hear it
        ("webrtc", False, False),  # answers go to a WAV file or nowhere: no echo
        ("off", False, False),
    ],
)
async def test_modes_without_a_canceller(
    services: Services, mode: str, speaker: bool, half_duplex: bool
) -> None:
    session = _session(services)
    reference = KioskListener.reference_for(mode, speaker=speaker)
    listener = KioskListener.create(session, mode, reference, speaker=speaker)
    try:
        assert reference is None and listener.canceller is None
        assert session.settings.half_duplex is half_duplex
        assert listener.listening_while_talking is not half_duplex
        listener.feed(b"\x00" * 960)  # frames still reach the session
    finally:
        await session.aclose()


async def test_noise_suppression_without_a_canceller(services: Services) -> None:
    """``[audio] noise_suppression`` on a headset kiosk: the suppressor runs on its own."""
    session = _session(services)
    listener = KioskListener.create(session, "headset", None, speaker=True, noise_suppression=True)
    try:
        assert listener.canceller is None and listener.suppressor is not None
        listener.feed(b"\x00" * 960)
    finally:
        await session.aclose()
