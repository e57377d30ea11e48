"""Cutting a stream of 16 kHz PCM16 into the exact 10/20/30 ms frames the VAD needs.

Network clients and sound cards deliver audio in whatever sizes they like (a WebSocket message
may even split a sample in two); webrtcvad accepts only whole 10, 20 or 30 ms frames.
"""

from __future__ import annotations

from voice.audio.format import SAMPLE_RATE


def frame_bytes(frame_ms: int) -> int:
    """Bytes in one ``frame_ms`` frame of 16 kHz mono PCM16 (960 for 30 ms)."""
    if frame_ms <= 0 or (SAMPLE_RATE * frame_ms) % 1000:
        raise ValueError(f"frame_ms must be a positive whole number of samples, not {frame_ms}")
    return SAMPLE_RATE * frame_ms // 1000 * 2


class Framer:
    """Cuts a stream of PCM16 chunks of any length into exact ``frame_ms`` frames.

    Bytes that do not fill a frame yet, including half a sample, wait for the next push.
    """

    def __init__(self, frame_ms: int = 30) -> None:
        self.frame_ms = frame_ms
        self.frame_bytes = frame_bytes(frame_ms)
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        """Add audio; returns the frames that are now complete (possibly none)."""
        self._pending += pcm
        n = len(self._pending) // self.frame_bytes
        if n == 0:
            return []
        size = self.frame_bytes
        frames = [bytes(self._pending[i * size : (i + 1) * size]) for i in range(n)]
        del self._pending[: n * size]
        return frames

    def flush(self) -> bytes | None:
        """The remainder padded with silence to a whole frame, or None if nothing is left."""
        if not self._pending:
            return None
        frame = bytes(self._pending) + bytes(self.frame_bytes - len(self._pending))
        self._pending.clear()
        return frame
