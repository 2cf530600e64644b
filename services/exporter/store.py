"""The exporter's SQL: its tables, `exports` (one per export job) and `download_tokens`;
and its reads of the platform database (the resolver composes those queries, they run
here), all in the export's one read transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.exporter import pgformat
from shared.resolver import Resolver, Subject, q


async def get_export(pool: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any] | None:
    r = await pool.fetchrow("SELECT * FROM lethe.exports WHERE job_id = $1", job_id)
    return dict(r) if r else None


async def begin(
    pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str, object_key: str, wrapped_key: bytes
) -> dict[str, Any]:
    """Start (or restart from scratch) an export; returns the previous row, if any, so the
    caller can abort its unfinished upload. A cancelled export (or one asked to stop) is not
    started again: the caller finds that in the row returned."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            "SELECT * FROM lethe.exports WHERE job_id = $1 FOR UPDATE", job_id
        )
        await conn.execute(
            "INSERT INTO lethe.exports (job_id, org_id, status, object_key, wrapped_key) "
            "VALUES ($1, $2, 'building', $3, $4) ON CONFLICT (job_id) DO UPDATE SET "
            "status = 'building', attempt = lethe.exports.attempt + 1, object_key = $3, "
            "wrapped_key = $4, upload_id = NULL, started_at = now() "
            "WHERE lethe.exports.status <> 'cancelled' "
            "AND lethe.exports.cancel_requested_at IS NULL",
            job_id,
            org_id,
            object_key,
            wrapped_key,
        )
        return dict(before) if before else {}


async def set_upload(pool: asyncpg.Pool, job_id: uuid.UUID, upload_id: str | None) -> None:
    await pool.execute(
        "UPDATE lethe.exports SET upload_id = $2 WHERE job_id = $1", job_id, upload_id
    )


async def mark_ready(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    *,
    size: int,
    rows_per_table: dict[str, int],
    expires_at: datetime,
    tokens: list[tuple[uuid.UUID, str]],
    max_downloads: int,
) -> None:
    """Ready, with its links: (token id, recipient hash) each, `max_downloads` apiece."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE lethe.exports SET status = 'ready', upload_id = NULL, size_bytes = $2, "
            "rows_per_table = $3, expires_at = $4, ready_at = now() WHERE job_id = $1",
            job_id,
            size,
            rows_per_table,
            expires_at,
        )
        await conn.executemany(
            "INSERT INTO lethe.download_tokens "
            "(token_id, job_id, recipient_hash, expires_at, max_downloads) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(t, job_id, r, expires_at, max_downloads) for t, r in tokens],
        )


async def mark_failed(pool: asyncpg.Pool, job_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE lethe.exports SET status = 'failed', upload_id = NULL WHERE job_id = $1", job_id
    )


async def request_cancel(pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str) -> str | None:
    """Record a cancel. An export being built is stopped by its worker at its next batch; one
    not started yet is cancelled at once (it never starts). Returns the status found (None:
    there was no export yet, now `cancelled`)."""
    async with pool.acquire() as conn, conn.transaction():
        status: str | None = await conn.fetchval(
            "SELECT status FROM lethe.exports WHERE job_id = $1 FOR UPDATE", job_id
        )
        if status is None:
            await conn.execute(
                "INSERT INTO lethe.exports (job_id, org_id, status, object_key, "
                "cancel_requested_at) VALUES ($1, $2, 'cancelled', '', now())",
                job_id,
                org_id,
            )
        elif status == "building":
            await conn.execute(
                "UPDATE lethe.exports SET cancel_requested_at = "
                "coalesce(cancel_requested_at, now()) WHERE job_id = $1",
                job_id,
            )
        return status


async def cancel_requested(pool: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT cancel_requested_at IS NOT NULL FROM lethe.exports WHERE job_id = $1",
            job_id,
        )
    )


async def mark_cancelled(pool: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    """After the partial upload is aborted: the key goes too. False when already cancelled."""
    done = await pool.execute(
        "UPDATE lethe.exports SET status = 'cancelled', upload_id = NULL, wrapped_key = NULL "
        "WHERE job_id = $1 AND status = 'building'",
        job_id,
    )
    return bool(done.endswith(" 1"))


async def claim_expired(
    pool: asyncpg.Pool, now: datetime, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT job_id, org_id, object_key FROM lethe.exports "
        "WHERE status = 'ready' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        now,
        limit,
    )
    return [dict(r) for r in rows]


async def mark_expired(pool: asyncpg.Pool, job_id: uuid.UUID) -> None:
    """After the object is gone: destroy the key too (the export is unreadable anywhere)."""
    await pool.execute(
        "UPDATE lethe.exports SET status = 'expired', wrapped_key = NULL, object_key = NULL "
        "WHERE job_id = $1",
        job_id,
    )


# --- the platform database: the subject's rows, read in the export's transaction ---------


async def count_rows(
    conn: asyncpg.Connection, resolver: Resolver, tables: list[str], subject: Subject
) -> dict[str, int]:
    """The subject's rows per table (one query per table, never per row)."""
    counts = {}
    for t in tables:
        sql, args = resolver.count_sql(t, subject)
        counts[t] = int(await conn.fetchval(sql, *args))
    return counts


@dataclass
class Rows:
    """A table's rows from a server-side cursor: its columns (name, type), then batches."""

    columns: list[tuple[str, str]]
    cursor: Any

    async def fetch(self, n: int) -> list[asyncpg.Record]:
        return list(await self.cursor.fetch(n))


async def columns(
    conn: asyncpg.Connection, resolver: Resolver, table: str, subject: Subject
) -> list[tuple[str, str]]:
    """(name, type) of the columns the export writes for `table`."""
    sql, _ = resolver.rows_sql(table, subject)
    stmt = await conn.prepare(sql)
    return [(a.name, a.type.name) for a in stmt.get_attributes()]


def copy_sql(resolver: Resolver, table: str, subject: Subject, select: str) -> str | None:
    """The query COPY runs for the subject's rows of `table` in key order, `select`
    formatting them (`pgformat`, over the row aliased `x`). None when the scope's keys of
    `table` are not materialized: read with a cursor then.

    Joined to the materialized keys (distinct), ordered by them: Postgres sorts the keys
    (8 bytes a row) and walks the primary key index, so rows stream out at once. (The
    resolver's `rows_sql`, `IN (keys) ORDER BY pk`, hash-joined then sorted the formatted
    rows, spilling to disk and holding every byte back until the sort was done.)"""
    keys = subject.materialized.get(table)
    if keys is None:
        return None
    pks = [q(c) for c in resolver.dm.tables[table].pk_columns]
    match = " AND ".join(f"x.{c} = k.{c}" for c in pks)
    order = ", ".join(f"k.{c}" for c in pks)
    cols = ", ".join(pks)
    # The keys sorted in a subquery: the planner then merges (or loops) along the index
    # in that order; a plain join was hashed, and its formatted rows sorted.
    return (
        f"SELECT {select} FROM (SELECT {cols} FROM {keys} ORDER BY {cols}) k "
        f"JOIN {q(table)} x ON {match} ORDER BY {order}"
    )


async def copy_rows(
    conn: asyncpg.Connection, sql: str, fmt: str, output: Callable[[bytes], Awaitable[None]]
) -> int:
    """Stream `sql`'s rows as `fmt` to `output` by COPY; the number of rows."""
    options = pgformat.JSON_COPY if fmt == "json" else pgformat.CSV_COPY
    # (`output` must not raise: see stream._CopyFeed.)
    async with conn.transaction():
        status = await conn.copy_from_query(pgformat.copy_query(sql, fmt), output=output, **options)
    return int(status.split()[-1])


@asynccontextmanager
async def table_rows(
    conn: asyncpg.Connection, resolver: Resolver, table: str, subject: Subject
) -> AsyncIterator[Rows]:
    """The subject's rows of `table`, read in batches (memory stays flat)."""
    sql, args = resolver.rows_sql(table, subject)
    async with conn.transaction():
        stmt = await conn.prepare(sql)
        columns = [(a.name, a.type.name) for a in stmt.get_attributes()]
        yield Rows(columns, await stmt.cursor(*args))


@asynccontextmanager
async def object_keys(
    conn: asyncpg.Connection, resolver: Resolver, table: str, subject: Subject
) -> AsyncIterator[AsyncIterator[str]]:
    """The S3 keys the subject's rows of `table` point at (its object key column)."""
    column = resolver.dm.tables[table].object_key_column
    assert column is not None
    keys, args = resolver.keys_sql(table, subject)
    pk = ", ".join(f"x.{q(c)}" for c in resolver.dm.tables[table].pk_columns)
    sql = (
        f"SELECT x.{q(column)} FROM {q(table)} x WHERE ({pk}) IN "
        f"({keys}) AND x.{q(column)} IS NOT NULL"
    )

    async def each() -> AsyncIterator[str]:
        async for rec in conn.cursor(sql, *args, prefetch=500):
            yield rec[0]

    async with conn.transaction():
        yield each()
