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

__all__ = ["DayLatency", "Summary", "summarize"]

LIST_ROWS = 25
SHORT_LIST_ROWS = 8  # the barge-in list sits beside a chart
TOP_ROWS = 10
MAX_LATENCY_POINTS = 3000
UNANSWERED = ("no_link", "sorry", "misheard", "failed")


@dataclass(frozen=True, slots=True)
class DayLatency:
    """Time to first audio on one local day: median, 95th percentile, turns measured."""

    day: str
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
    per_day: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    datasets: list[tuple[str, str, int]] = field(default_factory=list)  # title, url, turns
    questions: list[tuple[str, int]] = field(default_factory=list)  # most asked
    latency_points: list[tuple[float, float]] = field(default_factory=list)  # (at, ms)
    latency_days: list[DayLatency] = field(default_factory=list)
    recent: list[TurnRecord] = field(default_factory=list)
    unanswered: list[TurnRecord] = field(default_factory=list)
    barge_ins: list[TurnRecord] = field(default_factory=list)


def _days(since: float, until: float) -> list[str]:
    """Every local calendar day from ``since`` to ``until``, so empty days show as gaps."""
    days: list[str] = []
    t = since
    while t <= until + 1:
        day = time.strftime("%Y-%m-%d", time.localtime(t))
        if not days or days[-1] != day:
            days.append(day)
        t += 3600.0
    last = time.strftime("%Y-%m-%d", time.localtime(until))
    if days[-1] != last:
        days.append(last)
    return days


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(store: CuratorStore, since: float, until: float | None = None) -> Summary:
    """Everything the page needs about the turns from ``since`` on (blocking)."""
    until = time.time() if until is None else until
    cols = ", ".join(COLUMNS)
    day = "date(at, 'unixepoch', 'localtime')"
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
            d: dict.fromkeys(OUTCOMES, 0) for d in _days(since, until)
        }
        for d, outcome, n in db.execute(
            f"SELECT {day}, outcome, COUNT(*) FROM turns WHERE at >= ? GROUP BY 1, 2", (since,)
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
        per_day_ms: dict[str, list[float]] = {}
        for d, ms in db.execute(
            f"SELECT {day}, first_audio_ms FROM turns WHERE at >= ? AND first_audio_ms IS NOT NULL",
            (since,),
        ):
            per_day_ms.setdefault(d, []).append(ms)

        def rows(where: str, args: tuple[object, ...], limit: int) -> list[TurnRecord]:
            sql = (
                f"SELECT {cols} FROM turns WHERE at >= ? {where} ORDER BY at DESC, id DESC LIMIT ?"
            )
            return [TurnRecord(*r) for r in db.execute(sql, (since, *args, limit))]

        marks = ", ".join("?" * len(UNANSWERED))
        recent = rows("", (), LIST_ROWS)
        unanswered = rows(f"AND outcome IN ({marks})", UNANSWERED, LIST_ROWS)
        barge_ins = rows("AND outcome = 'barge_in'", (), SHORT_LIST_ROWS)
    latency_days = [
        DayLatency(d, _percentile(sorted(v), 50), _percentile(sorted(v), 95), len(v))
        for d, v in sorted(per_day_ms.items())
    ]
    return Summary(
        since=since,
        until=until,
        total=total,
        sessions=sessions,
        by_outcome=by_outcome,
        per_day=sorted(counts.items()),
        datasets=datasets,
        questions=questions,
        latency_points=points,
        latency_days=latency_days,
        recent=recent,
        unanswered=unanswered,
        barge_ins=barge_ins,
    )
