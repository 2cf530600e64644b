"""Intake's SQL: organisations, API keys, jobs and the outbox."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.domain import Caller, NewJob
from shared.events import Envelope


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_org(
    pool: asyncpg.Pool, org_id: str, name: str, *, recovery_window_days: int = 7
) -> None:
    await pool.execute(
        "INSERT INTO lethe.organisations (id, name, recovery_window_days) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO NOTHING",
        org_id,
        name,
        recovery_window_days,
    )


async def create_api_key(pool: asyncpg.Pool, org_id: str, role: str, name: str) -> str:
    """Returns the key itself: it is stored only as a hash, so this is the one time it shows."""
    key = "lethe_" + secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO lethe.api_keys (id, org_id, key_hash, role, name) VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(),
        org_id,
        hash_key(key),
        role,
        name,
    )
    return key


async def caller_for_key(pool: asyncpg.Pool, key: str) -> Caller | None:
    r = await pool.fetchrow(
        "SELECT k.id, k.org_id, k.role, o.name, o.recovery_window_days "
        "FROM lethe.api_keys k JOIN lethe.organisations o ON o.id = k.org_id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        hash_key(key),
    )
    if r is None:
        return None
    return Caller(
        org_id=r["org_id"],
        org_name=r["name"],
        role=r["role"],
        key_id=r["id"],
        recovery_window_days=r["recovery_window_days"],
    )


_JOB_COLUMNS = (
    "id, org_id, type, scope, status, phase, subject_hash, request_id, channel, actor, "
    "regulation, received_at, due_at, extended_due_at, recovery_window_days, done, total, "
    "rows_per_second, eta_seconds, result, error, last_event_at, updated_at, purge_after, "
    "needs_review"
)


async def insert_job(pool: asyncpg.Pool, job: NewJob) -> tuple[dict[str, Any], bool]:
    """Job and outbox row in one transaction. Returns (job, created); an idempotency-key
    repeat returns the existing job and writes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO lethe.jobs (id, org_id, type, scope, status, subject_hash, request_id, "
            "channel, actor, regulation, received_at, due_at, recovery_window_days) "
            "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12) "
            "ON CONFLICT (org_id, request_id) DO NOTHING RETURNING id",
            job.job_id,
            job.org_id,
            job.type,
            job.scope,
            job.subject_hash,
            job.request_id,
            job.channel,
            job.actor,
            job.regulation,
            job.received_at,
            job.due_at,
            job.recovery_window_days,
        )
        if inserted is None:
            existing = await conn.fetchrow(
                f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
                job.org_id,
                job.request_id,
            )
            assert existing is not None
            return dict(existing), False
        await conn.execute(
            "INSERT INTO lethe.outbox (topic, event) VALUES ($1, $2)",
            job.topic,
            job.event.model_dump(mode="json"),
        )
        row = await conn.fetchrow(
            f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1", job.job_id
        )
        assert row is not None
        return dict(row), True


async def get_job(pool: asyncpg.Pool, org_id: str, job_id: uuid.UUID) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1 AND org_id = $2", job_id, org_id
    )
    return dict(r) if r else None


async def count_jobs(pool: asyncpg.Pool, org_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    return n


# Progress: never move a job out of a final state, never move `done` backwards.
_FINAL = ("completed", "completed_with_errors", "failed", "cancelled", "restored", "expired")
_NOT_FINAL = "status NOT IN (" + ", ".join(f"'{s}'" for s in _FINAL) + ")"


async def apply_progress(pool: asyncpg.Pool, env: Envelope) -> None:
    """Fold a worker's progress event into the job row (idempotent, order-tolerant)."""
    p, t, job = env.payload, env.type, env.job_id
    at = env.occurred_at
    if t == "ErasurePlanned":
        await pool.execute(
            "UPDATE lethe.jobs SET status = 'running', phase = 'planned', total = $2, "
            "last_event_at = $3, updated_at = now() WHERE id = $1 AND status = 'pending'",
            job,
            p["total"],
            at,
        )
    elif t == "BatchErased":
        await pool.execute(
            "UPDATE lethe.jobs SET status = 'running', phase = 'erasing', "
            "done = GREATEST(done, $2), total = $3, rows_per_second = $4, eta_seconds = $5, "
            "last_event_at = $6, updated_at = now() "
            "WHERE id = $1 AND status IN ('pending', 'running')",
            job,
            p["done"],
            p["total"],
            p["rows_per_second"],
            p["eta_seconds"],
            at,
        )
    elif t == "ErasureSoftDeleted":
        await pool.execute(
            "UPDATE lethe.jobs SET status = 'soft_deleted', phase = 'recovery_window', "
            "done = $2, total = $3, eta_seconds = 0, purge_after = $4, needs_review = $5, "
            "result = $6, last_event_at = $7, updated_at = now() "
            "WHERE id = $1 AND status IN ('pending', 'running')",
            job,
            p["done"],
            p["total"],
            datetime.fromisoformat(p["purge_after"]),
            p.get("needs_review", []),
            {"verification": p["verification"]},
            at,
        )
    elif t == "PurgeStarted":
        await pool.execute(
            "UPDATE lethe.jobs SET status = 'purging', phase = 'purging', last_event_at = $2, "
            "updated_at = now() WHERE id = $1 AND status IN ('pending', 'running', 'soft_deleted')",
            job,
            at,
        )
    elif t == "JobCompleted":
        review = p.get("needs_review", [])
        await pool.execute(
            "UPDATE lethe.jobs SET status = $2, phase = 'completed', done = $3, total = $4, "
            "eta_seconds = 0, result = $5, needs_review = needs_review || $6, "
            f"last_event_at = $7, updated_at = now() WHERE id = $1 AND {_NOT_FINAL}",
            job,
            "completed_with_errors" if review else "completed",
            p["done"],
            p["total"],
            {"verification": p["verification"], "needs_review": review},
            review,
            at,
        )
    elif t in ("JobFailed", "JobCancelled", "JobRestored"):
        status = {"JobFailed": "failed", "JobCancelled": "cancelled", "JobRestored": "restored"}[t]
        await pool.execute(
            f"UPDATE lethe.jobs SET status = $2, phase = $2, error = $3, "
            "needs_review = needs_review || $4, last_event_at = $5, updated_at = now() "
            f"WHERE id = $1 AND {_NOT_FINAL}",
            job,
            status,
            p.get("reason"),
            p.get("needs_review", []),
            at,
        )


async def take_outbox(conn: asyncpg.Connection, limit: int) -> list[tuple[int, str, Envelope]]:
    """Lock a batch of unpublished events (SKIP LOCKED: replicas share the relay)."""
    rows = await conn.fetch(
        "SELECT id, topic, event FROM lethe.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["id"], r["topic"], Envelope.model_validate(r["event"])) for r in rows]


async def delete_outbox(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute("DELETE FROM lethe.outbox WHERE id = ANY($1)", ids)
