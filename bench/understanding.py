"""Spoken visitor questions through the product: heard right, and answered with a right page?

Usage:
    python bench/understanding.py                     # 2 voices x clean/babble, both parts
    python bench/understanding.py --limit 40 --voices en-us --out /tmp/u.json
    python bench/understanding.py --stt-model offline:base --out /tmp/u-base.json
    python bench/understanding.py --stt-window full --out /tmp/u-30.json

Every question of the visitor-question set (bench/visitor_set.py: written from the catalog's
science in visitors' words, right pages per topic, split by topic into a tuning part and a
**test** part that tuning never looks at) is spoken by espeak-ng voices, clean and over a
babble bed (four other visitor questions in other voices at once, mixed 10 dB below the
question, as a school group behind the visitor would be), transcribed by the session's own
Whisper (:class:`voice.services.Services`, the offline default: tiny.en with the SOS
vocabulary) and answered by the session's own answerer chain (conversation layer, educator
modes, catalog answerer). Typed questions are the reference row.

Per voice, noise and part: word error rate (per question, averaged), **right page** (the
answer's link is one of the topic's right pages), **asked** (a clarifying question, "Did you
mean A, or B?", no link; **right offered**: one of the datasets it offered is right),
**sorry** (no link: "Sorry, I don't have a dataset about that"), and **confident wrong** (a
link, but not a right one). ``--no-asking`` answers as before clarifying questions existed
(same transcripts), for the before/after in one place.

Transcripts are cached (``--transcripts``, see :class:`TranscriptCache`): the first run
speaks and transcribes everything (about 15 minutes on 2 cores), later runs only answer. Writes
bench/results/understanding.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    add_window_argument,
    load_average,
    run_record,
    table,
    window_environ,
    word_error_rate,
    write_json,
)
from bench.visitor_set import VisitorQuestion, load
from catalog.datasets import Catalog, slug_of
from cli.config import load_config
from llm.base import AnswerRequest, Link
from llm.clarify import offered
from tests.speech import espeak_wav, read_pcm16
from voice.services import Services

RESULTS = RESULTS_DIR / "understanding.json"
TRANSCRIPTS = RESULTS_DIR / "understanding_transcripts.json"
VOICES = {"en-us": 150, "en-gb+f3": 165, "en-us+m3": 135, "en-gb-scotland": 155}
BABBLE_VOICES = ("en-us+m3", "en-gb-scotland", "en-us+f2", "en-gb+m2")
BABBLE_SNR_DB = 10.0


@dataclass
class Heard:
    question: VisitorQuestion
    voice: str
    noise: str
    transcript: str
    wer: float
    link: str | None
    said: str = ""


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) or 1e-9


def spoken(text: str, voice: str, folder: Path) -> np.ndarray:
    path = espeak_wav(text, folder / "q.wav", voice=voice, speed=VOICES.get(voice, 150))
    return np.frombuffer(read_pcm16(path)[0], dtype="<i2").astype(np.float64)


def with_babble(
    pcm: np.ndarray, others: list[VisitorQuestion], seed: str, folder: Path
) -> np.ndarray:
    """``pcm`` over four other questions spoken at once by other voices, 10 dB down."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    bed = np.zeros_like(pcm)
    for k, voice in enumerate(BABBLE_VOICES):
        other = others[int(rng.integers(len(others)))].question
        path = espeak_wav(other, folder / f"b{k}.wav", voice=voice, lead_s=0.0, trail_s=0.0)
        talk = np.frombuffer(read_pcm16(path)[0], dtype="<i2").astype(np.float64)
        talk = np.tile(talk, int(np.ceil(len(pcm) / max(1, len(talk)))))
        start = int(rng.integers(0, max(1, len(talk) - len(pcm) + 1)))
        bed += talk[start : start + len(pcm)]
    bed *= _rms(pcm) / _rms(bed) * 10 ** (-BABBLE_SNR_DB / 20)
    return pcm + bed


async def answer(services: Services, text: str) -> tuple[str, str | None]:
    """(what the session's answerer chain says for ``text``, the link it shows)."""
    said: list[str] = []
    link = None
    async for event in services.answerer.stream(AnswerRequest(question=text)):
        if isinstance(event, Link):
            link = event.url
        else:
            said.append(event.text)
    return "".join(said), link


class TranscriptCache:
    """Transcripts already made, by (speech-to-text model, voice, noise, question).

    Why: speaking and transcribing the set is nearly all of the bench's time (about 15
    minutes on 2 cores); the answerer side changes far more often than the model that hears.
    The key names the model (its description), so a new model never reads an old transcript.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, str] = {}
        if path is not None and path.exists():
            self._data = json.loads(path.read_text(encoding="utf-8"))

    @staticmethod
    def key(model: str, voice: str, noise: str, question: str) -> str:
        return "|".join((model, voice, noise, question))

    def get(self, key: str) -> str | None:
        return self._data.get(key)

    def put(self, key: str, transcript: str) -> None:
        self._data[key] = transcript

    def save(self) -> None:
        if self.path is not None:
            write_json(self.path, self._data)


def add_hearing_arguments(parser: argparse.ArgumentParser, transcripts: Path) -> None:
    """``--stt-window`` and ``--transcripts`` (a cache, see :class:`TranscriptCache`; 'none'
    gives None), for the benches that hear a spoken set."""
    add_window_argument(parser)
    parser.add_argument(
        "--transcripts",
        type=lambda value: None if value == "none" else Path(value),
        default=transcripts,
        help="transcript cache; 'none' to transcribe everything again",
    )


def summarize(rows: list[Heard], catalog: Catalog) -> dict[str, Any]:
    n = len(rows)
    right = sum(r.link is not None and slug_of(r.link) in r.question.right for r in rows)
    asked = [(r, offer) for r in rows if r.link is None and (offer := offered(r.said, catalog))]
    offered_right = sum(any(e.slug in r.question.right for e in offer) for r, offer in asked)
    sorry = sum(r.link is None for r in rows) - len(asked)

    def share(count: int) -> float | None:
        return round(count / n, 3) if n else None

    return {
        "questions": n,
        "wer": round(statistics.fmean(r.wer for r in rows), 3) if n else None,
        "right_page": share(right),
        "asked": share(len(asked)),
        "asked_right_offered": share(offered_right),
        "sorry": share(sorry),
        "confident_wrong": share(n - right - sorry - len(asked)),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    environ = window_environ(args.stt_window)
    if args.stt_model:
        environ["SOS_VOICE__STT__MODEL"] = args.stt_model
    services = await Services.load(load_config(environ=environ))
    try:
        questions = load(services.catalog.entries)
        if args.limit:
            tune = [q for q in questions if q.part == "tune"][: args.limit // 2]
            questions = tune + [q for q in questions if q.part == "test"][: args.limit // 2]
        rows: list[Heard] = []
        for q in questions:
            said, link = await answer(services, q.question)
            rows.append(Heard(q, "typed", "clean", q.question, 0.0, link, said))
        cache = TranscriptCache(args.transcripts)
        model = services.transcriber.description
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for voice in args.voices:
                for q in questions:
                    for noise in args.noise:
                        key = cache.key(model, voice, noise, q.question)
                        heard = cache.get(key)
                        if heard is None:
                            heard = await hear(services, q, voice, noise, questions, folder)
                            cache.put(key, heard)
                        said, link = await answer(services, heard) if heard.strip() else ("", None)
                        wer = word_error_rate(q.question, heard)
                        rows.append(Heard(q, voice, noise, heard, wer, link, said))
        cache.save()
        return {"rows": rows, "catalog": services.catalog, "stt": model}
    finally:
        await services.aclose()


async def hear(
    services: Services,
    q: VisitorQuestion,
    voice: str,
    noise: str,
    questions: list[VisitorQuestion],
    folder: Path,
) -> str:
    """The session's transcript of ``q`` spoken by ``voice``, clean or over babble."""
    x = spoken(q.question, voice, folder)
    if noise != "clean":
        x = with_babble(x, questions, q.question + voice, folder)
    pcm = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
    return await asyncio.to_thread(services.transcriber.transcribe, pcm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["en-us", "en-gb+f3"], choices=list(VOICES))
    parser.add_argument(
        "--noise", nargs="+", default=["clean", "babble"], choices=["clean", "babble"]
    )
    parser.add_argument("--limit", type=int, default=None, help="questions (half per part)")
    parser.add_argument(
        "--stt-model",
        default=None,
        help="[stt] model to hear with (default: the config's, the offline tiny.en on a CPU)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_hearing_arguments(parser, TRANSCRIPTS)
    parser.add_argument(
        "--no-asking",
        action="store_true",
        help="the catalog answerer without clarifying questions (the numbers before them)",
    )
    args = parser.parse_args(argv)
    if args.no_asking:
        import llm.catalog_answerer

        llm.catalog_answerer.choices_to_offer = lambda question, grounding, retriever: ()
    started, load_before = time.time(), load_average()
    ran = asyncio.run(run(args))
    rows: list[Heard] = ran["rows"]
    results: dict[str, Any] = {}
    table_rows = []
    for voice in ["typed", *args.voices]:
        for noise in ["clean"] if voice == "typed" else args.noise:
            for part in ("tune", "test"):
                chosen = [
                    r
                    for r in rows
                    if r.voice == voice and r.noise == noise and r.question.part == part
                ]
                s = summarize(chosen, ran["catalog"])
                results[f"{voice}/{noise}/{part}"] = s
                table_rows.append(
                    [
                        voice,
                        noise,
                        part,
                        s["questions"],
                        s["wer"],
                        s["right_page"],
                        s["asked"],
                        s["asked_right_offered"],
                        s["sorry"],
                        s["confident_wrong"],
                    ]
                )
    print(
        table(
            [
                "voice",
                "noise",
                "part",
                "questions",
                "WER",
                "right page",
                "asked",
                "right offered",
                "sorry",
                "confident wrong",
            ],
            table_rows,
        )
    )
    misheard = [
        {"question": r.question.question, "voice": r.voice, "noise": r.noise, "heard": r.transcript}
        for r in rows
        if r.question.part == "tune" and r.voice != "typed" and r.wer > 0.3  # test part unread
    ]
    write_json(
        args.out,
        {
            **run_record(started, load_before),
            "stt_model": ran["stt"],
            "babble_snr_db": BABBLE_SNR_DB,
            "results": results,
            "tune_misheard": misheard,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
