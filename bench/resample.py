"""Which resampler should voice/audio use: the polyphase sinc it had, or soxr (which it uses)?

Usage: python bench/resample.py [--seconds S] [--repeat N] [--out PATH]

Every candidate runs the conversions the product makes: a USB microphone (48 000 and 44 100 Hz)
and a Realtime client (24 000 Hz) to the internal 16 kHz, and Piper's 22 050 Hz to a client's
24 000 Hz and to a 48 000 Hz speaker. Measured per conversion:

- **alias dB**: the loudest tone from above the lower Nyquist frequency (up to 95 % of the input
  Nyquist) left in the output, relative to the input tone (downsampling only: upsampling has no
  such tones). PCM16 itself cannot represent anything below about -98 dB.
- **images dB**: for upsampling, the energy the output has above the input's Nyquist frequency
  for in-band tones (mirror images), relative to the tone.
- **sweep SNR dB**: a 50 Hz -> 80 % of the lower Nyquist linear sweep, against the same sweep
  computed directly at the output rate: pass-band ripple, droop and phase error in one number.
- **flat to kHz**: the highest test tone (every 100 Hz) whose gain is within 0.1 dB.
- **lag ms** (mean / max): in chunk-by-chunk use (30 ms chunks, a microphone's block), how far
  the output delivered so far trails the input delivered so far. This adds directly to the time
  the VAD needs to see the end of a turn or a barge-in.
- **stream = one-shot**: the largest difference between random-sized chunks and one call.
- **3 s clip ms**: one call on a 3 s clip (a Piper sentence), best of ``--repeat``: how long a
  speaker's or a connection's ``write`` holds the event loop.
- **CPU % / stream**: time to resample the conversion's input in 30 ms chunks, as a percentage
  of real time on one core (the best of ``--repeat`` runs; the machine is shared).

soxr is the kept library (python-soxr, libsoxr) at each of its quality presets;
voice/audio/resample.py uses HQ. The baseline is the streaming polyphase windowed sinc that
voice/audio had before soxr replaced it, kept here (only here) so the comparison can be rerun.
Writes bench/results/resample.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from math import ceil, gcd
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    fmt,
    load_average,
    machine_info,
    table,
    write_json,
)

RESULTS = RESULTS_DIR / "resample.json"
CONVERSIONS = ((48000, 16000), (44100, 16000), (24000, 16000), (22050, 24000), (22050, 48000))
CLIP_S = 3.0
CHUNK_MS = 30


class Stream(Protocol):
    def process(self, x: np.ndarray) -> np.ndarray: ...
    def flush(self) -> np.ndarray: ...


class Polyphase:
    """The streaming Kaiser-windowed sinc resampler voice/audio had before soxr (baseline)."""

    _CHUNK = 4096

    def __init__(self, from_rate: int, to_rate: int) -> None:
        zeros, rolloff, beta = 24, 0.9, 8.6
        g = gcd(from_rate, to_rate)
        self.up, self.down = to_rate // g, from_rate // g
        cutoff = 0.5 * min(1.0, self.up / self.down) * rolloff
        self._half = max(1, ceil(zeros / (2.0 * cutoff)))
        taps = np.arange(2 * self._half)
        dist = (np.arange(self.up) / self.up)[:, None] + (self._half - 1 - taps)[None, :]
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (dist / self._half) ** 2, 0.0, 1.0)))
        kernel = 2.0 * cutoff * np.sinc(2.0 * cutoff * dist) * window / np.i0(beta)
        self._table = kernel / kernel.sum(axis=1, keepdims=True)
        self._offsets = taps - (self._half - 1)
        self._buf = np.zeros(self._half - 1)
        self._buf_start = -(self._half - 1)
        self._n_in = self._n_out = 0

    def _produce(self, n_end: int) -> np.ndarray:
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
        return np.concatenate(parts) if parts else np.zeros(0)

    def process(self, x: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(x, dtype=np.float64)])
        self._n_in += len(x)
        last_usable = self._n_in - 1 - self._half
        if last_usable < 0:
            return np.zeros(0)
        return self._produce(((last_usable + 1) * self.up + self.down - 1) // self.down)

    def flush(self) -> np.ndarray:
        total = (self._n_in * self.up + self.down - 1) // self.down
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1)])
        return self._produce(total)


class Soxr:
    def __init__(self, from_rate: int, to_rate: int, quality: str) -> None:
        self._s = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=quality)

    def process(self, x: np.ndarray) -> np.ndarray:
        return self._s.resample_chunk(np.asarray(x, dtype=np.float32))

    def flush(self) -> np.ndarray:
        return self._s.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


Factory = Callable[[int, int], Stream]
CANDIDATES: dict[str, Factory] = {
    "polyphase (before)": Polyphase,
    **{
        f"soxr {q}": (lambda a, b, q=q: Soxr(a, b, q))  # type: ignore[misc]
        for q in ("LQ", "MQ", "HQ", "VHQ")
    },
}


def one_shot(make: Factory, x: np.ndarray, a: int, b: int) -> np.ndarray:
    s = make(a, b)
    return np.concatenate([s.process(x), s.flush()]).astype(np.float64)


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def db(x: float) -> float:
    return 20 * np.log10(max(x, 1e-15))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def quality(make: Factory, a: int, b: int) -> dict[str, float | None]:
    nyq = min(a, b) / 2
    edge = int(0.05 * b)  # away from the edges, where the signal starts from silence
    alias: float | None = None
    if b < a:
        freqs = np.arange(nyq * 1.05, a / 2 * 0.95, 250.0)
        alias = max(
            db(rms(one_shot(make, tone(f, a), a, b)[edge:-edge]) / rms(tone(f, a))) for f in freqs
        )
    images: float | None = None
    if b > a:
        worst = -400.0
        for f in np.arange(200.0, nyq * 0.8, 700.0):
            y = one_shot(make, tone(f, a), a, b)[edge:-edge] * np.hanning(b - 2 * edge)
            spec = np.abs(np.fft.rfft(y)) ** 2
            hz = np.fft.rfftfreq(len(y), 1 / b)
            worst = max(worst, 10 * np.log10(spec[hz > a / 2].sum() / spec.sum() + 1e-30))
        images = worst
    flat = 0.0
    for f in np.arange(100.0, nyq, 100.0):
        gain = rms(one_shot(make, tone(f, a), a, b)[edge:-edge]) / rms(tone(f, a))
        if abs(db(gain)) > 0.1:
            break
        flat = f
    # Linear sweep 50 Hz -> 0.8 nyq over 2 s, and the same sweep computed at the output rate.
    seconds, f0, f1 = 2.0, 50.0, 0.8 * nyq

    def sweep(rate: int) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))

    got, want = one_shot(make, sweep(a), a, b), sweep(b)
    n = min(len(got), len(want))
    err = got[edge : n - edge] - want[edge : n - edge]
    snr = db(rms(want[edge : n - edge]) / rms(err))
    return {"alias_db": alias, "images_db": images, "sweep_snr_db": snr, "flat_to_hz": flat}


def streaming(make: Factory, a: int, b: int, seconds: float, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    x = 0.1 * rng.standard_normal(int(a * seconds))
    block = a * CHUNK_MS // 1000
    best = float("inf")
    lags: list[float] = []
    for _ in range(repeat):
        s = make(a, b)
        n_in = n_out = 0
        lags = []
        t0 = time.perf_counter()
        for i in range(0, len(x) - block + 1, block):
            n_out += len(s.process(x[i : i + block]))
            n_in += block
            lags.append((n_in * b / a - n_out) / b * 1000)
        best = min(best, time.perf_counter() - t0)
    steady = lags[len(lags) // 4 :]
    clip = x[: int(a * CLIP_S)]
    clip_s = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        one_shot(make, clip, a, b)
        clip_s = min(clip_s, time.perf_counter() - t0)
    whole = one_shot(make, x, a, b)
    s = make(a, b)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(s.process(x[i : i + n]))
        i += n
    parts.append(s.flush())
    pieces = np.concatenate(parts).astype(np.float64)
    same = float(np.abs(pieces - whole).max()) if len(pieces) == len(whole) else float("inf")
    return {
        "lag_ms_mean": float(np.mean(steady)),
        "lag_ms_max": float(np.max(steady)),
        "stream_vs_one_shot_max_diff": same,
        "output_samples_per_input_second": len(whole) / seconds,
        "cpu_percent_of_realtime": 100 * best / seconds,
        "clip_ms": 1000 * clip_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per speed run")
    parser.add_argument("--repeat", type=int, default=3, help="speed runs (the best counts)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    machine = machine_info()
    rows, results = [], []
    for a, b in CONVERSIONS:
        for name, make in CANDIDATES.items():
            r = {"from": a, "to": b, "candidate": name}
            r.update(quality(make, a, b))
            r.update(streaming(make, a, b, args.seconds, args.repeat))
            results.append(r)
            rows.append(
                [
                    f"{a}->{b}",
                    name,
                    fmt(r["alias_db"]),
                    fmt(r["images_db"]),
                    fmt(r["sweep_snr_db"], 1),
                    fmt(r["flat_to_hz"] / 1000, 1),
                    f"{r['lag_ms_mean']:.1f} / {r['lag_ms_max']:.1f}",
                    "yes" if r["stream_vs_one_shot_max_diff"] < 1e-6 else "no",
                    fmt(r["clip_ms"], 1),
                    fmt(r["cpu_percent_of_realtime"], 2),
                ]
            )
    machine["load_average_end"] = load_average()
    headers = [
        "conversion",
        "resampler",
        "alias dB",
        "images dB",
        "sweep SNR dB",
        "flat to kHz",
        "lag ms mean / max",
        "stream = one-shot",
        "3 s clip ms",
        "CPU % / stream",
    ]
    print(table(headers, rows))
    print(
        f"\n{machine['cpu']} x{machine['cores']} (pid {os.getpid()}); load average "
        f"{machine['load_average_start']} -> {machine['load_average_end']}; "
        f"{CHUNK_MS} ms chunks, {args.seconds:g} s per speed run, best of {args.repeat}"
    )
    out = write_json(args.out, {"machine": machine, "chunk_ms": CHUNK_MS, "results": results})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
