"""``/metrics`` (Prometheus text format) and ``/metrics.json`` on a real server after a real
answered question, read back with prometheus_client's own parser, as a scraper would."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import Server
from server.metrics import Metrics
from server.prometheus import PrometheusExport
from tests.server.conftest import typed_client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}; the parser rejects malformed text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_histogram_buckets_are_cumulative_and_in_seconds() -> None:
    metrics = Metrics(window=2)
    for value in (150.0, 400.0, 2500.0):
        metrics.turn("completed", {"first_audio": value})
    metrics.turn("cancelled", {"first_audio": 5.0})  # cancelled turns are counted, not timed
    metrics.error("rate_limited", 3)
    export = PrometheusExport(metrics, lambda: {"sessions_max": 4})
    got = samples(export.render().decode())
    bucket = "sos_voice_turn_latency_seconds_bucket"
    first = ("milestone", "first_audio")
    assert got[(bucket, (("le", "0.1"), first))] == 0
    assert got[(bucket, (("le", "0.2"), first))] == 1
    assert got[(bucket, (("le", "0.5"), first))] == 2
    assert got[(bucket, (("le", "3.0"), first))] == 3
    assert got[(bucket, (("le", "+Inf"), first))] == 3
    assert got[("sos_voice_turn_latency_seconds_count", (first,))] == 3
    assert got[("sos_voice_turn_latency_seconds_sum", (first,))] == pytest.approx(3.05)
    # The window (2 turns) gives the recent quantiles, the histogram keeps everything.
    recent = "sos_voice_turn_latency_recent_seconds"
    assert got[(recent, (first, ("quantile", "1")))] == pytest.approx(2.5)
    assert got[(recent, (first, ("quantile", "0.5")))] == pytest.approx(0.4)
    assert got[("sos_voice_turns_total", (("status", "completed"),))] == 3
    assert got[("sos_voice_turns_total", (("status", "cancelled"),))] == 1
    assert got[("sos_voice_errors_total", (("code", "rate_limited"),))] == 3
    assert got[("sos_voice_sessions_max", ())] == 4


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.headers["Content-Type"], reply.read()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_a_real_turn_shows_in_both_formats(real_server: Server) -> None:
    result: dict[str, Any] = await typed_client(real_server, "What causes a tsunami?")
    assert result["response"]["status"] == "completed"
    kind, body = await asyncio.to_thread(_get, real_server.http_url + "metrics")
    assert kind.startswith("text/plain; version=0.0.4")
    got = samples(body.decode())
    assert got[("sos_voice_sessions_opened_total", ())] == 1
    assert got[("sos_voice_turns_total", (("status", "completed"),))] == 1
    assert got[("sos_voice_sessions_max", ())] == real_server.settings.max_sessions
    done = ("milestone", "done")
    assert got[("sos_voice_turn_latency_seconds_count", (done,))] == 1
    assert got[("sos_voice_turn_latency_seconds_sum", (done,))] > 0
    kind, body = await asyncio.to_thread(_get, real_server.http_url + "metrics.json")
    snapshot = json.loads(body)
    assert kind == "application/json" and snapshot["turns"]["completed"] == 1
    assert snapshot["latency_ms"]["done"]["n"] == 1
    assert snapshot["sessions"]["max"] == real_server.settings.max_sessions
