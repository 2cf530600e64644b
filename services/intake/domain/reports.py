"""The compliance report for an organisation's owners: the month range and its rules, the
store's figures put together per month (with zeros for quiet months), and the CSV. Pure.

Every figure is about the requests *received* in a month (UTC), the month's cohort: how
many, of which type, channel and regulation; how many were closed, how fast (median and
90th percentile, in days), how many on time; how many are open and overdue as of now; how
many were extended. Retention runs are not requests and are left out.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from services.intake.domain.callers import Refused
from shared import lifecycle

MAX_MONTHS = 24
MONTH_PATTERN = "^[0-9]{4}-(0[1-9]|1[0-2])$"
FIRST_YEAR, LAST_YEAR = 1970, 9998
# A request is closed once its deadline is met in the lifecycle's sense (data out of reach,
# export ready, or the job ended); the first event that moved it there is when.
CLOSED = lifecycle.DONE_FOR_DEADLINE
CLOSING_EVENTS = tuple(
    t for t, m in lifecycle.PROGRESS.items() if m.to is None or m.to in lifecycle.DONE_FOR_DEADLINE
)
# Always present in the breakdowns (with 0), so the CSV's columns do not depend on the data;
# other values the jobs table holds are added after these.
KNOWN = {
    "type": ("erasure", "export"),
    "channel": ("http", "kafka", "opendsr"),
    "regulation": ("gdpr", "ccpa", "custom"),
}
DIMENSIONS = tuple(KNOWN)
COUNTS = ("requests", "closed", "on_time", "late", "open", "overdue", "extended")
TIMELINESS = (
    "closed",
    "median_days_to_close",
    "p90_days_to_close",
    "on_time",
    "late",
    "on_time_rate",
    "open",
    "overdue",
    "extended",
)


@dataclass(frozen=True)
class MonthRange:
    first: date  # the first day of the first month
    last: date  # the first day of the last month

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The start of the month after the last (exclusive)."""
        y, m = divmod(self.last.year * 12 + self.last.month, 12)
        return datetime(y, m + 1, 1, tzinfo=UTC)

    def months(self) -> list[str]:
        out, (y, m) = [], (self.first.year, self.first.month)
        while (y, m) <= (self.last.year, self.last.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def _month(value: str, name: str) -> date:
    rule = f"{name}: give a month as YYYY-MM, from {FIRST_YEAR}-01 to {LAST_YEAR}-12 (e.g. 2026-01)"
    if not re.fullmatch(MONTH_PATTERN, value):
        raise Refused(422, f"{rule}; got {value[:20]!r}")
    y, m = int(value[:4]), int(value[5:])
    if not FIRST_YEAR <= y <= LAST_YEAR:
        raise Refused(422, f"{rule}; got {value!r}")
    return date(y, m, 1)


def month_range(first: str | None, last: str | None, today: date) -> MonthRange:
    """`from`..`to`, both months included; by default the twelve months up to this one.
    A bad range is refused (422) naming the rule it breaks."""
    start = _month(first, "from") if first is not None else None
    end = _month(last, "to") if last is not None else today.replace(day=1)
    if start is None:
        y, m = divmod(end.year * 12 + end.month - 1 - (12 - 1), 12)
        start = date(y, m + 1, 1)
    if start > end:
        raise Refused(422, f"from ({start:%Y-%m}) must not be after to ({end:%Y-%m}): from <= to")
    span = (end.year - start.year) * 12 + end.month - start.month + 1
    if span > MAX_MONTHS:
        raise Refused(
            422,
            f"the report covers at most {MAX_MONTHS} months; from {start:%Y-%m} to "
            f"{end:%Y-%m} is {span}: ask for a shorter range",
        )
    return MonthRange(start, end)


@dataclass
class Figures:
    """One month's figures (or the range's, as `month` "total")."""

    month: str
    requests: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_regulation: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    median_days_to_close: float | None = None
    p90_days_to_close: float | None = None
    on_time: int = 0
    late: int = 0
    open: int = 0
    overdue: int = 0
    extended: int = 0

    @property
    def on_time_rate(self) -> float | None:
        """Closed on time, of those whose deadline is settled: closed, or open past it."""
        settled = self.on_time + self.late
        return round(self.on_time / settled, 4) if settled else None

    def breakdown(self, dimension: str) -> dict[str, int]:
        found: dict[str, int] = getattr(self, f"by_{dimension}")
        return found


@dataclass(frozen=True)
class ComplianceReport:
    org_id: str
    range: MonthRange
    generated_at: datetime
    months: list[Figures]
    total: Figures

    def keys(self, dimension: str) -> list[str]:
        """The breakdown's values: the known ones first, then any other the data holds."""
        known = KNOWN[dimension]
        seen = {k for f in (*self.months, self.total) for k in f.breakdown(dimension)}
        return [*known, *sorted(seen - set(known))]


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 86400, 2)


def compile_report(
    org_id: str, rng: MonthRange, rows: list[dict[str, Any]], generated_at: datetime
) -> ComplianceReport:
    """The store's rows (`compliance_figures`): per (month or total) the counts and the close
    times in seconds; and per (month or total, dimension, key) the number of requests."""
    months = {m: Figures(m) for m in rng.months()}
    total = Figures("total")
    for row in rows:
        fig = total if row["month"] is None else months.get(row["month"])
        if fig is None:
            continue  # outside the range: the store does not send any
        if row["dimension"] is not None:
            fig.breakdown(row["dimension"])[row["key"]] = int(row["requests"])
            continue
        for name in COUNTS:
            setattr(fig, name, int(row[name]))
        fig.median_days_to_close = _days(row["median_seconds"])
        fig.p90_days_to_close = _days(row["p90_seconds"])
    report = ComplianceReport(org_id, rng, generated_at, list(months.values()), total)
    for fig in (*report.months, total):
        for dim in DIMENSIONS:
            found = fig.breakdown(dim)
            ordered = {k: found.get(k, 0) for k in report.keys(dim)}
            found.clear()
            found.update(ordered)
    return report


def figures_json(f: Figures) -> dict[str, Any]:
    return {
        "month": f.month,
        "requests": f.requests,
        "by_type": f.by_type,
        "by_channel": f.by_channel,
        "by_regulation": f.by_regulation,
        "closed": f.closed,
        "median_days_to_close": f.median_days_to_close,
        "p90_days_to_close": f.p90_days_to_close,
        "on_time": f.on_time,
        "late": f.late,
        "on_time_rate": f.on_time_rate,
        "open": f.open,
        "overdue": f.overdue,
        "extended": f.extended,
    }


def as_json(report: ComplianceReport) -> dict[str, Any]:
    return {
        "org_id": report.org_id,
        "from": report.range.months()[0],
        "to": report.range.months()[-1],
        "generated_at": report.generated_at.isoformat(),
        "months": [figures_json(f) for f in report.months],
        "total": figures_json(report.total),
    }


def csv_columns(report: ComplianceReport) -> list[str]:
    split = [f"{dim}:{k}" for dim in DIMENSIONS for k in report.keys(dim)]
    return ["month", "requests", *split, *TIMELINESS]


def as_csv(report: ComplianceReport) -> str:
    """One row per month and a last row `total`; an empty cell where there is no figure
    (no request closed: no median)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = csv_columns(report)
    writer.writerow(columns)
    for f in (*report.months, report.total):
        flat = figures_json(f)
        for dim in DIMENSIONS:
            flat.update({f"{dim}:{k}": n for k, n in flat.pop(f"by_{dim}").items()})
        writer.writerow(["" if flat[c] is None else flat[c] for c in columns])
    return out.getvalue()


def file_name(report: ComplianceReport, ext: str) -> str:
    """For Content-Disposition: the org id kept to characters safe in a header."""
    org = re.sub(r"[^A-Za-z0-9._-]", "_", report.org_id)[:80]
    months = report.range.months()
    return f"lethe-compliance-{org}-{months[0]}-{months[-1]}.{ext}"
