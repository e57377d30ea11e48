"""Spoken sphere commands: does "show me the hurricanes" play the hurricanes?

Usage:
    python bench/sphere_commands.py                    # 4 voices, clean and babble
    python bench/sphere_commands.py --stt-window full --out /tmp/c30.json
    python bench/sphere_commands.py --voices en-us --noise clean

A 32-clip playlist of real catalog datasets, as a science museum might open, and three
commands per clip written the way visitors ask ("Show me the northern lights.", "Play the
one where the ocean drains.", "Can you show the red planet?"), plus 20 commands for things
the playlist does not have ("Show me the dinosaurs.", "Play the Titanic."): bench/data/
sphere_commands.json. Each is spoken by espeak-ng voices, clean and over the babble bed of
bench/understanding.py, transcribed by the session's own Whisper, recognized as a command
(:func:`sphere.commands.recognize`) and matched to a clip (:class:`sphere.choosing.
ClipChooser`) with and without its sounds-like reading.

Split by clip (absent commands: by text) into a tuning part and a **test** part (about 30 %,
by a hash, never moves) that tuning never reads. Per voice, noise, part and matcher: WER,
**right** (the right clip would play), **wrong** (another clip would play: the worst outcome,
the visitor sees something they did not ask for), **not found** ("Sorry, I can't find that"),
and **not a command** (answered as a question). For the absent commands, **false plays** (any
clip played). Transcripts are cached like bench/understanding.py's. Writes
bench/results/sphere_commands.json (or --out) and prints a table.
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
    load_average,
    run_record,
    table,
    window_environ,
    word_error_rate,
    write_json,
)
from bench.understanding import (
    VOICES,
    TranscriptCache,
    add_hearing_arguments,
    spoken,
    with_babble,
)
from bench.visitor_set import load as load_visitor_questions
from cli.config import load_config
from sphere.choosing import ClipChooser
from sphere.commands import recognize
from sphere.follow import Clip
from sphere.matching import ClipMatcher
from voice.services import Services

DATA = Path(__file__).resolve().parent / "data" / "sphere_commands.json"
RESULTS = RESULTS_DIR / "sphere_commands.json"
TRANSCRIPTS = RESULTS_DIR / "sphere_commands_transcripts.json"
TEST_SHARE = 3  # of 10 hash buckets


@dataclass(frozen=True)
class SpokenCommand:
    text: str
    clip: str | None  # the clip it asks for; None: not in the playlist
    part: str


def part_of(key: str) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10
    return "test" if bucket < TEST_SHARE else "tune"


def load_set(path: Path = DATA) -> tuple[list[str], list[SpokenCommand]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    commands = [
        SpokenCommand(text, row["clip"], part_of(row["clip"]))
        for row in data["commands"]
        for text in row["say"]
    ]
    commands += [SpokenCommand(text, None, part_of(text)) for text in data["absent"]]
    return data["playlist"], commands


def outcome(heard: str, command: SpokenCommand, chooser: ClipChooser, clips: list[Clip]) -> str:
    """right / wrong / not_found / not_command for a command heard as ``heard``."""
    recognized = recognize(heard)
    if recognized is None:
        return "not_command"
    if recognized.action != "play":
        return "wrong"  # "show me the next ..." heard as next: something else plays
    clip = chooser.best(recognized.query, clips)
    if clip is None:
        return "not_found"
    return "right" if clip.name == command.clip else "wrong"


def summarize(rows: list[tuple[SpokenCommand, float, str]]) -> dict[str, Any]:
    present = [(c, o) for c, _, o in rows if c.clip is not None]
    absent = [(c, o) for c, _, o in rows if c.clip is None]

    def share(items: list[Any], what: str) -> float | None:
        return round(sum(o == what for _, o in items) / len(items), 3) if items else None

    return {
        "commands": len(present),
        "wer": round(statistics.fmean(w for _, w, _ in rows), 3) if rows else None,
        "right": share(present, "right"),
        "wrong": share(present, "wrong"),
        "not_found": share(present, "not_found"),
        "not_command": share(present, "not_command"),
        "absent": len(absent),
        "false_plays": share(absent, "wrong"),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    services = await Services.load(load_config(environ=window_environ(args.stt_window)))
    try:
        names, commands = load_set()
        matcher = ClipMatcher(services.catalog, services.retriever)
        clips = [Clip(n, name, matcher.match(name)) for n, name in enumerate(names, 1)]
        unknown = [c.name for c in clips if c.entry is None]
        if unknown:
            raise SystemExit(f"playlist clips the catalog does not place: {unknown}")
        choosers = {
            "exact": ClipChooser(services.retriever, sounds_like=False),
            "sounds-like": ClipChooser(services.retriever),
        }
        babble_from = load_visitor_questions(services.catalog.entries)
        cache = TranscriptCache(args.transcripts)
        model = services.transcriber.description
        heard_rows: list[tuple[str, str, SpokenCommand, str]] = [
            ("typed", "clean", c, c.text) for c in commands
        ]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for voice in args.voices:
                for noise in args.noise:
                    for c in commands:
                        key = cache.key(model, voice, noise, c.text)
                        heard = cache.get(key)
                        if heard is None:
                            x = spoken(c.text, voice, folder)
                            if noise != "clean":
                                x = with_babble(x, babble_from, c.text + voice, folder)
                            pcm = np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()
                            heard = await asyncio.to_thread(services.transcriber.transcribe, pcm)
                            cache.put(key, heard)
                        heard_rows.append((voice, noise, c, heard))
        cache.save()
        results: dict[str, Any] = {}
        misheard: list[dict[str, str]] = []
        for name, chooser in choosers.items():
            for voice, noise, c, heard in heard_rows:
                got = outcome(heard, c, chooser, clips)
                key = f"{name}/{voice}/{noise}/{c.part}"
                results.setdefault(key, []).append((c, word_error_rate(c.text, heard), got))
                if c.part == "tune" and got != ("right" if c.clip else "not_found"):
                    misheard.append(
                        {"matcher": name, "said": c.text, "heard": heard, "outcome": got}
                    )
        return {
            "stt": model,
            "results": {k: summarize(v) for k, v in results.items()},
            "tune_misses": misheard,  # the test part's are never listed
        }
    finally:
        await services.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--voices", nargs="+", default=list(VOICES), choices=list(VOICES), help="espeak voices"
    )
    parser.add_argument(
        "--noise", nargs="+", default=["clean", "babble"], choices=["clean", "babble"]
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    add_hearing_arguments(parser, TRANSCRIPTS)
    args = parser.parse_args(argv)
    started, load_before = time.time(), load_average()
    ran = asyncio.run(run(args))
    keys = ["commands", "wer", "right", "wrong", "not_found", "not_command", "false_plays"]
    rows = [[*k.split("/"), *(s[x] for x in keys)] for k, s in ran["results"].items()]
    print(f"speech to text: {ran['stt']}")
    print(table(["matcher", "voice", "noise", "part", *keys], rows))
    write_json(args.out, {**run_record(started, load_before), **ran})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
