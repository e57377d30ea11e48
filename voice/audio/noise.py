"""Noise suppression on the microphone: WebRTC's suppressor, for a kiosk in a noisy hall.

A museum hall has a crowd's babble, footsteps, ventilation and mains hum. The suppressor
(WebRTC's, through the ``livekit`` package's ``AudioProcessingModule``, the same library as the
echo canceller, with its high-pass filter against hum and rumble) runs before the VAD and
Whisper. Whether it helps is measured, not assumed: ``python bench/noise.py`` (phantom turns
in noise alone, questions heard as exactly one turn, Whisper's WER, with and without it), and
``[audio] noise_suppression`` follows what that shows (bench/README.md).

With echo cancellation on, the canceller runs the suppressor itself (one module, one pass);
this class is for a microphone without it (``echo_cancellation = "off"`` or ``"headset"``).
"""

from __future__ import annotations

from typing import Any

from voice.audio.webrtc_apm import APM_FRAME, new_apm
from voice.audio.webrtc_apm import frame as apm_frame


class NoiseSuppressor:
    """16 kHz mono PCM16 in (any multiple of 10 ms; a remainder is held), suppressed out."""

    def __init__(self) -> None:
        self._apm: Any = new_apm(echo_cancellation=False, noise_suppression=True)
        self._held = b""

    def process(self, pcm16: bytes) -> bytes:
        data = self._held + pcm16
        size = 2 * APM_FRAME
        whole = len(data) // size * size
        self._held = data[whole:]
        out = bytearray()
        for start in range(0, whole, size):
            frame = bytearray(data[start : start + size])
            self._apm.process_stream(apm_frame(frame))
            out += frame
        return bytes(out)
