"""audit_log SQL: ordered appends under a transaction-scoped advisory lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from services.auditor.domain import GENESIS, AuditRow, next_row
from shared.events import Envelope

# Serialises appenders across replicas so the chain never forks.
_CHAIN_LOCK = 7_715_002
_COLUMNS = (
    "seq, event_id, occurred_at, recorded_at, actor, action, org_id, job_id, subject_hash, "
    "details, prev_hash, hash"
)


async def append(pool: asyncpg.Pool, env: Envelope) -> AuditRow | None:
    """Append one event; None when it is already recorded (a redelivery)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
        if await conn.fetchval("SELECT 1 FROM lethe.audit_log WHERE event_id = $1", env.event_id):
            return None
        head = await conn.fetchrow(
            "SELECT seq, hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1"
        )
        prev_seq, prev_hash = (head["seq"], head["hash"]) if head else (0, GENESIS)
        row = next_row(env, prev_seq=prev_seq, prev_hash=prev_hash, recorded_at=datetime.now(UTC))
        await conn.execute(
            f"INSERT INTO lethe.audit_log ({_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            row.seq,
            row.event_id,
            row.occurred_at,
            row.recorded_at,
            row.actor,
            row.action,
            row.org_id,
            row.job_id,
            row.subject_hash,
            row.details,
            row.prev_hash,
            row.hash,
        )
        return row


async def iter_rows(
    pool: asyncpg.Pool | asyncpg.Connection, page: int = 5000
) -> AsyncIterator[AuditRow]:
    """All rows in order, by keyset pagination (never the whole table in memory)."""
    last = 0
    while True:
        rows = await pool.fetch(
            f"SELECT {_COLUMNS} FROM lethe.audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            last,
            page,
        )
        if not rows:
            return
        for r in rows:
            yield AuditRow(**dict(r))
        last = rows[-1]["seq"]
