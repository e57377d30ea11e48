"""Sample-rate conversion, the only one in the program: a streaming polyphase windowed sinc.

Why not a simpler method: linear interpolation or decimation without a low-pass filter folds
everything above the new Nyquist frequency back into the speech band (a 44.1 kHz microphone
picks up plenty of 8-20 kHz hiss), which hurts both the VAD and Whisper. Why streaming: a
microphone and a WebSocket deliver short chunks, and resampling each on its own would put a
click at every edge; :class:`Resampler` keeps the filter's history between calls.

Why our own and not soxr (a kept library, measured by ``bench/resample.py``): both are far below
what PCM16 can represent (aliases -89 dB here, -131 dB soxr HQ; sweep SNR ~96 dB, soxr HQ 83 to
135 dB), and soxr costs 15 to 30 times less CPU (0.1 % of a core per stream against 0.8 to 2.3 %).
But chunk by chunk soxr holds back 21 ms of audio on average and up to 37 ms (its HQ filter's
delay; LQ still 11/19 ms and far noisier), where this one holds back 1.6 ms. Every resampled
input (a 48 kHz microphone, a 24 kHz Realtime client) would see the end of a turn and a barge-in
that much later; on a low-latency exhibit the 2 % of a core is the cheaper price.
"""

from __future__ import annotations

from math import ceil, gcd

import numpy as np

from voice.audio.format import (
    SAMPLE_RATE,
    float_to_pcm16,
    pcm16_to_float,
    to_float_mono,
)


class Resampler:
    """Streaming polyphase windowed-sinc resampler for a rational rate ratio.

    The Kaiser-windowed sinc has ``zeros`` zero crossings on each side and its cutoff at
    ``rolloff`` times the lower Nyquist frequency. With the defaults the stop band (~ -80 dB)
    starts at the lower Nyquist frequency, so nothing aliases audibly, and the pass band is flat
    to ~80 % of it (6.4 kHz at 16 kHz, plenty for speech).
    """

    _CHUNK = 4096  # outputs computed per vectorized step: bounds memory for long inputs

    def __init__(
        self,
        from_rate: int,
        to_rate: int,
        *,
        zeros: int = 24,
        rolloff: float = 0.9,
        beta: float = 8.6,
    ) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        g = gcd(int(from_rate), int(to_rate))
        self.up = int(to_rate) // g  # L: output samples per period
        self.down = int(from_rate) // g  # M: input samples per period
        cutoff = 0.5 * min(1.0, self.up / self.down) * rolloff  # cycles per input sample
        self._half = max(1, ceil(zeros / (2.0 * cutoff)))  # filter half-width, input samples
        taps = np.arange(2 * self._half)
        # Row p holds the weights of inputs i-K+1 .. i+K for an output at time i + p/L.
        dist = (np.arange(self.up) / self.up)[:, None] + (self._half - 1 - taps)[None, :]
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (dist / self._half) ** 2, 0.0, 1.0)))
        table = 2.0 * cutoff * np.sinc(2.0 * cutoff * dist) * window / np.i0(beta)
        self._table = table / table.sum(axis=1, keepdims=True)  # unity gain at DC
        self._offsets = taps - (self._half - 1)
        self.reset()

    def reset(self) -> None:
        """Forget all history (start a new, unrelated signal)."""
        self._buf = np.zeros(self._half - 1, dtype=np.float64)  # zeros before the signal
        self._buf_start = -(self._half - 1)  # absolute input index of _buf[0]
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples produced

    def _produce(self, n_end: int) -> np.ndarray:
        """Outputs ``_n_out .. n_end-1``; the buffer must hold the inputs they need."""
        parts = []
        for start in range(self._n_out, n_end, self._CHUNK):
            ns = np.arange(start, min(start + self._CHUNK, n_end), dtype=np.int64)
            pos = ns * self.down
            centre, phase = pos // self.up, pos % self.up
            idx = (centre - self._buf_start)[:, None] + self._offsets[None, :]
            parts.append(np.einsum("ij,ij->i", self._buf[idx], self._table[phase]))
        self._n_out = max(self._n_out, n_end)
        keep_from = (self._n_out * self.down) // self.up - (self._half - 1)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono float samples; returns every output sample that is already determined.

        The output lags the input by the filter's half-width (a few ms), which :meth:`flush`
        releases at the end of the stream.
        """
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.up == self.down:
            self._n_in += len(x)
            self._n_out += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        last_usable = self._n_in - 1 - self._half  # the newest centre with a full window
        if last_usable < 0:
            return np.zeros(0, dtype=np.float64)
        n_end = ((last_usable + 1) * self.up + self.down - 1) // self.down
        return self._produce(n_end)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining outputs (zeros assumed after the signal), then reset.

        In total, ``ceil(n_in * to_rate / from_rate)`` samples come out, so a one-second input
        gives exactly one second of output.
        """
        if self.up == self.down:
            self.reset()
            return np.zeros(0, dtype=np.float64)
        total = (self._n_in * self.up + self.down - 1) // self.down
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1)])
        out = self._produce(total)
        self.reset()
        return out


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """A whole mono float signal at another rate (float64; a copy when the rates match)."""
    if from_rate == to_rate:
        return np.array(samples, dtype=np.float64)
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
        self.rate = from_rate
        self.to_rate = to_rate
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
