"""Echo cancellers for an open-speaker kiosk, on the same simulated echo recordings.

Usage:
    python bench/echo.py                          # 13 echo paths per part, every candidate
    python bench/echo.py --quick                  # 3 echo paths per part (a smoke run)
    python bench/echo.py --wer 12 --out /tmp/echo.json
    python bench/echo.py --paths 8 --candidates webrtc --words   # the words decide barge-in
    python bench/echo.py --rejudge bench/results/echo.json      # the judge changed: re-read

Why: a kiosk's speaker is a metre from its microphone. If the end-pointer hears the assistant's
own answer it fires ``SpeechStarted`` and barge-in (``Session._on_vad``) cancels the answer;
if the canceller removes too much, a visitor who talks over an answer is not heard. Both
failures are measured here with the product's own pieces, for each candidate:

* **none**: the microphone as it is;
* **webrtc** / **webrtc+ns**: :class:`voice.audio.echo.EchoCanceller` (WebRTC AEC3 through
  the ``livekit`` package; ``+ns`` with its noise suppressor), fed as the product feeds it:
  each 30 ms device block, the speaker's 48 kHz block goes to
  :class:`~voice.audio.echo.EchoReference` first, then the microphone's 16 kHz block to
  ``process``. Its delay hint is the device latency (what PortAudio's stream latencies give
  the product); AEC3 estimates the rest;
* **speex-100** / **speex-300**: speexdsp's MDF linear echo canceller (``pip install
  speexdsp``; the binding has no residual echo suppressor) with a 100 or 300 ms filter, in
  10 ms frames, given the reference at the same moments as webrtc (it has no delay
  estimator, so an echo delayed beyond its filter is out of its reach: that is the honest
  comparison, not a handicap added here). libspeexdsp prints "The echo canceller started
  acting funny and got slapped (reset)" on stderr when its filter diverges and it resets
  itself: part of what is measured.

The echo recordings. An **echo path** is a shoebox room (6-20 x 5-14 x 3-6 m, RT60 0.3-0.9 s)
with the kiosk's speaker 0.5-1.5 m from its microphone and a visitor 0.6-1.5 m away, a device
latency of 40-150 ms added to the echo path (output plus input buffers), a mildly nonlinear
speaker (``tanh(k x) / k``, k 1-2: the peaks of Piper's full-scale output are compressed, its
body is not), a microphone gain (the echo lands around -30 to -20 dBFS) and a white
microphone noise floor at -72 to -62 dBFS (which also caps the measurable ERLE of the linear
cancellers near 40 dB). Impulse responses come from pyroomacoustics' image-source method:
a maintained, cited library with real wall reflections and fractional delays instead of
home-made exponentially decaying noise, whose early reflections and room modes would be
nothing like a hall's.

The far end is the product's Piper voice (``voice.tts.Synthesizer``, the default offline
voice) saying catalog-style answers, 2-3 sentences each, resampled to the speaker's 48 kHz
with the product's resampler. Piper samples its prosody (VITS noise), so the answers' audio,
and with it the visitors' onsets, differ slightly from run to run: a few points of jitter in
the rates, one reason each part has over 100 answers. In each echo path the kiosk plays its
part's 8 answers one after the other (2 s apart, the order rotated per path so that each
answer is sometimes the first), and **the canceller and the end-pointer run over the whole
sequence**, as they would in a kiosk: the first answer of a path is the cold start. The near
end is a visitor, spoken by espeak-ng (other voices and phrases per part), through the room
from the visitor's position.

Tune and test parts differ in answer texts, visitor phrases, visitor voices and rooms; both
are always reported. Per candidate and part:

1. **ERLE** (dB) = 10 log10(microphone power / output power) while the answer plays, no
   visitor: median over answers of the answer from 0.5 s on; and the **first second** of each
   path's first answer (cold start: how fast the canceller converges).
2. **Self-interruptions per 100 answers**: the product's :class:`voice.vad.Endpointer` (the
   default config, ``cli.config.load_config``) over the processed microphone; an answer with
   any ``SpeechStarted`` between its start and 0.5 s after its end counts. Goal 0.
3. **Barge-ins detected**: the same sequences with a visitor's utterance mixed into every
   answer at a random time (0.5 s after the answer starts to 1 s before it ends) at a
   speech-to-echo ratio of 0 dB and -6 dB (the visitor's active speech level against the
   echo's active level at the microphone); the answer stops 0.3 s after the visitor does.
   Detected = a ``SpeechStarted`` within 300 ms of the visitor's speech onset at the
   microphone (also: within 1 s, and the median delay). Goal >= 95 %. The **no echo** row is
   the visitor alone with the noise floor: the end-pointer's own floor on these numbers
   (``min_speech_ms`` = 250 makes 300 ms a tight goal on its own).

The product only listens while it talks once :attr:`EchoCanceller.converged` (half duplex
until then, voice/listening.py); the JSON records for webrtc how many self-interruptions that
gate would have let through and how often the visitor's onset found it converged. Optional
(``--wer N``): Whisper's (voice/stt.py, the default model) word error rate on the first N
visitors per part at 0 dB, cut from the processed microphone (0.3 s before the visitor's onset to
0.5 s after their end, so what the canceller left of the answer is in it too, as in a turn).

``--words``: does the session's pause-and-judge (voice/interruptions.py) keep the kiosk from
cutting its own answers while keeping the visitors' barge-ins? For the product's canceller
(webrtc), every turn that would pause an answer is heard again **with the answer paused** at
its speech start, as the session does (the speaker goes silent there; the room's tail and the
canceller's leftovers do not): the stream is rebuilt with the far end silent from that sample,
and the canceller and end-pointer run over it from the start (they reach the pause in the same
state). Whisper transcribes that turn and the judge reads it against the answer's text (its
whole text: a leak can only be of what was said, so this is as lenient to echo as the session
at the answer's end). *Cut*: answers a false turn would still cancel (judged a visitor, or still
open 10 s on); *kept*: visitors whose turn is judged a visitor (the answer is cancelled and
they are answered), of all visitors. A visitor's words over the pause are clean after it, as at
the kiosk; before it they are what the canceller let through.

Writes bench/results/echo.json (machine, load, settings, the echo paths, per-candidate
per-part numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    fmt,
    load_average,
    run_record,
    table,
    word_error_rate,
    write_json,
)
from cli.config import load_config
from tests.speech import espeak_wav, noise, read_pcm16, speech_bounds_ms
from voice.audio.echo import GATE_DB, EchoCanceller, EchoReference
from voice.audio.resample import resample
from voice.config import VadConfig
from voice.events import SpeechStarted
from voice.vad import Endpointer

RESULTS = RESULTS_DIR / "echo.json"
RATE = 16000  # the microphone, the VAD, speex
DEVICE_RATE = 48000  # the speaker's device rate (the reference the product pushes)
BLOCK_MS = 30  # one device block, microphone and speaker alike
BLOCK = RATE * BLOCK_MS // 1000
DEVICE_BLOCK = DEVICE_RATE * BLOCK_MS // 1000
LEAD_S = 1.5  # room noise before the first answer (the VAD learns the floor)
GAP_S = 2.0  # between answers
ERLE_SKIP_S = 0.5
SELF_TAIL_S = 0.5  # an answer's echo is still in the room this long after it ends
DETECT_MS = 300
DETECT_LATE_MS = 1000
SERS_DB = (0.0, -6.0)
SPEEX_FILTERS_MS = {"speex-100": 100, "speex-300": 300}
CANDIDATES = ("none", "webrtc-ungated", "webrtc", "webrtc+ns", "speex-100", "speex-300")
GATE_DB_OVERRIDE: list[float | None] = []  # --gate-db, for tuning on the tune part
DRIFT_PPM: list[float] = []  # --drift-ppm: the speaker's clock runs this much fast
PARTS = ("tune", "test")
WORDS_CANDIDATES = ("webrtc",)  # --words: the product's canceller
WORDS_LISTEN_S = 10.0  # --words: how long after a pause its turn may take to end
WORDS_HEADERS = [
    "candidate",
    "part",
    "self-int /100",
    "cut /100",
    "self-int listening /100",
    "cut listening /100",
    "barge 0 dB <=1s",
    "kept 0 dB",
    "barge -6 dB <=1s",
    "kept -6 dB",
    "kiosk barge 0 dB",
    "kiosk kept 0 dB",
    "kiosk barge -6 dB",
    "kiosk kept -6 dB",
]
MAX_ORDER = 40  # image-source reflection order cap (large halls: the late tail is diffuse)
SPEEX_MISSING = "speex: not installed (pip install speexdsp; needs apt libspeexdsp-dev swig)"

ANSWERS = {
    "tune": (
        "Tsunamis are a series of ocean waves set off when the sea floor moves suddenly, "
        "usually in a large undersea earthquake. In the deep ocean they race along as fast as "
        "a jet plane but are barely a metre high. Near the coast they slow down and pile up.",
        "Hurricanes form over warm tropical water, above about twenty six degrees. Warm moist "
        "air rises, cools and releases heat that powers the storm. On the sphere you can "
        "follow the spiral bands turning around the calm eye.",
        "The ozone hole is a thinning of the ozone layer over Antarctica every southern "
        "spring. Chemicals called CFCs, once used in spray cans and fridges, destroyed the "
        "ozone. Since they were banned, the hole has slowly begun to heal.",
        "This dataset shows Arctic sea ice from satellites, year after year. Each September "
        "the ice shrinks to its smallest size. The summer minimum is now far smaller than it "
        "was in the nineteen eighties.",
        "Coral reefs cover less than one percent of the ocean floor, yet a quarter of all "
        "sea life depends on them. When the water gets too warm, corals push out the algae "
        "living inside them and turn white. That is called bleaching.",
        "Mars is about half the size of Earth and has the tallest volcano in the solar "
        "system, Olympus Mons. The red colour comes from iron oxide, rust, in its dust.",
        "Ocean currents carry heat from the tropics toward the poles. The Gulf Stream brings "
        "warm water up the coast of North America and across to Europe. Without it, winters "
        "in Britain would be much colder.",
        "Auroras happen when charged particles from the sun hit our upper atmosphere. "
        "Oxygen glows green and red, and nitrogen glows blue and purple. They circle the "
        "magnetic poles like glowing crowns.",
    ),
    "test": (
        "El Nino is a warming of the surface water in the eastern tropical Pacific that "
        "comes back every few years. It shifts rainfall around the world, bringing floods to "
        "Peru and drought to Australia. Watch the warm tongue of water spread along the "
        "equator.",
        "Earthquakes happen mostly where tectonic plates meet. Each dot on the sphere is one "
        "earthquake, and its colour shows how deep it was. Notice how they trace the Ring of "
        "Fire around the Pacific.",
        "Volcanoes form where magma from deep inside the Earth reaches the surface. Most "
        "of them sit along plate boundaries. Some of the largest eruptions cooled the whole "
        "planet for a year or two.",
        "The Moon always shows us the same face, because it spins exactly once for each trip "
        "around the Earth. The dark patches are old lava plains called maria. The bright "
        "craters are younger.",
        "Carbon dioxide in the air has risen from about two hundred eighty parts per million "
        "before the industrial age to over four hundred twenty today. You can see the "
        "northern forests breathe in each summer and out each winter.",
        "These are the lights of cities at night, seen from space. The brightest regions are "
        "where the most people live and use the most electricity. The dark band in the middle "
        "of Africa is the rain forest.",
        "Jupiter is the largest planet, more than eleven times as wide as Earth. Its Great "
        "Red Spot is a storm bigger than our whole planet that has raged for centuries.",
        "Sea surface temperature shows where the ocean is warm and where it is cold. The "
        "warmest water sits along the equator in the western Pacific. Cold currents flow up "
        "the west coasts of the continents.",
    ),
}

VISITOR_PHRASES = {
    "tune": (
        "Wait, what about volcanoes?",
        "Stop.",
        "Can you show me the moon?",
        "Hold on.",
        "What is that red spot?",
        "Show me hurricanes instead.",
        "Go back.",
        "How deep is the ocean there?",
        "Excuse me, is that Jupiter?",
        "No, the other one.",
        "What year is this?",
        "Can you make it spin faster?",
    ),
    "test": (
        "Wait, show me Mars.",
        "Stop, please.",
        "What about earthquakes?",
        "Hang on a second.",
        "Can I see the sun?",
        "Why is it blue there?",
        "Next one, please.",
        "Is that happening right now?",
        "Where are we on the globe?",
        "Tell me about coral reefs.",
        "Okay, that's enough.",
        "What's the green part?",
    ),
}

VISITOR_VOICES = {
    "tune": (("en-us", 150), ("en-gb+f3", 165)),
    "test": (("en-us+m3", 140), ("en-gb-scotland", 160)),
}

PART_SEEDS = {"tune": 101, "test": 202}


# --------------------------------------------------------------------------- echo paths
@dataclass(frozen=True)
class EchoPath:
    """One simulated kiosk installation: a room, positions, the device and the microphone."""

    name: str
    part: str
    dims_m: tuple[float, float, float]
    rt60_s: float
    distance_m: float  # speaker -> microphone
    visitor_m: float  # visitor -> microphone
    latency_ms: int  # device latency added to the echo path
    drive: float  # speaker soft clipping tanh(k x) / k
    gain_db: float  # microphone gain (0 dB: a 1 m direct path at unity)
    noise_dbfs: float
    seed: int
    rir: np.ndarray = field(repr=False)  # speaker -> microphone, 16 kHz, latency and gain in
    visitor_rir: np.ndarray = field(repr=False)

    @property
    def visitor_lag(self) -> int:
        """Samples from the visitor's mouth to the microphone (the direct path's peak)."""
        return int(np.argmax(np.abs(self.visitor_rir)))

    def record(self) -> dict[str, Any]:
        import pyroomacoustics as pra

        rir = self.rir[int(self.latency_ms * RATE / 1000) :]
        return {
            "name": self.name,
            "dims_m": [round(d, 1) for d in self.dims_m],
            "rt60_s": round(self.rt60_s, 2),
            "rt60_measured_s": round(float(pra.experimental.measure_rt60(rir, RATE)), 2),
            "distance_m": round(self.distance_m, 2),
            "visitor_m": round(self.visitor_m, 2),
            "latency_ms": self.latency_ms,
            "drive": round(self.drive, 2),
            "gain_db": round(self.gain_db, 1),
            "noise_dbfs": round(self.noise_dbfs, 1),
        }


def _inside(point: np.ndarray, dims: np.ndarray, margin: float = 0.3) -> bool:
    return bool(np.all(point > margin) and np.all(point < dims - margin))


def _around(rng: np.random.Generator, centre: np.ndarray, distance: float, dz: float) -> np.ndarray:
    """A point ``distance`` from ``centre`` at a random bearing, ``dz`` higher."""
    dz = max(-0.8 * distance, min(0.8 * distance, dz))
    horizontal = math.sqrt(distance**2 - dz**2)
    bearing = rng.uniform(0.0, 2.0 * math.pi)
    return centre + np.array([horizontal * math.cos(bearing), horizontal * math.sin(bearing), dz])


def make_path(part: str, index: int, seed: int) -> EchoPath:
    """A random (seeded) echo path: see the module docstring for the ranges."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    while True:
        dims = np.array([rng.uniform(6, 20), rng.uniform(5, 14), rng.uniform(3, 6)])
        rt60 = float(rng.uniform(0.3, 0.9))
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # a room this large cannot be this dry with ideal absorbers
            continue
        mic = np.array([rng.uniform(1, dims[0] - 1), rng.uniform(1, dims[1] - 1), 1.3])
        mic[2] = rng.uniform(1.1, 1.5)
        distance = float(rng.uniform(0.5, 1.5))
        speaker = _around(rng, mic, distance, rng.uniform(-0.3, 0.5))
        visitor_m = float(rng.uniform(0.6, 1.5))
        visitor = _around(rng, mic, visitor_m, rng.uniform(-0.2, 0.4))
        if _inside(speaker, dims) and _inside(visitor, dims):
            break
    room = pra.ShoeBox(
        dims, fs=RATE, materials=pra.Material(absorption), max_order=min(max_order, MAX_ORDER)
    )
    room.add_source(speaker)
    room.add_source(visitor)
    room.add_microphone(mic)
    room.compute_rir()
    latency_ms = int(rng.integers(40, 151))
    gain_db = float(rng.uniform(-10, -4))
    rir = np.asarray(room.rir[0][0], dtype=np.float64) * 10 ** (gain_db / 20)  # 1/r: 1 at 1 m
    rir = np.concatenate([np.zeros(int(latency_ms * RATE / 1000)), rir])
    visitor_rir = np.asarray(room.rir[0][1], dtype=np.float64)
    return EchoPath(
        name=f"{part}-{index}",
        part=part,
        dims_m=(float(dims[0]), float(dims[1]), float(dims[2])),
        rt60_s=rt60,
        distance_m=distance,
        visitor_m=visitor_m,
        latency_ms=latency_ms,
        drive=float(rng.uniform(1.0, 2.0)),
        gain_db=gain_db,
        noise_dbfs=float(rng.uniform(-72, -62)),
        seed=seed,
        rir=rir,
        visitor_rir=visitor_rir,
    )


# --------------------------------------------------------------------------- audio
def _pad_blocks(x: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([x, np.zeros(-len(x) % block, dtype=x.dtype)])


def _to_i16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def active_level_db(x: np.ndarray) -> float:
    """Active speech level (dBFS): mean power of the 20 ms frames within 30 dB of the loud
    end (the 99th percentile frame), so pauses between words do not count."""
    size = RATE // 50
    n = len(x) // size
    power = np.mean(x[: n * size].reshape(n, size).astype(np.float64) ** 2, axis=1) + 1e-12
    level = 10 * np.log10(power)
    loud = level > np.percentile(level, 99) - 30.0
    return float(10 * np.log10(np.mean(power[loud])))


@dataclass(frozen=True)
class Answer:
    """One Piper-spoken answer: 48 kHz (the speaker) and 16 kHz, the same samples' timing."""

    text: str
    far48: np.ndarray  # float32, a whole number of device blocks
    far16: np.ndarray  # float32, len(far48) // 3


def synthesize_answers(texts: list[str], log: Callable[[str], None]) -> dict[str, Answer]:
    """Each text once through the product's Piper voice (the default config's)."""
    from voice.tts import Synthesizer

    config = load_config(environ={})
    synthesizer = Synthesizer.load(config.tts)
    log(f"far end: {synthesizer.description}")
    out = {}
    for text in texts:
        pcm = b"".join(synthesizer.synthesize(text))
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        far48 = _pad_blocks(resample(x, synthesizer.sample_rate, DEVICE_RATE), DEVICE_BLOCK)
        far16 = resample(far48, DEVICE_RATE, RATE)[: len(far48) // 3]
        out[text] = Answer(text, far48, far16)
    return out


@dataclass(frozen=True)
class Visitor:
    text: str
    voice: str
    speech: np.ndarray  # float, 16 kHz, dry, trimmed to ~speech with a little silence
    onset: int  # sample where speech starts in ``speech``
    end: int  # sample where it ends


def speak_visitors(part: str, folder: Path) -> list[Visitor]:
    out = []
    for n, text in enumerate(VISITOR_PHRASES[part]):
        for voice, speed in VISITOR_VOICES[part]:
            path = espeak_wav(
                text, folder / f"v{n}.wav", lead_s=0.1, trail_s=0.1, voice=voice, speed=speed
            )
            pcm, _ = read_pcm16(path)
            start, end = speech_bounds_ms(pcm, RATE)
            x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
            onset, end = start * RATE // 1000, end * RATE // 1000
            out.append(Visitor(text, f"{voice} s{speed}", x, onset, end))
    return out


@dataclass
class Playback:
    """Where one answer sits in a stream (16 kHz samples) and, in a barge-in stream, who
    talks over it."""

    answer: int  # index in the part's answers
    start: int
    end: int
    cold: bool
    visitor: Visitor | None = None
    onset: int = 0  # visitor's speech onset at the microphone
    visitor_end: int = 0


@dataclass
class Stream:
    far48: np.ndarray  # float32: what the speaker is given (the reference)
    far16: np.ndarray
    mic: np.ndarray  # int16
    clean_visitor: np.ndarray | None  # int16: visitor + noise, no echo (the "no echo" row)
    playbacks: list[Playback]
    near: np.ndarray | None = None  # float64: what the microphone hears besides the echo


def room_echo(path: EchoPath, far48: np.ndarray) -> np.ndarray:
    """The speaker's sound at the microphone (16 kHz, float64): soft clipping at the device
    rate, then the room (linear) at 16 kHz."""
    from scipy.signal import fftconvolve

    n16 = len(far48) // 3
    driven = np.tanh(path.drive * far48.astype(np.float64)) / path.drive
    if DRIFT_PPM and DRIFT_PPM[0]:
        import soxr

        # The speaker's DAC plays its 48 kHz samples at 48 kHz x (1 + drift) by the
        # microphone's clock (two devices, two crystals): the echo runs ahead of (or behind)
        # the reference by drift x elapsed time.
        played = soxr.resample(driven.astype(np.float32), DEVICE_RATE * drift_ratio(), RATE)
        driven16 = np.zeros(n16, dtype=np.float32)
        driven16[: min(n16, len(played))] = played[:n16]
    else:
        driven16 = resample(driven.astype(np.float32), DEVICE_RATE, RATE)[:n16]
    return fftconvolve(driven16.astype(np.float64), path.rir)[:n16]


def drift_ratio() -> float:
    """The speaker's rate over the microphone's (1.0 without ``--drift-ppm``)."""
    return 1.0 + (DRIFT_PPM[0] if DRIFT_PPM else 0.0) * 1e-6


def paused(stream: Stream, path: EchoPath, at: int, until: int) -> Stream:
    """``stream`` with the speaker silent from sample ``at`` to ``until`` (16 kHz): the
    session paused the answer at a speech start (voice/interruptions.py). Everything before
    ``at`` is the same, so the canceller and the end-pointer reach ``at`` in the same state."""
    assert stream.near is not None
    far48 = stream.far48.copy()
    far48[at * 3 : until * 3] = 0.0
    far16 = resample(far48, DEVICE_RATE, RATE)[: len(far48) // 3]
    mic = _to_i16(room_echo(path, far48) + stream.near)
    return dataclasses.replace(stream, far48=far48, far16=far16, mic=mic)


def build_stream(
    path: EchoPath,
    answers: list[Answer],
    order: list[int],
    echo_level_db: float | None,
    ser_db: float | None,
    visitors: list[Visitor],
    rng: np.random.Generator | None,
) -> Stream:
    """The kiosk plays ``answers`` in ``order`` in this room; with ``ser_db``, a visitor talks
    over every answer at that speech-to-echo ratio and the answer stops 0.3 s after them."""
    from scipy.signal import fftconvolve

    lead, gap = int(LEAD_S * RATE) // BLOCK * BLOCK, int(GAP_S * RATE) // BLOCK * BLOCK
    pieces48, playbacks = [np.zeros(lead * 3, np.float32)], []
    placed: list[tuple[int, np.ndarray]] = []
    pos = lead
    for k, a in enumerate(order):
        answer = answers[a]
        length = len(answer.far16)
        pb = Playback(a, pos, pos + length, cold=k == 0)
        if ser_db is not None and rng is not None:
            visitor = visitors[int(rng.integers(len(visitors)))]
            speech = visitor.end - visitor.onset
            latest = max(int(0.5 * RATE), length - int(1.0 * RATE) - speech)
            onset_in_answer = int(rng.integers(int(0.5 * RATE), latest + 1))
            placed_at = pos + onset_in_answer - visitor.onset
            pb.visitor = visitor
            pb.onset = pos + onset_in_answer + path.visitor_lag
            pb.visitor_end = pos + onset_in_answer + speech + path.visitor_lag
            length = min(length, (pb.visitor_end - pos) + int(0.3 * RATE))
            length = -(-length // BLOCK) * BLOCK
            pb.end = pos + length
            placed.append((placed_at, visitor.speech))
        pieces48 += [answer.far48[: length * 3], np.zeros(gap * 3, np.float32)]
        playbacks.append(pb)
        pos += length + gap
    far48 = np.concatenate(pieces48)
    far16 = resample(far48, DEVICE_RATE, RATE)[: len(far48) // 3]
    echo = room_echo(path, far48)
    floor = noise(len(echo), path.noise_dbfs, "white", seed=path.seed)
    visitor_mix = np.zeros(len(echo))
    if ser_db is not None and placed:
        assert echo_level_db is not None
        for at, speech in placed:
            wet = fftconvolve(speech, path.visitor_rir)
            end = min(len(visitor_mix), at + len(wet))
            visitor_mix[at:end] += wet[: end - at]
        level = active_level_db(visitor_mix)
        visitor_mix *= 10 ** ((echo_level_db + ser_db - level) / 20)
    mic = _to_i16(echo + visitor_mix + floor)
    clean = _to_i16(visitor_mix + floor) if ser_db is not None else None
    return Stream(far48, far16, mic, clean, playbacks, near=visitor_mix + floor)


# --------------------------------------------------------------------------- candidates
def speex_available() -> bool:
    try:
        import speexdsp  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Heard:
    """What the kiosk made of one stream: the processed microphone and the end-pointer's
    events on it (sample positions at the end of the frame that raised them)."""

    out: np.ndarray  # int16
    starts: list[int]  # SpeechStarted
    spans: list[tuple[int, int]]  # (SpeechStarted, SpeechStopped) of each turn
    converged: dict[int, bool]  # webrtc: the canceller's verdict at each start and query
    turns: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    """Each closed turn by its SpeechStarted position: (speech ms, the turn's audio as the
    session would transcribe it), for ``--words``."""


def _processor(
    candidate: str, stream: Stream, path: EchoPath
) -> tuple[Callable[[int], bytes], Callable[[], bool | None]]:
    """``step(k)``: device block ``k`` as the kiosk runs it (speaker block to the reference
    first, then the microphone block through the canceller); and the canceller's
    ``converged`` (None where the candidate has none)."""
    mic = stream.mic
    if candidate == "none":
        return (lambda k: mic[k * BLOCK : (k + 1) * BLOCK].tobytes()), lambda: None
    if candidate.startswith("webrtc"):
        reference = EchoReference()
        gate_db = GATE_DB_OVERRIDE[0] if GATE_DB_OVERRIDE else GATE_DB
        canceller = EchoCanceller(
            reference,
            delay_ms=path.latency_ms,
            noise_suppression=candidate == "webrtc+ns",
            gate_db=None if candidate == "webrtc-ungated" else gate_db,
        )
        far48 = _to_i16(stream.far48)
        ratio = drift_ratio()

        def webrtc(k: int) -> bytes:
            # What the speaker played during microphone block k: with clock drift, a few
            # samples more (or fewer) than one block, as its PortAudio callbacks hand them over.
            # The simulated host clock is the microphone's; the product passes callback times.
            start, end = round(k * DEVICE_BLOCK * ratio), round((k + 1) * DEVICE_BLOCK * ratio)
            now = (k + 1) * BLOCK_MS / 1000
            reference.push(far48[start:end], DEVICE_RATE, at=now)
            return canceller.process(mic[k * BLOCK : (k + 1) * BLOCK].tobytes(), captured_at=now)

        return webrtc, lambda: canceller.converged
    from speexdsp import EchoCanceller as SpeexCanceller

    frame = RATE // 100  # 10 ms, as speex recommends
    speex = SpeexCanceller.create(frame, RATE * SPEEX_FILTERS_MS[candidate] // 1000, RATE)
    far16 = _to_i16(stream.far16)

    def speex_step(k: int) -> bytes:
        out = b""
        for at in range(k * BLOCK, (k + 1) * BLOCK, frame):
            near, far = mic[at : at + frame].tobytes(), far16[at : at + frame].tobytes()
            out += speex.process(near, far)
        return out

    return speex_step, lambda: None


def listen(
    candidate: str,
    stream: Stream,
    path: EchoPath,
    vad_cfg: VadConfig,
    queries: list[int],
    until: int | None = None,
) -> Heard:
    """Run the kiosk over ``stream`` (up to sample ``until``): canceller, then the product's
    end-pointer on its output, block by block; the canceller's ``converged`` is read at every
    SpeechStarted and at the ``queries`` (sample positions)."""
    step, converged = _processor(candidate, stream, path)
    endpointer = Endpointer(vad_cfg, BLOCK_MS)
    asked = {q // BLOCK: q for q in queries}
    out = bytearray()
    heard = Heard(np.zeros(0, np.int16), [], [], {})
    opened: int | None = None
    speech_from_ms = 0
    end = len(stream.mic) if until is None else min(until, len(stream.mic))
    for k in range(end // BLOCK):
        block = step(k)
        out += block
        now = (k + 1) * BLOCK
        for event in endpointer.process(block):
            if isinstance(event, SpeechStarted):
                heard.starts.append(now)
                opened, speech_from_ms = now, event.audio_ms
                verdict = converged()
                if verdict is not None:
                    heard.converged[now] = verdict
            else:
                heard.spans.append((opened if opened is not None else now, now))
                if opened is not None:
                    heard.turns[opened] = (event.audio_ms - speech_from_ms, event.audio)
                opened = None
        if k in asked:
            verdict = converged()
            if verdict is not None:
                heard.converged[asked[k]] = verdict
    if opened is not None:
        heard.spans.append((opened, len(out) // 2))
    heard.out = np.frombuffer(bytes(out), dtype=np.int16)
    return heard


def turn_when_paused(
    candidate: str, stream: Stream, path: EchoPath, vad_cfg: VadConfig, at: int, until: int
) -> tuple[int, bytes] | None:
    """The turn that opened at ``at`` as the session hears it: the answer paused there (its
    echo stops, its room tail and the canceller's leftovers do not) until ``until``. None if
    it did not end within WORDS_LISTEN_S."""
    heard = listen(
        candidate,
        paused(stream, path, at, until),
        path,
        vad_cfg,
        [],
        until=at + int(WORDS_LISTEN_S * RATE),
    )
    return heard.turns.get(at)


def _erle(mic: np.ndarray, out: np.ndarray, start: int, end: int) -> float:
    m = mic[start:end].astype(np.float64)
    o = out[start:end].astype(np.float64)
    return float(10 * np.log10((np.sum(m**2) + 1e-9) / (np.sum(o**2) + 1e-9)))


# --------------------------------------------------------------------------- bookkeeping
@dataclass
class Tally:
    """Raw outcomes of one candidate on one part, summarized by :meth:`summary`."""

    erle: list[float] = field(default_factory=list)
    erle_first_cold: list[float] = field(default_factory=list)
    erle_first_warm: list[float] = field(default_factory=list)
    answers: int = 0
    self_interrupted: int = 0
    self_cold: int = 0
    self_gated: int = 0  # webrtc: with the canceller saying converged (the product listens)
    listening: int = 0  # answers the kiosk listened through (converged halfway, no visitor)
    self_at_s: list[float] = field(default_factory=list)  # first false start, into the answer
    per_path: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: dict[float, list[dict[str, Any]]] = field(default_factory=dict)
    # --words: each false turn during an answer (no visitor), for Whisper and the judge.
    false_turns: list[dict[str, Any]] = field(default_factory=list)
    words: bool = False  # add_words ran on this tally

    def summary(self) -> dict[str, Any]:
        def med(xs: list[float]) -> float | None:
            return round(statistics.median(xs), 1) if xs else None

        out: dict[str, Any] = {
            "erle_db": med(self.erle),
            "erle_p10_db": round(float(np.percentile(self.erle, 10)), 1) if self.erle else None,
            "erle_first_s_cold_db": med(self.erle_first_cold),
            "erle_first_s_warm_db": med(self.erle_first_warm),
            "answers": self.answers,
            "self_interrupted": self.self_interrupted,
            "self_per_100": round(100 * self.self_interrupted / self.answers, 1)
            if self.answers
            else None,
            "self_cold": self.self_cold,
            "self_gated": self.self_gated,
            "listening_pct": round(100 * self.listening / self.answers, 1)
            if self.answers
            else None,
            "self_listening_per_100": round(100 * self.self_gated / self.answers, 1)
            if self.answers
            else None,
            "self_at_s": self.self_at_s,
            "per_path": self.per_path,
        }
        for ser, cases in sorted(self.cases.items(), reverse=True):
            delays = [c["delay_ms"] for c in cases if c["delay_ms"] is not None]
            n = len(cases)
            out[f"barge_{ser:g}db"] = {
                "cases": n,
                "within_300ms_pct": round(100 * sum(d <= DETECT_MS for d in delays) / n, 1),
                "within_1s_pct": round(100 * sum(d <= DETECT_LATE_MS for d in delays) / n, 1),
                "p50_delay_ms": round(statistics.median(delays)) if delays else None,
                "in_false_turn": sum(c["in_false_turn"] for c in cases),
                "converged_at_onset": sum(bool(c.get("converged")) for c in cases),
                # What the kiosk does: it hears a barge-in only while it listens (converged).
                "listening_pct": round(100 * sum(bool(c.get("converged")) for c in cases) / n, 1),
                "product_within_1s_pct": round(
                    100
                    * sum(
                        bool(c.get("converged"))
                        and c["delay_ms"] is not None
                        and c["delay_ms"] <= DETECT_LATE_MS
                        for c in cases
                    )
                    / n,
                    1,
                ),
                "wer": round(statistics.mean(c["wer"] for c in cases if "wer" in c), 3)
                if any("wer" in c for c in cases)
                else None,
            }
            if any("verdict" in c for c in cases):
                out[f"barge_{ser:g}db"].update(_kept(cases))
        if self.words:
            out.update(_cut(self.false_turns, self.answers))
        return out


def _pct(k: int, n: int) -> float | None:
    return round(100 * k / n, 1) if n else None


def _kept(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """--words: barge-ins the judge keeps (the paused answer is cancelled), of all visitors."""
    kept = [c for c in cases if c.get("verdict") == "visitor"]
    return {
        "kept_pct": _pct(len(kept), len(cases)),
        "product_kept_pct": _pct(sum(bool(c.get("converged")) for c in kept), len(cases)),
        "verdicts": dict(Counter(c.get("verdict", "undetected") for c in cases)),
    }


def _cut(false_turns: list[dict[str, Any]], answers: int) -> dict[str, Any]:
    """--words: answers a false turn would still cut (judged a visitor), always listening and
    while the kiosk listens; and how many times the answer would pause."""
    cutting = ("visitor", "unended")  # a turn still open 10 s on counts against the answer
    cut = {t["playback"] for t in false_turns if t["verdict"] in cutting}
    cut_listening = {
        t["playback"] for t in false_turns if t["verdict"] in cutting and t["converged"]
    }
    return {
        "cut_per_100": _pct(len(cut), answers),
        "cut_listening_per_100": _pct(len(cut_listening), answers),
        "pauses_per_100": _pct(len(false_turns), answers),
        "pauses_listening_per_100": _pct(sum(t["converged"] for t in false_turns), answers),
        "false_turn_verdicts": dict(Counter(t["verdict"] for t in false_turns)),
    }


def score_self(tally: Tally, stream: Stream, heard: Heard, path: EchoPath) -> None:
    skip, second, tail = int(ERLE_SKIP_S * RATE), RATE, int(SELF_TAIL_S * RATE)
    mic, out = stream.mic, heard.out
    before, erle_before = tally.self_interrupted, len(tally.erle)
    for pb in stream.playbacks:
        tally.answers += 1
        tally.erle.append(_erle(mic, out, pb.start + skip, pb.end))
        first = _erle(mic, out, pb.start, pb.start + second)
        (tally.erle_first_cold if pb.cold else tally.erle_first_warm).append(first)
        tally.listening += bool(heard.converged.get((pb.start + pb.end) // 2))
        hits = [t for t in heard.starts if pb.start <= t < pb.end + tail]
        for t in hits:
            if t in heard.turns:
                speech_ms, audio = heard.turns[t]
                tally.false_turns.append(
                    {
                        "playback": tally.answers,
                        "answer": pb.answer,
                        "converged": heard.converged.get(t, False),
                        "speech_ms": speech_ms,
                        "_audio": audio,
                        "_at": t,
                        "_until": pb.end,
                    }
                )
        if hits:
            tally.self_interrupted += 1
            tally.self_cold += pb.cold
            tally.self_gated += any(heard.converged.get(t, False) for t in hits)
            tally.self_at_s.append(round((hits[0] - pb.start) / RATE, 2))
    tally.per_path[path.name] = {
        "rt60_s": round(path.rt60_s, 2),
        "latency_ms": path.latency_ms,
        "self_interrupted": tally.self_interrupted - before,
        "answers": len(stream.playbacks),
        "erle_db": round(statistics.median(tally.erle[erle_before:]), 1),
    }


def score_barge(cases: list[dict[str, Any]], stream: Stream, heard: Heard) -> None:
    for pb in stream.playbacks:
        assert pb.visitor is not None
        after = [t for t in heard.starts if t >= pb.onset]
        delay = (after[0] - pb.onset) * 1000 // RATE if after else None
        if delay is not None and delay > 2000:
            delay = None
        case = {
            "answer": pb.answer,
            "visitor": pb.visitor.text,
            "voice": pb.visitor.voice,
            "onset_s": round((pb.onset - pb.start) / RATE, 2),
            "cold": pb.cold,
            "delay_ms": delay,
            "in_false_turn": any(a <= pb.onset < b for a, b in heard.spans),
        }
        if pb.onset in heard.converged:
            case["converged"] = heard.converged[pb.onset]
        # The turn the session would judge: the false one the visitor spoke into (the answer
        # was already paused), else the one the visitor opened within 1 s.
        opened = [a for a, b in heard.spans if a <= pb.onset < b]
        if not opened and delay is not None and delay <= DETECT_LATE_MS:
            opened = [after[0]]
        if opened and opened[0] in heard.turns:
            case["speech_ms"], case["_audio"] = heard.turns[opened[0]]
            case["_at"], case["_until"] = opened[0], pb.end
        cases.append(case)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A case or false turn without its audio (kept for Whisper only)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:12], 16)


# --------------------------------------------------------------------------- the run
def run_part(
    part: str,
    n_paths: int,
    candidates: list[str],
    answers: dict[str, Answer],
    vad_cfg: VadConfig,
    folder: Path,
    wer_cases: int,
    log: Callable[[str], None],
    words: bool = False,
) -> tuple[dict[str, Tally], list[EchoPath], list[tuple[str, str, float, bytes]]]:
    """Every candidate over every echo path of ``part``; the WER clips are returned, not
    transcribed (Whisper loads once, after the cancellers)."""
    texts = ANSWERS[part]
    part_answers = [answers[t] for t in texts]
    visitors = speak_visitors(part, folder)
    tallies = {c: Tally() for c in [*candidates, "no echo"]}
    paths, clips = [], []
    for i in range(n_paths):
        path = make_path(part, i, _seed(PART_SEEDS[part], i))
        paths.append(path)
        order = [(i + k) % len(texts) for k in range(len(texts))]
        quiet = build_stream(path, part_answers, order, None, None, visitors, None)
        echo_level = active_level_db(quiet.mic.astype(np.float64) / 32768.0)
        visitor_seed = _seed(PART_SEEDS[part], i, "visitors")  # the same visitors at each SER
        streams = {
            ser: build_stream(
                path,
                part_answers,
                order,
                echo_level,
                ser,
                visitors,
                np.random.default_rng(visitor_seed),
            )
            for ser in SERS_DB
        }
        runs = [(c, c) for c in candidates] + [("no echo", "none")]
        for name, candidate in runs:
            repause = words and name in WORDS_CANDIDATES
            if name != "no echo":
                middles = [(pb.start + pb.end) // 2 for pb in quiet.playbacks]
                heard_quiet = listen(candidate, quiet, path, vad_cfg, middles)
                first_turn = len(tallies[name].false_turns)
                score_self(tallies[name], quiet, heard_quiet, path)
                if repause:
                    for record in tallies[name].false_turns[first_turn:]:
                        _hear_paused(record, candidate, quiet, path, vad_cfg)
            for ser, stream in streams.items():
                if name == "no echo":  # the visitor and the noise floor alone
                    assert stream.clean_visitor is not None
                    stream = dataclasses.replace(stream, mic=stream.clean_visitor)
                onsets = [pb.onset for pb in stream.playbacks]
                heard = listen(candidate, stream, path, vad_cfg, onsets)
                cases = tallies[name].cases.setdefault(ser, [])
                first = len(cases)
                score_barge(cases, stream, heard)
                if repause:
                    for record in cases[first:]:
                        _hear_paused(record, candidate, stream, path, vad_cfg)
                for k, pb in enumerate(stream.playbacks):
                    if ser == 0.0 and first + k < wer_cases and pb.visitor is not None:
                        a, b = pb.onset - int(0.3 * RATE), pb.visitor_end + int(0.5 * RATE)
                        clips.append((name, pb.visitor.text, ser, heard.out[a:b].tobytes()))
        record = path.record()
        log(
            f"  {path.name}: {record['dims_m']} m, RT60 {record['rt60_s']} s, speaker "
            f"{record['distance_m']} m, visitor {record['visitor_m']} m, latency "
            f"{path.latency_ms} ms, echo {echo_level:.0f} dBFS, noise {path.noise_dbfs:.0f} dBFS"
        )
    return tallies, paths, clips


def _hear_paused(
    record: dict[str, Any], candidate: str, stream: Stream, path: EchoPath, vad_cfg: VadConfig
) -> None:
    """--words: replace a turn heard over the whole answer by the turn the session would
    judge, the answer paused at its start."""
    if "_at" not in record:
        return
    turn = turn_when_paused(candidate, stream, path, vad_cfg, record["_at"], record["_until"])
    record["speech_ms_unpaused"] = record["speech_ms"]
    if turn is None:  # still open WORDS_LISTEN_S later: nothing the judge could read
        record.pop("_audio", None)
        record["verdict"] = "unended"
        return
    record["speech_ms"], record["_audio"] = turn


def add_wer(
    tallies: dict[str, dict[str, Tally]],
    clips: dict[str, list[tuple[str, str, float, bytes]]],
    log: Callable[[str], None],
) -> str:
    """Whisper (the default config's model) on each clip; the WER lands in the case dicts."""
    from catalog.datasets import Catalog
    from voice.stt import Transcriber

    config = load_config(environ={})
    transcriber = Transcriber.load(config.stt, Catalog.load())
    log(f"WER with {transcriber.description}")
    for part, part_clips in clips.items():
        seen: dict[str, int] = {}
        for candidate, text, ser, pcm in part_clips:
            k = seen.get(candidate, 0)
            seen[candidate] = k + 1
            heard = transcriber.transcribe(pcm)
            case = tallies[part][candidate].cases[ser][k]
            case["heard"] = heard
            case["wer"] = round(word_error_rate(text, heard), 3)
    return transcriber.description


def add_words(
    tallies: dict[str, dict[str, Tally]], candidates: list[str], log: Callable[[str], None]
) -> str:
    """--words: Whisper on every false turn and every visitor's turn, then the session's own
    judge (voice/interruptions.py) against the answer's text: would the paused answer go on
    (nothing, echo, backchannel) or be cancelled (visitor)? The answer's whole text stands in
    for what it had said so far (a leak can only be of the part already said, so this is as
    lenient to echo as the session at the answer's end)."""
    from catalog.datasets import Catalog
    from voice.stt import Transcriber

    config = load_config(environ={})
    transcriber = Transcriber.load(config.stt, Catalog.load())
    log(f"the words decide, with {transcriber.description}")
    for part, by_candidate in tallies.items():
        for candidate in candidates:
            tally = by_candidate[candidate]
            tally.words = True
            turns = [*tally.false_turns, *(c for cs in tally.cases.values() for c in cs)]
            for turn in turns:
                audio = turn.pop("_audio", None)
                if audio is None:
                    continue
                turn["heard"] = transcriber.transcribe(audio)
                _judge(turn, part)
    return transcriber.description


def _judge(turn: dict[str, Any], part: str) -> None:
    """The session's verdict on a transcribed turn, against its answer's text."""
    from voice.interruptions import judge

    said = ANSWERS[part][turn["answer"]]
    turn["verdict"] = judge(turn["heard"], said, turn["speech_ms"])


def rejudge(source: Path, out: Path) -> int:
    """--rejudge: read a --words run's transcripts again with the current judge (its
    thresholds changed, no audio or Whisper needed); print the words table, write ``out``."""
    from voice import interruptions

    data = json.loads(source.read_text())
    if not data.get("false_turns"):
        raise SystemExit(f"{source} has no --words transcripts")
    for key, turns in data["false_turns"].items():
        part = key.rsplit("/", 1)[1]
        for turn in [*turns, *(c for cs in data["cases"][key].values() for c in cs)]:
            if "heard" in turn:
                _judge(turn, part)
        summary = data["results"][key]
        summary.update(_cut(turns, summary["answers"]))
        for ser_key, cases in data["cases"][key].items():
            summary[f"barge_{ser_key}"].update(_kept(cases))
    data["settings"]["rejudged"] = {
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "max_wordless_ms": interruptions.MAX_WORDLESS_MS,
        "echo_similarity": interruptions.ECHO_SIMILARITY,
    }
    print(table(WORDS_HEADERS, words_rows(data["results"])))
    write_json(out, data)
    print(f"wrote {out}")
    return 0


def words_rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for key, s in results.items():
        if "cut_per_100" not in s:
            continue
        candidate, part = key.rsplit("/", 1)
        row = [candidate, part, fmt(s["self_per_100"], 0), fmt(s["cut_per_100"], 0)]
        row += [fmt(s["self_listening_per_100"], 0), fmt(s["cut_listening_per_100"], 0)]
        for ser in SERS_DB:
            b = s[f"barge_{ser:g}db"]
            row += [f"{fmt(b['within_1s_pct'], 0)} %", f"{fmt(b['kept_pct'], 0)} %"]
        for ser in SERS_DB:
            b = s[f"barge_{ser:g}db"]
            row += [f"{fmt(b['product_within_1s_pct'], 0)} %", f"{fmt(b['product_kept_pct'], 0)} %"]
        rows.append(row)
    return rows


def rows_for(results: dict[str, dict[str, Any]], with_wer: bool) -> list[list[str]]:
    rows = []
    for key, s in results.items():
        candidate, part = key.rsplit("/", 1)
        row = [
            candidate,
            part,
            fmt(s["erle_db"], 1),
            fmt(s["erle_first_s_cold_db"], 1),
            fmt(s["self_per_100"], 0) if candidate != "no echo" else "-",
            fmt(s["self_listening_per_100"], 0) if candidate.startswith("webrtc") else "-",
            fmt(s["listening_pct"]) + " %" if candidate.startswith("webrtc") else "-",
        ]
        for ser in SERS_DB:
            b = s[f"barge_{ser:g}db"]
            row += [
                f"{fmt(b['within_300ms_pct'])} % ({fmt(b['within_1s_pct'])} %)",
                fmt(b["p50_delay_ms"]),
            ]
        for ser in SERS_DB:
            b = s[f"barge_{ser:g}db"]
            product = candidate.startswith("webrtc")
            row.append(f"{fmt(b['product_within_1s_pct'])} %" if product else "-")
        if with_wer:
            row.append(fmt(s["barge_0db"]["wer"], 2))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=13, help="echo paths (rooms) per part")
    parser.add_argument("--quick", action="store_true", help="3 echo paths per part")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--wer", type=int, default=0, metavar="N", help="Whisper WER, N/part")
    parser.add_argument(
        "--words",
        action="store_true",
        help="Whisper and the session's judge on each turn: answers cut, barge-ins kept",
    )
    parser.add_argument(
        "--rejudge",
        type=Path,
        metavar="JSON",
        help="re-read a --words run's transcripts with the current judge (no audio, no Whisper)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--gate-db", type=float, help=f"the echo gate of webrtc/webrtc+ns (default {GATE_DB})"
    )
    parser.add_argument(
        "--drift-ppm",
        type=float,
        default=0.0,
        help="the speaker's clock runs this many parts per million faster than the "
        "microphone's (separate devices); negative: slower",
    )
    args = parser.parse_args(argv)
    if args.rejudge is not None:
        return rejudge(args.rejudge, args.out)
    if args.gate_db is not None:
        GATE_DB_OVERRIDE.append(args.gate_db)
    if args.drift_ppm:
        DRIFT_PPM.append(args.drift_ppm)
    n_paths = 3 if args.quick else args.paths

    def log(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    candidates = list(args.candidates)
    if any(c.startswith("speex") for c in candidates) and not speex_available():
        print(SPEEX_MISSING)
        candidates = [c for c in candidates if not c.startswith("speex")]
    started = time.time()
    load_before = load_average()
    config = load_config(environ={})
    vad_cfg = config.vad
    answers = synthesize_answers([t for part in PARTS for t in ANSWERS[part]], log)
    results: dict[str, dict[str, Any]] = {}
    tallies: dict[str, dict[str, Tally]] = {}
    clips: dict[str, list[tuple[str, str, float, bytes]]] = {}
    paths: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in PARTS:
            log(f"{part} part:")
            tallies[part], part_paths, clips[part] = run_part(
                part, n_paths, candidates, answers, vad_cfg, Path(tmp), args.wer, log, args.words
            )
            paths[part] = [p.record() for p in part_paths]
    cancelling_s = time.time() - started
    stt = add_wer(tallies, clips, log) if args.wer else None
    words_candidates = [c for c in candidates if c in WORDS_CANDIDATES]
    if args.words and words_candidates:
        stt = add_words(tallies, words_candidates, log)
    for candidate in [*candidates, "no echo"]:
        for part in PARTS:
            results[f"{candidate}/{part}"] = tallies[part][candidate].summary()
    headers = [
        "candidate",
        "part",
        "ERLE dB",
        "ERLE 1st s cold",
        "self-int /100",
        "self-int listening /100",
        "listening",
        "barge 0 dB <=300ms (<=1s)",
        "p50 ms",
        "barge -6 dB <=300ms (<=1s)",
        "p50 ms",
        "kiosk barge 0 dB <=1s",
        "kiosk barge -6 dB <=1s",
    ]
    if args.wer:
        headers.append("WER 0 dB")
    print(table(headers, rows_for(results, bool(args.wer))))
    if args.words:
        print()
        print(table(WORDS_HEADERS, words_rows(results)))
    write_json(
        args.out,
        {
            **run_record(started, load_before),
            "settings": {
                "paths_per_part": n_paths,
                "answers_per_part": {p: len(ANSWERS[p]) for p in PARTS},
                "candidates": candidates,
                "speex_installed": speex_available(),
                "block_ms": BLOCK_MS,
                "device_rate": DEVICE_RATE,
                "drift_ppm": args.drift_ppm,
                "sers_db": list(SERS_DB),
                "detect_ms": DETECT_MS,
                "erle_skip_s": ERLE_SKIP_S,
                "self_tail_s": SELF_TAIL_S,
                "speex_filters_ms": SPEEX_FILTERS_MS,
                "vad": dataclasses.asdict(vad_cfg),
                "visitor_voices": VISITOR_VOICES,
                "stt": stt,
                "wer_per_part": args.wer,
                "words": args.words,
            },
            "timing_s": {
                "until_whisper": round(cancelling_s, 1),
                "whisper": round(time.time() - started - cancelling_s, 1),
            },
            "paths": paths,
            "results": results,
            "cases": {
                f"{c}/{p}": {
                    f"{ser:g}db": [_public(case) for case in cs]
                    for ser, cs in tallies[p][c].cases.items()
                }
                for p in PARTS
                for c in [*candidates, "no echo"]
            },
            "false_turns": {
                f"{c}/{p}": [_public(t) for t in tallies[p][c].false_turns]
                for p in PARTS
                for c in words_candidates
                if args.words
            },
        },
    )
    took = time.time() - started
    whisper = f", {took - cancelling_s:.0f} s of it Whisper" if args.wer else ""
    print(f"wrote {args.out} ({took:.0f} s{whisper})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
