"""Retention policies (per organisation and category) and the jobs a scheduled run becomes.

Categories come from the data map: every category some table ages by (`retention_column`),
except `anonymous`, which only public mode deletes. A category's default is the data map's
`days`; an org's policy overrides it (1..3650 days).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from croniter import CroniterBadDateError, CroniterError, croniter

from services.intake import store
from shared.datamap import DataMap
from shared.events import Actor, make_event
from shared.events.retention import RetentionPolicyChanged, RetentionRequested
from shared.events.topics import AUDIT, JOBS_ERASE

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


async def get_policy(pool: asyncpg.Pool, dm: DataMap, org_id: str) -> dict[str, int]:
    policy = categories(dm)
    rows = await pool.fetch(
        "SELECT category, days FROM lethe.retention_policies WHERE org_id = $1", org_id
    )
    policy.update({r["category"]: r["days"] for r in rows if r["category"] in policy})
    return policy


async def set_policy(
    pool: asyncpg.Pool,
    dm: DataMap,
    org_id: str,
    changes: dict[str, int],
    actor: Actor,
) -> tuple[dict[str, int], dict[str, int]]:
    """Apply the changes (categories checked by the caller); audited with old and new values
    in the same transaction (outbox). Returns (old, new)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM lethe.organisations WHERE id = $1 FOR UPDATE", org_id)
        rows = await conn.fetch(
            "SELECT category, days FROM lethe.retention_policies WHERE org_id = $1", org_id
        )
        old = categories(dm)
        old.update({r["category"]: r["days"] for r in rows if r["category"] in old})
        new = {**old, **changes}
        await conn.execute(
            "INSERT INTO lethe.retention_policies (org_id, category, days, updated_by) "
            "SELECT $1, c, d, $4 FROM unnest($2::text[], $3::int[]) AS x(c, d) "
            "ON CONFLICT (org_id, category) DO UPDATE SET days = EXCLUDED.days, "
            "updated_at = now(), updated_by = EXCLUDED.updated_by",
            org_id,
            list(changes),
            list(changes.values()),
            f"{actor.kind}:{actor.id}",
        )
        if new != old:
            env = make_event(RetentionPolicyChanged(old=old, new=new), actor=actor, org_id=org_id)
            await store.add_outbox(conn, AUDIT, env)
    return old, new


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


async def plan_run(
    conn: asyncpg.Connection,
    dm: DataMap,
    *,
    public_mode: bool,
    public_days: int,
    orgs: list[str] | None = None,
) -> list[Planned]:
    """One job per organisation and category (anonymous: only in public mode)."""
    defaults = categories(dm)
    org_ids = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM lethe.organisations WHERE $1::text[] IS NULL OR id = ANY($1) "
            "ORDER BY id",
            orgs,
        )
    ]
    policies: dict[tuple[str, str], int] = {
        (r[0], r[1]): r[2]
        for r in await conn.fetch(
            "SELECT org_id, category, days FROM lethe.retention_policies "
            "WHERE org_id = ANY($1::text[])",
            org_ids,
        )
    }
    out = []
    for org in org_ids:
        for cat, default in defaults.items():
            out.append(Planned(org, cat, policies.get((org, cat), default)))
        if public_mode and dm.retention_tables(ANONYMOUS):
            out.append(Planned(org, ANONYMOUS, public_days))
    return out


async def record_jobs(
    conn: asyncpg.Connection, period: datetime, planned: list[Planned], trace: dict[str, str]
) -> int:
    """Insert the period's jobs and their RetentionRequested (outbox), in the caller's
    transaction. `request_id` names the period: a job is never created twice for it."""
    n = 0
    for p in planned:
        job_id = uuid.uuid4()
        cutoff = period - timedelta(days=p.days)
        env = make_event(
            RetentionRequested(
                category=p.category, days=p.days, cutoff=cutoff, period=period.isoformat()
            ),
            actor=SCHEDULER,
            job_id=job_id,
            org_id=p.org_id,
            trace=trace,
        )
        created = await conn.fetchval(
            "INSERT INTO lethe.jobs (id, org_id, type, scope, status, request_id, channel, actor, "
            "regulation, received_at, due_at, recovery_window_days, reason) "
            "VALUES ($1, $2, 'retention', 'category', 'pending', $3, 'schedule', $4, "
            "'retention', $5::timestamptz, $5::timestamptz + interval '1 day', 0, $6) "
            "ON CONFLICT (org_id, request_id) DO NOTHING RETURNING id",
            job_id,
            p.org_id,
            f"retention:{p.category}:{period.isoformat()}",
            f"{SCHEDULER.kind}:{SCHEDULER.id}",
            period,
            f"retention policy: {p.category} older than {p.days} days",
        )
        if created is None:
            continue
        await store.add_outbox(conn, JOBS_ERASE, env)
        await store.record_event(conn, env)
        n += 1
    return n
