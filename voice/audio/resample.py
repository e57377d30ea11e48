"""Sample-rate conversion, the only one in the program: libsoxr (python-soxr), streaming.

Why anti-aliased: linear interpolation or decimation without a low-pass filter folds
everything above the new Nyquist frequency back into the speech band (a 44.1 kHz microphone
picks up plenty of 8-20 kHz hiss), which hurts both the VAD and Whisper. Why streaming: a
microphone and a WebSocket deliver short chunks, and resampling each on its own would put a
click at every edge; :class:`Resampler` keeps the filter's history between calls, and its
output does not depend on how the input was cut (bit-exact, ``bench/resample.py``).

Why soxr at its HQ preset, not the polyphase sinc this module used to be (both measured by
``bench/resample.py`` on the shared 2-core box, at load averages 5 and 11): HQ rejects aliases
to -131 dB (ours -89 dB) and is flat to 7.4 kHz at 16 kHz (ours 6.6 kHz); it converts a 3 s
Piper sentence in about 1 ms where ours took 10 to 28 ms (to 24 kHz) and 20 to 64 ms (to a
48 kHz speaker): time the event loop is held in a speaker's or a connection's ``write``, on the
way to the first audio. A live stream costs ~0.03 % of a core instead of 0.3 to 2.6 %. The
price: chunk by chunk, HQ holds back 21 ms of output on average (37 ms at most) where ours held
back 1.6 ms, so a resampled input (a 48 kHz microphone, a 24 kHz Realtime client) reaches the
VAD that much later; 16 kHz input is not resampled at all. LQ halves that lag but its pass band
droops (sweep SNR 36 dB); VHQ doubles it for nothing PCM16 can carry.
"""

from __future__ import annotations

import numpy as np
import soxr

from voice.audio.format import (
    SAMPLE_RATE,
    float_to_pcm16,
    pcm16_to_float,
    to_float_mono,
)

QUALITY = "HQ"
"""soxr's preset (20-bit precision, linear phase): see the module docstring for why."""


class Resampler:
    """Streaming mono float resampler from ``from_rate`` to ``to_rate`` (one soxr stream).

    Feed chunks with :meth:`process`; :meth:`flush` ends the signal, releasing what the
    filter still holds back; :meth:`reset` drops it (an unrelated signal follows).
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self._stream = (
            soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=QUALITY)
            if from_rate != to_rate
            else None
        )

    def reset(self) -> None:
        """Forget all history (start a new, unrelated signal)."""
        if self._stream is not None:
            self._stream.clear()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono float samples; returns (float32) the output that is already determined.

        The output lags the input by the filter's delay (tens of ms at HQ), which :meth:`flush`
        releases at the end of the stream.
        """
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return x.copy()
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining outputs, then reset.

        In total, ``round(n_in * to_rate / from_rate)`` samples come out, so a one-second input
        gives exactly one second of output.
        """
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return out


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """A whole mono float signal at another rate (float32; a copy when the rates match)."""
    if from_rate == to_rate:
        return np.array(samples, dtype=np.float32)
    resampler = Resampler(from_rate, to_rate)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def to_pcm16_mono(samples: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> bytes:
    """float32/float64/int16/int32/uint8 audio, mono or (n, channels), as mono PCM16 bytes.

    Channels are averaged; the rate is converted with :class:`Resampler` (anti-aliased).
    """
    return float_to_pcm16(resample(to_float_mono(samples), rate, target_rate))


def resample_pcm16(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Mono PCM16 bytes from one rate to another (a no-op copy when the rates match)."""
    samples = pcm16_to_float(pcm)  # checks the length
    if from_rate == to_rate:
        return bytes(pcm)
    return float_to_pcm16(resample(samples, from_rate, to_rate))


class PcmStream:
    """A stream of mono PCM16 chunks at ``from_rate`` as PCM16 at ``to_rate``, without clicks.

    What a WebSocket connection needs for client audio and for the answer's audio: bytes in,
    bytes out, the filter's history kept between chunks. At equal rates the bytes pass through.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self._resampler = Resampler(from_rate, to_rate) if from_rate != to_rate else None

    def convert(self, pcm: bytes) -> bytes:
        if self._resampler is None:
            return pcm
        return float_to_pcm16(self._resampler.process(pcm16_to_float(pcm)))

    def flush(self) -> bytes:
        """The audio still held back by the filter (end of a stream); then starts afresh."""
        return b"" if self._resampler is None else float_to_pcm16(self._resampler.flush())

    def reset(self) -> None:
        """Drop what is held back (the client cleared its audio)."""
        if self._resampler is not None:
            self._resampler.reset()
