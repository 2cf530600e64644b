"""Bulk jobs and their subjects' outcomes (lethe.bulk_jobs, lethe.bulk_subjects)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.store.db import Db

_BULK_COLUMNS = (
    "id, org_id, type, request_id, request_fingerprint, channel, actor, requester_email, "
    "total, pending, created_at, finished_at"
)


async def insert_bulk(
    conn: asyncpg.Connection,
    *,
    bulk_id: uuid.UUID,
    org_id: str,
    job_type: str,
    request_id: str | None,
    fingerprint: str,
    channel: str,
    actor: str,
    requester_email: str | None,
    total: int,
    pending: int,
    created_at: datetime,
) -> bool:
    """The bulk job, unless its idempotency key (org, request_id) was used: then False.
    `created_at`: when its members were received (their jobs' `received_at`)."""
    inserted = await conn.fetchval(
        "INSERT INTO lethe.bulk_jobs (id, org_id, type, request_id, request_fingerprint, "
        "channel, actor, requester_email, total, pending, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (org_id, request_id) DO NOTHING RETURNING id",
        bulk_id,
        org_id,
        job_type,
        request_id,
        fingerprint,
        channel,
        actor,
        requester_email,
        total,
        pending,
        created_at,
    )
    return inserted is not None


async def insert_subjects(
    conn: asyncpg.Connection,
    bulk_id: uuid.UUID,
    rows: list[tuple[int, uuid.UUID | None, str | None, str, str | None]],
) -> None:
    """(row_no, job_id, subject_hash, outcome, reason) per subject, by COPY."""
    await conn.copy_records_to_table(
        "bulk_subjects",
        schema_name="lethe",
        columns=["bulk_id", "row_no", "job_id", "subject_hash", "outcome", "reason"],
        records=[(bulk_id, *r) for r in rows],
    )


async def get_bulk(db: Db, org_id: str, bulk_id: uuid.UUID) -> dict[str, Any] | None:
    r = await db.fetchrow(
        f"SELECT {_BULK_COLUMNS} FROM lethe.bulk_jobs WHERE id = $1 AND org_id = $2",
        bulk_id,
        org_id,
    )
    return dict(r) if r else None


async def bulk_by_request(db: Db, org_id: str, request_id: str | None) -> dict[str, Any]:
    r = await db.fetchrow(
        f"SELECT {_BULK_COLUMNS} FROM lethe.bulk_jobs WHERE org_id = $1 AND request_id = $2",
        org_id,
        request_id,
    )
    assert r is not None
    return dict(r)


async def outcome_counts(db: Db, bulk_id: uuid.UUID) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT outcome, count(*) AS n FROM lethe.bulk_subjects WHERE bulk_id = $1 "
        "GROUP BY outcome",
        bulk_id,
    )
    return [(r["outcome"], r["n"]) for r in rows]


async def subjects_page(db: Db, bulk_id: uuid.UUID, after: int, limit: int) -> list[dict[str, Any]]:
    """Keyset-paginated on row_no, with each member job's state."""
    rows = await db.fetch(
        "SELECT s.row_no, s.job_id, s.subject_hash, s.outcome, s.reason, s.decided_at, "
        "j.status AS job_status, j.result AS job_result "
        "FROM lethe.bulk_subjects s LEFT JOIN lethe.jobs j ON j.id = s.job_id "
        "WHERE s.bulk_id = $1 AND s.row_no > $2 ORDER BY s.row_no LIMIT $3",
        bulk_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def decide(
    conn: asyncpg.Connection, job_id: uuid.UUID, outcomes: dict[str, str], reason: str | None
) -> list[dict[str, Any]]:
    """A member job's first terminal outcome (`outcomes`: per bulk type) on each bulk row that
    names it (its own, and rows linked to it), and those bulk jobs with `pending` counted
    down under their row locks; none when the job is no bulk member or its outcome is
    already known (a redelivery)."""
    rows = await conn.fetch(
        "WITH d AS (UPDATE lethe.bulk_subjects s SET outcome = CASE b.type "
        "WHEN 'erasure' THEN $2 ELSE $3 END, reason = $4, decided_at = now() "
        "FROM lethe.bulk_jobs b WHERE s.job_id = $1 AND s.outcome = 'pending' "
        "AND b.id = s.bulk_id RETURNING s.bulk_id), "
        "n AS (SELECT bulk_id, count(*) AS n FROM d GROUP BY bulk_id) "
        "UPDATE lethe.bulk_jobs b SET pending = pending - n.n FROM n WHERE b.id = n.bulk_id "
        f"RETURNING {', '.join('b.' + c.strip() for c in _BULK_COLUMNS.split(','))}",
        job_id,
        outcomes["erasure"],
        outcomes["export"],
        reason,
    )
    return [dict(r) for r in rows]


async def finish(conn: asyncpg.Connection, bulk_id: uuid.UUID) -> None:
    """All outcomes known: the requester's address goes with the summary notice."""
    await conn.execute(
        "UPDATE lethe.bulk_jobs SET finished_at = now(), requester_email = NULL WHERE id = $1",
        bulk_id,
    )
