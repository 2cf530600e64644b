"""The eraser's own tables (schema `lethe`): one checkpoint row per erasure job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class EraseTask:
    job_id: uuid.UUID
    status: str
    total: int
    done: int
    per_table: dict[str, int]


async def get_task(pool: asyncpg.Pool, job_id: uuid.UUID) -> EraseTask | None:
    r = await pool.fetchrow(
        "SELECT job_id, status, total, done, per_table FROM lethe.erase_tasks WHERE job_id = $1",
        job_id,
    )
    return EraseTask(**dict(r)) if r else None


async def start_task(
    pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str, per_table: dict[str, int]
) -> EraseTask:
    """Record the plan once; a redelivered plan keeps the first total (the real one)."""
    await pool.execute(
        "INSERT INTO lethe.erase_tasks (job_id, org_id, status, total, per_table) "
        "VALUES ($1, $2, 'running', $3, $4) ON CONFLICT (job_id) DO NOTHING",
        job_id,
        org_id,
        sum(per_table.values()),
        per_table,
    )
    task = await get_task(pool, job_id)
    assert task is not None
    return task


async def add_progress(pool: asyncpg.Pool, job_id: uuid.UUID, rows: int) -> int:
    done: int = await pool.fetchval(
        "UPDATE lethe.erase_tasks SET done = LEAST(total, done + $2) WHERE job_id = $1 "
        "RETURNING done",
        job_id,
        rows,
    )
    return done


async def finish_task(
    pool: asyncpg.Pool, job_id: uuid.UUID, status: str, verification: dict[str, Any]
) -> None:
    await pool.execute(
        "UPDATE lethe.erase_tasks SET status = $2, verification = $3, finished_at = now() "
        "WHERE job_id = $1",
        job_id,
        status,
        verification,
    )
