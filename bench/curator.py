"""What recording visitors' turns costs, and how fast the curator page is on a busy month.

Usage:
    python bench/curator.py                       # 20,000 turns over 28 days
    python bench/curator.py --turns 100000 --out /tmp/curator.json

A real SQLite file in a temporary folder gets ``--turns`` rows spread over the retention
(a busy exhibit asks a few hundred questions a day). Measured:

* ``record()``: the call a session makes on the event loop per turn (it only queues the row);
* the writer thread's throughput (rows committed per second, batches of up to 200);
* the page's work per request: ``summarize`` (SQL aggregation) and ``render`` (HTML + SVG) for
  the 24-hour, 7-day and 28-day views, and the CSV export of the whole retention.

Writes bench/results/curator.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import load_average, machine_info, summary, table, write_json
from curator.config import CuratorConfig
from curator.page import render
from curator.report import summarize
from curator.store import OUTCOMES, CuratorStore, TurnRecord

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "What causes a tsunami?",
    "Tell me about hurricanes.",
    "How fast is the Arctic sea ice melting?",
    "Why is the ocean getting more acidic?",
    "What is this?",
    "Show me Mars.",
    "What is your favourite pizza topping?",
]
DATASETS = ["Tsunami Locations", "Hurricane Season 2020", "Sea Ice Age", "Acidifying Oceans"]
DAY = 86400.0


def fake_turns(n: int, days: int, seed: int = 0) -> list[TurnRecord]:
    rng = random.Random(seed)
    now = time.time()
    rows = []
    for i in range(n):
        outcome = rng.choices(OUTCOMES, weights=[60, 8, 8, 8, 8, 4, 1])[0]
        title = rng.choice(DATASETS) if outcome == "answered" else None
        rows.append(
            TurnRecord(
                at=now - rng.random() * days * DAY,
                session_id=f"sess_{i // 3}",
                source="server",
                input=rng.choice(["spoken", "typed"]),
                question=rng.choice(QUESTIONS) if outcome != "misheard" else "",
                outcome=outcome,
                answer="An answer of a few sentences about the dataset. " * 4,
                link_url=f"https://sos.noaa.gov/catalog/datasets/{title}/" if title else None,
                link_title=title,
                first_audio_ms=max(200.0, rng.gauss(1300, 250)),
                done_ms=rng.gauss(4000, 800),
            )
        )
    return rows


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curator.json")
    args = parser.parse_args(argv)
    info = machine_info()
    rows = fake_turns(args.turns, args.days)
    with tempfile.TemporaryDirectory(prefix="sos-curator-bench-") as tmp:
        config = CuratorConfig(
            db_path=str(Path(tmp) / "c.sqlite3"),
            retention_days=args.days,
            queue_size=args.turns,  # measure the writer, not the drop policy
        )
        store = CuratorStore.open(config)
        call_us = []
        start = time.perf_counter()
        for row in rows:
            t = time.perf_counter_ns()
            store.record(row)
            call_us.append((time.perf_counter_ns() - t) / 1000.0)
        store.flush()
        write_s = time.perf_counter() - start
        views = {}
        for days in (1, 7, args.days):
            t = time.perf_counter()
            s = summarize(store, time.time() - days * DAY)
            summarize_ms = ms_since(t)
            t = time.perf_counter()
            page = render(s, days=days, retention_days=args.days, csv_href="/x.csv")
            views[f"{days}d"] = {
                "turns": s.total,
                "summarize_ms": round(summarize_ms, 1),
                "render_ms": round(ms_since(t), 1),
                "page_kib": round(len(page.encode()) / 1024, 1),
            }
        t = time.perf_counter()
        csv_text = store.csv_text()
        csv_ms = ms_since(t)
        store.close()
        db_mib = Path(config.db_path).stat().st_size / 2**20
    result = {
        "machine": info,
        "load_average_end": load_average(),
        "turns": args.turns,
        "record_call_us": summary(call_us, 2),
        "writer_rows_per_s": round(args.turns / write_s),
        "dropped": store.dropped,
        "views": views,
        "csv_ms": round(csv_ms, 1),
        "csv_mib": round(len(csv_text.encode()) / 2**20, 2),
        "db_mib": round(db_mib, 2),
    }
    path = write_json(args.out, result)
    rc = result["record_call_us"]
    print(
        f"{args.turns} turns over {args.days} days; load {info['load_average_start']} -> "
        f"{result['load_average_end']}; database {result['db_mib']} MiB"
    )
    print(
        table(
            ["measure", "value"],
            [
                [
                    "record() per call, p50 / p95 / max (µs)",
                    f"{rc['p50']} / {rc['p95']} / {rc['max']}",
                ],
                ["writer throughput (rows/s)", result["writer_rows_per_s"]],
                *[
                    [
                        f"{k} view: summarize / render (ms), turns",
                        f"{v['summarize_ms']} / {v['render_ms']}, {v['turns']}",
                    ]
                    for k, v in views.items()
                ],
                [
                    "CSV export, whole retention (ms, MiB)",
                    f"{result['csv_ms']}, {result['csv_mib']}",
                ],
            ],
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
