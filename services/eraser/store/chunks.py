"""A job's chunks (lethe.erase_chunks, Lethe's database): pending, done, failed or
cancelled, a wave at a time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.eraser.models import Chunk, Job
from services.eraser.store.jobs import JOB_COLUMNS


async def get_chunk(pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int) -> Chunk | None:
    r = await pool.fetchrow(
        "SELECT job_id, chunk_no, wave, table_name, keys, status, op FROM lethe.erase_chunks "
        "WHERE job_id = $1 AND chunk_no = $2",
        job_id,
        chunk_no,
    )
    return Chunk(**dict(r)) if r else None


async def chunk_counts(
    pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int
) -> tuple[int, int] | None:
    """(rows, objects) a finished chunk recorded, when its report has not gone out yet."""
    r = await pool.fetchrow(
        "SELECT rows_done, objects FROM lethe.erase_chunks WHERE job_id = $1 AND chunk_no = $2 "
        "AND status = 'done' AND NOT reported",
        job_id,
        chunk_no,
    )
    return (r[0], r[1] or 0) if r else None


async def mark_reported(pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int) -> None:
    """The chunk's BatchErased went out (see chunk_counts)."""
    await pool.execute(
        "UPDATE lethe.erase_chunks SET reported = true WHERE job_id = $1 AND chunk_no = $2",
        job_id,
        chunk_no,
    )


_CHUNK_OF_JOB = (
    "SELECT "
    + ", ".join(f"t.{c}" for c in JOB_COLUMNS.split(", "))
    + ", c.wave AS c_wave, c.table_name AS c_table, c.keys AS c_keys, c.status AS c_status, "
    "c.op AS c_op FROM lethe.erase_tasks t LEFT JOIN lethe.erase_chunks c "
    "ON c.job_id = t.job_id AND c.chunk_no = $2 WHERE t.job_id = $1"
)


async def job_and_chunk(
    pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int
) -> tuple[Job | None, Chunk | None]:
    """The job, and the chunk while the job is erasing (one round trip: a chunk's hot path)."""
    r = await pool.fetchrow(_CHUNK_OF_JOB, job_id, chunk_no)
    if r is None:
        return None, None
    fields = dict(r)
    c = {k[2:]: fields.pop(k) for k in list(fields) if k.startswith("c_")}
    job = Job(**fields)
    if job.status != "erasing" or c["status"] is None:
        return job, None
    chunk = Chunk(job_id, chunk_no, c["wave"], c["table"], c["keys"], c["status"], c["op"])
    return job, chunk


async def pending_chunks(pool: asyncpg.Pool, job_id: uuid.UUID, wave: int) -> list[tuple[int, str]]:
    rows = await pool.fetch(
        "SELECT chunk_no, table_name FROM lethe.erase_chunks "
        "WHERE job_id = $1 AND wave = $2 AND status = 'pending' ORDER BY chunk_no",
        job_id,
        wave,
    )
    return [(r[0], r[1]) for r in rows]


async def finish_chunk(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    chunk_no: int,
    status: str,
    rows: int,
    objects: int,
    error: str | None = None,
    worker: str | None = None,
) -> tuple[int, int, datetime | None] | None:
    """Checkpoint a chunk once; returns (done, total, erasing_since) or None if already done.

    One statement: the chunk's status and the job's counter change together or not at all.
    """
    r = await pool.fetchrow(
        "WITH c AS (UPDATE lethe.erase_chunks SET status = $3, rows_done = $4, objects = $5, "
        "error = $6, done_at = now(), done_by = $7 WHERE job_id = $1 AND chunk_no = $2 "
        # A chunk in flight when the job was cancelled still counts once it committed.
        "AND (status = 'pending' OR (status = 'cancelled' AND $3 = 'done')) RETURNING 1) "
        "UPDATE lethe.erase_tasks SET done = done + $4 WHERE job_id = $1 AND EXISTS "
        "(SELECT 1 FROM c) RETURNING done, total, erasing_since",
        job_id,
        chunk_no,
        status,
        rows,
        objects,
        error,
        worker,
    )
    return (r["done"], r["total"], r["erasing_since"]) if r else None


_WAVE_STATE = (
    "SELECT status, wave, waves, EXISTS (SELECT 1 FROM lethe.erase_chunks c "
    "WHERE c.job_id = t.job_id AND c.wave = t.wave AND c.status = 'pending') AS pending "
    "FROM lethe.erase_tasks t WHERE job_id = $1"
)


async def wave_state(
    pool: asyncpg.Pool, job_id: uuid.UUID, *, reported: int | None = None
) -> tuple[str, int, int, bool] | None:
    """(status, wave, waves, whether the current wave still has pending chunks).

    `reported`: a chunk whose BatchErased just went out is marked so in the same round trip
    (mark_reported; a chunk's hot path ends with both)."""
    if reported is None:
        r = await pool.fetchrow(_WAVE_STATE, job_id)
    else:
        # A data-modifying WITH runs once, read or not; `reported` is no part of the state.
        r = await pool.fetchrow(
            "WITH m AS (UPDATE lethe.erase_chunks SET reported = true "
            "WHERE job_id = $1 AND chunk_no = $2) " + _WAVE_STATE,
            job_id,
            reported,
        )
    return (r[0], r[1], r[2], r[3]) if r else None


async def advance_wave(pool: asyncpg.Pool, job_id: uuid.UUID, from_wave: int) -> bool:
    won = await pool.fetchval(
        "UPDATE lethe.erase_tasks SET wave = wave + 1 WHERE job_id = $1 AND wave = $2 "
        "AND status = 'erasing' AND NOT EXISTS (SELECT 1 FROM lethe.erase_chunks "
        "WHERE job_id = $1 AND wave = $2 AND status = 'pending') RETURNING true",
        job_id,
        from_wave,
    )
    return bool(won)


async def cancel_pending(pool: asyncpg.Pool, job_id: uuid.UUID) -> int:
    status = await pool.execute(
        "UPDATE lethe.erase_chunks SET status = 'cancelled', done_at = now() "
        "WHERE job_id = $1 AND status = 'pending'",
        job_id,
    )
    return int(status.split()[-1])


async def failed_chunks(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT table_name, chunk_no, cardinality(keys) AS rows, error FROM lethe.erase_chunks "
        "WHERE job_id = $1 AND status = 'failed' ORDER BY chunk_no",
        job_id,
    )
    return [
        {
            "kind": "chunk",
            "table": r["table_name"],
            "chunk": r["chunk_no"],
            "rows": r["rows"],
            "error": r["error"],
        }
        for r in rows
    ]


async def was_cancelled(pool: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    """The erasure was cancelled (its chunks not yet run were stopped)."""
    found = await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM lethe.erase_chunks WHERE job_id = $1 "
        "AND status = 'cancelled')",
        job_id,
    )
    return bool(found)
