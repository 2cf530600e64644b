"""Retention policies (per organisation and category) and the jobs a scheduled run becomes.

Categories come from the data map: every category some table ages by (`retention_column`),
except `anonymous`, which only public mode deletes. A category's default is the data map's
`days`; an org's policy overrides it (1..3650 days).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

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


def _field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_s = part.partition("/")
        try:
            step = int(step_s) if step_s else 1
            if base == "*":
                a, b = lo, hi
            elif "-" in base:
                a, b = (int(x) for x in base.split("-", 1))
            else:
                a = b = int(base)
        except ValueError as exc:
            raise CronError(f"cron {name}: {part!r} is not a number, range or */step") from exc
        top = 7 if name == "day of week" else hi  # 7 is Sunday too
        if not (lo <= a <= b <= top) or step < 1:
            raise CronError(f"cron {name}: {part!r} outside {lo}..{hi}")
        values.update(v % 7 if top == 7 else v for v in range(a, b + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression in UTC: minute hour day-of-month month day-of-week."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        parts = expr.split()
        if len(parts) != 5:
            raise CronError(f"cron {expr!r}: five fields (minute hour day month weekday)")
        f = [_field(p, lo, hi, n) for p, (lo, hi), n in zip(parts, _RANGES, _NAMES, strict=True)]
        return cls(f[0], f[1], f[2], f[3], f[4], parts[2] == "*", parts[4] == "*")

    def _day_matches(self, d: datetime) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow  # both restricted: either matches (as cron does)

    def previous(self, now: datetime) -> datetime | None:
        """The latest scheduled time at or before `now` (within the last ~4 years)."""
        now = now.replace(second=0, microsecond=0)
        day = now.replace(hour=0, minute=0)
        for _ in range(366 * 4 + 1):
            if self._day_matches(day):
                for h in sorted(self.hours, reverse=True):
                    for m in sorted(self.minutes, reverse=True):
                        at = day.replace(hour=h, minute=m)
                        if at <= now:
                            return at
            day -= timedelta(days=1)
        return None


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
