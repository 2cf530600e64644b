"""Retention policies (per organisation and category) and the jobs a scheduled run becomes:
the I/O around the decisions of `domain.schedules` (re-exported here), whose SQL is in
`store.schedules`.

Categories come from the data map: every category some table ages by (`retention_column`),
except `anonymous`, which only public mode deletes. A category's default is the data map's
`days`; an org's policy overrides it (1..3650 days).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.intake import store
from services.intake.domain.schedules import (
    ANONYMOUS,
    MAX_DAYS,
    MIN_DAYS,
    SCHEDULER,
    Cron,
    CronError,
    Planned,
    categories,
    plan,
    retention_requested,
    with_overrides,
)
from services.intake.service.uow import UnitOfWork
from shared.datamap import DataMap
from shared.events import Actor, make_event
from shared.events.retention import RetentionPolicyChanged
from shared.events.topics import AUDIT, JOBS_ERASE

__all__ = [
    "ANONYMOUS",
    "MAX_DAYS",
    "MIN_DAYS",
    "SCHEDULER",
    "Cron",
    "CronError",
    "Planned",
    "categories",
    "get_policy",
    "plan_run",
    "record_jobs",
    "set_policy",
]


async def get_policy(pool: asyncpg.Pool, dm: DataMap, org_id: str) -> dict[str, int]:
    return with_overrides(categories(dm), await store.policy_overrides(pool, org_id))


async def set_policy(
    uow: UnitOfWork,
    dm: DataMap,
    org_id: str,
    changes: dict[str, int],
    actor: Actor,
) -> tuple[dict[str, int], dict[str, int]]:
    """Apply the changes (categories checked by the caller) in the open unit of work; audited
    with old and new values in the same transaction (outbox). Returns (old, new)."""
    conn = uow.conn
    await store.lock_org(conn, org_id)
    old = with_overrides(categories(dm), await store.policy_overrides(conn, org_id))
    new = {**old, **changes}
    await store.upsert_policies(conn, org_id, changes, f"{actor.kind}:{actor.id}")
    if new != old:
        env = make_event(RetentionPolicyChanged(old=old, new=new), actor=actor, org_id=org_id)
        await uow.emit(AUDIT, env, timeline=False)
    return old, new


async def plan_run(
    conn: asyncpg.Connection,
    dm: DataMap,
    *,
    public_mode: bool,
    public_days: int,
    orgs: list[str] | None = None,
) -> list[Planned]:
    """One job per organisation and category (anonymous: only in public mode)."""
    org_ids = await store.org_ids(conn, orgs)
    policies = await store.policies_of(conn, org_ids)
    return plan(dm, org_ids, policies, public_mode=public_mode, public_days=public_days)


async def record_jobs(
    conn: asyncpg.Connection, period: datetime, planned: list[Planned], trace: dict[str, str]
) -> int:
    """Insert the period's jobs and their RetentionRequested (outbox), in the caller's
    transaction. `request_id` names the period: a job is never created twice for it."""
    n = 0
    for p in planned:
        job_id = uuid.uuid4()
        env = retention_requested(p, period, job_id, trace)
        created = await store.insert_retention_job(
            conn,
            job_id,
            p.org_id,
            request_id=p.request_id(period),
            actor=f"{SCHEDULER.kind}:{SCHEDULER.id}",
            period=period,
            reason=p.reason,
        )
        if not created:
            continue
        await store.add_outbox(conn, JOBS_ERASE, env)
        await store.record_event(conn, env)
        n += 1
    return n
