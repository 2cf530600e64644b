"""Retention policies and the scheduler: policies, scheduled retention jobs and the runs
they became, the scheduler's runs, its leader lock and the deadline reminders it sends."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.store.db import Db
from shared.db import session_lock

# ------------------------------------------------------------------ retention policies


async def policy_overrides(db: Db, org_id: str) -> dict[str, int]:
    """The org's own days by category (categories the data map no longer has included)."""
    rows = await db.fetch(
        "SELECT category, days FROM lethe.retention_policies WHERE org_id = $1", org_id
    )
    return {r["category"]: r["days"] for r in rows}


async def lock_org(conn: asyncpg.Connection, org_id: str) -> None:
    """Serialises policy changes of one org (the audit event's `old` is then exact)."""
    await conn.execute("SELECT 1 FROM lethe.organisations WHERE id = $1 FOR UPDATE", org_id)


async def upsert_policies(
    conn: asyncpg.Connection, org_id: str, changes: dict[str, int], updated_by: str
) -> None:
    await conn.execute(
        "INSERT INTO lethe.retention_policies (org_id, category, days, updated_by) "
        "SELECT $1, c, d, $4 FROM unnest($2::text[], $3::int[]) AS x(c, d) "
        "ON CONFLICT (org_id, category) DO UPDATE SET days = EXCLUDED.days, "
        "updated_at = now(), updated_by = EXCLUDED.updated_by",
        org_id,
        list(changes),
        list(changes.values()),
        updated_by,
    )


async def org_ids(conn: asyncpg.Connection, orgs: list[str] | None) -> list[str]:
    """Every organisation's id (or those of `orgs` that exist), in order."""
    rows = await conn.fetch(
        "SELECT id FROM lethe.organisations WHERE $1::text[] IS NULL OR id = ANY($1) ORDER BY id",
        orgs,
    )
    return [r[0] for r in rows]


async def policies_of(conn: asyncpg.Connection, orgs: list[str]) -> dict[tuple[str, str], int]:
    """The orgs' own days by (org, category)."""
    rows = await conn.fetch(
        "SELECT org_id, category, days FROM lethe.retention_policies "
        "WHERE org_id = ANY($1::text[])",
        orgs,
    )
    return {(r[0], r[1]): r[2] for r in rows}


# ------------------------------------------------------------------ scheduled jobs


async def insert_retention_job(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    org_id: str,
    *,
    request_id: str,
    actor: str,
    period: datetime,
    reason: str,
) -> bool:
    """False when the org has a job of this request id (this period's) already."""
    created = await conn.fetchval(
        "INSERT INTO lethe.jobs (id, org_id, type, scope, status, request_id, channel, actor, "
        "regulation, received_at, due_at, recovery_window_days, reason) "
        "VALUES ($1, $2, 'retention', 'category', 'pending', $3, 'schedule', $4, "
        "'retention', $5::timestamptz, $5::timestamptz + interval '1 day', 0, $6) "
        "ON CONFLICT (org_id, request_id) DO NOTHING RETURNING id",
        job_id,
        org_id,
        request_id,
        actor,
        period,
        reason,
    )
    return created is not None


# ------------------------------------------------------------------ the scheduler's runs


async def try_lead(conn: asyncpg.Connection, lock: int, name: str) -> bool:
    """Takes the session-level leader lock of schedule `name` if free (held until released
    or the connection drops)."""
    held = await session_lock(conn, "SELECT pg_try_advisory_lock($1, hashtext($2))", lock, name)
    return bool(held)


async def unlock_all(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock_all()")  # session locks only


async def has_run(conn: asyncpg.Connection, name: str) -> bool:
    """Whether schedule `name` ever recorded a period (its baseline included)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM lethe.scheduler_runs WHERE name = $1)", name
        )
    )


async def record_run(
    conn: asyncpg.Connection, name: str, period: datetime, ran_by: str, jobs: int
) -> bool:
    """False when the period ran already."""
    won = await conn.fetchval(
        "INSERT INTO lethe.scheduler_runs (name, period, ran_by, jobs) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (name, period) DO NOTHING RETURNING true",
        name,
        period,
        ran_by,
        jobs,
    )
    return bool(won)


# ------------------------------------------------------------------ deadline reminders


async def due_reminders(
    conn: asyncpg.Connection,
    now: datetime,
    soon: datetime,
    done: list[str],
    orgs: list[str] | None,
) -> list[asyncpg.Record]:
    """Jobs with a requester, not `done`, due before `soon` and not yet reminded of their
    kind (`deadline_passed` once due before `now`, else `deadline_approaching`): locked for
    the caller's transaction, 500 at most. Columns: id, org_id, type, subject_hash,
    requester_email, due, kind."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT j.id, j.org_id, j.type, j.subject_hash, j.requester_email, "
        "coalesce(j.extended_due_at, j.due_at) AS due, "
        "CASE WHEN coalesce(j.extended_due_at, j.due_at) < $1 THEN 'deadline_passed' "
        "ELSE 'deadline_approaching' END AS kind "
        "FROM lethe.jobs j WHERE j.requester_email IS NOT NULL "
        "AND j.type <> 'retention' AND j.status <> ALL($3::text[]) "
        "AND coalesce(j.extended_due_at, j.due_at) < $2 "
        "AND ($4::text[] IS NULL OR j.org_id = ANY($4)) "
        "AND NOT EXISTS (SELECT 1 FROM lethe.deadline_reminders r WHERE r.job_id = j.id "
        "AND r.kind = CASE WHEN coalesce(j.extended_due_at, j.due_at) < $1 "
        "THEN 'deadline_passed' ELSE 'deadline_approaching' END) "
        "ORDER BY due LIMIT 500 FOR UPDATE OF j SKIP LOCKED",
        now,
        soon,
        done,
        orgs,
    )
    return rows


async def record_reminder(conn: asyncpg.Connection, job_id: uuid.UUID, kind: str) -> bool:
    """False when this reminder was recorded already."""
    inserted = await conn.fetchval(
        "INSERT INTO lethe.deadline_reminders (job_id, kind) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        job_id,
        kind,
    )
    return bool(inserted)


async def recent_runs(db: Db, org_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The org's latest retention runs (what each removed), newest first."""
    rows = await db.fetch(
        "SELECT job_id, category, cutoff, status, stats, started_at, finished_at "
        "FROM lethe.retention_runs WHERE org_id = $1 ORDER BY started_at DESC LIMIT $2",
        org_id,
        limit,
    )
    return [dict(r) for r in rows]
