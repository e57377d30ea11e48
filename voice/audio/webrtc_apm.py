"""WebRTC's audio processing module (from the ``livekit`` package), loaded in one place.

The echo canceller (voice/audio/echo.py) and the noise suppressor (voice/audio/noise.py) are
both this module with different switches. It takes exactly 10 ms per call, processes the
frame in place, and ships as a native library inside the wheel, so loading it can fail on a
machine the wheel does not fit: that is one clear error, naming the setting to change.
"""

from __future__ import annotations

from typing import Any

from voice.audio.format import SAMPLE_RATE

APM_FRAME = SAMPLE_RATE // 100
"""WebRTC's audio processing takes exactly 10 ms per call (160 samples at 16 kHz)."""


class AudioProcessingUnavailable(RuntimeError):
    """The WebRTC audio processing library (the ``livekit`` package) cannot be loaded."""


def new_apm(*, echo_cancellation: bool, noise_suppression: bool) -> Any:
    """A fresh module (high-pass filter on: hum and rumble are never speech)."""
    try:
        from livekit import rtc
    except (ImportError, OSError) as exc:  # the wheel ships a native library
        raise AudioProcessingUnavailable(
            f"WebRTC's audio processing is not available (pip install livekit): {exc}; "
            'set [audio] echo_cancellation = "off" (half duplex) or "headset", and '
            "noise_suppression = false"
        ) from exc
    return rtc.AudioProcessingModule(
        echo_cancellation=echo_cancellation,
        noise_suppression=noise_suppression,
        high_pass_filter=True,
    )


def frame(data: bytearray) -> Any:
    """10 ms of 16 kHz mono PCM16 as the module's frame type (processed in place)."""
    from livekit.rtc import AudioFrame

    return AudioFrame(data, SAMPLE_RATE, 1, APM_FRAME)
