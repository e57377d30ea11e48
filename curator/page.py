"""The curator page: one server-rendered HTML document with inline SVG charts, no script.

The staff open it in any browser on the exhibit network. Everything is in the one response
(its stylesheet is inline and allowed by hash in the Content-Security-Policy), so the page
needs nothing from the internet and nothing else from the server; the CSV link is the only
other resource.
"""

from __future__ import annotations

import base64
import hashlib
import time
from html import escape

from curator.charts import donut, hbars, scatter_with_lines, stacked_bars
from curator.report import Summary
from curator.store import TurnRecord

__all__ = ["CSP", "OUTCOME_STYLE", "PERIODS", "render"]

# outcome -> (label, colour), in the order they stack and are listed.
OUTCOME_STYLE: dict[str, tuple[str, str]] = {
    "answered": ("answered with a dataset", "#2a9d8f"),
    "no_link": ("answered, no dataset", "#e9c46a"),
    "sorry": ("could not answer", "#f4a261"),
    "misheard": ("misheard", "#9b5de5"),
    "barge_in": ("interrupted (barge-in)", "#457b9d"),
    "cancelled": ("cancelled", "#adb5bd"),
    "failed": ("failed", "#e63946"),
}
PERIODS = ((1, "24 hours"), (7, "7 days"), (28, "28 days"))
TURN_DOT, MEDIAN, P95 = "#5fa8d3", "#0b3d5c", "#e76f51"

CSS = """
:root { color-scheme: light; --ink: #1f2a3c; --muted: #6b7588; --line: #e6e9ef; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: #f4f6fa; }
header { background: #0b3d5c; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0; font-size: 22px; font-weight: 650; }
header p { margin: 4px 0 0; color: #c8d9e6; font-size: 13px; }
nav { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-top: 12px; }
nav a { color: #fff; text-decoration: none; padding: 4px 12px; border-radius: 14px;
  border: 1px solid #4f7d99; font-size: 13px; }
nav a.on { background: #fff; color: #0b3d5c; font-weight: 600; }
nav a.csv { margin-left: auto; border-color: #fff; }
main { padding: 20px 28px 40px; max-width: 1200px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.kpi { background: #fff; border-radius: 10px; padding: 12px 14px; border: 1px solid var(--line); }
.kpi b { display: block; font-size: 26px; font-weight: 650; }
.kpi span { color: var(--muted); font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px;
  margin-top: 16px; }
section { background: #fff; border-radius: 10px; padding: 14px 16px; border: 1px solid var(--line);
  margin-top: 16px; min-width: 0; }
.grid section { margin-top: 0; }
h2 { font-size: 16px; margin: 0 0 10px; font-weight: 650; }
h2 small { color: var(--muted); font-weight: 400; font-size: 13px; margin-left: 6px; }
.chart { width: 100%; height: auto; display: block; }
.ring { display: flex; gap: 18px; align-items: center; }
.ring > svg { width: 170px; flex: none; }
.legend { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.legend.row { display: flex; flex-wrap: wrap; gap: 4px 16px; margin-top: 6px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.legend i { width: 11px; height: 11px; border-radius: 3px; display: inline-block; }
.legend .n { color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-size: 13.5px; }
th { text-align: left; color: var(--muted); font-weight: 500; border-bottom: 1px solid var(--line);
  padding: 4px 8px 6px 0; }
td { padding: 6px 8px 6px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
td.t { white-space: nowrap; color: var(--muted); width: 1%; }
td.q { font-weight: 500; }
td.a { color: var(--muted); max-width: 420px; }
.tag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; color: #fff;
  white-space: nowrap; }
.empty { color: var(--muted); font-style: italic; margin: 6px 0; }
a { color: #0b6e99; }
footer { color: var(--muted); font-size: 12px; margin-top: 22px; }
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Tags are coloured with presentation attributes in SVG, so the table's tags are tiny SVGs too:
# an inline style="" would need 'unsafe-inline'.
_DOT = (
    '<svg width="11" height="11" aria-hidden="true">'
    '<rect width="11" height="11" rx="3" fill="{c}"/></svg>'
)


def _when(at: float) -> str:
    return time.strftime("%b %d, %H:%M", time.localtime(at))


def _tag(outcome: str) -> str:
    label, colour = OUTCOME_STYLE.get(outcome, (outcome, "#888"))
    return f'<span class="legend"><span>{_DOT.format(c=colour)} {escape(label)}</span></span>'


def _legend(counts: dict[str, int] | None, row: bool) -> str:
    items = []
    for key, (label, colour) in OUTCOME_STYLE.items():
        n = "" if counts is None else f' <span class="n">{counts.get(key, 0)}</span>'
        items.append(f"<li>{_DOT.format(c=colour)}{escape(label)}{n}</li>")
    return f'<ul class="legend{" row" if row else ""}">{"".join(items)}</ul>'


def _table(rows: list[TurnRecord], empty: str, *, answer: bool) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "<tr><th>When</th><th>Visitor asked</th><th>Outcome</th>"
    head += "<th>Answer</th></tr>" if answer else "<th>Dataset</th></tr>"
    body = []
    for r in rows:
        question = (
            escape(r.question) if r.question else '<span class="empty">(no words heard)</span>'
        )
        if r.input == "typed" and r.question:
            question += ' <span class="n">⌨</span>'
        if answer:
            text = r.answer if len(r.answer) <= 160 else r.answer[:158] + "…"
            last = f'<td class="a">{escape(text)}</td>'
        elif r.link_url:
            title = escape(r.link_title or r.link_url)
            href = escape(r.link_url)
            last = f'<td><a href="{href}" target="_blank" rel="noopener">{title}</a></td>'
        else:
            last = "<td></td>"
        body.append(
            f'<tr><td class="t">{_when(r.at)}</td><td class="q">{question}</td>'
            f"<td>{_tag(r.outcome)}</td>{last}</tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _ticks(s: Summary) -> list[tuple[float, str]]:
    span = max(1.0, s.until - s.since)
    fmt = "%H:%M" if span <= 2 * 86400 else "%b %d"
    return [
        (s.since + span * i / 5, time.strftime(fmt, time.localtime(s.since + span * i / 5)))
        for i in range(6)
    ]


def render(s: Summary, *, days: int, retention_days: int, csv_href: str) -> str:
    """The whole page for the turns in ``s`` (the last ``days`` days)."""
    answered = s.by_outcome.get("answered", 0)
    unanswered = sum(s.by_outcome.get(k, 0) for k in ("no_link", "sorry", "misheard", "failed"))
    medians = sorted(ms for _, ms in s.latency_points)
    median = f"{medians[len(medians) // 2] / 1000:.1f} s" if medians else "–"
    share = f"{100 * answered / s.total:.0f}%" if s.total else "–"
    kpis = [
        (f"{s.total:,}", "questions"),
        (f"{s.sessions:,}", "conversations"),
        (share, "sent to a dataset"),
        (f"{unanswered:,}", "not answered or misheard"),
        (f"{s.by_outcome.get('barge_in', 0):,}", "interrupted by the visitor"),
        (median, "median time to first word"),
    ]
    series = [(k, label, colour) for k, (label, colour) in OUTCOME_STYLE.items()]
    if s.hourly:
        bars = [(b[11:13] + "h", b + ":00", c) for b, c in s.per_bucket]
    else:
        bars = [(b[5:], b, c) for b, c in s.per_bucket]
    per_bucket = stacked_bars(bars, series)
    ring = donut(
        [(OUTCOME_STYLE[k][0], s.by_outcome.get(k, 0), OUTCOME_STYLE[k][1]) for k in OUTCOME_STYLE],
        centre=f"{s.total:,}",
    )
    datasets = hbars(
        [(title, n, url) for title, url, n in s.datasets],
        colour="#2a9d8f",
        empty="no visitor has been sent to a dataset yet",
    )
    questions = hbars(
        [(q, n, None) for q, n in s.questions], colour="#0b6e99", empty="no questions yet"
    )
    per = "hourly" if s.hourly else "daily"
    latency = scatter_with_lines(
        s.latency_points,
        [
            (f"{per} median", MEDIAN, [(b.at, b.p50_ms) for b in s.latency]),
            (f"{per} 95th percentile", P95, [(b.at, b.p95_ms) for b in s.latency]),
        ],
        since=s.since,
        until=s.until,
        tick_labels=_ticks(s),
        colour=TURN_DOT,
    )
    latency_legend = (
        f'<ul class="legend row"><li>{_DOT.format(c=TURN_DOT)}each turn</li>'
        f"<li>{_DOT.format(c=MEDIAN)}{per} median</li>"
        f"<li>{_DOT.format(c=P95)}{per} 95th percentile</li></ul>"
    )
    on = ' class="on"'
    nav = "".join(
        f'<a href="?days={n}"{on if n == days else ""}>{escape(label)}</a>'
        for n, label in PERIODS
        if n <= retention_days
    )
    kpi_html = "".join(
        f'<div class="kpi"><b>{v}</b><span>{escape(k)}</span></div>' for v, k in kpis
    )
    unanswered_table = _table(s.unanswered, "every question got an answer", answer=True)
    period = next((label for n, label in PERIODS if n == days), f"{days} days")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Curator view · sos-voice</title>
<style>{CSS}</style></head>
<body>
<header><h1>What visitors asked</h1>
<p>Science On a Sphere voice assistant · last {escape(period)} · updated {_when(s.until)}</p>
<nav>{nav}<a class="csv" href="{escape(csv_href)}" download>Download CSV</a></nav></header>
<main>
<div class="kpis">{kpi_html}</div>
<section><h2>Questions per {"hour" if s.hourly else "day"} <small>by what became of
them</small></h2>{per_bucket}
{_legend(None, True)}</section>
<div class="grid">
<section><h2>Outcomes</h2><div class="ring">{ring}{_legend(s.by_outcome, False)}</div></section>
<section><h2>Datasets visitors were sent to</h2>{datasets}</section>
</div>
<section><h2>Time to first word <small>from the end of the question to the first
audio</small></h2>{latency}{latency_legend}</section>
<div class="grid">
<section><h2>Most asked</h2>{questions}</section>
<section><h2>Interrupted by the visitor <small>answers cancelled by barge-in</small></h2>
{_table(s.barge_ins, "no answer was interrupted", answer=True)}</section>
</div>
<section><h2>Could not answer or misheard <small>no dataset, an apology, or speech
Whisper rejected</small></h2>{unanswered_table}</section>
<section><h2>Recent questions</h2>{_table(s.recent, "no questions yet", answer=False)}</section>
<footer>Text only, never audio. Turns are kept {retention_days} days, then forgotten.
⌨ = typed rather than spoken.</footer>
</main></body></html>
"""
