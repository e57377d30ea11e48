"""What the curator page shows, computed from the turns database in one read.

Aggregation happens in SQL (per-day counts, top datasets, top questions) so a busy month of
turns never travels into Python whole; only the latency points of answered turns and the
few recent rows of each list do.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from curator.store import COLUMNS, OUTCOMES, CuratorStore, TurnRecord

__all__ = ["BucketLatency", "Summary", "summarize"]

LIST_ROWS = 25
SHORT_LIST_ROWS = 8  # the barge-in list sits beside a chart
TOP_ROWS = 10
MAX_LATENCY_POINTS = 3000
HOURLY_UP_TO_S = 2 * 86400.0
UNANSWERED = ("no_link", "sorry", "misheard", "failed")


@dataclass(frozen=True, slots=True)
class BucketLatency:
    """Time to first audio in one day or hour: median, 95th percentile, turns measured.
    ``at`` is the middle of the bucket (Unix seconds), where the chart puts the point."""

    bucket: str
    at: float
    p50_ms: float
    p95_ms: float
    count: int


@dataclass(frozen=True)
class Summary:
    since: float
    until: float
    total: int = 0
    sessions: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    # Turns per outcome in each local day ("YYYY-MM-DD"), or each hour ("YYYY-MM-DD HH") when
    # ``hourly``: a window of a day or two is read by the hour.
    hourly: bool = False
    per_bucket: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    datasets: list[tuple[str, str, int]] = field(default_factory=list)  # title, url, turns
    questions: list[tuple[str, int]] = field(default_factory=list)  # most asked
    latency_points: list[tuple[float, float]] = field(default_factory=list)  # (at, ms)
    latency: list[BucketLatency] = field(default_factory=list)  # per bucket of per_bucket
    recent: list[TurnRecord] = field(default_factory=list)
    unanswered: list[TurnRecord] = field(default_factory=list)
    barge_ins: list[TurnRecord] = field(default_factory=list)


def _buckets(since: float, until: float, fmt: str) -> list[str]:
    """Every local day or hour (``fmt``) from ``since`` to ``until``: empty ones show as gaps."""
    out: list[str] = []
    t = since
    while t < until + 3600.0:
        name = time.strftime(fmt, time.localtime(min(t, until)))
        if not out or out[-1] != name:
            out.append(name)
        t += 3600.0
    return out


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(store: CuratorStore, since: float, until: float | None = None) -> Summary:
    """Everything the page needs about the turns from ``since`` on (blocking)."""
    until = time.time() if until is None else until
    cols = ", ".join(COLUMNS)
    hourly = until - since <= HOURLY_UP_TO_S
    fmt = "%Y-%m-%d %H" if hourly else "%Y-%m-%d"
    bucket = f"strftime('{fmt}', at, 'unixepoch', 'localtime')"
    with store.reader() as db:
        total, sessions = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT session_id) FROM turns WHERE at >= ?", (since,)
        ).fetchone()
        by_outcome = dict.fromkeys(OUTCOMES, 0)
        for outcome, n in db.execute(
            "SELECT outcome, COUNT(*) FROM turns WHERE at >= ? GROUP BY outcome", (since,)
        ):
            by_outcome[outcome] = n
        counts: dict[str, dict[str, int]] = {
            b: dict.fromkeys(OUTCOMES, 0) for b in _buckets(since, until, fmt)
        }
        for d, outcome, n in db.execute(
            f"SELECT {bucket}, outcome, COUNT(*) FROM turns WHERE at >= ? GROUP BY 1, 2", (since,)
        ):
            counts.setdefault(d, dict.fromkeys(OUTCOMES, 0))[outcome] = n
        datasets = [
            (title or url, url, n)
            for title, url, n in db.execute(
                "SELECT MAX(link_title), link_url, COUNT(*) FROM turns WHERE at >= ? AND "
                "link_url IS NOT NULL GROUP BY link_url ORDER BY 3 DESC, 1 LIMIT ?",
                (since, TOP_ROWS),
            )
        ]
        questions = list(
            db.execute(
                "SELECT MIN(question), COUNT(*) FROM turns WHERE at >= ? AND question != '' "
                "GROUP BY lower(trim(question, ' ?!.')) ORDER BY 2 DESC, 1 LIMIT ?",
                (since, TOP_ROWS),
            )
        )
        points = list(
            db.execute(
                "SELECT at, first_audio_ms FROM turns WHERE at >= ? AND first_audio_ms IS NOT "
                "NULL ORDER BY at DESC LIMIT ?",
                (since, MAX_LATENCY_POINTS),
            )
        )[::-1]
        per_bucket_ms: dict[str, list[float]] = {}
        for b, ms in db.execute(
            f"SELECT {bucket}, first_audio_ms FROM turns "
            "WHERE at >= ? AND first_audio_ms IS NOT NULL",
            (since,),
        ):
            per_bucket_ms.setdefault(b, []).append(ms)

        def rows(where: str, args: tuple[object, ...], limit: int) -> list[TurnRecord]:
            sql = (
                f"SELECT {cols} FROM turns WHERE at >= ? {where} ORDER BY at DESC, id DESC LIMIT ?"
            )
            return [TurnRecord(*r) for r in db.execute(sql, (since, *args, limit))]

        marks = ", ".join("?" * len(UNANSWERED))
        recent = rows("", (), LIST_ROWS)
        unanswered = rows(f"AND outcome IN ({marks})", UNANSWERED, LIST_ROWS)
        barge_ins = rows("AND outcome = 'barge_in'", (), SHORT_LIST_ROWS)
    half = 1800.0 if hourly else 43200.0
    latency = [
        BucketLatency(
            b,
            min(until, max(since, time.mktime(time.strptime(b, fmt)) + half)),
            _percentile(sorted(v), 50),
            _percentile(sorted(v), 95),
            len(v),
        )
        for b, v in sorted(per_bucket_ms.items())
    ]
    return Summary(
        since=since,
        until=until,
        total=total,
        sessions=sessions,
        by_outcome=by_outcome,
        hourly=hourly,
        per_bucket=sorted(counts.items()),
        datasets=datasets,
        questions=questions,
        latency_points=points,
        latency=latency,
        recent=recent,
        unanswered=unanswered,
        barge_ins=barge_ins,
    )
