"""Helpers shared by the voice benches: the machine they ran on, percentiles, tables, JSON.

Why a machine record in every result: this project is benchmarked on a shared 2-core box where
other engineers run tests at the same time, and on a GPU machine. A number without the CPU, the
core count and the load average during the run cannot be compared with any other number.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
SECRET_KEYS = frozenset({"api_key", "token", "password", "secret"})


def ensure_root_on_path() -> None:
    """Let ``python bench/x.py`` import the project (voice, llm, tests) without installing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The CUDA device torch sees, if any (never imports torch when it is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken driver is "no GPU" for the record
        return None


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (how busy the shared machine was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Where and when a bench ran, for the results file."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git_commit(),
        "load_average_start": load_average(),
    }


def redact(data: Any) -> Any:
    """A copy of a config tree without secrets (tokens, API keys), for the results file."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    if isinstance(data, Mapping):
        return {
            k: ("***" if v and str(k).lower() in SECRET_KEYS else redact(v))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(v) for v in data]
    return data


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Iterable[float | None], digits: int = 1) -> dict[str, float | int | None]:
    """n, p50, p95 and max of the values that exist (None where a milestone was not reached)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(xs),
        "p50": round(percentile(xs, 50), digits),
        "p95": round(percentile(xs, 95), digits),
        "max": round(max(xs), digits),
    }


def fmt(value: float | int | str | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into bench/README.md)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
    return path


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default): psutil if installed, else /proc."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"cannot read the memory of process {pid}")


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance / reference words (case and punctuation ignored)."""
    ref = re.findall(r"[a-z0-9']+", reference.lower())
    hyp = re.findall(r"[a-z0-9']+", hypothesis.lower())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def run_record(started: float, load_before: list[float]) -> dict[str, Any]:
    """Where, when and under what load a bench ran: the header of its results file."""
    return {
        "machine": machine_info(),
        "load_before": load_before,
        "load_after": load_average(),
        "seconds": round(time.time() - started, 1),
    }


def add_window_argument(parser: argparse.ArgumentParser) -> None:
    """``--stt-window``, for the benches that hear speech with the session's Whisper."""
    parser.add_argument(
        "--stt-window",
        default=None,
        help="[stt] encoder_window: seconds or 'full' (30 s); default: the config's (20 on a CPU)",
    )


def window_environ(stt_window: str | None) -> dict[str, str]:
    """The environment override ``load_config`` reads for ``--stt-window`` (none if unset)."""
    return {"SOS_VOICE__STT__ENCODER_WINDOW": stt_window} if stt_window else {}
