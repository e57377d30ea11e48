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

from voice.audio.framing import Framer
from voice.audio.webrtc_apm import frame as apm_frame
from voice.audio.webrtc_apm import new_apm


class NoiseSuppressor:
    """16 kHz mono PCM16 in (any multiple of 10 ms; a remainder is held), suppressed out."""

    def __init__(self) -> None:
        self._apm: Any = new_apm(echo_cancellation=False, noise_suppression=True)
        self._framer = Framer(10)

    def process(self, pcm16: bytes) -> bytes:
        out = bytearray()
        for ten_ms in self._framer.push(pcm16):
            frame = bytearray(ten_ms)
            self._apm.process_stream(apm_frame(frame))
            out += frame
        return bytes(out)
