"""A museum hall's noise: does the kiosk open turns on it, hear questions whole, and does
WebRTC's noise suppression help?

Usage:
    python bench/noise.py                         # 30 questions x 2 voices per part
    python bench/noise.py --questions 10 --out /tmp/noise.json

Why: a kiosk hears a school group talking behind the visitor, footsteps and ventilation. The
end-pointer must not open turns on that (a phantom turn is a spoken reprompt or a wrong
answer to nobody), must give a question exactly one turn, and Whisper must still get the
words. Measured with the product's own pieces: :class:`voice.vad.Endpointer` (default
config) and :class:`voice.stt.Transcriber` (the offline default, tiny.en with the SOS
vocabulary), with the microphone as it is (**none**) and through
:class:`voice.audio.noise.NoiseSuppressor` (**webrtc-ns**: WebRTC's suppressor and
high-pass filter).

The hall, built per part (different talkers, texts and seeds for tune and test): a **babble
bed** of eight talkers at once, espeak-ng voices at several speeds and pitches plus the Piper
voice, each reading catalog descriptions with pauses, at levels spread over 10 dB (near and
far); **mains hum** (50 Hz and its harmonics) 25 dB under the babble; **ventilation**
(low-passed pink noise) 15 dB under it. Questions (bench/visitor_set.py: tune and test parts
by topic) spoken by two espeak-ng voices at an active level of -26 dBFS, over the bed at
signal-to-noise ratios of 20, 10 and 5 dB, with 1.5 s of the hall before and after.

Per part, SNR and processing: **phantom turns per 10 minutes** of the hall alone (two
minutes of bed at that SNR's level, extrapolated; goal 0), **one turn** (questions that got
exactly one turn), and **WER** of what Whisper heard in the question's turns against the
question (averaged per question; no turn = WER 1).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, load_average, run_record, table, word_error_rate, write_json
from bench.visitor_set import load
from catalog.datasets import Catalog
from cli.config import load_config
from tests.speech import espeak_wav, read_pcm16
from voice.audio.noise import NoiseSuppressor
from voice.audio.resample import resample
from voice.events import SpeechStopped
from voice.stt import Transcriber
from voice.vad import Endpointer

RESULTS = RESULTS_DIR / "noise.json"
RATE = 16000
FRAME_MS = 30
SPEECH_DBFS = -26.0
SNRS_DB = (20.0, 10.0, 5.0)
BED_S = 120.0
PAD_S = 1.5
PROCESSING = ("none", "webrtc-ns")
QUESTION_VOICES = {"tune": ("en-us", "en-gb+f3"), "test": ("en-us+m3", "en-gb-scotland")}
BABBLE_VOICES = {
    "tune": ["en-us+m1", "en-us+f2", "en-gb+m3", "en-us+m4", "en-gb+f1", "en-us+f4", "en-gb"],
    "test": ["en-us+m2", "en-us+f3", "en-gb+m1", "en-us+m5", "en-gb+f2", "en-us+f1", "en-us"],
}


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:12], 16)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the louder half of 30 ms frames: speech's level without its pauses."""
    n = len(x) // 480 * 480
    frames = np.sqrt(np.mean(x[:n].reshape(-1, 480) ** 2, axis=1))
    loud = frames[frames >= np.median(frames)]
    return float(np.sqrt(np.mean(loud**2))) or 1e-9


def _espeak(text: str, voice: str, speed: int, pitch_path: Path) -> np.ndarray:
    path = espeak_wav(text, pitch_path, voice=voice, speed=speed, lead_s=0.0, trail_s=0.0)
    return np.frombuffer(read_pcm16(path)[0], dtype="<i2").astype(np.float64) / 32768.0


def _talker(pieces: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """One person talking on and off for ``length`` samples: utterances with 0.2-1.5 s gaps."""
    out = np.zeros(length)
    at = int(rng.integers(0, RATE))
    k = int(rng.integers(len(pieces)))
    while at < length:
        piece = pieces[k % len(pieces)]
        end = min(length, at + len(piece))
        out[at:end] += piece[: end - at]
        at = end + int(rng.uniform(0.2, 1.5) * RATE)
        k += 1
    return out / (_active_rms(out) or 1.0)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum /= np.sqrt(np.maximum(f, 20.0))
    spectrum[f > 1500] *= (1500 / f[f > 1500]) ** 2  # a duct's low rumble
    x = np.fft.irfft(spectrum, n)
    return x / np.sqrt(np.mean(x**2))


def build_hall(part: str, catalog: Catalog, folder: Path, log: Any) -> np.ndarray:
    """``BED_S`` seconds of the hall for ``part``, scaled so its RMS is 1."""
    from voice.tts import Synthesizer

    rng = np.random.default_rng(_seed("hall", part))
    entries = sorted(catalog, key=lambda e: e.slug)
    texts = [
        e.description.split(". ")[0][:220]
        for e in entries
        if e.description and _seed(part, e.slug) % 2 == (part == "test")
    ]
    length = int(BED_S * RATE)
    bed = np.zeros(length)
    for k, voice in enumerate(BABBLE_VOICES[part]):
        picks = [texts[int(rng.integers(len(texts)))] for _ in range(6)]
        speed = int(rng.integers(130, 185))
        pieces = [_espeak(t, voice, speed, folder / f"b{k}.wav") for t in picks]
        bed += _talker(pieces, length, rng) * 10 ** (rng.uniform(-10, 0) / 20)
    config = load_config(environ={})
    piper = Synthesizer.load(config.tts)
    picks = [texts[int(rng.integers(len(texts)))] for _ in range(3)]
    pieces = []
    for text in picks:
        pcm = b"".join(piper.synthesize(text))
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        pieces.append(resample(x, piper.sample_rate, RATE).astype(np.float64))
    bed += _talker(pieces, length, rng) * 10 ** (rng.uniform(-10, 0) / 20)
    babble_rms = float(np.sqrt(np.mean(bed**2)))
    t = np.arange(length) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3, 5))
    hum *= babble_rms * 10 ** (-25 / 20) / np.sqrt(np.mean(hum**2))
    vent = _pink(length, rng) * babble_rms * 10 ** (-15 / 20)
    hall = bed + hum + vent
    log(f"  {part} hall: {len(BABBLE_VOICES[part])} espeak-ng talkers + Piper, hum, ventilation")
    return hall / np.sqrt(np.mean(hall**2))


def _pcm(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()


def turns(audio: bytes, processing: str, vad_cfg: Any) -> list[bytes]:
    """The turns the product's end-pointer makes of ``audio`` after ``processing``."""
    if processing == "webrtc-ns":
        audio = NoiseSuppressor().process(audio)
    endpointer = Endpointer(vad_cfg, FRAME_MS)
    size = RATE * FRAME_MS // 1000 * 2
    out = []
    for start in range(0, len(audio) // size * size, size):
        for event in endpointer.process(audio[start : start + size]):
            if isinstance(event, SpeechStopped):
                out.append(event.audio)
    out += [e.audio for e in endpointer.flush() if isinstance(e, SpeechStopped)]
    return out


@dataclass
class Tally:
    phantom_per_10min: float = 0.0
    questions: int = 0
    one_turn: int = 0
    wers: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "phantom_per_10min": round(self.phantom_per_10min, 1),
            "questions": self.questions,
            "one_turn_pct": round(100 * self.one_turn / self.questions, 1)
            if self.questions
            else None,
            "wer": round(statistics.mean(self.wers), 3) if self.wers else None,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30, help="questions per part")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started, load_before = time.time(), load_average()
    config = load_config(environ={})
    catalog = Catalog.load()
    transcriber = Transcriber.load(config.stt, catalog)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        questions = load(catalog)
        for part in ("tune", "test"):
            hall = build_hall(part, catalog, folder, print)
            mine = [q for q in questions if q.part == part]
            rng = np.random.default_rng(_seed("pick", part))
            picked = [mine[i] for i in rng.choice(len(mine), args.questions, replace=False)]
            spoken = []
            for k, q in enumerate(picked):
                voice = QUESTION_VOICES[part][k % 2]
                x = _espeak(q.question, voice, 150, folder / "q.wav")
                spoken.append((q.question, x * 10 ** (SPEECH_DBFS / 20) / _active_rms(x)))
            for snr in SNRS_DB:
                level = 10 ** ((SPEECH_DBFS - snr) / 20)
                for processing in PROCESSING:
                    tally = Tally()
                    alone = turns(_pcm(hall * level), processing, config.vad)
                    tally.phantom_per_10min = len(alone) * 600 / BED_S
                    for k, (text, x) in enumerate(spoken):
                        pad = int(PAD_S * RATE)
                        at = int(
                            np.random.default_rng(_seed(part, k)).integers(
                                len(hall) - 2 * pad - len(x)
                            )
                        )
                        bed = hall[at : at + 2 * pad + len(x)] * level
                        mix = bed.copy()
                        mix[pad : pad + len(x)] += x
                        got = turns(_pcm(mix), processing, config.vad)
                        tally.questions += 1
                        tally.one_turn += len(got) == 1
                        heard = " ".join(transcriber.transcribe(t) for t in got)
                        tally.wers.append(min(1.0, word_error_rate(text, heard)) if got else 1.0)
                    results[f"{part}/{snr:g}/{processing}"] = tally.summary()
                    print(f"  {part} SNR {snr:g} dB {processing}: {tally.summary()}", flush=True)
    rows = []
    for key, s in results.items():
        part, snr, processing = key.split("/")
        rows.append(
            [
                part,
                f"{snr} dB",
                processing,
                f"{s['phantom_per_10min']:g}",
                f"{s['one_turn_pct']:g} %",
                f"{s['wer']:.3f}",
            ]
        )
    print(table(["part", "SNR", "processing", "phantom turns /10 min", "one turn", "WER"], rows))
    write_json(
        args.out,
        {
            **run_record(started, load_before),
            "settings": {
                "questions_per_part": args.questions,
                "speech_dbfs": SPEECH_DBFS,
                "snrs_db": list(SNRS_DB),
                "bed_s": BED_S,
                "question_voices": QUESTION_VOICES,
                "babble_voices": BABBLE_VOICES,
                "stt": transcriber.description,
            },
            "results": results,
        },
    )
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
