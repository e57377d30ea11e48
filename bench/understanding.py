"""Spoken visitor questions through the product: heard right, and answered with a right page?

Usage:
    python bench/understanding.py                     # 2 voices x clean/babble, both parts
    python bench/understanding.py --limit 40 --voices en-us --out /tmp/u.json

Every question of the visitor-question set (bench/visitor_set.py: written from the catalog's
science in visitors' words, right pages per topic, split by topic into a tuning part and a
**test** part that tuning never looks at) is spoken by espeak-ng voices, clean and over a
babble bed (four other visitor questions in other voices at once, mixed 10 dB below the
question, as a school group behind the visitor would be), transcribed by the session's own
Whisper (:class:`voice.services.Services`, the offline default: tiny.en with the SOS
vocabulary) and answered by the session's own answerer chain (conversation layer, educator
modes, catalog answerer). Typed questions are the reference row.

Per voice, noise and part: word error rate (per question, averaged), **right page** (the
answer's link is one of the topic's right pages), **sorry** (no link: "Sorry, I don't have a
dataset about that"), and **confident wrong** (a link, but not a right one). Writes
bench/results/understanding.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
    load_average,
    run_record,
    table,
    word_error_rate,
    write_json,
)
from bench.visitor_set import VisitorQuestion, load
from catalog.datasets import slug_of
from cli.config import load_config
from llm.base import AnswerRequest, Link
from tests.speech import espeak_wav, read_pcm16
from voice.services import Services

RESULTS = RESULTS_DIR / "understanding.json"
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


async def answer_link(services: Services, text: str) -> str | None:
    """The link the session's answerer chain shows for ``text``."""
    link = None
    async for event in services.answerer.stream(AnswerRequest(question=text)):
        if isinstance(event, Link):
            link = event.url
    return link


def summarize(rows: list[Heard]) -> dict[str, Any]:
    n = len(rows)
    right = sum(r.link is not None and slug_of(r.link) in r.question.right for r in rows)
    sorry = sum(r.link is None for r in rows)
    return {
        "questions": n,
        "wer": round(statistics.fmean(r.wer for r in rows), 3) if n else None,
        "right_page": round(right / n, 3) if n else None,
        "sorry": round(sorry / n, 3) if n else None,
        "confident_wrong": round((n - right - sorry) / n, 3) if n else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    services = await Services.load(load_config(environ={}))
    try:
        questions = load(services.catalog.entries)
        if args.limit:
            tune = [q for q in questions if q.part == "tune"][: args.limit // 2]
            questions = tune + [q for q in questions if q.part == "test"][: args.limit // 2]
        rows: list[Heard] = []
        for q in questions:
            rows.append(
                Heard(q, "typed", "clean", q.question, 0.0, await answer_link(services, q.question))
            )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for voice in args.voices:
                for q in questions:
                    clean = spoken(q.question, voice, folder)
                    for noise in args.noise:
                        x = (
                            clean
                            if noise == "clean"
                            else with_babble(clean, questions, q.question + voice, folder)
                        )
                        pcm = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
                        heard = await asyncio.to_thread(services.transcriber.transcribe, pcm)
                        link = await answer_link(services, heard) if heard.strip() else None
                        rows.append(
                            Heard(q, voice, noise, heard, word_error_rate(q.question, heard), link)
                        )
        return {"rows": rows}
    finally:
        await services.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["en-us", "en-gb+f3"], choices=list(VOICES))
    parser.add_argument(
        "--noise", nargs="+", default=["clean", "babble"], choices=["clean", "babble"]
    )
    parser.add_argument("--limit", type=int, default=None, help="questions (half per part)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started, load_before = time.time(), load_average()
    rows: list[Heard] = asyncio.run(run(args))["rows"]
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
                s = summarize(chosen)
                results[f"{voice}/{noise}/{part}"] = s
                table_rows.append(
                    [
                        voice,
                        noise,
                        part,
                        s["questions"],
                        s["wer"],
                        s["right_page"],
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
            "babble_snr_db": BABBLE_SNR_DB,
            "results": results,
            "tune_misheard": misheard,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
