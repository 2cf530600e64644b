"""Manual tasks of a job (lethe.job_tasks): opened from the eraser's ManualTasksOpened,
closed by an admin (done or waived), reminded by the scheduler."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.intake.store.db import Db
from shared import lifecycle

_COLUMNS = (
    "job_id, task, assignee, instructions, status, reason, closed_by, opened_at, closed_at, "
    "reminded_at, reminders"
)


async def open_tasks(
    conn: asyncpg.Connection, job_id: uuid.UUID, tasks: list[dict[str, Any]], at: datetime
) -> None:
    """Each task once (a redelivered event opens nothing again), for a job intake knows."""
    await conn.execute(
        "INSERT INTO lethe.job_tasks (job_id, task, assignee, instructions, opened_at) "
        "SELECT $1, t, a, i, $5 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(t, a, i) "
        "WHERE EXISTS (SELECT 1 FROM lethe.jobs WHERE id = $1) "
        "ON CONFLICT (job_id, task) DO NOTHING",
        job_id,
        [t["task"] for t in tasks],
        [t["assignee"] for t in tasks],
        [t.get("instructions", "") for t in tasks],
        at,
    )


async def job_tasks(db: Db, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM lethe.job_tasks WHERE job_id = $1 ORDER BY task", job_id
    )
    return [dict(r) for r in rows]


async def open_task_count(conn: asyncpg.Connection, job_id: uuid.UUID) -> int:
    n: int = await conn.fetchval(
        "SELECT count(*) FROM lethe.job_tasks WHERE job_id = $1 AND status = 'open'", job_id
    )
    return n


async def close_task(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    task: str,
    outcome: str,
    reason: str | None,
    by: str,
    at: datetime,
) -> bool:
    """Close an open task (False: none open by that name)."""
    closed = await conn.fetchval(
        "UPDATE lethe.job_tasks SET status = $3, reason = $4, closed_by = $5, closed_at = $6 "
        "WHERE job_id = $1 AND task = $2 AND status = 'open' RETURNING true",
        job_id,
        task,
        outcome,
        reason,
        by,
        at,
    )
    return bool(closed)


async def complete_after_tasks(
    conn: asyncpg.Connection, job_id: uuid.UUID, status: str, at: datetime
) -> bool:
    """A job awaiting its tasks, complete now that none is open."""
    done = await conn.fetchval(
        "UPDATE lethe.jobs SET status = $2, phase = 'completed', last_event_at = $3, "
        "updated_at = now() WHERE id = $1 AND status = 'awaiting_tasks' RETURNING true",
        job_id,
        status,
        at,
    )
    return bool(done)


async def purge_report(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    """The job (ids, status) and the eraser's purge report (its JobCompleted as kept in
    the timeline) when that report waited for the tasks; None otherwise (nothing to send)."""
    r = await conn.fetchrow(
        "SELECT j.id, j.org_id, j.subject_hash, j.status, e.details AS report "
        "FROM lethe.jobs j JOIN LATERAL (SELECT details FROM lethe.job_events "
        "WHERE job_id = j.id AND type = 'JobCompleted' ORDER BY occurred_at DESC LIMIT 1) e "
        "ON true WHERE j.id = $1",
        job_id,
    )
    if r is None:
        return None
    report = r["report"] if isinstance(r["report"], dict) else json.loads(r["report"])
    return {**dict(r), "report": report} if report.get("awaiting_tasks") else None


async def due_task_reminders(
    conn: asyncpg.Connection,
    now: datetime,
    every: timedelta,
    orgs: list[str] | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Open tasks not reminded (or opened) within `every`, oldest first, with their job's org
    and subject hash (of `orgs` only, when given); locked, skipping those another scheduler
    holds. Not those of a job that ended otherwise (cancelled, restored, failed): nobody is
    asked to erase by hand what the erasure did not do."""
    rows = await conn.fetch(
        "SELECT t.job_id, t.task, t.assignee, t.opened_at, t.reminders, j.org_id, "
        "j.subject_hash FROM lethe.job_tasks t JOIN lethe.jobs j ON j.id = t.job_id "
        "WHERE t.status = 'open' AND coalesce(t.reminded_at, t.opened_at) <= $1 "
        "AND ($3::text[] IS NULL OR j.org_id = ANY($3)) AND j.status <> ALL($4::text[]) "
        "ORDER BY t.opened_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED",
        now - every,
        limit,
        orgs,
        list(lifecycle.FINAL),
    )
    return [dict(r) for r in rows]


async def mark_reminded(
    conn: asyncpg.Connection, job_id: uuid.UUID, task: str, at: datetime
) -> None:
    await conn.execute(
        "UPDATE lethe.job_tasks SET reminded_at = $3, reminders = reminders + 1 "
        "WHERE job_id = $1 AND task = $2",
        job_id,
        task,
        at,
    )
