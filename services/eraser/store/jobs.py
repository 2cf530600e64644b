"""The job record (lethe.erase_tasks, Lethe's database): created, planned, moved from
state to state by compare-and-set, reviewed, and its key destroyed at the purge."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.eraser.models import ChunkRow, Job

JOB_COLUMNS = (
    "job_id, org_id, status, total, done, per_table, verification, subject_hash, wave, waves, "
    "recovery_window_days, erasing_since, purge_after, purged_at, wrapped_key, sealed_request, "
    "needs_review, restored_rows"
)


async def get_job(db: asyncpg.Pool | asyncpg.Connection, job_id: uuid.UUID) -> Job | None:
    r = await db.fetchrow(f"SELECT {JOB_COLUMNS} FROM lethe.erase_tasks WHERE job_id = $1", job_id)
    return Job(**dict(r)) if r else None


async def job_status(pool: asyncpg.Pool, job_id: uuid.UUID) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM lethe.erase_tasks WHERE job_id = $1", job_id
    )
    return status


async def create_job(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    org_id: str,
    subject_hash: str | None,
    window_days: int,
    wrapped_key: bytes,
    sealed_request: bytes,
) -> None:
    await pool.execute(
        "INSERT INTO lethe.erase_tasks (job_id, org_id, status, total, per_table, subject_hash, "
        "recovery_window_days, wrapped_key, sealed_request) "
        "VALUES ($1, $2, 'planning', 0, '{}', $3, $4, $5, $6) ON CONFLICT (job_id) DO NOTHING",
        job_id,
        org_id,
        subject_hash,
        window_days,
        wrapped_key,
        sealed_request,
    )


async def start_plan(conn: asyncpg.Connection, job_id: uuid.UUID, waves: int) -> bool:
    """Start erasing, once (False: another planner got there first). In the caller's
    transaction, with `add_chunks` and `finish_plan`: the plan is recorded whole or not."""
    started = await conn.fetchval(
        "UPDATE lethe.erase_tasks SET status = 'erasing', waves = $2, wave = 0, "
        "erasing_since = now() WHERE job_id = $1 AND status = 'planning' RETURNING true",
        job_id,
        waves,
    )
    return bool(started)


async def mark_hidden(pool: asyncpg.Pool, job_id: uuid.UUID) -> datetime:
    """When the subject's row was hidden (the first time: a redelivered plan keeps it)."""
    at: datetime = await pool.fetchval(
        "UPDATE lethe.erase_tasks SET hidden_at = coalesce(hidden_at, now()) WHERE job_id = $1 "
        "RETURNING hidden_at",
        job_id,
    )
    return at


async def add_chunks(
    conn: asyncpg.Connection, job_id: uuid.UUID, chunks: Sequence[ChunkRow]
) -> None:
    """(chunk_no, wave, table, keys, op) records, by COPY."""
    await conn.copy_records_to_table(
        "erase_chunks",
        schema_name="lethe",
        columns=["job_id", "chunk_no", "wave", "table_name", "keys", "op"],
        records=[(job_id, *c) for c in chunks],
    )


async def finish_plan(
    conn: asyncpg.Connection, job_id: uuid.UUID, per_table: dict[str, int]
) -> None:
    await conn.execute(
        "UPDATE lethe.erase_tasks SET total = $2, per_table = $3 WHERE job_id = $1",
        job_id,
        sum(per_table.values()),
        per_table,
    )


async def set_status(pool: asyncpg.Pool, job_id: uuid.UUID, status: str, **fields: Any) -> None:
    sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(fields))
    await pool.execute(
        f"UPDATE lethe.erase_tasks SET status = $2{', ' + sets if sets else ''} WHERE job_id = $1",
        job_id,
        status,
        *fields.values(),
    )


async def transition(
    pool: asyncpg.Pool, job_id: uuid.UUID, from_: Sequence[str], to: str, **fields: Any
) -> bool:
    """Compare-and-set of the job status: exactly one caller wins a transition."""
    sets = "".join(f", {k} = ${i + 4}" for i, k in enumerate(fields))
    won = await pool.fetchval(
        f"UPDATE lethe.erase_tasks SET status = $3{sets} "
        "WHERE job_id = $1 AND status = ANY($2::text[]) RETURNING true",
        job_id,
        list(from_),
        to,
        *fields.values(),
    )
    return bool(won)


async def add_restored(
    pool: asyncpg.Pool, job_id: uuid.UUID, rows: int, review: list[dict[str, Any]]
) -> None:
    """A restore's count of rows put back, and its review items."""
    await pool.execute(
        "UPDATE lethe.erase_tasks SET restored_rows = restored_rows + $2, "
        "needs_review = needs_review || $3 WHERE job_id = $1",
        job_id,
        rows,
        review,
    )


async def add_review_once(pool: asyncpg.Pool, job_id: uuid.UUID, item: dict[str, Any]) -> bool:
    """A review item, unless the job holds the same one already (True: it was added)."""
    status = await pool.execute(
        "UPDATE lethe.erase_tasks SET needs_review = needs_review || $2 "
        "WHERE job_id = $1 AND NOT needs_review @> $2",
        job_id,
        [item],
    )
    return bool(status == "UPDATE 1")


async def destroy_key(pool: asyncpg.Pool, job_id: uuid.UUID, verification: dict[str, Any]) -> None:
    """Crypto-shredding: the job key and the sealed request gone, the verification kept."""
    await pool.execute(
        "UPDATE lethe.erase_tasks SET wrapped_key = NULL, sealed_request = NULL, "
        "key_destroyed_at = coalesce(key_destroyed_at, now()), verification = $2 "
        "WHERE job_id = $1",
        job_id,
        verification,
    )


async def due_for_purge(
    pool: asyncpg.Pool, statuses: Sequence[str], limit: int = 100
) -> list[uuid.UUID]:
    """Jobs in one of `statuses` past their recovery window (a restored job is never due)."""
    rows = await pool.fetch(
        "SELECT job_id FROM lethe.erase_tasks WHERE purged_at IS NULL AND purge_after <= now() "
        "AND status = ANY($1::text[]) ORDER BY purge_after LIMIT $2",
        list(statuses),
        limit,
    )
    return [r[0] for r in rows]


async def due_for_recovery_notice(
    pool: asyncpg.Pool, statuses: Sequence[str], within: timedelta, limit: int = 100
) -> list[uuid.UUID]:
    """Jobs whose recovery window ends within `within` and that were not told yet."""
    rows = await pool.fetch(
        "SELECT job_id FROM lethe.erase_tasks WHERE purged_at IS NULL "
        "AND recovery_notice_at IS NULL AND purge_after > now() AND purge_after <= now() + $2 "
        "AND status = ANY($1::text[]) ORDER BY purge_after LIMIT $3",
        list(statuses),
        within,
        limit,
    )
    return [r[0] for r in rows]


async def mark_recovery_notice(pool: asyncpg.Pool, job_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE lethe.erase_tasks SET recovery_notice_at = now() WHERE job_id = $1", job_id
    )
