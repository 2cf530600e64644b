"""The objects a job moved, kept or purged (lethe.erase_objects, Lethe's database): each is
recorded before it moves, so none is ever left untracked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg


async def record_objects(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    table: str,
    chunk_no: int,
    keys: Sequence[str],
    quarantine: Sequence[str],
    state: str = "quarantined",
) -> None:
    await pool.execute(
        "INSERT INTO lethe.erase_objects "
        "(job_id, key, quarantine_key, table_name, chunk_no, state) "
        "SELECT $1, k, q, $3, $4, $6 FROM unnest($2::text[], $5::text[]) AS x(k, q) "
        "ON CONFLICT (job_id, key) DO NOTHING",
        job_id,
        list(keys),
        table,
        chunk_no,
        list(quarantine),
        state,
    )


async def objects(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    state: str,
    *,
    chunk_no: int | None = None,
    keys: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(key, quarantine_key) of the job's objects in `state`, optionally of one chunk or keys."""
    rows = await pool.fetch(
        "SELECT key, quarantine_key FROM lethe.erase_objects WHERE job_id = $1 AND state = $2 "
        "AND ($3::integer IS NULL OR chunk_no = $3) AND ($4::text[] IS NULL OR key = ANY($4)) "
        "ORDER BY key",
        job_id,
        state,
        chunk_no,
        None if keys is None else list(keys),
    )
    return [(r[0], r[1]) for r in rows]


async def purgeable_objects(
    pool: asyncpg.Pool, job_id: uuid.UUID, held_chunks: Sequence[int]
) -> list[tuple[str, str]]:
    """Quarantined objects whose rows are erased: their chunk finished or holds a restoration
    record. A chunk stopped mid-way (its job cancelled) keeps its objects: it gives them back."""
    rows = await pool.fetch(
        "SELECT o.key, o.quarantine_key FROM lethe.erase_objects o "
        "JOIN lethe.erase_chunks c ON c.job_id = o.job_id AND c.chunk_no = o.chunk_no "
        "WHERE o.job_id = $1 AND o.state = 'quarantined' "
        "AND (c.status = 'done' OR o.chunk_no = ANY($2::integer[])) ORDER BY o.key",
        job_id,
        list(held_chunks),
    )
    return [(r[0], r[1]) for r in rows]


async def set_object_state(
    pool: asyncpg.Pool, job_id: uuid.UUID, keys: Sequence[str], state: str
) -> None:
    await pool.execute(
        "UPDATE lethe.erase_objects SET state = $3 WHERE job_id = $1 AND key = ANY($2::text[])",
        job_id,
        list(keys),
        state,
    )


async def forget_keys(pool: asyncpg.Pool, job_id: uuid.UUID) -> None:
    """A job that holds nothing any more (purged, or restored in full) keeps its counts, not
    the keys of the rows and objects it touched: the chunks' key lists are emptied and its
    object records deleted, except the `kept` ones (delete_media=false: the objects are
    still in the bucket by the request's choice, and this is the record of which). Idempotent."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE lethe.erase_chunks SET keys = '{}' WHERE job_id = $1 AND keys <> '{}'",
            job_id,
        )
        await conn.execute(
            "DELETE FROM lethe.erase_objects WHERE job_id = $1 AND state <> 'kept'", job_id
        )
