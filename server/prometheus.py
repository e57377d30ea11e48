"""``GET /metrics`` in the Prometheus text exposition format, from one server's :class:`Metrics`.

Rendered by ``prometheus_client`` (a collector over the server's own counters, in a registry
of the server's own, so two servers in one process never share numbers and nothing is
counted twice): the library keeps the format's escaping, ``# HELP``/``# TYPE`` lines and
``_total``/``_bucket`` conventions right, which hand-written text gets wrong in the corners.

What is exported, all prefixed ``sos_voice_``:

- counters: ``sessions_opened_total``, ``sessions_rejected_total{reason}``,
  ``sessions_closed_total{reason}``, ``turns_total{status}``, ``errors_total{code}``;
- gauges: ``start_time_seconds`` (Unix time; a constant, so a scrape's size does not change
  when nothing happened), ``sessions_active``, ``sessions_max``,
  ``send_queue_bytes``, ``send_queue_peak_bytes``;
- ``turn_latency_seconds{milestone}``: a histogram of completed turns since start (from the
  end of the visitor's speech to the transcript, first text, first sentence, first audio and
  done), for ``histogram_quantile()`` over any range and across servers;
- ``turn_latency_recent_seconds{milestone,quantile}``: the p50/p95/max of the last
  ``server.metrics_window`` turns, the same numbers ``/metrics.json`` shows a person.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from server.metrics import Metrics

__all__ = ["CONTENT_TYPE", "PrometheusExport"]

# The classic text format (0.0.4): what every Prometheus version and most scrapers read.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
PREFIX = "sos_voice_"
QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("1", "max"))


class _Collector(Collector):
    """Reads :class:`Metrics` at scrape time; holds no numbers of its own."""

    def __init__(self, metrics: Metrics, gauges: Callable[[], Mapping[str, float]]) -> None:
        self._metrics = metrics
        self._gauges = gauges
        self._start_time = round(time.time() - metrics.uptime_s, 3)

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        yield _gauge("start_time_seconds", "When the server started (Unix time).", self._start_time)
        yield _gauge("sessions_active", "Sessions connected now.", m.sessions_active)
        yield CounterMetricFamily(
            PREFIX + "sessions_opened", "Sessions accepted since start.", value=m.sessions_total
        )
        yield _counter("sessions_rejected", "Connections refused, by reason.", "reason", m.rejected)
        yield _counter("sessions_closed", "Sessions ended, by reason.", "reason", m.closed)
        yield _counter("turns", "Responses finished, by status.", "status", m.turns)
        yield _counter("errors", "Error events sent to clients, by code.", "code", m.errors)
        for name, value in self._gauges().items():
            yield _gauge(name, _GAUGE_HELP.get(name, name), value)
        yield from _latency(m)


_GAUGE_HELP = {
    "sessions_max": "Most sessions this server accepts at once (server.max_sessions).",
    "send_queue_bytes": "Bytes waiting to be sent to all clients now.",
    "send_queue_peak_bytes": "Most bytes ever waiting for one client.",
}


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_text, value=value)


def _counter(name: str, help_text: str, label: str, counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


def _latency(m: Metrics) -> Iterator[Metric]:
    histogram = HistogramMetricFamily(
        PREFIX + "turn_latency_seconds",
        "Completed turns: seconds from the end of speech to each milestone, since start.",
        labels=["milestone"],
    )
    for milestone, h in m.histograms.items():
        buckets = [
            (_le(bound / 1000.0), float(n)) for bound, n in zip(h.bounds, h.counts, strict=True)
        ]
        buckets.append(("+Inf", float(h.count)))
        histogram.add_metric([milestone], buckets, sum_value=h.sum / 1000.0)
    yield histogram
    recent = GaugeMetricFamily(
        PREFIX + "turn_latency_recent_seconds",
        f"Latency quantiles over the last {m.window} completed turns (server.metrics_window).",
        labels=["milestone", "quantile"],
    )
    for milestone, summary in m.latency_summary().items():
        for quantile, key in QUANTILES:
            recent.add_metric([milestone, quantile], float(summary[key]) / 1000.0)
    yield recent


def _le(seconds: float) -> str:
    """A bucket bound as Prometheus clients write it (``0.1``, ``1.0``, ``30.0``)."""
    return repr(float(seconds))


class PrometheusExport:
    """One server's registry: ``render()`` is the body of ``GET /metrics``.

    ``gauges``: server-level values :class:`Metrics` does not hold (limits, live queues),
    read at scrape time, named without the prefix.
    """

    def __init__(self, metrics: Metrics, gauges: Callable[[], Mapping[str, float]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(metrics, gauges))

    def render(self) -> bytes:
        return generate_latest(self.registry)
