"""The compliance report's two charts, drawn on the server: the geometry of stacked bars
(requests per month by type) and of a line (on-time rate per month), for `_charts.html` to
write as SVG. No script runs in the page; a data table with the same figures sits beside
each chart and the SVG's <desc> says them in words. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.intake.domain.reports import ComplianceReport

WIDTH, HEIGHT = 520, 260
LEFT, RIGHT, TOP, BOTTOM = 50, 12, 26, 40
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
# Contrast of at least 4.5:1 on white (for the labels beside them as well).
COLOURS = ("#2f5bea", "#1d7a46", "#a15c00", "#7a3fc2", "#c2312b", "#3a4457")
LINE = "#2f5bea"
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def month_label(month: str) -> str:
    """2025-01 -> Jan 2025."""
    y, m = month.split("-")
    return f"{MONTHS[int(m) - 1]} {y}"


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass(frozen=True)
class Label:
    x: float
    month: str
    year: str  # "" but under the first label and where the year changes


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    fill: str
    title: str


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    centre: float
    top: float
    total: str  # written above the bar ("" when too many months)
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str
    text: str  # the value written above it ("" when too many months)


@dataclass(frozen=True)
class Chart:
    """What `_charts.html` draws; `kind` "bars" or "line"."""

    kind: str
    id: str
    title: str
    desc: str
    ticks: list[Tick]
    labels: list[Label]  # under the axis
    legend: list[tuple[str, str]]  # (colour, name)
    bars: list[Bar] = field(default_factory=list)
    lines: list[list[Point]] = field(default_factory=list)  # runs of months with a rate
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    base: int = TOP + PLOT_H


def nice_max(n: int) -> tuple[int, int]:
    """An axis top at or above `n` and its tick step: 1, 2 or 5 times a power of ten, at
    most five steps."""
    if n <= 5:
        return 5 if n > 0 else 1, 1
    for power in range(0, 12):
        for unit in (1, 2, 5):
            step = unit * 10**power
            if math.ceil(n / step) <= 5:
                return math.ceil(n / step) * step, step
    raise ValueError(n)  # pragma: no cover (counts are far below 10**12)


def _slots(months: list[str]) -> tuple[float, list[Label]]:
    """Each month's width; the labels under the axis: at most twelve, the year under the
    first and wherever it changes."""
    slot = PLOT_W / max(1, len(months))
    every = math.ceil(len(months) / 12)
    labels: list[Label] = []
    shown = ""
    for i, m in enumerate(months[::every]):
        year = m[:4] if m[:4] != shown else ""
        shown = m[:4]
        labels.append(Label(LEFT + slot * (i * every + 0.5), MONTHS[int(m[5:]) - 1], year))
    return slot, labels


def requests_chart(report: ComplianceReport, names: dict[str, str]) -> Chart:
    """Stacked bars: each month's requests, one segment per type (`names`: their labels)."""
    months = [f.month for f in report.months]
    slot, labels = _slots(months)
    top, step = nice_max(max((f.requests for f in report.months), default=0))
    scale = PLOT_H / top
    types = report.keys("type")
    colour = {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(types)}
    bars, words = [], []
    for i, f in enumerate(report.months):
        width = min(48.0, slot * 0.6)
        x, y = LEFT + slot * (i + 0.5) - width / 2, float(TOP + PLOT_H)
        segments = []
        for t in types:
            n = f.by_type.get(t, 0)
            if n:
                y -= n * scale
                title = f"{month_label(f.month)}: {n} {names.get(t, t).lower()}"
                segments.append(Segment(y, n * scale, colour[t], title))
        total = str(f.requests) if len(months) <= 12 else ""
        bars.append(Bar(x, width, x + width / 2, y, total, segments))
        split = ", ".join(f"{n} {names.get(t, t).lower()}" for t, n in f.by_type.items() if n)
        words.append(f"{month_label(f.month)}: {f.requests}" + (f" ({split})" if split else ""))
    return Chart(
        kind="bars",
        id="chart-requests",
        title="Requests received per month, by type",
        desc="Stacked bars. " + "; ".join(words) + ".",
        ticks=[Tick(TOP + PLOT_H - v * scale, str(v)) for v in range(0, top + 1, step)],
        labels=labels,
        legend=[(colour[t], names.get(t, t)) for t in types],
        bars=bars,
    )


def on_time_chart(report: ComplianceReport) -> Chart:
    """A line of each month's on-time rate (0-100 %); a month with no settled request has no
    point, and the line breaks there."""
    months = [f.month for f in report.months]
    slot, labels = _slots(months)
    show = len(months) <= 12
    lines: list[list[Point]] = [[]]
    words = []
    for i, f in enumerate(report.months):
        rate = f.on_time_rate
        if rate is None:
            words.append(f"{month_label(f.month)}: no request due yet")
            if lines[-1]:
                lines.append([])
            continue
        pct = f"{rate * 100:.1f} %"
        title = f"{month_label(f.month)}: {pct} on time ({f.on_time} of {f.on_time + f.late})"
        x, y = LEFT + slot * (i + 0.5), TOP + PLOT_H * (1 - rate)
        lines[-1].append(Point(x, y, title, pct if show else ""))
        words.append(title)
    return Chart(
        kind="line",
        id="chart-on-time",
        title="On-time rate per month",
        desc="Line chart, 0 to 100 %. " + "; ".join(words) + ".",
        ticks=[Tick(TOP + PLOT_H * (1 - v / 100), f"{v} %") for v in (0, 25, 50, 75, 100)],
        labels=labels,
        legend=[(LINE, "Closed by the deadline, of requests closed or past it")],
        lines=[run for run in lines if run],
    )
