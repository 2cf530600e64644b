"""Retention runs (Lethe's database): the run record per job, cancels recorded by the
cancel listener, and the objects a run deletes (intent first, then the outcome)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg


async def stop_before_start(
    pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str | None, category: str, cutoff: datetime
) -> bool:
    """A run cancelled before it started ends `cancelled` (False: it had ended already)."""
    stopped = await pool.fetchval(
        "INSERT INTO lethe.retention_runs (job_id, org_id, category, cutoff, status, "
        "finished_at) VALUES ($1, $2, $3, $4, 'cancelled', now()) ON CONFLICT (job_id) "
        "DO UPDATE SET status = 'cancelled', finished_at = now() "
        "WHERE lethe.retention_runs.status = 'running' RETURNING true",
        job_id,
        org_id,
        category,
        cutoff,
    )
    return bool(stopped)


async def start_run(
    pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str | None, category: str, cutoff: datetime
) -> bool:
    """Record the run as running (False: it finished before, a redelivery)."""
    started = await pool.fetchval(
        "INSERT INTO lethe.retention_runs (job_id, org_id, category, cutoff, status) "
        "VALUES ($1, $2, $3, $4, 'running') ON CONFLICT (job_id) DO UPDATE "
        "SET status = 'running' WHERE lethe.retention_runs.status = 'running' RETURNING true",
        job_id,
        org_id,
        category,
        cutoff,
    )
    return bool(started)


async def finish_run(
    pool: asyncpg.Pool, job_id: uuid.UUID | None, status: str, stats: dict[str, Any]
) -> None:
    await pool.execute(
        "UPDATE lethe.retention_runs SET status = $3, finished_at = now(), stats = $2 "
        "WHERE job_id = $1",
        job_id,
        stats,
        status,
    )


async def run_status(pool: asyncpg.Pool, job_id: uuid.UUID | None) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM lethe.retention_runs WHERE job_id = $1", job_id
    )
    return status


async def cancel_requested(pool: asyncpg.Pool, job_id: Any) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM lethe.retention_cancels WHERE job_id = $1", job_id
    )
    return bool(found)


async def record_cancel(pool: asyncpg.Pool, job_id: uuid.UUID | None, reason: str | None) -> None:
    """A cancel of a retention run: not of an erasure job, not of a run that ended."""
    await pool.execute(
        "INSERT INTO lethe.retention_cancels (job_id, reason) SELECT $1, $2 "
        "WHERE NOT EXISTS (SELECT 1 FROM lethe.erase_tasks WHERE job_id = $1) "
        "AND NOT EXISTS (SELECT 1 FROM lethe.retention_runs WHERE job_id = $1 "
        "                AND status <> 'running') "
        "ON CONFLICT (job_id) DO NOTHING",
        job_id,
        reason,
    )


async def objects_pending(pool: asyncpg.Pool, keys: Sequence[str], job_id: Any, table: str) -> None:
    await pool.execute(
        "INSERT INTO lethe.retention_objects (key, job_id, table_name, state) "
        "SELECT k, $2, $3, 'pending' FROM unnest($1::text[]) AS k "
        "ON CONFLICT (key) DO UPDATE SET job_id = $2, state = 'pending'",
        list(keys),
        job_id,
        table,
    )


async def objects_deleted(pool: asyncpg.Pool, keys: Sequence[str]) -> None:
    await pool.execute(
        "UPDATE lethe.retention_objects SET state = 'deleted', error = NULL "
        "WHERE key = ANY($1::text[])",
        list(keys),
    )


async def objects_failed(pool: asyncpg.Pool, keys: Sequence[str]) -> None:
    await pool.execute(
        "UPDATE lethe.retention_objects SET error = 'delete failed' WHERE key = ANY($1::text[])",
        list(keys),
    )
