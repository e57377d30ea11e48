"""Does the Piper voice's memory reach a working size, or grow with every new sentence length?

Usage:
    python bench/tts_memory.py                      # 8 rounds of 60 syntheses, both setups
    python bench/tts_memory.py --rounds 4 --out /tmp/tts_memory.json

Each setup runs in its own child process (so one's memory is not the other's): **shipped**
loads the voice as the product does (:func:`voice.tts.load_voice`: ONNX Runtime's memory
pattern off), **ort-default** with ``PiperVoice.load`` (ONNX Runtime's default options). A
round is 60 syntheses on two threads (as two sessions speak at once) of random sentences of
3-40 words, the same seeded sentences for both setups, at double speed. After each round:
``gc.collect()``, glibc's ``malloc_trim(0)`` (so freed heap pages go back to the system and
what is left is memory something holds), then RSS. The round's time is the synthesis time.

Writes bench/results/tts_memory.json (machine, RSS and seconds per round per setup).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fmt, load_average, rss_bytes, run_record, table, write_json

SETUPS = ("shipped", "ort-default")
VOCABULARY = (
    "the ocean waves earthquake tsunami hurricane forms over warm water and sea ice melts every "
    "summer in the arctic while coral reefs bleach as carbon dioxide dissolves"
)


def child(setup: str, rounds: int, per_round: int) -> list[dict[str, float]]:
    """Run one setup in this process; RSS (MB) and seconds per round."""
    from piper import PiperVoice

    from voice.config import TtsConfig
    from voice.tts import Synthesizer, load_voice, resolve_voice

    model, config, label = resolve_voice(TtsConfig())
    voice = load_voice(model, config) if setup == "shipped" else PiperVoice.load(model, config)
    synthesizer = Synthesizer(voice, length_scale=0.5, description=label)

    words = VOCABULARY.split()

    def speak(count: int, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(count):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))) + "."
            for _ in synthesizer.synthesize(text):
                pass

    trim = ctypes.CDLL("libc.so.6").malloc_trim
    out = []
    for r in range(rounds):
        started = time.perf_counter()
        threads = [
            threading.Thread(target=speak, args=(per_round // 2, r * 10 + k)) for k in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        gc.collect()
        trim(0)
        out.append({"rss_mb": round(rss_bytes() / 2**20, 1), "seconds": round(seconds, 2)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("bench/results/tts_memory.json"))
    parser.add_argument("--child", choices=SETUPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds, args.per_round)))
        return
    started, load_before = time.time(), load_average()
    runs: dict[str, Any] = {}
    for setup in SETUPS:
        cmd = [sys.executable, __file__, "--child", setup, "--rounds", str(args.rounds)]
        cmd += ["--per-round", str(args.per_round)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs[setup] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for setup, rounds in runs.items():
        rss = [r["rss_mb"] for r in rounds]
        secs = sum(r["seconds"] for r in rounds)
        rows.append(
            [
                setup,
                fmt(rss[0]),
                fmt(rss[len(rss) // 2]),
                fmt(rss[-1]),
                fmt(rss[-1] - rss[len(rss) // 2]),
                fmt(secs, 1),
            ]
        )
    print(
        table(
            ["setup", "RSS r1 MB", "RSS mid MB", "RSS end MB", "2nd-half growth", "synthesis s"],
            rows,
        )
    )
    record = {
        **run_record(started, load_before),
        "rounds": args.rounds,
        "per_round": args.per_round,
        "runs": runs,
    }
    print(f"wrote {write_json(args.out, record)}")


if __name__ == "__main__":
    main()
