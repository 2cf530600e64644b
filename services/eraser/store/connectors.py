"""Connector calls of a job (lethe.erase_connector_calls, Lethe's database): one outcome per
job and connector, recorded after the call (a call not recorded is made again), and the
token table's keys the plan recorded (tokens are read from those rows before they go)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from services.eraser.models import ConnectorCall
from shared.datamap import TableMap
from shared.platform import key_in
from shared.resolver import q


async def connector_calls(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[ConnectorCall]:
    rows = await pool.fetch(
        "SELECT connector, kind, outcome, code, attempts, tokens, failed_tokens "
        "FROM lethe.erase_connector_calls WHERE job_id = $1 ORDER BY connector",
        job_id,
    )
    return [ConnectorCall(**dict(r)) for r in rows]


async def record_call(pool: asyncpg.Pool, job_id: uuid.UUID, call: ConnectorCall) -> None:
    await pool.execute(
        "INSERT INTO lethe.erase_connector_calls "
        "(job_id, connector, kind, outcome, code, attempts, tokens, failed_tokens) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job_id, connector) DO NOTHING",
        job_id,
        call.connector,
        call.kind,
        call.outcome,
        call.code,
        call.attempts,
        call.tokens,
        call.failed_tokens,
    )


async def planned_keys(
    pool: asyncpg.Pool, job_id: uuid.UUID, table: str
) -> AsyncIterator[list[str]]:
    """The keys of `table` the job's erase chunks hold, a chunk at a time."""
    after = -1
    while True:
        row = await pool.fetchrow(
            "SELECT chunk_no, keys FROM lethe.erase_chunks WHERE job_id = $1 AND table_name = $2 "
            "AND op = 'erase' AND chunk_no > $3 ORDER BY chunk_no LIMIT 1",
            job_id,
            table,
            after,
        )
        if row is None:
            return
        after = row["chunk_no"]
        yield list(row["keys"])


async def token_values(
    conn: asyncpg.Connection,
    table: str,
    t: TableMap,
    pk_type: str,
    columns: list[str],
    keys: list[str],
) -> list[dict[str, Any]]:
    """The token columns of the rows with these keys (key text as the plan records it)."""
    cols = ", ".join(f"x.{q(c)}" for c in columns)
    rows = await conn.fetch(
        f"SELECT {cols} FROM {q(table)} x WHERE {key_in(t, pk_type, 'x')}", keys
    )
    return [dict(r) for r in rows]
