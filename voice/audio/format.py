"""What audio is: the internal format, formats that carry their own description, and the one
PCM16 <-> float converter.

Everything downstream (VAD, Whisper, the WebSocket protocol) speaks one format: 16 kHz mono
signed 16-bit little-endian PCM (:data:`SAMPLE_RATE`). Audio in any other format (a WAV
file's data) carries an :class:`AudioFormat` next to its bytes in an :class:`AudioChunk`, as
rhasspy's wyoming does, so nobody has to guess what a buffer holds, and a format no real audio
has is refused in one place (:meth:`AudioFormat.check`).

Why one converter here: PCM16 <-> float was written four times (audio, the WebSocket
connection, the Realtime mapper, speech-to-text), each with its own scale and rounding; a
difference between them would show up as a level or a click nobody could explain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
"""The internal rate: 16 kHz mono PCM16 (what webrtcvad and Whisper want)."""

MIN_RATE = 8000
MAX_RATE = 192000
"""Rates a real recording can have: telephone (8 kHz) to studio (192 kHz). A header that
claims 4 GHz is broken (or hostile), not audio to resample."""
MAX_CHANNELS = 32
"""More than any recorder writes, far fewer than a broken 16-bit field can claim."""

_INT_WIDTHS = (1, 2, 3, 4)  # bytes: unsigned 8-bit, then signed 16/24/32-bit
_FLOAT_WIDTHS = (4, 8)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How to read audio bytes: samples per second, bytes per sample, interleaved channels,
    and whether the samples are IEEE floats (WAV and PortAudio have them) or integers."""

    rate: int
    width: int = 2
    channels: int = 1
    floating: bool = False

    def check(self) -> AudioFormat:
        """This format, or a ValueError saying why no real audio can have it."""
        widths = _FLOAT_WIDTHS if self.floating else _INT_WIDTHS
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise ValueError(
                f"impossible sample rate {self.rate} Hz (expected {MIN_RATE}..{MAX_RATE})"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ValueError(
                f"impossible channel count {self.channels} (expected 1..{MAX_CHANNELS})"
            )
        if self.width not in widths:
            raise ValueError(f"unsupported sample encoding: {self.encoding}")
        return self

    @property
    def encoding(self) -> str:
        """E.g. "integer PCM, 16-bit", for messages."""
        return f"{'float' if self.floating else 'integer PCM'}, {8 * self.width}-bit"

    @property
    def frame_size(self) -> int:
        """Bytes per sample frame (one sample of every channel)."""
        return self.width * self.channels


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio bytes with the format that says how to read them."""

    audio: bytes
    format: AudioFormat

    @property
    def frames(self) -> int:
        """Whole sample frames in the chunk (a trailing partial frame is ignored)."""
        return len(self.audio) // self.format.frame_size

    def samples(self) -> np.ndarray:
        """The samples as ``(frames, channels)`` in their own numeric type (24-bit as int32)."""
        fmt = self.format
        data = self.audio[: self.frames * fmt.frame_size]
        if fmt.floating:
            x = np.frombuffer(data, dtype="<f4" if fmt.width == 4 else "<f8")
        elif fmt.width == 1:
            x = np.frombuffer(data, dtype=np.uint8)
        elif fmt.width == 2:
            x = np.frombuffer(data, dtype="<i2")
        elif fmt.width == 3:
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            x = (raw[:, 0] << 8 | raw[:, 1] << 16 | raw[:, 2] << 24).astype(np.int32)
        elif fmt.width == 4:
            x = np.frombuffer(data, dtype="<i4")
        else:
            raise ValueError(f"unsupported sample encoding: {fmt.encoding}")
        return x.reshape(-1, fmt.channels)


def to_float_mono(samples: np.ndarray) -> np.ndarray:
    """Any common sample type, mono or ``(n, channels)``, as float64 mono in [-1, 1].

    Channels are averaged (opposite channels cancel, as they would in the air).
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim != 2:
        raise ValueError(f"audio must be 1-D or (samples, channels), got shape {x.shape}")
    if x.dtype == np.int16:
        y = x.astype(np.float64) / 32768.0
    elif x.dtype == np.int32:
        y = x.astype(np.float64) / 2147483648.0
    elif x.dtype == np.uint8:
        y = (x.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.floating):
        y = x.astype(np.float64)
    else:
        raise ValueError(f"unsupported sample type {x.dtype} (use int16, int32, uint8 or float)")
    return y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """Mono PCM16 bytes as float32 in [-1, 1) (exact: 16 bits fit a float32's mantissa)."""
    if len(pcm) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as PCM16 bytes: rounded to nearest, clipped at full scale."""
    return np.clip(np.rint(np.asarray(samples) * 32768.0), -32768, 32767).astype("<i2").tobytes()
