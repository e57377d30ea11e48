"""Small server-rendered SVG charts for the curator page.

Why our own and not a charting library: the page must work offline inside a kiosk network
with a strict Content-Security-Policy (no CDN, no script), and the four charts it needs —
stacked bars per day, horizontal bars, a scatter with a median line, a donut — are a few
dozen lines of SVG each. Hovering any mark shows its numbers (SVG ``<title>``), with no
JavaScript at all. Every string that came from a visitor is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["donut", "hbars", "nice_scale", "scatter_with_lines", "stacked_bars"]

FONT = 'font-family="system-ui, sans-serif"'
AXIS = "#8a94a6"
GRID = "#e6e9ef"
INK = "#1f2a3c"


def nice_scale(value: float, ticks: int = 5) -> tuple[float, float]:
    """(axis maximum, tick step) for data up to ``value``: the step a round 1, 2 or 5 × 10^n
    (whole numbers at least), at most ``ticks`` steps, the maximum a whole number of steps."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / ticks
    exp = 10 ** math.floor(math.log10(raw))
    step = next((m * exp for m in (1, 2, 5, 10) if raw <= m * exp), 10 * exp)
    step = max(step, 1.0) if value >= 1 else step
    return step * math.ceil(value / step - 1e-9), step


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" {FONT} xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _y_grid(
    x0: float, x1: float, y0: float, y1: float, scale: tuple[float, float], unit: str
) -> list[str]:
    top, step = scale
    out = []
    for i in range(round(top / step) + 1):
        value = step * i
        y = y1 - (y1 - y0) * value / top
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" font-size="11" fill="{AXIS}" '
            f'text-anchor="end">{_fmt(value)}{unit}</text>'
        )
    return out


def stacked_bars(
    days: Sequence[tuple[str, str, dict[str, int]]],
    series: Sequence[tuple[str, str, str]],
    *,
    width: int = 720,
    height: int = 240,
) -> str:
    """Bars per (axis label, tooltip name, counts) stacked by series; ``series`` is (key,
    label, colour), bottom first."""
    left, right, top, bottom = 44, 10, 12, 28
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    highest = max((sum(c.get(k, 0) for k, _, _ in series) for _, _, c in days), default=0)
    scale = nice_scale(highest)
    top_value = scale[0]
    body = _y_grid(x0, x1, y0, y1, scale, "")
    n = max(1, len(days))
    slot = (x1 - x0) / n
    bar = max(2.0, min(36.0, slot * 0.7))
    label_every = max(1, math.ceil(n / 10))
    for i, (tick, day, counts) in enumerate(days):
        cx = x0 + slot * (i + 0.5)
        y = y1
        total = sum(counts.get(k, 0) for k, _, _ in series)
        for key, label, colour in series:
            n_key = counts.get(key, 0)
            if not n_key:
                continue
            h = (y1 - y0) * n_key / top_value
            y -= h
            body.append(
                f'<rect x="{cx - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(day)}: {n_key} {escape(label)} '
                f"(of {total})</title></rect>"
            )
        if i % label_every == 0 or i == n - 1:
            body.append(
                f'<text x="{cx:.1f}" y="{height - 10}" font-size="11" fill="{AXIS}" '
                f'text-anchor="middle">{escape(tick)}</text>'
            )
    body.append(f'<line x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}" stroke="{AXIS}"/>')
    return _svg(width, height, "questions over time by outcome", body)


def hbars(
    items: Sequence[tuple[str, int, str | None]],
    *,
    colour: str,
    width: int = 460,
    row: int = 26,
    empty: str = "nothing yet",
) -> str:
    """Horizontal bars, one per (label, value, link or None), largest first as given."""
    if not items:
        return f'<p class="empty">{escape(empty)}</p>'
    label_w, value_w = 230, 40
    height = row * len(items) + 4
    top_value = max(v for _, v, _ in items)
    body: list[str] = []
    for i, (label, value, href) in enumerate(items):
        y = i * row + 2
        w = max(2.0, (width - label_w - value_w) * value / top_value)
        short = label if len(label) <= 30 else label[:28].rstrip() + "…"
        text = (
            f'<text x="{label_w - 8}" y="{y + row / 2 + 4:.1f}" font-size="12.5" fill="{INK}" '
            f'text-anchor="end">{escape(short)}<title>{escape(label)}</title></text>'
        )
        if href:
            text = f'<a href="{escape(href)}" target="_blank" rel="noopener">{text}</a>'
        body.append(text)
        body.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="3" '
            f'fill="{colour}"><title>{escape(label)}: {value}</title></rect>'
        )
        body.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + row / 2 + 4:.1f}" font-size="12" '
            f'fill="{AXIS}">{value}</text>'
        )
    return _svg(width, height, "ranking", body)


def scatter_with_lines(
    points: Sequence[tuple[float, float]],
    lines: Sequence[tuple[str, str, Sequence[tuple[float, float]]]],
    *,
    since: float,
    until: float,
    tick_labels: Sequence[tuple[float, str]],
    colour: str,
    width: int = 720,
    height: int = 240,
    empty: str = "no answered turns yet",
) -> str:
    """Points (t, ms) over time, with named lines (label, colour, [(t, ms)]) over them."""
    if not points:
        return f'<p class="empty">{escape(empty)}</p>'
    left, right, top, bottom = 56, 10, 12, 28
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    highest = max(ms for _, ms in points)
    scale = nice_scale(highest)
    top_value = scale[0]
    span = max(1.0, until - since)

    def xy(t: float, ms: float) -> tuple[float, float]:
        return x0 + (x1 - x0) * (t - since) / span, y1 - (y1 - y0) * min(ms, top_value) / top_value

    body = _y_grid(x0, x1, y0, y1, scale, " ms" if top_value < 10000 else "")
    for i, (t, label) in enumerate(tick_labels):
        x, _ = xy(t, 0)
        anchor = "start" if i == 0 else "end" if i == len(tick_labels) - 1 else "middle"
        body.append(
            f'<text x="{x:.1f}" y="{height - 10}" font-size="11" fill="{AXIS}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    for t, ms in points:
        x, y = xy(t, ms)
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" fill-opacity="0.45">'
            f"<title>{ms:,.0f} ms</title></circle>"
        )
    for label, line_colour, values in lines:
        if not values:
            continue
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, ms) for t, ms in values))
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{line_colour}" stroke-width="2.5" '
            f'stroke-linejoin="round"><title>{escape(label)}</title></polyline>'
        )
        for t, ms in values:
            x, y = xy(t, ms)
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{line_colour}">'
                f"<title>{escape(label)}: {ms:,.0f} ms</title></circle>"
            )
    body.append(f'<line x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}" stroke="{AXIS}"/>')
    return _svg(width, height, "latency over time", body)


def donut(parts: Sequence[tuple[str, int, str]], *, size: int = 180, centre: str = "") -> str:
    """A ring split into (label, value, colour) parts, ``centre`` text in the hole."""
    total = sum(v for _, v, _ in parts)
    r, stroke = size / 2 - 16, 26
    c = size / 2
    body = [
        f'<circle cx="{c}" cy="{c}" r="{r}" fill="none" stroke="{GRID}" stroke-width="{stroke}"/>'
    ]
    circumference = 2 * math.pi * r
    offset = 0.0
    for label, value, colour in parts:
        if not value or not total:
            continue
        length = circumference * value / total
        body.append(
            f'<circle cx="{c}" cy="{c}" r="{r}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke}" stroke-dasharray="{length:.2f} {circumference:.2f}" '
            f'stroke-dashoffset="{-offset:.2f}" transform="rotate(-90 {c} {c})">'
            f"<title>{escape(label)}: {value} ({100 * value / total:.0f}%)</title></circle>"
        )
        offset += length
    body.append(
        f'<text x="{c}" y="{c + 8}" font-size="26" font-weight="600" fill="{INK}" '
        f'text-anchor="middle">{escape(centre)}</text>'
    )
    return _svg(size, size, "outcomes", body)
