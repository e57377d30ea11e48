"""Server counters and per-turn latency percentiles, for GET /metrics.

One :class:`Metrics` per server (no module state), fed by the connections. Latencies are the
Session's own milestones (end of speech -> transcript, first text, first sentence, first audio,
done), kept for the last ``window`` turns, because an operator asks "how fast is it now",
not "since the process started".
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

MILESTONES = ("transcript", "first_text", "first_sentence", "first_audio", "done")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


class Metrics:
    """Counters and a latency window; all methods are called on the event loop."""

    def __init__(self, window: int = 200, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._started = clock()
        self.sessions_active = 0
        self.sessions_total = 0
        self.rejected: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.turns: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.send_queue_peak_bytes = 0
        self._latency: dict[str, deque[float]] = {m: deque(maxlen=window) for m in MILESTONES}

    def session_opened(self) -> None:
        self.sessions_active += 1
        self.sessions_total += 1

    def session_closed(self, reason: str, queue_peak_bytes: int) -> None:
        self.sessions_active -= 1
        self.closed[reason] += 1
        self.send_queue_peak_bytes = max(self.send_queue_peak_bytes, queue_peak_bytes)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def error(self, code: str, count: int = 1) -> None:
        self.errors[code] += count

    def turn(self, status: str, latencies_ms: Mapping[str, float]) -> None:
        self.turns[status] += 1
        if status != "completed":
            return
        for name, value in latencies_ms.items():
            if name in self._latency:
                self._latency[name].append(float(value))

    def latency_summary(self) -> dict[str, dict[str, float | int]]:
        out: dict[str, dict[str, float | int]] = {}
        for name, values in self._latency.items():
            if not values:
                continue
            ordered = sorted(values)
            out[name] = {
                "p50": percentile(ordered, 50),
                "p95": percentile(ordered, 95),
                "max": ordered[-1],
                "n": len(ordered),
            }
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(self._clock() - self._started, 1),
            "sessions": {
                "active": self.sessions_active,
                "total": self.sessions_total,
                "rejected": dict(self.rejected),
                "closed": dict(self.closed),
            },
            "turns": {"total": sum(self.turns.values()), **self.turns},
            "errors": {"total": sum(self.errors.values()), **self.errors},
            "latency_ms": {"window_turns": self.window, **self.latency_summary()},
            "send_queue_peak_bytes": self.send_queue_peak_bytes,
        }
