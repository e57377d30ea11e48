"""How does the WebSocket service hold up when many headsets talk at once?

Usage:
    python bench/load.py                       # 1, 4, 16 and 64 concurrent clients
    python bench/load.py --clients 1,4 --out /tmp/load.json
    python bench/load.py --config gpu.toml     # other models

The real server (``server.app.Server`` on the real offline models) runs in a child
process on 127.0.0.1, so that the clients' own work does not share its event loop and GIL. For
each level N, N clients connect at once (with up to ``--jitter-ms`` of random delay, as
visitors never start on the same millisecond), ask for binary output (the Unity fast path), and
each speaks one question as raw PCM16 binary frames paced at real time, then keeps sending
room silence like a live microphone until its answer is complete. Reported per N:

* time to first audio: from the moment the client sent the frame holding the end of its
  speech to the first audio frame of the answer (p50/p95/max);
* errors (error events, failed or missing answers, timeouts) and completed answers;
* the server's resident memory (peak during the level, and after it), and its session count
  once every client has left (must be 0);
* how late the clients' own frames went out (if the bench itself falls behind real time,
  its latencies are not the server's).

Bounded: loopback only, at most ``--max-clients`` per level, a deadline per level, and the
server child is stopped at the end whatever happens. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    RESULTS_DIR,
    fmt,
    load_average,
    machine_info,
    redact,
    rss_bytes,
    summary,
    table,
    write_json,
)
from tests.speech import espeak_wav, read_pcm16, speech_bounds_ms

RESULTS = RESULTS_DIR / "load.json"
HOST = "127.0.0.1"
LEVELS = (1, 4, 16, 64)
MAX_CLIENTS = 128
QUESTIONS = (
    "What causes a tsunami?",
    "Where do hurricanes form?",
    "Why is the ocean getting more acidic?",
    "Where are the volcanoes on Earth?",
    "What is happening to coral reefs?",
    "How fast is the Arctic sea ice melting?",
    "What is El Nino?",
    "Where do earthquakes happen?",
)
VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb-scotland")
READY_TIMEOUT_S = 180.0
NOT_HEARD_S = 3.0  # after an empty transcript, how long to wait for another turn's answer


@dataclass(frozen=True)
class Utterance:
    text: str
    pcm: bytes  # 16 kHz mono PCM16, silence around the speech
    speech_end_ms: int


@dataclass
class ClientResult:
    question: str
    status: str = "not started"
    first_audio_ms: float | None = None
    done_ms: float | None = None
    transcript: str = ""
    errors: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    max_send_lag_ms: float = 0.0


# --------------------------------------------------------------------------- server child
def serve_child(config_path: str | None, max_sessions: int) -> None:
    """Run in the child process: load the models, serve on 127.0.0.1, print the port, and
    stop when stdin closes (the parent died or is done) or on SIGTERM."""
    from cli.config import load_config
    from server.app import Server
    from server.config import ServerConfig
    from voice.services import Services

    async def main() -> None:
        config = load_config(config_path)
        services = await Services.load(config)
        settings = ServerConfig(host=HOST, port=0, max_sessions=max_sessions, serve_web=False)
        server = Server(config, services, settings)
        await server.start(HOST, 0)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
        print(f"PORT {server.port}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()
            await services.aclose()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(main())


class ServerProcess:
    """The server child: started, waited for, measured and always stopped."""

    def __init__(self, config: Path | None, max_sessions: int, log_path: Path) -> None:
        self.log_path = log_path
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-child"]
        cmd += ["--max-sessions", str(max_sessions)]
        if config is not None:
            cmd += ["--config", str(config)]
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.port = 0

    async def ready(self) -> int:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), READY_TIMEOUT_S)
        if not line.startswith("PORT "):
            raise RuntimeError(f"the server did not start: {self.log_tail()}")
        self.port = int(line.split()[1])
        return self.port

    def rss(self) -> int | None:
        try:
            return rss_bytes(self.proc.pid)
        except (OSError, RuntimeError):
            return None

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


async def http_json(port: int, path: str) -> dict[str, Any]:
    """GET a JSON endpoint of the server (health, metrics) with a bare HTTP/1.1 request."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


# --------------------------------------------------------------------------- clients
def make_utterances(folder: Path) -> list[Utterance]:
    """espeak-ng questions at 16 kHz (the binary path's default rate), silence around them.

    Reused from ``folder`` when an earlier run left them there (``load-questions.json``): the GPU
    machine has no espeak-ng, so they are made here and carried there.
    """
    manifest = folder / "load-questions.json"
    if manifest.is_file():
        made = json.loads(manifest.read_text())
    else:
        folder.mkdir(parents=True, exist_ok=True)
        made = []
        for i, text in enumerate(QUESTIONS):
            path = folder / f"load{i}.wav"
            espeak_wav(text, path, lead_s=0.4, trail_s=0.2, voice=VOICES[i % len(VOICES)])
            made.append({"file": path.name, "text": text})
        manifest.write_text(json.dumps(made, indent=1))
    out = []
    for item in made:
        pcm, rate = read_pcm16(folder / item["file"])
        if rate != 16000:
            raise ValueError(f"{item['file']}: {rate} Hz; the load bench sends 16 kHz")
        out.append(Utterance(item["text"], pcm, speech_bounds_ms(pcm, rate)[1]))
    return out


async def run_client(
    port: int, utt: Utterance, delay_s: float, frame_ms: int, deadline: float
) -> ClientResult:
    """One headset: connect, speak at real-time pace, keep the mic open until the answer ends."""
    from websockets.asyncio.client import connect

    result = ClientResult(utt.text)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay_s)
    step = 16000 * frame_ms // 1000 * 2
    frames = [utt.pcm[i : i + step] for i in range(0, len(utt.pcm), step)]
    end_frame = min(len(frames) - 1, utt.speech_end_ms // frame_ms)
    silence = bytes(step)
    speech_end_at: float | None = None
    done = asyncio.Event()

    heard_nothing_at: float | None = None

    async def reader(ws: Any) -> None:
        nonlocal speech_end_at, heard_nothing_at
        responding = False
        async for message in ws:
            now = loop.time()
            if isinstance(message, bytes):
                result.audio_bytes += len(message)
                if responding and result.first_audio_ms is None and speech_end_at is not None:
                    result.first_audio_ms = round((now - speech_end_at) * 1000.0, 1)
                continue
            event = json.loads(message)
            kind = event.get("type")
            if kind == "response.created":
                responding, heard_nothing_at = True, None
            elif kind == "conversation.item.input_audio_transcription.completed":
                result.transcript = event.get("transcript", "")
                if not result.transcript.strip():  # Whisper heard nothing: no answer comes
                    heard_nothing_at = now
            elif kind == "error":
                err = event.get("error", {})
                result.errors.append(f"{err.get('code')}: {err.get('message')}")
            elif kind == "response.done":
                response = event.get("response", {})
                if (response.get("metadata") or {}).get("sos_voice_reprompt"):
                    result.status = "nothing heard"  # the spoken "didn't catch that"
                else:
                    result.status = response.get("status", "?")
                if speech_end_at is not None:
                    result.done_ms = round((now - speech_end_at) * 1000.0, 1)
                done.set()
                return

    try:
        async with connect(
            f"ws://{HOST}:{port}/v1/realtime?model=load",
            max_size=None,
            compression=None,
            open_timeout=max(1.0, deadline - loop.time()),
        ) as ws:
            first = json.loads(await ws.recv())
            if first.get("type") != "session.created":
                raise RuntimeError(f"first event was {first.get('type')}")
            update = {"sos_binary_audio": True, "turn_detection": {"type": "server_vad"}}
            await ws.send(json.dumps({"type": "session.update", "session": update}))
            result.status = "speaking"
            read_task = asyncio.create_task(reader(ws))
            start, period, k = loop.time(), frame_ms / 1000.0, 0
            while not done.is_set() and loop.time() < deadline and not read_task.done():
                if heard_nothing_at is not None and loop.time() - heard_nothing_at > NOT_HEARD_S:
                    result.status = "nothing heard"  # no later turn of ours got an answer
                    done.set()
                    break
                due = start + (k + 1) * period  # a microphone delivers a frame once it is full
                await asyncio.sleep(max(0.0, due - loop.time()))
                result.max_send_lag_ms = max(result.max_send_lag_ms, (loop.time() - due) * 1e3)
                await ws.send(frames[k] if k < len(frames) else silence)
                if k == end_frame:
                    speech_end_at = loop.time()
                    result.status = "waiting"
                k += 1
            if not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(read_task), max(0.0, deadline - loop.time())
                    )
            read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read_task
            if not done.is_set():
                result.status = "timeout"
    except Exception as exc:  # a refused or broken connection is a result, not a crash
        result.errors.append(f"{type(exc).__name__}: {exc}")
        if result.status not in ("completed", "cancelled", "failed"):
            result.status = "connection error"
    result.max_send_lag_ms = round(result.max_send_lag_ms, 1)
    return result


async def run_level(
    server: ServerProcess, n: int, utts: list[Utterance], args: argparse.Namespace
) -> dict[str, Any]:
    """N concurrent clients; the server's memory sampled all along."""
    rng = random.Random(n)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.level_timeout
    peak = server.rss() or 0
    before = peak
    load_before = load_average()

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.rss() or 0)
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    started = loop.time()
    try:
        results = await asyncio.gather(
            *(
                run_client(
                    server.port,
                    utts[i % len(utts)],
                    rng.uniform(0, args.jitter_ms / 1000.0),
                    args.frame_ms,
                    deadline,
                )
                for i in range(n)
            )
        )
    finally:
        sampler.cancel()
    wall = loop.time() - started
    sessions_left = None
    for _ in range(50):  # sessions end asynchronously after the clients close
        sessions_left = (await http_json(server.port, "/healthz")).get("sessions")
        if sessions_left == 0:
            break
        await asyncio.sleep(0.1)
    metrics = await http_json(server.port, "/metrics.json")
    completed = [r for r in results if r.status == "completed"]
    not_heard = [r for r in results if r.status == "nothing heard"]
    errors = [r for r in results if r.status not in ("completed", "nothing heard") or r.errors]
    return {
        "clients": n,
        "completed": len(completed),
        "nothing_heard": len(not_heard),
        "errors": len(errors),
        "error_examples": sorted({e for r in results for e in r.errors})[:5]
        + sorted({r.status for r in errors if not r.errors})[:3],
        "first_audio_ms": summary(r.first_audio_ms for r in completed),
        "done_ms": summary(r.done_ms for r in completed),
        "client_send_lag_ms_max": max(r.max_send_lag_ms for r in results),
        "server_rss_mb": {
            "before": round(before / 2**20, 1),
            "peak": round(peak / 2**20, 1),
            "after": round((server.rss() or 0) / 2**20, 1),
        },
        "sessions_after": sessions_left,
        "server_latency_ms": metrics.get("latency_ms"),
        "server_errors": metrics.get("errors"),
        "wall_s": round(wall, 1),
        "load_average": {"before": load_before, "after": load_average()},
        "results": [asdict(r) for r in results],
    }


def print_report(result: dict[str, Any]) -> None:
    rows = []
    for lv in result["levels"]:
        fa, mem = lv["first_audio_ms"], lv["server_rss_mb"]
        rows.append(
            [
                lv["clients"],
                f"{lv['completed']}/{lv['clients']}",
                lv["nothing_heard"],
                lv["errors"],
                fmt(fa["p50"]),
                fmt(fa["p95"]),
                fmt(fa["max"]),
                fmt(mem["peak"], 0),
                fmt(mem["after"], 0),
                lv["sessions_after"],
                fmt(lv["client_send_lag_ms_max"], 0),
                fmt(lv["wall_s"], 1),
                " ".join(str(x) for x in lv["load_average"]["after"][:1]),
            ]
        )
    print("\nconcurrent WebSocket clients on 127.0.0.1 (time to first audio from end of speech)")
    headers = ["N", "answered", "not heard", "errors", "p50 ms", "p95 ms", "max ms", "RSS peak MB"]
    headers += ["RSS after MB", "sessions after", "client lag ms", "wall s", "load 1m"]
    print(table(headers, rows))
    for lv in result["levels"]:
        if lv["error_examples"]:
            print(f"N={lv['clients']} errors: {lv['error_examples']}")
    m = result["machine"]
    print(
        f"\n{m['cpu']} x{m['cores']}; load average {m['load_average_start']} -> "
        f"{m['load_average_end']}; server start {result['server_start_s']} s; "
        f"wrote {result['out']}"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from cli.config import load_config

    config = load_config(args.config)
    machine = machine_info()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if not levels or min(levels) < 1 or max(levels) > args.max_clients:
        raise SystemExit(f"--clients must be between 1 and {args.max_clients}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        utts = make_utterances(args.questions_dir or Path(tmp))
        started = time.perf_counter()
        server = ServerProcess(args.config, max(levels) + 4, Path(tmp) / "server.log")
        try:
            await server.ready()
            start_s = round(time.perf_counter() - started, 1)
            out = []
            for n in levels:
                print(f"N={n}: {n} client(s) speaking ...", flush=True)
                out.append(await run_level(server, n, utts, args))
                lv = out[-1]
                print(
                    f"N={n}: {lv['completed']}/{n} answered, first audio p50 "
                    f"{fmt(lv['first_audio_ms']['p50'])} ms, p95 "
                    f"{fmt(lv['first_audio_ms']['p95'])} ms",
                    flush=True,
                )
        except BaseException:
            print(server.log_tail(), file=sys.stderr)
            raise
        finally:
            code = server.stop()
    machine["load_average_end"] = load_average()
    return {
        "bench": "load",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine,
        "config": redact(config),
        "frame_ms": args.frame_ms,
        "jitter_ms": args.jitter_ms,
        "server_start_s": start_s,
        "server_exit_code": code,
        "levels": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default=",".join(map(str, LEVELS)), help="levels, e.g. 1,4")
    parser.add_argument("--frame-ms", type=int, default=20, help="binary frame length sent")
    parser.add_argument("--jitter-ms", type=int, default=500, help="random start delay, max")
    parser.add_argument("--level-timeout", type=float, default=240.0, help="seconds per level")
    parser.add_argument("--max-clients", type=int, default=MAX_CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--config", type=Path, default=None, help="TOML over the defaults")
    parser.add_argument(
        "--questions-dir", type=Path, help="reuse (or keep) the spoken questions in this folder"
    )
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-sessions", type=int, default=70, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        serve_child(str(args.config) if args.config else None, args.max_sessions)
        return 0
    if args.frame_ms not in (10, 20, 30, 40, 60, 100):
        parser.error("--frame-ms must be one of 10, 20, 30, 40, 60, 100")
    result = asyncio.run(run(args))
    result["out"] = str(write_json(args.out, result))
    write_json(args.out, result)
    print_report(result)
    bad = sum(lv["errors"] for lv in result["levels"])
    leaked = any(lv["sessions_after"] != 0 for lv in result["levels"])
    return 1 if bad or leaked else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
