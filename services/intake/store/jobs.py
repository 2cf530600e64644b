"""Jobs: the row a request becomes, its reads, and the commands intake applies itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.domain import NewJob
from services.intake.store.db import Db
from shared import lifecycle

_JOB_COLUMNS = (
    "id, org_id, type, scope, status, phase, subject_hash, request_id, channel, actor, "
    "regulation, received_at, due_at, extended_due_at, recovery_window_days, done, total, "
    "rows_per_second, eta_seconds, result, error, last_event_at, updated_at, purge_after, "
    "needs_review, request_fingerprint, reason, extension_reason, receipt_due_at, "
    "receipt_confirmed_at, extension_notified_at"
)


_INSERT = (
    "INSERT INTO lethe.jobs (id, org_id, type, scope, status, subject_hash, request_id, "
    "channel, actor, regulation, received_at, due_at, recovery_window_days, "
    "requester_email, request_fingerprint, reason, receipt_due_at, receipt_confirmed_at) "
    "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
    "$16, $17) "
    "ON CONFLICT (org_id, request_id) DO NOTHING RETURNING id"
)


def _job_args(job: NewJob) -> tuple[Any, ...]:
    return (
        job.job_id,
        job.org_id,
        job.type,
        job.scope,
        job.subject_hash,
        job.request_id,
        job.channel,
        job.actor,
        job.regulation,
        job.received_at,
        job.due_at,
        job.recovery_window_days,
        job.requester_email,
        job.fingerprint,
        job.reason,
        job.receipt_due_at,
        job.received_at if job.notices else None,
    )


async def insert_job(conn: asyncpg.Connection, job: NewJob) -> bool:
    """The job row, unless its idempotency key (org, request_id) was used: then False and
    nothing written. Its events go to the outbox through the unit of work."""
    inserted = await conn.fetchval(_INSERT, *_job_args(job))
    return inserted is not None


async def insert_jobs(conn: asyncpg.Connection, jobs: list[NewJob]) -> None:
    """Many job rows in one round trip (a bulk request's members: no request_id, so no
    idempotency conflict)."""
    await conn.executemany(_INSERT, [_job_args(j) for j in jobs])


async def job_by_request(db: Db, org_id: str, request_id: str | None) -> dict[str, Any]:
    """The job an idempotency key already names."""
    row = await db.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
        org_id,
        request_id,
    )
    assert row is not None
    return dict(row)


async def mark_cancelled(conn: asyncpg.Connection, job_id: uuid.UUID, at: datetime) -> None:
    """A job cancelled by intake itself (no worker had it)."""
    await conn.execute(
        "UPDATE lethe.jobs SET status = 'cancelled', phase = 'cancelled', "
        "last_event_at = $2, updated_at = now() WHERE id = $1",
        job_id,
        at,
    )


async def requester_email(db: Db, job_id: uuid.UUID) -> str | None:
    email: str | None = await db.fetchval(
        "SELECT requester_email FROM lethe.jobs WHERE id = $1", job_id
    )
    return email


async def extend_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, extended_due_at: datetime, reason: str
) -> None:
    """Record the one extension (checked by the caller under the job's row lock)."""
    await conn.execute(
        "UPDATE lethe.jobs SET extended_due_at = $2, extension_reason = $3, "
        "extension_notified_at = now(), updated_at = now() WHERE id = $1",
        job_id,
        extended_due_at,
        reason,
    )


async def list_jobs(
    pool: asyncpg.Pool,
    org_id: str,
    *,
    status: str | None,
    job_type: str | None,
    overdue_at: datetime | None,
    due_before: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (received_at, id)."""
    conds, args = ["org_id = $1"], [org_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if status:
        conds.append(f"status = {arg(status)}")
    if job_type:
        conds.append(f"type = {arg(job_type)}")
    if overdue_at:
        conds.append(
            f"coalesce(extended_due_at, due_at) < {arg(overdue_at)} "
            f"AND status NOT IN ({', '.join(repr(s) for s in lifecycle.DONE_FOR_DEADLINE)})"
        )
    if due_before:
        conds.append(f"coalesce(extended_due_at, due_at) < {arg(due_before)}")
    if after:
        conds.append(f"(received_at, id) < ({arg(after[0])}, {arg(after[1])})")
    rows = await pool.fetch(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE {' AND '.join(conds)} "
        f"ORDER BY received_at DESC, id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [dict(r) for r in rows]


async def job_events(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event_id, type, occurred_at, actor, details FROM lethe.job_events "
        "WHERE job_id = $1 ORDER BY occurred_at, event_id",
        job_id,
    )
    return [dict(r) for r in rows]


async def get_job(
    db: Db, org_id: str, job_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """`lock`: FOR UPDATE, for a command checked and written in one transaction."""
    r = await db.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1 AND org_id = $2"
        + (" FOR UPDATE" if lock else ""),
        job_id,
        org_id,
    )
    return dict(r) if r else None


async def count_jobs(pool: asyncpg.Pool, org_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    return n


async def jobs_by_state(db: Db) -> list[tuple[str, str, int]]:
    """(type, status, count) over every organisation, for the jobs gauge."""
    rows = await db.fetch(
        "SELECT type, status, count(*) AS n FROM lethe.jobs GROUP BY type, status"
    )
    return [(r["type"], r["status"], r["n"]) for r in rows]
