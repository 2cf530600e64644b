"""The audit trail as intake reads it: one page of an organisation's rows (`GET /v1/audit`
and the web UI's list, which also filters on the actor).

The auditor appends to `audit_log` (services/auditor/store.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
_COLUMNS = (
    "seq, event_id, occurred_at, recorded_at, actor, action, org_id, job_id, subject_hash, "
    "details, prev_hash, hash"
)


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
        f"SELECT {_COLUMNS} FROM lethe.audit_log WHERE org_id = $1 AND seq > $2 "
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
