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
  never moves), with a 300-700 ms pause there (an SSML break inside the one utterance, so the
  voice carries on across it as a speaker's does); in half of the items the first half ends
  with "um". The cut is drawn without looking at the rules, so fragments that look finished
  ("How big is the ozone") are in the set as often as visitors make them. A **premature
  cut-off** is a turn that ends inside the pause. It is **answered early** if its answer would
  start playing (transcript ready + ``--answer-ms``) before the VAD hears the visitor go on;
  otherwise the session cancels the answer nobody has heard and carries the cut turn into the
  next one (voice/pipeline.py), and the visitor loses only time.

What runs is the product's own code: the real :class:`voice.vad.Endpointer` frame by frame,
the real tiny.en Whisper on exactly the early audio the session would transcribe, and
:class:`voice.turn_end.TurnEndPolicy` deciding what the session does with it. Time is the
audio's own clock, and each early transcript's verdict is applied only after the time Whisper
really took on this machine (measured per call), as the session's callback would be: the
session's code path, replayed deterministically instead of at real-time pace. **heard** is
when the turn has ended *and* its transcript is ready (the early one when it was of the turn's
final audio); end of speech -> first audio adds ``--answer-ms`` (the answerer's and Piper's
first chunks, from bench/voice_latency.py); run that bench with ``--config`` naming an
eagerness for the real-time number.

``--turn-model smart-turn`` replays Pipecat's Smart Turn v3 audio model (bench/smart_turn.py)
on the same early audio, its verdict due after its own measured time; ``smart-turn+words``
applies both verdicts as each comes due.

Limitations: the voices are synthetic (espeak-ng's pause is silence, without the lengthened
syllable or breath a person's has).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from xml.sax.saxutils import escape

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
from bench.smart_turn import SmartTurn, TurnModelError, audio_verdict
from bench.visitor_set import load as load_visitor_set
from catalog.datasets import Catalog
from cli.config import load_config
from tests.speech import espeak_wav, longest_gap_ms, read_pcm16, speech_bounds_ms
from voice.config import VadConfig
from voice.events import SpeechStarted, SpeechStopped
from voice.stt import Transcriber
from voice.turn_end import TurnEndPolicy, Verdict, judge
from voice.vad import Endpointer

RESULTS = RESULTS_DIR / "turn_taking.json"
T = TypeVar("T")
RATE = 16000
EAGERNESS = ("off", "low", "medium", "high")
TURN_MODELS = ("words", "smart-turn", "smart-turn+words")
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
    premature: bool = False  # a turn ended inside the pause
    premature_heard: bool = False  # ... and its answer started before the visitor went on
    end_ms: float | None = None  # true end of speech -> the turn's end decision
    transcript_ms: float | None = None  # true end of speech -> ended and transcribed
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
        ssml = f'<speak>{escape(first)} <break time="{pause}ms"/> {escape(rest)}</speak>'
        path = espeak_wav(
            ssml,
            folder / "x.wav",
            lead_s=LEAD_S,
            trail_s=TRAIL_S,
            voice=voice,
            speed=speed,
            ssml=True,
        )
        pcm = read_pcm16(path)[0]
        _, end = speech_bounds_ms(pcm, RATE)
        gap = longest_gap_ms(pcm, RATE)
        items.append(Item(q.question, q.part, voice, pcm, end, pause=gap, first_half=first))
    return items


class Timed(Generic[T]):
    """A real model on audio (Whisper, the turn model): each distinct audio is run once and
    the time it took kept, so every eagerness replays the same results at the same delays."""

    def __init__(self, run: Callable[[bytes], T]) -> None:
        self._run = run
        self._seen: dict[str, tuple[T, float]] = {}

    def __call__(self, audio: bytes) -> tuple[T, float]:
        key = hashlib.sha256(audio).hexdigest()
        if key not in self._seen:
            start = time.perf_counter()
            result = self._run(audio)
            self._seen[key] = (result, (time.perf_counter() - start) * 1000.0)
        return self._seen[key]


def replay(
    item: Item,
    vad_cfg: VadConfig,
    policy: TurnEndPolicy,
    whisper: Timed[str],
    turn_model: Timed[float] | None = None,
    words: bool = True,
    answer_ms: float = 244.0,
) -> Outcome:
    """The session's turn-taking on ``item``, on the audio's clock (see the module docstring).

    ``turn_model``: the audio model's verdict on the early audio acts when it is due (its own
    measured time after the early audio); ``words``: so does the early transcript's."""
    frame_ms = 30
    size = RATE * frame_ms // 1000 * 2
    endpointer = Endpointer(vad_cfg, frame_ms)
    pending: list[tuple[float, Verdict, int | None]] = []  # (due ms, verdict, silence from)
    out = Outcome()
    ends: list[float] = []
    ready: dict[int | None, float] = {}  # silence start -> when its early transcript is ready
    transcribed: list[float] = []  # per turn: when its transcript is ready

    starts: list[float] = []  # when the VAD heard each turn begin

    def stopped(events: list[Any], now_ms: float, silence_from: int | None) -> None:
        for event in events:
            if isinstance(event, SpeechStarted):
                starts.append(now_ms)
            if isinstance(event, SpeechStopped):
                out.turns += 1
                ends.append(now_ms)
                # A turn cut at max_turn_s has no early transcript: Whisper starts at its end.
                transcribed.append(ready.get(silence_from, now_ms + whisper(event.audio)[1]))

    for k in range(len(item.pcm) // size):
        now_ms = k * frame_ms
        for due in sorted(p for p in pending if p[0] <= now_ms):
            pending.remove(due)
            _, verdict, silence_from = due
            if endpointer.silence_from_ms == silence_from and silence_from is not None:
                out.held |= policy.action_for(verdict) == "hold"
                stopped(policy.apply(endpointer, vad_cfg, verdict), now_ms, silence_from)
        silence_from = endpointer.silence_from_ms
        frame = item.pcm[k * size : (k + 1) * size]
        stopped(endpointer.process(frame), now_ms + frame_ms, silence_from)
        audio = endpointer.early_audio()
        if audio is not None:
            silence_from = endpointer.silence_from_ms
            if turn_model is not None:
                probability, took_ms = turn_model(audio)
                due = now_ms + frame_ms + took_ms
                pending.append((due, audio_verdict(probability), silence_from))
            text, took_ms = whisper(audio)  # the session transcribes early either way
            out.heard.append(text)
            ready[silence_from] = now_ms + frame_ms + took_ms
            if words:
                pending.append((now_ms + frame_ms + took_ms, judge(text), silence_from))
                policy.transcribing(endpointer, vad_cfg)
    silence_from = endpointer.silence_from_ms
    stopped(endpointer.flush(), len(item.pcm) / 2 / RATE * 1000, silence_from)
    if item.pause is not None:
        cut = [
            (t, r)
            for t, r in zip(ends, transcribed, strict=True)
            if item.pause[0] <= t < item.pause[1] + 100
        ]
        out.premature = bool(cut)
        # The session cancels an answer not yet heard when the visitor goes on, and carries the
        # cut turn into the next one: only an answer that starts playing first is heard.
        out.premature_heard = any(
            not any(t < s <= max(t, r) + answer_ms for s in starts) for t, r in cut
        )
    if ends:
        out.end_ms = ends[-1] - item.speech_end_ms
        out.transcript_ms = max(ends[-1], transcribed[-1]) - item.speech_end_ms
    return out


def summarize(items: list[Item], outcomes: list[Outcome], answer_ms: float) -> dict[str, Any]:
    paused = [o for i, o in zip(items, outcomes, strict=True) if i.pause is not None]
    whole = [o for i, o in zip(items, outcomes, strict=True) if i.pause is None]
    ends = [o.end_ms for o in whole if o.end_ms is not None and o.turns == 1]
    heard = [o.transcript_ms for o in whole if o.transcript_ms is not None and o.turns == 1]
    return {
        "paused": len(paused),
        "premature_pct": round(100.0 * sum(o.premature for o in paused) / max(1, len(paused)), 1),
        "premature_heard_pct": round(
            100.0 * sum(o.premature_heard for o in paused) / max(1, len(paused)), 1
        ),
        "held_pct": round(100.0 * sum(o.held for o in paused) / max(1, len(paused)), 1),
        "whole": len(whole),
        "whole_one_turn_pct": round(100.0 * len(ends) / max(1, len(whole)), 1),
        "turn_end_p50_ms": round(statistics.median(ends), 1) if ends else None,
        "turn_end_p95_ms": round(sorted(ends)[int(0.95 * (len(ends) - 1))], 1) if ends else None,
        "transcript_p50_ms": round(statistics.median(heard), 1) if heard else None,
        "e2e_p50_ms": round(statistics.median(heard) + answer_ms, 1) if heard else None,
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
        "--answer-ms",
        type=float,
        default=244.0,
        help="transcript -> first audio p50 (the answerer's and Piper's first chunks), from "
        "bench/voice_latency.py on this machine",
    )
    parser.add_argument(
        "--turn-model",
        nargs="+",
        default=["words"],
        choices=TURN_MODELS,
        help="what judges a turn in its silence: the early transcript's words, the Smart Turn "
        "audio model, or both (each acts when its verdict is due)",
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
    whisper = Timed(transcriber.transcribe)
    smart_turn: Timed[float] | None = None
    if set(args.turn_model) - {"words"}:
        try:
            smart_turn = Timed(SmartTurn.load().probability)
        except TurnModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    results: dict[str, Any] = {}
    rows = []
    runs = [(m, e) for m in args.turn_model for e in args.eagerness if m == "words" or e != "off"]
    for turn_model, eagerness in runs:
        vad_cfg = dataclasses.replace(config.vad, eagerness=eagerness)
        policy = TurnEndPolicy(eagerness)
        audio = smart_turn if turn_model != "words" else None
        words = turn_model != "smart-turn"
        outcomes = [
            replay(item, vad_cfg, policy, whisper, audio, words, args.answer_ms) for item in items
        ]
        name = "off" if eagerness == "off" else f"{turn_model}/{eagerness}"
        for part in ("tune", "test") if args.part == "both" else (args.part,):
            chosen = [(i, o) for i, o in zip(items, outcomes, strict=True) if i.part == part]
            summary = summarize([i for i, _ in chosen], [o for _, o in chosen], args.answer_ms)
            results[f"{name}/{part}"] = summary
            rows.append(
                [
                    name,
                    part,
                    str(summary["paused"]),
                    fmt(summary["premature_pct"]) + " %",
                    fmt(summary["premature_heard_pct"]) + " %",
                    fmt(summary["held_pct"]) + " %",
                    str(summary["whole"]),
                    fmt(summary["whole_one_turn_pct"]) + " %",
                    fmt(summary["turn_end_p50_ms"]),
                    fmt(summary["turn_end_p95_ms"]),
                    fmt(summary["transcript_p50_ms"]),
                    fmt(summary["e2e_p50_ms"]),
                ]
            )
        if eagerness == "medium":
            results[f"{name}/premature_items"] = [
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
                "answered early",
                "held",
                "whole",
                "one turn",
                "end p50",
                "end p95",
                "heard p50",
                "e2e p50",
            ],
            rows,
        )
    )
    write_json(
        args.out,
        {
            **run_record(started, load_before),
            "answer_ms": args.answer_ms,
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
