"""Does the server leak, or does its memory reach a high-water mark and stay there?

Usage:
    python bench/soak.py                         # one hour, rounds of 15 clients
    python bench/soak.py --minutes 10 --clients 8 --out /tmp/soak.json

An adversarial run saw the server's RSS go from 1.41 to 1.79 GB over ten 15-client rounds and
then stay flat for three: too short to tell a slow leak from allocator arenas and model
caches filling up to their working size. This bench runs long enough to tell: the real server
(``bench/load.py``'s server child: ``server.app.Server`` on the real offline models, in its
own process so the clients' memory is not counted) gets rounds of ``--clients`` concurrent
clients until ``--minutes`` have passed. Every other client speaks an espeak-ng question at
real-time pace as binary PCM (``bench.load.run_client``); the rest type one and take the
answer as JSON audio, so both input paths and both output paths run.

The server's RSS is sampled every ``--sample-s`` seconds into a time series. The result is
the slope of a least-squares line through the samples, in MB per hour, over three spans:
the whole run, after ``--warmup-minutes`` (default: a quarter of the run), and the second
half. A leak keeps a positive slope in the later spans; a high-water mark flattens to ~0.
Also per round: answers completed, errors, the sessions left after the round (must be 0).

``--arenas N`` sets MALLOC_ARENA_MAX for the server (default 2, as ``make test`` does): glibc
otherwise gives each thread its own arena, and arenas that fill up one by one look like a
leak for a long time. ``--arenas 0`` leaves glibc's default.

Writes bench/results/soak.json (machine, settings, rounds, the time series, the fits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, fmt, load_average, machine_info, table, write_json
from bench.load import (
    HOST,
    QUESTIONS,
    ServerProcess,
    Utterance,
    http_json,
    make_utterances,
    run_client,
)

RESULTS = RESULTS_DIR / "soak.json"
MB = 1024 * 1024


async def typed_client(port: int, question: str, delay_s: float, deadline: float) -> str:
    """A typed question with JSON audio back; returns the response status (or what failed)."""
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay_s)
    item = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": question}],
        },
    }
    try:
        async with connect(
            f"ws://{HOST}:{port}/v1/realtime?model=soak", max_size=None, compression=None
        ) as ws:
            await ws.send(json.dumps(item))
            await ws.send(json.dumps({"type": "response.create"}))
            while True:
                message = await asyncio.wait_for(ws.recv(), max(0.1, deadline - loop.time()))
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                if event["type"] == "error":
                    return f"error {event['error'].get('code')}"
                if event["type"] == "response.done":
                    return str(event["response"].get("status"))
    except Exception as exc:  # a broken or refused connection is a result, not a crash
        return f"{type(exc).__name__}"


async def run_round(
    server: ServerProcess, index: int, utts: list[Utterance], args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(index)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + args.round_timeout
    jobs = []
    for i in range(args.clients):
        delay = rng.uniform(0, args.jitter_ms / 1000.0)
        if i % 2 == 0:
            utt = utts[(index + i) % len(utts)]
            jobs.append(run_client(server.port, utt, delay, 20, deadline))
        else:
            question = QUESTIONS[(index * 3 + i) % len(QUESTIONS)]
            jobs.append(typed_client(server.port, question, delay, deadline))
    results = await asyncio.gather(*jobs)
    statuses = [r if isinstance(r, str) else r.status for r in results]
    errors = sum(len(r.errors) for r in results if not isinstance(r, str))
    errors += sum(1 for s in statuses if s not in ("completed", "nothing heard"))
    await asyncio.sleep(1.0)  # the server's handlers finish closing
    health = await http_json(server.port, "/healthz")
    return {
        "round": index,
        "seconds": round(loop.time() - started, 1),
        "completed": statuses.count("completed"),
        "nothing_heard": statuses.count("nothing heard"),
        "errors": errors,
        "statuses": sorted(set(statuses)),
        "sessions_after": health.get("sessions"),
        "rss_mb": round((server.rss() or 0) / MB, 1),
    }


def fit(points: list[tuple[float, float]]) -> dict[str, float | int | None]:
    """Least-squares line through (hours, MB): slope in MB/hour, and the span it covers."""
    n = len(points)
    if n < 3:
        return {"n": n, "slope_mb_per_h": None, "start_mb": None, "end_mb": None}
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0
    syy = sum((y - my) ** 2 for y in ys)
    r2 = (sxy * sxy) / (sxx * syy) if sxx and syy else 0.0
    return {
        "n": n,
        "minutes": round((xs[-1] - xs[0]) * 60, 1),
        "start_mb": round(ys[0], 1),
        "end_mb": round(ys[-1], 1),
        "max_mb": round(max(ys), 1),
        "slope_mb_per_h": round(slope, 1),
        "r2": round(r2, 3),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    if args.arenas:
        os.environ["MALLOC_ARENA_MAX"] = str(args.arenas)  # inherited by the server child
    folder = Path(args.speech_dir or tempfile.mkdtemp(prefix="soak-speech-"))
    utts = await asyncio.to_thread(make_utterances, folder)
    log_path = Path(tempfile.mkstemp(prefix="soak-server-", suffix=".log")[1])
    server = ServerProcess(args.config, args.clients + 4, log_path)
    samples: list[dict[str, float]] = []
    rounds: list[dict[str, Any]] = []
    try:
        await server.ready()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        end = t0 + args.minutes * 60

        async def sample() -> None:
            while True:
                rss = server.rss()
                if rss is not None:
                    samples.append(
                        {"t_s": round(loop.time() - t0, 1), "rss_mb": round(rss / MB, 1)}
                    )
                await asyncio.sleep(args.sample_s)

        sampler = asyncio.create_task(sample())
        index = 0
        while loop.time() < end:
            result = await run_round(server, index, utts, args)
            rounds.append(result)
            print(
                f"round {index}: {result['completed']}/{args.clients} completed, "
                f"{result['errors']} errors, {result['seconds']} s, RSS {result['rss_mb']} MB",
                flush=True,
            )
            index += 1
            await asyncio.sleep(args.pause_s)
        sampler.cancel()
        metrics = await http_json(server.port, "/metrics.json")
    finally:
        server.stop()
    points = [(s["t_s"] / 3600.0, s["rss_mb"]) for s in samples]
    warm_h = (args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 4) / 60
    half_h = points[-1][0] / 2 if points else 0.0
    fits = {
        "all": fit(points),
        "after_warmup": fit([p for p in points if p[0] >= warm_h]),
        "second_half": fit([p for p in points if p[0] >= half_h]),
    }
    return {
        "rounds": rounds,
        "samples": samples,
        "fits": fits,
        "warmup_minutes": round(warm_h * 60, 1),
        "server_metrics": metrics,
        "server_log": str(log_path),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="how long to soak (default 60)")
    p.add_argument("--clients", type=int, default=15, help="concurrent clients per round")
    p.add_argument("--warmup-minutes", type=float, default=None, help="default: minutes / 4")
    p.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    p.add_argument("--pause-s", type=float, default=2.0, help="pause between rounds")
    p.add_argument("--jitter-ms", type=float, default=1500.0, help="client start spread")
    p.add_argument("--round-timeout", type=float, default=240.0, help="deadline of one round")
    p.add_argument("--arenas", type=int, default=2, help="MALLOC_ARENA_MAX (0 = glibc default)")
    p.add_argument("--config", type=Path, default=None, help="TOML over the defaults")
    p.add_argument("--speech-dir", default=None, help="where the espeak-ng questions are kept")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.clients < 1:
        p.error("--minutes must be > 0 and --clients >= 1")
    record = machine_info()
    started = time.time()
    result = asyncio.run(soak(args))
    record["load_average_end"] = load_average()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    data = {
        "machine": record,
        "settings": settings,
        "wall_s": round(time.time() - started),
        **result,
    }
    rows = [
        [
            name,
            f.get("n"),
            fmt(f.get("minutes"), 1),
            fmt(f.get("start_mb"), 1),
            fmt(f.get("end_mb"), 1),
            fmt(f.get("max_mb"), 1),
            fmt(f.get("slope_mb_per_h"), 1),
            fmt(f.get("r2"), 3),
        ]
        for name, f in result["fits"].items()
    ]
    answered = sum(r["completed"] for r in result["rounds"])
    errors = sum(r["errors"] for r in result["rounds"])
    leftover = max((r["sessions_after"] or 0 for r in result["rounds"]), default=0)
    print(
        f"\n{len(result['rounds'])} rounds of {args.clients} clients, {answered} answers, "
        f"{errors} errors, at most {leftover} sessions left after a round; "
        f"warm-up {result['warmup_minutes']} min; load {record['load_average_start']} -> "
        f"{record['load_average_end']}\n"
    )
    headers = ["span", "samples", "minutes", "start MB", "end MB", "max MB", "MB/hour", "r2"]
    print(table(headers, rows))
    print(f"\nwrote {write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
