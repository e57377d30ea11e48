"""Where does the pause after a visitor's question go? The voice loop, stage by stage.

Usage:
    python bench/voice_latency.py                          # 12 questions, offline default models
    python bench/voice_latency.py --questions 6 --repeat 2 --out /tmp/voice.json
    python bench/voice_latency.py --config gpu.toml        # other models (e.g. on the GPU machine)

Spoken questions of different lengths (espeak-ng voices and the Piper voice, with silence
around them) go through the real pipeline (:class:`voice.pipeline.Session` on the real
:class:`voice.services.Services`) at real-time pace, as a microphone would deliver them, so the
VAD decides the end of each turn exactly as it would live. For each turn we record, on the
session's own clock:

* ``vad``: true end of speech (from the WAV's energy) -> SpeechStopped. Mostly the configured
  end-of-turn silence (``vad.end_silence_ms``): a wait by design, not compute.
* ``stt``: SpeechStopped -> transcript; ``first_token``: transcript -> first answer text;
  ``first_sentence``: first text -> first speakable chunk; ``tts_first_chunk``: that chunk ->
  first audio byte.
* ``e2e``: true end of speech -> first audio byte (what the visitor hears), and ``pipeline``:
  the VAD's decision -> first audio byte (what the code after the VAD controls).

Then, in the same run and on the same inputs, each model alone: Whisper on the turn's audio,
the answerer's time to its first text and first speakable chunk, Piper's first chunk for the
same first sentence. The **overhead ratio** is ``pipeline`` divided by the sum of those three
(the models on the critical path): 1.0 means the pipeline adds nothing to the models' own time.

The first turn after loading is reported on its own ("cold"): it shows what a visitor pays when
the models have not run yet. Writes bench/results/voice.json (or --out) and prints tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    fmt,
    load_average,
    machine_info,
    redact,
    summary,
    table,
    word_error_rate,
    write_json,
)
from cli.config import Config, load_config
from llm.base import AnswerRequest, TextDelta
from tests.speech import espeak_wav, speech_bounds_ms, write_pcm16
from voice.audio.format import SAMPLE_RATE
from voice.audio.framing import frame_bytes
from voice.audio.resample import resample_pcm16
from voice.audio.wav import WavSource
from voice.events import (
    ErrorEvent,
    Event,
    ResponseAudio,
    ResponseDone,
    ResponseStarted,
    SpeechStopped,
    TranscriptReady,
)
from voice.pipeline import Session
from voice.services import Services
from voice.speech_text import SentenceSplitter
from voice.stt import Transcriber
from voice.tts import Synthesizer
from voice.vad import TRAILING_KEEP_MS

RESULTS = RESULTS_DIR / "voice.json"
TURN_TIMEOUT_S = 90.0
LEAD_S = 0.6
TRAIL_S = 1.0

# Short, medium and long questions a visitor might ask at the sphere.
QUESTIONS = (
    "What causes a tsunami?",
    "Where do hurricanes form?",
    "Why is the ocean getting more acidic?",
    "What is El Nino?",
    "How fast is the Arctic sea ice melting?",
    "Where are the volcanoes on Earth?",
    "Can you tell me how the ozone hole over Antarctica changes from season to season?",
    "What is Mars like?",
    "How much carbon dioxide is in the air today compared with a hundred years ago?",
    "What is happening to coral reefs?",
    "How do ocean currents move heat around the planet, and why does that matter for weather?",
    "Where do earthquakes happen?",
)
# espeak-ng voice and speed, or "piper" for the assistant's own Piper voice; cycled.
VOICES = (
    ("espeak:en-us", 150),
    ("piper", 0),
    ("espeak:en-gb+f3", 165),
    ("espeak:en-us+m3", 135),
    ("piper", 0),
    ("espeak:en-gb-scotland", 155),
)
STAGES = ("vad", "stt", "first_token", "first_sentence", "tts_first_chunk", "pipeline", "e2e")
ALONE = ("stt", "answer_first_text", "answer_first_sentence", "tts_first_chunk", "sum")
PROBE_WORDS = (2, 4, 8, 16)


@dataclass(frozen=True)
class SpokenQuestion:
    """One question as a 16 kHz WAV, with where its speech truly ends."""

    text: str
    voice: str
    path: Path
    speech_start_ms: int
    speech_end_ms: int

    @property
    def duration_s(self) -> float:
        return self.speech_end_ms / 1000.0 - self.speech_start_ms / 1000.0


@dataclass
class TurnRecord:
    """Everything measured for one spoken turn (times in ms)."""

    question: str
    voice: str
    cold: bool
    speech_s: float
    transcript: str = ""
    wer: float | None = None
    answer: str = ""
    link: str | None = None
    status: str = "missing"
    error: str | None = None
    first_sentence_text: str = ""
    stages: dict[str, float | None] = field(default_factory=dict)
    alone: dict[str, float | None] = field(default_factory=dict)
    overhead_ratio: float | None = None
    speculative_stt_saving: float | None = None
    turn_audio: bytes = field(default=b"", repr=False)  # for the probes; not written out


class Timeline:
    """The session's ``emit``: every event with the monotonic time it was emitted.

    ``done`` is set when the turn is over: its response finished, or Whisper heard nothing
    (then the Session answers nothing and the bench must not wait for an answer).
    """

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self.done = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))
        if isinstance(event, ResponseDone) or (
            isinstance(event, TranscriptReady) and not event.text.strip()
        ):
            self.done.set()

    def first(self, kind: type) -> tuple[float, Any] | None:
        return next(((t, e) for t, e in self.events if isinstance(e, kind)), None)


# --------------------------------------------------------------------------- inputs
def make_questions(config: Config, count: int, folder: Path) -> list[SpokenQuestion]:
    """Speak ``count`` questions into 16 kHz WAVs with LEAD_S/TRAIL_S of silence around them.

    A folder that already holds them (``questions.json`` beside the WAVs, from an earlier run
    with the same ``--questions-dir``) is reused: the GPU machine has no espeak-ng, so its
    questions are made here and carried there. The Piper questions come from a Piper voice
    loaded here, not the pipeline's: the first turn must find the pipeline's models as cold
    as a visitor after start-up would.
    """
    manifest = folder / "questions.json"
    made: list[dict[str, str]] = json.loads(manifest.read_text()) if manifest.is_file() else []
    if len(made) < count:
        made = speak_questions(config, count, folder)
        manifest.write_text(json.dumps(made, indent=1))
    out: list[SpokenQuestion] = []
    for item in made[:count]:
        path = folder / item["file"]
        start, end = speech_bounds_ms(WavSource(path).pcm, SAMPLE_RATE)
        out.append(SpokenQuestion(item["text"], item["voice"], path, start, end))
    return out


def speak_questions(config: Config, count: int, folder: Path) -> list[dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    synth: Synthesizer | None = None
    made = []
    for i in range(count):
        text = QUESTIONS[i % len(QUESTIONS)]
        voice, speed = VOICES[i % len(VOICES)]
        path = folder / f"q{i:02d}.wav"
        if voice == "piper":
            synth = synth or Synthesizer.load(config.tts)
            pcm = resample_pcm16(b"".join(synth.synthesize(text)), synth.sample_rate, SAMPLE_RATE)
            write_pcm16(path, silence(LEAD_S) + pcm + silence(TRAIL_S), SAMPLE_RATE)
        else:
            name = voice.split(":", 1)[1]
            espeak_wav(text, path, lead_s=LEAD_S, trail_s=TRAIL_S, voice=name, speed=speed)
        made.append({"file": path.name, "text": text, "voice": voice})
    return made


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * SAMPLE_RATE))


# --------------------------------------------------------------------------- one turn
async def speak_into(
    session: Session, question: SpokenQuestion, timeline: Timeline, frame_ms: int
) -> float:
    """Feed the WAV at real-time pace, then room silence until the answer is done, like a
    microphone that keeps running. Returns the monotonic time the true speech end was heard."""
    source = WavSource(question.path, frame_ms, realtime=True)
    loop = asyncio.get_running_loop()
    start = loop.time()  # WavSource schedules frame k at its own start + (k + 1) * period
    async for frame in source.frames():
        session.feed_audio(frame)
    silence, period = bytes(frame_bytes(frame_ms)), frame_ms / 1000.0
    resumed, k = loop.time(), 0
    while not timeline.done.is_set() and loop.time() - resumed < TURN_TIMEOUT_S:
        k += 1
        await asyncio.sleep(max(0.0, resumed + k * period - loop.time()))
        session.feed_audio(silence)
    return start + question.speech_end_ms / 1000.0


async def pipeline_turn(services: Services, question: SpokenQuestion, cold: bool) -> TurnRecord:
    """One question through a fresh Session (no history), measured on its event timeline."""
    timeline = Timeline()
    session = Session(services, timeline)
    rec = TurnRecord(question.text, question.voice, cold, round(question.duration_s, 2))
    try:
        true_end = await speak_into(session, question, timeline, services.config.audio.frame_ms)
        await session.wait_idle()
    finally:
        await session.aclose()
    stopped = timeline.first(SpeechStopped)
    heard = timeline.first(TranscriptReady)
    started = timeline.first(ResponseStarted)
    audio = timeline.first(ResponseAudio)
    done = timeline.first(ResponseDone)
    errors = [e.message for _, e in timeline.events if isinstance(e, ErrorEvent)]
    rec.error = "; ".join(errors) or None
    if heard is not None:
        rec.transcript = heard[1].text
        rec.wer = round(word_error_rate(question.text, rec.transcript), 3)
    if done is None or stopped is None or done[1].reprompt is not None:
        rec.status = "nothing heard" if heard is not None else "no turn"
        return rec
    d: ResponseDone = done[1]
    rec.status, rec.answer, rec.link = d.status, d.text, d.link
    rec.error = rec.error or d.error
    t = d.timings

    def ms(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round((b - a) * 1000.0, 1)

    rec.stages = {
        "vad": ms(true_end, stopped[0]),
        "stt": ms(t.speech_end, t.transcript),
        "first_token": ms(t.transcript, t.first_text),
        "first_sentence": ms(t.first_text, t.first_sentence),
        "tts_first_chunk": ms(t.first_sentence, t.first_audio),
        "pipeline": ms(t.speech_end, t.first_audio),
        "e2e": ms(true_end, t.first_audio),
        "done": ms(t.speech_end, t.done),
    }
    rec.turn_audio = stopped[1].audio
    if audio is not None:
        rec.first_sentence_text = audio[1].sentence
    question_text = started[1].question if started is not None else rec.transcript
    rec.alone = await models_alone(services, stopped[1].audio, question_text, rec)
    total = rec.alone.get("sum")
    if total and rec.stages["pipeline"] is not None:
        rec.overhead_ratio = round(rec.stages["pipeline"] / total, 3)
    if rec.alone.get("stt") is not None:
        # Speculative STT: the turn's audio ends TRAILING_KEEP_MS after the last voiced frame,
        # so a decode started then gives the very same transcript, up to end_silence_ms earlier.
        window = services.config.vad.end_silence_ms - TRAILING_KEEP_MS
        rec.speculative_stt_saving = round(min(rec.alone["stt"], max(window, 0)), 1)
    return rec


async def models_alone(
    services: Services, turn_audio: bytes, question: str, rec: TurnRecord
) -> dict[str, float | None]:
    """Each model's own time on this turn's inputs, called directly, one after the other."""
    started = time.perf_counter()
    services.transcriber.transcribe(turn_audio)
    stt = (time.perf_counter() - started) * 1000.0

    splitter = SentenceSplitter(services.config.pipeline.first_chunk_min_chars)
    first_text = first_sentence = None
    started = time.perf_counter()
    stream = services.answerer.stream(AnswerRequest(question=question))
    async with contextlib.aclosing(stream):
        async for piece in stream:
            if isinstance(piece, TextDelta) and piece.text:
                now = (time.perf_counter() - started) * 1000.0
                first_text = first_text if first_text is not None else now
                if splitter.feed(piece.text):
                    first_sentence = now
                    break
    if first_text is not None and first_sentence is None and splitter.flush():
        first_sentence = (time.perf_counter() - started) * 1000.0

    tts = None
    if rec.first_sentence_text:
        started = time.perf_counter()
        next(iter(services.synthesizer.synthesize(rec.first_sentence_text)), None)
        tts = (time.perf_counter() - started) * 1000.0
    parts = (stt, first_sentence, tts)
    return {
        "stt": round(stt, 1),
        "answer_first_text": None if first_text is None else round(first_text, 1),
        "answer_first_sentence": None if first_sentence is None else round(first_sentence, 1),
        "tts_first_chunk": None if tts is None else round(tts, 1),
        "sum": None if None in parts else round(sum(parts), 1),  # type: ignore[arg-type]
    }


def cold_start_probe(config: Config, services: Services, turn: TurnRecord) -> dict[str, Any]:
    """The first calls of freshly loaded models vs the next ones, on the same inputs: what a
    warm-up call at load time would take off the first visitor's wait."""
    transcriber = Transcriber.load(config.stt, services.catalog)
    synthesizer = Synthesizer.load(config.tts)
    out: dict[str, Any] = {"stt_calls_ms": [], "tts_first_chunk_calls_ms": []}
    for _ in range(3):
        started = time.perf_counter()
        transcriber.transcribe(turn.turn_audio)
        out["stt_calls_ms"].append(round((time.perf_counter() - started) * 1000.0, 1))
        started = time.perf_counter()
        next(iter(synthesizer.synthesize(turn.first_sentence_text)), None)
        out["tts_first_chunk_calls_ms"].append(round((time.perf_counter() - started) * 1000.0, 1))
    return out


def tts_length_probe(synth: Synthesizer, answers: list[str]) -> dict[str, Any]:
    """Piper's time to its first chunk for the first N words of real answers: Piper returns
    nothing until a whole sentence is synthesized, so this is the price of a longer first
    chunk (and the gain of a shorter one)."""
    texts = [a.split() for a in answers if len(a.split()) >= 16][:3]
    out: dict[str, Any] = {}
    for n in PROBE_WORDS:
        ms, seconds = [], []
        for words in texts:
            started = time.perf_counter()
            pcm = next(iter(synth.synthesize(" ".join(words[:n]))), b"")
            ms.append((time.perf_counter() - started) * 1000.0)
            seconds.append(len(pcm) / 2 / synth.sample_rate)
        if ms:
            out[str(n)] = {
                "ms": round(statistics.median(ms), 1),
                "audio_s": round(statistics.median(seconds), 2),
            }
    return out


# --------------------------------------------------------------------------- report
def aggregate(turns: list[TurnRecord]) -> dict[str, Any]:
    """p50/p95/max per stage and per model-alone time, and the overhead ratios."""
    ok = [t for t in turns if t.status == "completed" and not t.cold]
    stages = {s: summary(t.stages.get(s) for t in ok) for s in (*STAGES, "done")}
    alone = {s: summary(t.alone.get(s) for t in ok) for s in ALONE}
    ratios = [t.overhead_ratio for t in ok if t.overhead_ratio is not None]
    p50_pipeline, p50_sum = stages["pipeline"]["p50"], alone["sum"]["p50"]
    savings = [t.speculative_stt_saving for t in ok if t.speculative_stt_saving is not None]
    wers = [t.wer for t in ok if t.wer is not None]
    return {
        "turns": len(turns),
        "completed": sum(t.status == "completed" for t in turns),
        "measured": len(ok),
        "stages_ms": stages,
        "alone_ms": alone,
        "overhead_ratio": {
            **summary(ratios, digits=3),
            "of_medians": round(p50_pipeline / p50_sum, 3) if p50_pipeline and p50_sum else None,
            "target": 1.10,
        },
        "speculative_stt_saving_ms": summary(savings),
        "mean_wer": round(statistics.fmean(wers), 3) if wers else None,
    }


def print_report(result: dict[str, Any]) -> None:
    agg = result["summary"]
    labels = {
        "vad": "VAD end-of-turn (true speech end -> SpeechStopped)",
        "stt": "STT (SpeechStopped -> transcript)",
        "first_token": "first token (transcript -> first text)",
        "first_sentence": "first sentence (first text -> first chunk)",
        "tts_first_chunk": "TTS first chunk (chunk -> first audio)",
        "pipeline": "VAD decision -> first audio",
        "e2e": "end of speech -> first audio (heard)",
        "done": "VAD decision -> answer fully synthesized",
    }
    rows = [
        [labels[s], *(fmt(agg["stages_ms"][s][k], 0) for k in ("p50", "p95", "max"))]
        for s in (*STAGES, "done")
    ]
    print(f"\nvoice loop, {agg['measured']} warm turns (ms)")
    print(table(["stage", "p50", "p95", "max"], rows))
    alone_labels = {
        "stt": "Whisper alone on the turn audio",
        "answer_first_text": "answerer alone: first text",
        "answer_first_sentence": "answerer alone: first chunk",
        "tts_first_chunk": "Piper alone: first chunk",
        "sum": "critical-path compute (STT + first chunk + TTS)",
    }
    rows = [
        [alone_labels[s], *(fmt(agg["alone_ms"][s][k], 0) for k in ("p50", "p95", "max"))]
        for s in ALONE
    ]
    print("\neach model alone, same inputs (ms)")
    print(table(["model", "p50", "p95", "max"], rows))
    ratio = agg["overhead_ratio"]
    print(
        f"\noverhead ratio (VAD decision -> first audio) / compute: p50 {fmt(ratio['p50'], 3)}, "
        f"p95 {fmt(ratio['p95'], 3)}, max {fmt(ratio['max'], 3)}; of medians "
        f"{fmt(ratio['of_medians'], 3)} (target <= {ratio['target']:.2f})"
    )
    saving = agg["speculative_stt_saving_ms"]
    print(
        f"speculative STT (decode at {TRAILING_KEEP_MS} ms of silence) would hide p50 "
        f"{fmt(saving['p50'], 0)} ms of the wait; mean WER {fmt(agg['mean_wer'], 3)}"
    )
    if result.get("cold_turn"):
        cold = result["cold_turn"]
        print(
            f"cold first turn: VAD decision -> first audio {fmt(cold['stages'].get('pipeline'))} "
            f"ms (STT {fmt(cold['stages'].get('stt'))} ms, TTS first chunk "
            f"{fmt(cold['stages'].get('tts_first_chunk'))} ms)"
        )
    probes = result.get("probes") or {}
    if probes:
        cold = probes["cold_start"]
        print(
            f"fresh models, calls 1/2/3 on the same input: Whisper {cold['stt_calls_ms']} ms, "
            f"Piper first chunk {cold['tts_first_chunk_calls_ms']} ms"
        )
        by_words = probes["tts_first_chunk_by_words"]
        print(
            "Piper first chunk by length: "
            + ", ".join(
                f"{n} words {v['ms']:.0f} ms ({v['audio_s']} s)" for n, v in by_words.items()
            )
        )
    rows = [
        [
            t["question"][:44],
            t["voice"].replace("espeak:", ""),
            fmt(t["speech_s"], 1),
            fmt(t["stages"].get("stt")),
            fmt(t["stages"].get("pipeline")),
            fmt(t["stages"].get("e2e")),
            fmt(t["alone"].get("sum")),
            fmt(t["overhead_ratio"], 2),
            t["status"],
        ]
        for t in result["turns"]
    ]
    print("\nper turn (ms)")
    print(
        table(
            [
                "question",
                "voice",
                "speech s",
                "stt",
                "pipeline",
                "e2e",
                "compute",
                "ratio",
                "status",
            ],
            rows,
        )
    )
    m = result["machine"]
    print(
        f"\n{m['cpu']} x{m['cores']}, load average {m['load_average_start']} -> "
        f"{m['load_average_end']}; {result['models']['stt']}; wrote {result['out']}"
    )


# --------------------------------------------------------------------------- main
async def run(args: argparse.Namespace) -> dict[str, Any]:
    config: Config = load_config(args.config)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        folder = args.questions_dir or Path(tmp)
        questions = make_questions(config, args.questions, folder)
        loaded = time.perf_counter()
        services = await Services.load(config)
        load_s = round(time.perf_counter() - loaded, 2)
        try:
            turns = await run_turns(services, questions, args.repeat, quiet=args.quiet)
            probes = {} if args.no_probes else run_probes(config, services, turns)
        finally:
            await services.aclose()
    machine["load_average_end"] = load_average()
    cold = next((t for t in turns if t.cold), None)
    return {
        "bench": "voice",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine,
        "config": redact(config),
        "models": services.describe(),
        "load_seconds": {**services.load_seconds, "total": load_s},
        "summary": aggregate(turns),
        "cold_turn": record(cold) if cold else None,
        "probes": probes,
        "turns": [record(t) for t in turns],
    }


def record(turn: TurnRecord) -> dict[str, Any]:
    out = dataclasses.asdict(turn)
    out.pop("turn_audio")
    return out


def run_probes(config: Config, services: Services, turns: list[TurnRecord]) -> dict[str, Any]:
    answered = [t for t in turns if t.status == "completed" and t.first_sentence_text]
    if not answered:
        return {}
    return {
        "cold_start": cold_start_probe(config, services, answered[0]),
        "tts_first_chunk_by_words": tts_length_probe(
            services.synthesizer, [t.answer for t in answered]
        ),
    }


async def run_turns(
    services: Services, questions: list[SpokenQuestion], repeat: int, *, quiet: bool
) -> list[TurnRecord]:
    """Every question ``repeat`` times, one after the other; the very first turn is cold."""
    turns: list[TurnRecord] = []
    for rep in range(repeat):
        for i, q in enumerate(questions):
            rec = await pipeline_turn(services, q, cold=rep == 0 and i == 0)
            turns.append(rec)
            if not quiet:
                pipeline_ms = fmt(rec.stages.get("pipeline"))
                print(
                    f"[{len(turns):3d}] {rec.status:9s} {pipeline_ms:>6s} ms  {q.voice:22s} "
                    f"{rec.transcript!r}",
                    flush=True,
                )
    return turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="spoken questions")
    parser.add_argument("--repeat", type=int, default=1, help="times through the question set")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--config", type=Path, default=None, help="TOML over the defaults")
    parser.add_argument(
        "--questions-dir", type=Path, help="reuse (or keep) the spoken questions in this folder"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-turn progress lines")
    parser.add_argument("--no-probes", action="store_true", help="skip cold-start/TTS probes")
    args = parser.parse_args(argv)
    if args.questions < 1 or args.repeat < 1:
        parser.error("--questions and --repeat must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    result["out"] = str(write_json(args.out, result))
    write_json(args.out, result)
    print_report(result)
    broken = [t for t in result["turns"] if t["status"] not in ("completed", "nothing heard")]
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
