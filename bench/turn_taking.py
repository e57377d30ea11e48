"""Turn-taking: does the kiosk wait for a visitor who pauses mid-question, and answer one who
has finished without the fixed 500 ms wait? A curve over ``[vad] eagerness``.

Usage:
    python bench/turn_taking.py                       # every eagerness, tune and test parts
    python bench/turn_taking.py --limit 40 --out /tmp/turns.json
    python bench/turn_taking.py --stt-window full  # the 30 s window (default: 20 s on a CPU)

The set is built from the visitor-question set (bench/visitor_set.py, written from the
catalog's science in visitors' words) and keeps its split by topic: the **test** part is for
reporting only, never for tuning the rules in voice/turn_end.py. Each question of five words
or more is spoken twice by an espeak-ng voice (four voices, speeds 135-165, cycled):

* **whole**, with silence around it: how long after the true end of speech does the turn end?
* **paused**: cut at a word boundary drawn at random (seeded by the question, so the set
  never moves), each half spoken on its own with a 300-700 ms pause between; in half of the
  items the first half ends with "um". The cut is drawn without looking at the rules, so
  fragments that look finished ("How big is the ozone") are in the set as often as visitors
  make them. A **premature cut-off** is a turn that ends inside the pause.

What runs is the product's own code: the real :class:`voice.vad.Endpointer` frame by frame,
the real tiny.en Whisper on exactly the early audio the session would transcribe, and
:class:`voice.turn_end.TurnEndPolicy` deciding what the session does with it. Time is the
audio's own clock, and each early transcript's verdict is applied only after the time Whisper
really took on this machine (measured per call), as the session's callback would be: the
session's code path, replayed deterministically instead of at real-time pace. End of speech ->
first audio adds the measured VAD-decision -> first-audio time of bench/voice_latency.py; run
that bench with ``--config`` naming an eagerness for the real-time number.

Limitations: each half is synthesized separately, so the first half ends with espeak's
sentence-final intonation (an audio turn model would be fooled more than these word rules);
the voices are synthetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    add_window_argument,
    fmt,
    load_average,
    run_record,
    table,
    window_environ,
    write_json,
)
from bench.visitor_set import load as load_visitor_set
from catalog.datasets import Catalog
from cli.config import load_config
from tests.speech import espeak_wav, read_pcm16, speech_bounds_ms
from voice.config import VadConfig
from voice.events import SpeechStopped
from voice.stt import Transcriber
from voice.turn_end import TurnEndPolicy
from voice.vad import Endpointer

RESULTS = RESULTS_DIR / "turn_taking.json"
RATE = 16000
EAGERNESS = ("off", "low", "medium", "high")
VOICES = (("en-us", 150), ("en-gb+f3", 165), ("en-us+m3", 135), ("en-gb-scotland", 155))
MIN_WORDS = 5
PAUSE_MS = (300, 700)
LEAD_S, TRAIL_S = 0.5, 1.5


@dataclass(frozen=True)
class Item:
    """One spoken question: whole, or cut with a pause."""

    question: str
    part: str
    voice: str
    pcm: bytes
    speech_end_ms: int  # true end of the whole question's speech
    pause: tuple[int, int] | None = None  # (start, end) ms of the mid-question pause
    first_half: str = ""


@dataclass
class Outcome:
    turns: int = 0
    premature: bool = False
    end_ms: float | None = None  # true end of speech -> the turn's end decision
    held: bool = False
    heard: list[str] = dataclasses.field(default_factory=list)  # early transcripts, in order


def _seed(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16))


def _speak(text: str, voice: str, speed: int, folder: Path, lead: float, trail: float) -> bytes:
    path = espeak_wav(text, folder / "x.wav", lead_s=lead, trail_s=trail, voice=voice, speed=speed)
    return read_pcm16(path)[0]


def build(catalog: Catalog, limit: int | None, folder: Path, part: str = "both") -> list[Item]:
    """The whole and paused items (see the module docstring)."""
    questions = [q for q in load_visitor_set(catalog) if len(q.question.split()) >= MIN_WORDS]
    questions = [q for q in questions if part in ("both", q.part)]
    if limit:
        per_part = {
            p: [q for q in questions if q.part == p][: limit // 2] for p in ("tune", "test")
        }
        questions = per_part["tune"] + per_part["test"]
    items: list[Item] = []
    for n, q in enumerate(questions):
        voice, speed = VOICES[n % len(VOICES)]
        whole = _speak(q.question, voice, speed, folder, LEAD_S, TRAIL_S)
        _, end = speech_bounds_ms(whole, RATE)
        items.append(Item(q.question, q.part, voice, whole, end))
        rng = _seed(q.question)
        words = q.question.split()
        cut = rng.randint(2, len(words) - 1)
        first, rest = " ".join(words[:cut]), " ".join(words[cut:])
        if rng.random() < 0.5:
            first = f"{first.rstrip(',')}, um"
        pause = rng.randint(*PAUSE_MS)
        a = _speak(first, voice, speed, folder, LEAD_S, 0.0)
        b = _speak(rest, voice, speed, folder, 0.0, TRAIL_S)
        _, a_end = speech_bounds_ms(a, RATE)
        b_start, b_end = speech_bounds_ms(b, RATE)
        a_ms = len(a) // 2 * 1000 // RATE
        gap = max(0, pause - (a_ms - a_end) - b_start)  # silence already in the halves counts
        pcm = a + bytes(2 * RATE * gap // 1000) + b
        offset = a_ms + gap
        items.append(
            Item(
                q.question,
                q.part,
                voice,
                pcm,
                offset + b_end,
                pause=(a_end, offset + b_start),
                first_half=first,
            )
        )
    return items


class CachedWhisper:
    """The real transcriber; each distinct audio is transcribed once and its time kept."""

    def __init__(self, transcriber: Transcriber) -> None:
        self._transcriber = transcriber
        self._seen: dict[str, tuple[str, float]] = {}

    def __call__(self, audio: bytes) -> tuple[str, float]:
        key = hashlib.sha256(audio).hexdigest()
        if key not in self._seen:
            start = time.perf_counter()
            text = self._transcriber.transcribe(audio)
            self._seen[key] = (text, (time.perf_counter() - start) * 1000.0)
        return self._seen[key]


def replay(
    item: Item, vad_cfg: VadConfig, policy: TurnEndPolicy, whisper: CachedWhisper
) -> Outcome:
    """The session's turn-taking on ``item``, on the audio's clock (see the module docstring)."""
    frame_ms = 30
    size = RATE * frame_ms // 1000 * 2
    endpointer = Endpointer(vad_cfg, frame_ms)
    pending: tuple[float, str, int | None] | None = None  # (due ms, transcript, silence from)
    out = Outcome()
    ends: list[float] = []

    def stopped(events: list[Any], now_ms: float) -> None:
        for event in events:
            if isinstance(event, SpeechStopped):
                out.turns += 1
                ends.append(now_ms)

    for k in range(len(item.pcm) // size):
        now_ms = k * frame_ms
        if pending is not None and pending[0] <= now_ms:
            _, text, silence_from = pending
            pending = None
            if endpointer.silence_from_ms == silence_from and silence_from is not None:
                out.held |= policy.action(text) == "hold"
                stopped(policy.heard(endpointer, vad_cfg, text), now_ms)
        stopped(endpointer.process(item.pcm[k * size : (k + 1) * size]), now_ms + frame_ms)
        audio = endpointer.early_audio()
        if audio is not None:
            text, took_ms = whisper(audio)
            out.heard.append(text)
            pending = (now_ms + frame_ms + took_ms, text, endpointer.silence_from_ms)
            policy.transcribing(endpointer, vad_cfg)
    stopped(endpointer.flush(), len(item.pcm) / 2 / RATE * 1000)
    if item.pause is not None:
        out.premature = any(item.pause[0] <= t < item.pause[1] + 100 for t in ends)
    if ends:
        out.end_ms = ends[-1] - item.speech_end_ms
    return out


def summarize(items: list[Item], outcomes: list[Outcome], after_vad_ms: float) -> dict[str, Any]:
    paused = [o for i, o in zip(items, outcomes, strict=True) if i.pause is not None]
    whole = [o for i, o in zip(items, outcomes, strict=True) if i.pause is None]
    ends = [o.end_ms for o in whole if o.end_ms is not None and o.turns == 1]
    return {
        "paused": len(paused),
        "premature_pct": round(100.0 * sum(o.premature for o in paused) / max(1, len(paused)), 1),
        "held_pct": round(100.0 * sum(o.held for o in paused) / max(1, len(paused)), 1),
        "whole": len(whole),
        "whole_one_turn_pct": round(100.0 * len(ends) / max(1, len(whole)), 1),
        "turn_end_p50_ms": round(statistics.median(ends), 1) if ends else None,
        "turn_end_p95_ms": round(sorted(ends)[int(0.95 * (len(ends) - 1))], 1) if ends else None,
        "e2e_p50_ms": round(statistics.median(ends) + after_vad_ms, 1) if ends else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="questions (half per part)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--eagerness", nargs="+", default=list(EAGERNESS), choices=EAGERNESS)
    parser.add_argument(
        "--part", choices=("tune", "test", "both"), default="both", help="which part to run"
    )
    parser.add_argument(
        "--after-vad-ms",
        type=float,
        default=149.0,
        help="VAD decision -> first audio p50 from bench/voice_latency.py on this machine",
    )
    add_window_argument(parser)
    args = parser.parse_args(argv)
    config = load_config(environ=window_environ(args.stt_window))
    started = time.time()
    load_before = load_average()
    catalog = Catalog.load()
    with tempfile.TemporaryDirectory() as tmp:
        items = build(catalog, args.limit, Path(tmp), args.part)
    transcriber = Transcriber.load(config.stt, catalog)  # as the session loads it
    whisper = CachedWhisper(transcriber)
    results: dict[str, Any] = {}
    rows = []
    for eagerness in args.eagerness:
        vad_cfg = dataclasses.replace(config.vad, eagerness=eagerness)
        policy = TurnEndPolicy(eagerness)
        outcomes = [replay(item, vad_cfg, policy, whisper) for item in items]
        for part in ("tune", "test") if args.part == "both" else (args.part,):
            chosen = [(i, o) for i, o in zip(items, outcomes, strict=True) if i.part == part]
            summary = summarize([i for i, _ in chosen], [o for _, o in chosen], args.after_vad_ms)
            results[f"{eagerness}/{part}"] = summary
            rows.append(
                [
                    eagerness,
                    part,
                    str(summary["paused"]),
                    fmt(summary["premature_pct"]) + " %",
                    fmt(summary["held_pct"]) + " %",
                    str(summary["whole"]),
                    fmt(summary["whole_one_turn_pct"]) + " %",
                    fmt(summary["turn_end_p50_ms"]),
                    fmt(summary["turn_end_p95_ms"]),
                    fmt(summary["e2e_p50_ms"]),
                ]
            )
        if eagerness == "medium":
            results["medium/premature_items"] = [
                {"first_half": i.first_half, "heard": o.heard}
                for i, o in zip(items, outcomes, strict=True)
                if o.premature and i.part == "tune"  # the test part's failures stay unread
            ]
    print(
        table(
            [
                "eagerness",
                "part",
                "paused",
                "premature",
                "held",
                "whole",
                "one turn",
                "end p50",
                "end p95",
                "e2e p50",
            ],
            rows,
        )
    )
    write_json(
        args.out,
        {
            **run_record(started, load_before),
            "after_vad_ms": args.after_vad_ms,
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
