"""Server counters and per-turn latencies, for ``GET /metrics`` and ``GET /metrics.json``.

One :class:`Metrics` per server (no module state), fed by the connections. Latencies are the
Session's own milestones (end of speech -> transcript, first text, first sentence, first audio,
done). They are kept twice, because two readers ask two questions: the last ``window`` turns
give the percentiles a person reads in ``/metrics.json`` ("how fast is it now"), and cumulative
histogram buckets since start give Prometheus what it can aggregate and rate over any range
(a window's percentile cannot be summed across servers or scrapes). Rendering the
Prometheus text format is :mod:`server.prometheus`'s concern, not this module's.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

MILESTONES = ("transcript", "first_text", "first_sentence", "first_audio", "done")
# Upper bounds (ms) of the cumulative latency histogram: around what a spoken answer needs
# (a first sound under a second feels live; over five does not).
LATENCY_BUCKETS_MS = (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000)


class Histogram:
    """Cumulative counts per upper bound, their sum and count since start (never reset)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # values <= bounds[i]
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1


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
        self.histograms: dict[str, Histogram] = {m: Histogram() for m in MILESTONES}

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
                self.histograms[name].observe(float(value))

    @property
    def uptime_s(self) -> float:
        return self._clock() - self._started

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
            "uptime_s": round(self.uptime_s, 1),
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
