"""Retention policies and schedules, decided without I/O: the policy categories and their
defaults, the cron schedule, the jobs a scheduled run becomes and the deadline reminders.

Categories come from the data map: every category some table ages by (`retention_column`),
except `anonymous`, which only public mode deletes. A category's default is the data map's
`days`; an org's policy overrides it (1..3650 days).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from croniter import CroniterBadDateError, CroniterError, croniter

from shared.datamap import DataMap
from shared.events import Actor, Envelope, make_event
from shared.events.notifications import SendEmail
from shared.events.retention import RetentionRequested

ANONYMOUS = "anonymous"
MIN_DAYS, MAX_DAYS = 1, 3650
SCHEDULER = Actor(kind="service", id="scheduler")


def categories(dm: DataMap) -> dict[str, int]:
    """Policy categories and their defaults (days), from the data map."""
    out: dict[str, int] = {}
    for table in dm.retention_tables():
        cat = dm.tables[table].retention
        if cat is not None and cat != ANONYMOUS:
            out[cat] = min(max(dm.retention_categories[cat].days, MIN_DAYS), MAX_DAYS)
    return dict(sorted(out.items()))


def with_overrides(defaults: dict[str, int], overrides: Mapping[str, int]) -> dict[str, int]:
    """An org's policy: the defaults, with its own days for the categories still known."""
    return {**defaults, **{c: d for c, d in overrides.items() if c in defaults}}


# ------------------------------------------------------------------ cron


class CronError(ValueError):
    pass


_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_NUMERIC = re.compile(r"[0-9*/-]+")  # numbers, ranges and steps: wrong only by their values
_BACK = timedelta(days=366 * 4)  # how far `previous` looks (a leap day's schedule fits)
_AHEAD = timedelta(days=367)  # how far `next` looks


def _refusal(expr: str, parts: list[str], exc: CroniterError) -> CronError:
    """Name the field (and the comma-separated part of it) croniter refuses: each part is
    tried alone, every other field `*`."""
    for i, (field, (lo, hi), name) in enumerate(zip(parts, _RANGES, _NAMES, strict=True)):
        for part in field.split(","):
            probe = ["*"] * 5
            probe[i] = part
            if not croniter.is_valid(" ".join(probe)):
                if _NUMERIC.fullmatch(part):
                    return CronError(f"cron {name}: {part!r} outside {lo}..{hi}")
                return CronError(f"cron {name}: {part!r} is not a number, range or */step")
    return CronError(f"cron {expr!r}: {exc}")


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression in UTC: minute hour day-of-month month day-of-week,
    read by croniter (names such as `mon-fri` or `jan`, `L` and `#` too). When both day of
    month and day of week are restricted, either matches (as cron does)."""

    expr: str

    @classmethod
    def parse(cls, expr: str) -> Cron:
        parts = expr.split()
        if len(parts) != 5:
            raise CronError(f"cron {expr!r}: five fields (minute hour day month weekday)")
        try:
            croniter(" ".join(parts))
        except CroniterError as exc:
            raise _refusal(expr, parts, exc) from exc
        return cls(" ".join(parts))

    def previous(self, now: datetime) -> datetime | None:
        """The latest scheduled time at or before `now` (within the last ~4 years)."""
        now = now.replace(second=0, microsecond=0)
        start = now + timedelta(minutes=1)  # croniter's previous is strictly before its start
        try:
            at: datetime = croniter(self.expr, start, max_years_between_matches=5).get_prev(
                datetime
            )
        except CroniterBadDateError:  # never within croniter's horizon
            return None
        return at if at >= now.replace(hour=0, minute=0) - _BACK else None

    def next(self, now: datetime) -> datetime | None:
        """The first scheduled time after `now` (within about a year)."""
        try:
            at: datetime = croniter(self.expr, now, max_years_between_matches=2).get_next(datetime)
        except CroniterBadDateError:
            return None
        return at if at < now.replace(hour=0, minute=0, second=0, microsecond=0) + _AHEAD else None


# ------------------------------------------------------------------ a scheduled run


@dataclass(frozen=True)
class Planned:
    org_id: str
    category: str
    days: int

    def request_id(self, period: datetime) -> str:
        """Names the period: a job is never created twice for it."""
        return f"retention:{self.category}:{period.isoformat()}"

    @property
    def reason(self) -> str:
        return f"retention policy: {self.category} older than {self.days} days"


def plan(
    dm: DataMap,
    org_ids: list[str],
    policies: Mapping[tuple[str, str], int],
    *,
    public_mode: bool,
    public_days: int,
) -> list[Planned]:
    """One job per organisation and category (anonymous: only in public mode); `policies`
    holds each org's own days by (org, category)."""
    defaults = categories(dm)
    out = []
    for org in org_ids:
        for cat, default in defaults.items():
            out.append(Planned(org, cat, policies.get((org, cat), default)))
        if public_mode and dm.retention_tables(ANONYMOUS):
            out.append(Planned(org, ANONYMOUS, public_days))
    return out


def retention_requested(
    p: Planned, period: datetime, job_id: uuid.UUID, trace: dict[str, str]
) -> Envelope:
    """The planned job's event: rows of the category older than its days at the period."""
    cutoff = period - timedelta(days=p.days)
    return make_event(
        RetentionRequested(
            category=p.category, days=p.days, cutoff=cutoff, period=period.isoformat()
        ),
        actor=SCHEDULER,
        job_id=job_id,
        org_id=p.org_id,
        trace=trace,
    )


# ------------------------------------------------------------------ deadline reminders


def reminder_email(row: Mapping[str, Any], now: datetime) -> Envelope:
    """The requester's reminder for a job whose due date (`due`) is near or past; `kind` is
    `deadline_approaching` or `deadline_passed`."""
    context: dict[str, Any] = {
        "job_id": str(row["id"]),
        "job_type": row["type"],
        "due_at": row["due"],
    }
    if row["kind"] == "deadline_approaching":
        context["days_left"] = max(0, (row["due"] - now).days)
    return make_event(
        SendEmail(
            template=row["kind"],
            to=row["requester_email"],
            audience="both",
            context={
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in context.items()
            },
        ),
        actor=SCHEDULER,
        job_id=row["id"],
        org_id=row["org_id"],
        subject_hash=row["subject_hash"],
    )
