"""The restoration log (lethe.restoration_log, in the platform database next to the rows it
holds): the sealed rows of each chunk, until restored or purged."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from services.eraser.models import Held
from shared.db import migrate

PLATFORM_MIGRATIONS = Path(__file__).parents[1] / "platform_migrations"


async def migrate_platform(dsn: str) -> list[str]:
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
    """Rows the job's chunks hold (the hide step's record holds a row a chunk holds too)."""
    n: int = await conn.fetchval(
        "SELECT coalesce(sum(cardinality(keys)), 0) FROM lethe.restoration_log "
        "WHERE job_id = $1 AND op <> 'hide'",
        job_id,
    )
    return n


async def hide_record(conn: asyncpg.Connection, job_id: uuid.UUID, chunk_no: int) -> Held | None:
    r = await conn.fetchrow(
        "SELECT chunk_no, table_name, keys, sealed, op FROM lethe.restoration_log "
        "WHERE job_id = $1 AND chunk_no = $2",
        job_id,
        chunk_no,
    )
    return Held(r[0], r[1], list(r[2]), r[3], r[4]) if r else None


async def erased_keys(
    conn: asyncpg.Connection, job_id: uuid.UUID, table: str, keys: list[str]
) -> set[str]:
    """Which of `keys` (of `table`) a chunk of the job erased (its record holds them)."""
    rows = await conn.fetch(
        "SELECT DISTINCT k FROM lethe.restoration_log, unnest(keys) AS k WHERE job_id = $1 "
        "AND table_name = $2 AND op = 'erase' AND k = ANY($3::text[])",
        job_id,
        table,
        keys,
    )
    return {r[0] for r in rows}
