"""Real speech for tests: espeak-ng says a sentence, sox makes it the WAV a test needs.

Why real speech and not tones: the VAD, Whisper and the whole pipeline are tuned for voices;
a sine wave would pass tests that a visitor's question fails. espeak-ng is deterministic, fast
(tens of ms per sentence) and offline, so every test can make its own recordings.

This module deliberately does not use ``voice.audio``: the helpers that build test inputs must
not share bugs with the code under test.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed (apt install {tool}); it makes test speech")
    return path


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")


def read_pcm16(path: Path) -> tuple[bytes, int]:
    """A 16-bit WAV as (mono PCM16 bytes, rate); channels are averaged."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {8 * wav.getsampwidth()}-bit")
        channels, rate = wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if channels == 1:
        return raw, rate
    x = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.int32)
    return x.mean(axis=1).round().astype("<i2").tobytes(), rate


def write_pcm16(path: Path, pcm: bytes, rate: int, channels: int = 1) -> Path:
    """Write interleaved PCM16 bytes as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def noise(
    n: int, level_dbfs: float, kind: Literal["white", "pink"] = "white", seed: int = 0
) -> np.ndarray:
    """``n`` samples of noise (float, full scale 1.0) with an RMS of ``level_dbfs``.

    Pink noise (1/f power, like fans and air handling in a museum hall) is white noise shaped
    in the frequency domain. Seeded, so a test sees the same noise on every run.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(x)
        freqs = np.arange(len(spectrum), dtype=np.float64)
        freqs[0] = 1.0
        x = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return x / rms * 10.0 ** (level_dbfs / 20.0)


def espeak_wav(
    text: str,
    path: Path,
    *,
    lead_s: float = 0.5,
    trail_s: float = 0.8,
    noise_db: float | None = None,
    rate: int = 16000,
    voice: str = "en-us",
    speed: int = 150,
    channels: int = 1,
    noise_kind: Literal["white", "pink"] = "white",
    seed: int = 0,
    ssml: bool = False,
) -> Path:
    """Speak ``text`` into a 16-bit WAV at ``rate``, with silence around it and optional noise.

    ``ssml``: ``text`` is SSML (``<speak>... <break time="500ms"/> ...</speak>``), for a pause
    inside one utterance whose intonation goes on across it.

    ``noise_db`` is the noise's RMS level in dBFS, mixed over the whole file (silences too,
    as in a real room). ``channels=2`` writes the same signal on both channels, for testing
    stereo input. Returns ``path``.
    """
    espeak, sox = _require("espeak-ng"), _require("sox")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run(
            [espeak, *(["-m"] if ssml else []), "-v", voice, "-s", str(speed), "-w", str(raw), text]
        )
        padded = Path(tmp) / "padded.wav"
        # -D: no dither. sox dithers with a random seed when it writes 16 bits after a rate
        # change, so every run got slightly different audio, and tiny.en heard "What causes a
        # tsunami?" as "What causes us to army?" in about 1 run in 20 (a flaky server test).
        convert = [sox, "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(padded)]
        _run([*convert, "pad", f"{lead_s:g}", f"{trail_s:g}"])
        pcm, _ = read_pcm16(padded)
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    if noise_db is not None:
        x = x + noise(len(x), noise_db, noise_kind, seed)
    out = np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2")
    if channels > 1:
        out = np.repeat(out[:, None], channels, axis=1)
    return write_pcm16(path, out.tobytes(), rate, channels)


def concat_wavs(paths: Iterable[Path], out: Path, gap_s: float) -> Path:
    """Join mono 16-bit WAVs of one rate, with ``gap_s`` of silence between them."""
    pieces: list[bytes] = []
    rate: int | None = None
    for i, path in enumerate(paths):
        pcm, this_rate = read_pcm16(Path(path))
        if rate is None:
            rate = this_rate
        elif this_rate != rate:
            raise ValueError(f"{path}: {this_rate} Hz, but the first file is {rate} Hz")
        if i:
            pieces.append(bytes(2 * round(gap_s * rate)))
        pieces.append(pcm)
    if rate is None:
        raise ValueError("concat_wavs needs at least one file")
    return write_pcm16(Path(out), b"".join(pieces), rate)


def speech_bounds_ms(
    pcm: bytes, rate: int, *, threshold_db: float = -40.0, window_ms: int = 10
) -> tuple[int, int]:
    """Where speech begins and ends in a clean recording: the first and last ``window_ms``
    window whose RMS is within ``threshold_db`` of the loudest window. The reference the VAD's
    offsets are judged against (measured from the signal, not assumed from the padding).
    """
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    size = rate * window_ms // 1000
    n = len(x) // size
    rms = np.sqrt(np.mean(x[: n * size].reshape(n, size) ** 2, axis=1)) + 1e-9
    level = 20.0 * np.log10(rms / rms.max())
    loud = np.flatnonzero(level > threshold_db)
    if not len(loud):
        raise ValueError("no speech found in the recording")
    return int(loud[0]) * window_ms, int(loud[-1] + 1) * window_ms


def longest_gap_ms(
    pcm: bytes, rate: int, *, threshold_db: float = -40.0, window_ms: int = 10
) -> tuple[int, int]:
    """The longest silence between the first and last speech of a clean recording (windows
    as in :func:`speech_bounds_ms`): where a pause inside a sentence lies."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    size = rate * window_ms // 1000
    n = len(x) // size
    rms = np.sqrt(np.mean(x[: n * size].reshape(n, size) ** 2, axis=1)) + 1e-9
    loud = np.flatnonzero(20.0 * np.log10(rms / rms.max()) > threshold_db)
    if len(loud) < 2:
        raise ValueError("no speech found in the recording")
    gaps = np.diff(loud)
    at = int(np.argmax(gaps))
    return int(loud[at] + 1) * window_ms, int(loud[at + 1]) * window_ms


def backwards_speech(text: str, path: Path, *, rate: int = 16000, trail_s: float = 1.0) -> Path:
    """``text`` spoken by espeak-ng and played backwards: voice to the VAD (pitch, formants,
    syllable rhythm), no words to Whisper. A real stand-in for a mumble it cannot accept."""
    espeak_wav(text, path, rate=rate, lead_s=trail_s, trail_s=0.5)
    pcm, _ = read_pcm16(path)
    return write_pcm16(path, np.frombuffer(pcm, dtype="<i2")[::-1].tobytes(), rate)
