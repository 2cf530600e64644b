"""The audit trail as others read it: one page of an organisation's rows (`GET /v1/audit`
and the web UI's list, which also filters on the actor), and the whole chain and its
checkpoints in seq order, a page at a time (verification, export).

The auditor appends to `audit_log` and `audit_checkpoints` (services/auditor/store.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from shared.auditchain.checkpoints import Checkpoint
from shared.auditchain.rows import AuditRow

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
COLUMNS = (
    "seq, event_id, occurred_at, recorded_at, actor, action, org_id, job_id, subject_hash, "
    "details, prev_hash, hash"
)
CHECKPOINT_COLUMNS = "seq, head_hash, signed_at, key_id, signature"


@dataclass(frozen=True)
class Query:
    org_id: str
    job_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = 0
    limit: int = 100
    actor: str | None = None  # `kind:id`, or any part of it (the web UI's filter)


async def query(db: Db, q: Query) -> list[dict[str, Any]]:
    """One page of an organisation's audit rows, oldest first, after `after_seq` (keyset)."""
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM lethe.audit_log WHERE org_id = $1 AND seq > $2 "
        "AND ($3::uuid IS NULL OR job_id = $3) AND ($4::text IS NULL OR action = $4) "
        "AND ($5::timestamptz IS NULL OR occurred_at >= $5) "
        "AND ($6::timestamptz IS NULL OR occurred_at < $6) "
        "AND ($8::text IS NULL OR strpos(actor, $8) > 0) "
        "ORDER BY seq LIMIT $7",
        q.org_id,
        q.after_seq,
        q.job_id,
        q.action,
        q.since,
        q.until,
        q.limit,
        q.actor,
    )
    return [dict(r) for r in rows]


async def of_job(db: Db, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every recorded event of one job, in the order recorded (what rebuilds its state)."""
    rows = await db.fetch(
        "SELECT event_id, action, occurred_at, actor, details FROM lethe.audit_log "
        "WHERE job_id = $1 ORDER BY seq",
        job_id,
    )
    return [dict(r) for r in rows]


async def _keyset(
    db: Db, table: str, columns: str, page: int, from_seq: int, to_seq: int | None
) -> AsyncIterator[asyncpg.Record]:
    """Rows of an append-only table in seq order (from_seq <= seq <= to_seq), a page at a
    time: never the whole table in memory."""
    last = from_seq - 1
    hi = to_seq if to_seq is not None else 2**62
    while True:
        rows = await db.fetch(
            f"SELECT {columns} FROM lethe.{table} WHERE seq > $1 AND seq <= $2 "
            "ORDER BY seq LIMIT $3",
            last,
            hi,
            page,
        )
        if not rows:
            return
        for r in rows:
            yield r
        last = rows[-1]["seq"]


async def iter_rows(
    db: Db, page: int = 5000, *, from_seq: int = 0, to_seq: int | None = None
) -> AsyncIterator[AuditRow]:
    async for r in _keyset(db, "audit_log", COLUMNS, page, from_seq, to_seq):
        yield AuditRow(**dict(r))


async def iter_checkpoints(
    db: Db, page: int = 1000, *, from_seq: int = 0, to_seq: int | None = None
) -> AsyncIterator[Checkpoint]:
    async for r in _keyset(db, "audit_checkpoints", CHECKPOINT_COLUMNS, page, from_seq, to_seq):
        yield Checkpoint(**dict(r))
