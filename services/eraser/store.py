"""The eraser's SQL: its job record, chunks and objects (Lethe's database, schema `lethe`) and
the restoration log (the platform database, next to the rows it holds)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

PLATFORM_MIGRATIONS = Path(__file__).with_name("platform_migrations")
_JOB_COLUMNS = (
    "job_id, org_id, status, total, done, per_table, verification, subject_hash, wave, waves, "
    "recovery_window_days, erasing_since, purge_after, purged_at, wrapped_key, sealed_request, "
    "needs_review, restored_rows"
)


@dataclass(frozen=True)
class Job:
    job_id: uuid.UUID
    org_id: str
    status: str
    total: int
    done: int
    per_table: dict[str, int]
    verification: dict[str, Any] | None
    subject_hash: str | None
    wave: int
    waves: int
    recovery_window_days: int
    erasing_since: datetime | None
    purge_after: datetime | None
    purged_at: datetime | None
    wrapped_key: bytes | None
    sealed_request: bytes | None
    needs_review: list[dict[str, Any]]
    restored_rows: int


@dataclass(frozen=True)
class Chunk:
    job_id: uuid.UUID
    chunk_no: int
    wave: int
    table_name: str
    keys: list[str]
    status: str
    op: str = "erase"


async def get_job(db: asyncpg.Pool | asyncpg.Connection, job_id: uuid.UUID) -> Job | None:
    r = await db.fetchrow(f"SELECT {_JOB_COLUMNS} FROM lethe.erase_tasks WHERE job_id = $1", job_id)
    return Job(**dict(r)) if r else None


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


async def add_chunks(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    chunks: Sequence[tuple[int, int, str, list[str], str]],
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


async def get_chunk(pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int) -> Chunk | None:
    r = await pool.fetchrow(
        "SELECT job_id, chunk_no, wave, table_name, keys, status, op FROM lethe.erase_chunks "
        "WHERE job_id = $1 AND chunk_no = $2",
        job_id,
        chunk_no,
    )
    return Chunk(**dict(r)) if r else None


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


async def wave_state(pool: asyncpg.Pool, job_id: uuid.UUID) -> tuple[str, int, int, bool] | None:
    """(status, wave, waves, whether the current wave still has pending chunks)."""
    r = await pool.fetchrow(
        "SELECT status, wave, waves, EXISTS (SELECT 1 FROM lethe.erase_chunks c "
        "WHERE c.job_id = t.job_id AND c.wave = t.wave AND c.status = 'pending') AS pending "
        "FROM lethe.erase_tasks t WHERE job_id = $1",
        job_id,
    )
    return (r[0], r[1], r[2], r[3]) if r else None


async def job_and_chunk(
    pool: asyncpg.Pool, job_id: uuid.UUID, chunk_no: int
) -> tuple[Job | None, Chunk | None]:
    job = await get_job(pool, job_id)
    if job is None or job.status != "erasing":
        return job, None
    return job, await get_chunk(pool, job_id, chunk_no)


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


# ------------------------------------------------------------------ objects


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


# ------------------------------------------------------------------ restoration log (platform)


async def migrate_platform(dsn: str) -> list[str]:
    from shared.db import migrate

    return await migrate(dsn, PLATFORM_MIGRATIONS)


async def restoration_count(
    conn: asyncpg.Connection, job_id: uuid.UUID, chunk_no: int
) -> int | None:
    n: int | None = await conn.fetchval(
        "SELECT cardinality(keys) FROM lethe.restoration_log WHERE job_id = $1 AND chunk_no = $2",
        job_id,
        chunk_no,
    )
    return n


async def insert_restoration(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    chunk_no: int,
    table: str,
    keys: Sequence[str],
    sealed: bytes,
    op: str = "erase",
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO lethe.restoration_log (job_id, chunk_no, table_name, keys, sealed, op) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, chunk_no) DO NOTHING RETURNING true",
        job_id,
        chunk_no,
        table,
        list(keys),
        sealed,
        op,
    )
    return bool(inserted)


@dataclass(frozen=True)
class Held:
    chunk_no: int
    table_name: str
    keys: list[str]
    sealed: bytes
    op: str = "erase"


async def held(
    conn: asyncpg.Connection, job_id: uuid.UUID, items: dict[str, list[str]] | None = None
) -> list[Held]:
    """Restoration records of a job; with `items` (table -> keys) only those holding them."""
    if items is None:
        rows = await conn.fetch(
            "SELECT chunk_no, table_name, keys, sealed, op FROM lethe.restoration_log "
            "WHERE job_id = $1 ORDER BY chunk_no",
            job_id,
        )
    else:
        rows = await conn.fetch(
            "SELECT r.chunk_no, r.table_name, r.keys, r.sealed, r.op FROM lethe.restoration_log r "
            "JOIN unnest($2::text[], $3::text[]) AS i(t, k) "
            "ON r.table_name = i.t AND i.k = ANY(r.keys) "
            "WHERE r.job_id = $1 GROUP BY r.chunk_no, r.table_name, r.keys, r.sealed, r.op "
            "ORDER BY r.chunk_no",
            job_id,
            [t for t, ks in items.items() for _ in ks],
            [k for ks in items.values() for k in ks],
        )
    return [Held(r[0], r[1], list(r[2]), r[3], r[4]) for r in rows]


async def rewrite_restoration(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    chunk_no: int,
    keys: list[str],
    sealed: bytes | None,
) -> None:
    if not keys or sealed is None:
        await conn.execute(
            "DELETE FROM lethe.restoration_log WHERE job_id = $1 AND chunk_no = $2",
            job_id,
            chunk_no,
        )
    else:
        await conn.execute(
            "UPDATE lethe.restoration_log SET keys = $3, sealed = $4 "
            "WHERE job_id = $1 AND chunk_no = $2",
            job_id,
            chunk_no,
            keys,
            sealed,
        )


async def held_chunks(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> list[int]:
    rows = await conn.fetch(
        "SELECT chunk_no FROM lethe.restoration_log WHERE job_id = $1 ORDER BY chunk_no", job_id
    )
    return [r[0] for r in rows]


async def drop_restoration(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> int:
    status = await conn.execute("DELETE FROM lethe.restoration_log WHERE job_id = $1", job_id)
    return int(status.split()[-1])


async def restoration_rows(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> int:
    n: int = await conn.fetchval(
        "SELECT coalesce(sum(cardinality(keys)), 0) FROM lethe.restoration_log WHERE job_id = $1",
        job_id,
    )
    return n


async def keys_in_org(
    conn: asyncpg.Connection, table: str, t: Any, org_id: str, keys: Sequence[str]
) -> set[str]:
    """Of `keys` (key text) of a platform table, those whose org column is `org_id`."""
    from shared.platform import key_text, q

    rows = await conn.fetch(
        f"SELECT {key_text(t, 'x')} FROM {q(table)} x "
        f"WHERE {key_text(t, 'x')} = ANY($1::text[]) AND x.{q(t.org_column)}::text = $2",
        list(keys),
        org_id,
    )
    return {r[0] for r in rows}


async def was_cancelled(pool: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    """The erasure was cancelled (its chunks not yet run were stopped)."""
    found = await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM lethe.erase_chunks WHERE job_id = $1 "
        "AND status = 'cancelled')",
        job_id,
    )
    return bool(found)


async def job_status(pool: asyncpg.Pool, job_id: uuid.UUID) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM lethe.erase_tasks WHERE job_id = $1", job_id
    )
    return status
