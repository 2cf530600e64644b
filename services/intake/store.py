"""Intake's SQL: organisations, API keys, jobs and the outbox."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.domain import Caller, NewJob
from shared import lifecycle
from shared.events import Actor, Envelope, make_event
from shared.events.envelope import safe_details
from shared.events.requests import OrgDelegationChanged
from shared.events.topics import AUDIT, JOBS_EXPORT, NOTIFICATIONS, PROGRESS


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
        "SELECT k.id, k.org_id, k.role, o.name, o.recovery_window_days, "
        "o.admins_submit_subject_requests "
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
        admins_submit_subject_requests=r["admins_submit_subject_requests"],
    )


_JOB_COLUMNS = (
    "id, org_id, type, scope, status, phase, subject_hash, request_id, channel, actor, "
    "regulation, received_at, due_at, extended_due_at, recovery_window_days, done, total, "
    "rows_per_second, eta_seconds, result, error, last_event_at, updated_at, purge_after, "
    "needs_review, request_fingerprint, reason, extension_reason, receipt_due_at, "
    "receipt_confirmed_at, extension_notified_at"
)


async def insert_job(
    pool: asyncpg.Pool,
    job: NewJob,
    with_job: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Job and outbox row in one transaction. Returns (job, created); an idempotency-key
    repeat returns the existing job and writes nothing. `with_job` writes what belongs with
    a new job (in the transaction, before the job's event is in the outbox)."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            "INSERT INTO lethe.jobs (id, org_id, type, scope, status, subject_hash, request_id, "
            "channel, actor, regulation, received_at, due_at, recovery_window_days, "
            "requester_email, request_fingerprint, reason, receipt_due_at, receipt_confirmed_at) "
            "VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
            "$16, $17) "
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
            job.requester_email,
            job.fingerprint,
            job.reason,
            job.receipt_due_at,
            job.received_at if job.notices else None,
        )
        if inserted is None:
            existing = await conn.fetchrow(
                f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
                job.org_id,
                job.request_id,
            )
            assert existing is not None
            return dict(existing), False
        if with_job is not None:
            await with_job(conn)
        await add_outbox(conn, job.topic, job.event)
        await record_event(conn, job.event)
        for notice in job.notices:  # e.g. the CCPA receipt confirmation, issued on receipt
            await add_outbox(conn, NOTIFICATIONS, notice)
            await record_event(conn, notice)
        row = await conn.fetchrow(
            f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1", job.job_id
        )
        assert row is not None
        return dict(row), True


async def add_outbox(conn: asyncpg.Connection, topic: str, env: Envelope) -> None:
    await conn.execute(
        "INSERT INTO lethe.outbox (topic, event) VALUES ($1, $2)",
        topic,
        env.model_dump(mode="json"),
    )


async def record_command(
    pool: asyncpg.Pool, job_id: uuid.UUID, topic: str, env: Envelope, allowed: tuple[str, ...]
) -> str | None:
    """Publish a command for a job (outbox + timeline) if the job is still in an allowed
    state, checked under a row lock. Returns the job's status when it was not allowed."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM lethe.jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if status not in allowed:
            return str(status)
        await add_outbox(conn, topic, env)
        await record_event(conn, env)
        return None


async def cancel_unsent_export(
    pool: asyncpg.Pool, job_id: uuid.UUID, cancelled: Envelope
) -> str | None:
    """Cancel a pending export whose request is still in the outbox: the request is taken
    back (the exporter never sees it), the job is `cancelled` at once and `cancelled` (a
    JobCancelled on the progress topic) tells the controller and the audit trail. Returns
    why not: the job's status, or "handed" once the exporter has the request."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM lethe.jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if status != "pending":
            return str(status)
        taken = await conn.fetch(
            "DELETE FROM lethe.outbox WHERE topic = $1 AND event->>'job_id' = $2 RETURNING id",
            JOBS_EXPORT,
            str(job_id),
        )
        if not taken:
            return "handed"
        await conn.execute(
            "UPDATE lethe.jobs SET status = 'cancelled', phase = 'cancelled', "
            "last_event_at = $2, updated_at = now() WHERE id = $1",
            job_id,
            cancelled.occurred_at,
        )
        await add_outbox(conn, PROGRESS, cancelled)
        await record_event(conn, cancelled)
        return None


async def requester_email(pool: asyncpg.Pool, job_id: uuid.UUID) -> str | None:
    email: str | None = await pool.fetchval(
        "SELECT requester_email FROM lethe.jobs WHERE id = $1", job_id
    )
    return email


async def extend_job(
    pool: asyncpg.Pool,
    job_id: uuid.UUID,
    extended_due_at: datetime,
    reason: str,
    env: Envelope,
    notice: Envelope,
) -> bool:
    """Record the one extension, its audit event and its notice to the requester (outbox),
    in one transaction. False when the job was extended meanwhile."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE lethe.jobs SET extended_due_at = $2, extension_reason = $3, "
            "extension_notified_at = now(), updated_at = now() "
            "WHERE id = $1 AND extended_due_at IS NULL RETURNING id",
            job_id,
            extended_due_at,
            reason,
        )
        if done is None:
            return False
        await add_outbox(conn, AUDIT, env)
        await record_event(conn, env)
        await add_outbox(conn, NOTIFICATIONS, notice)
        await record_event(conn, notice)
        return True


async def list_jobs(
    pool: asyncpg.Pool,
    org_id: str,
    *,
    status: str | None,
    job_type: str | None,
    overdue_at: datetime | None,
    due_before: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (received_at, id)."""
    conds, args = ["org_id = $1"], [org_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if status:
        conds.append(f"status = {arg(status)}")
    if job_type:
        conds.append(f"type = {arg(job_type)}")
    if overdue_at:
        conds.append(
            f"coalesce(extended_due_at, due_at) < {arg(overdue_at)} "
            f"AND status NOT IN ({', '.join(repr(s) for s in lifecycle.DONE_FOR_DEADLINE)})"
        )
    if due_before:
        conds.append(f"coalesce(extended_due_at, due_at) < {arg(due_before)}")
    if after:
        conds.append(f"(received_at, id) < ({arg(after[0])}, {arg(after[1])})")
    rows = await pool.fetch(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE {' AND '.join(conds)} "
        f"ORDER BY received_at DESC, id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [dict(r) for r in rows]


async def job_events(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event_id, type, occurred_at, actor, details FROM lethe.job_events "
        "WHERE job_id = $1 ORDER BY occurred_at, event_id",
        job_id,
    )
    return [dict(r) for r in rows]


async def list_api_keys(pool: asyncpg.Pool, org_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT id, role, name, created_at, revoked_at FROM lethe.api_keys WHERE org_id = $1 "
        "ORDER BY created_at",
        org_id,
    )
    return [dict(r) for r in rows]


async def revoke_api_key(pool: asyncpg.Pool, org_id: str, key_id: uuid.UUID) -> bool:
    done = await pool.fetchval(
        "UPDATE lethe.api_keys SET revoked_at = now() "
        "WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL RETURNING id",
        key_id,
        org_id,
    )
    return done is not None


async def get_job(pool: asyncpg.Pool, org_id: str, job_id: uuid.UUID) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1 AND org_id = $2", job_id, org_id
    )
    return dict(r) if r else None


async def count_jobs(pool: asyncpg.Pool, org_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    return n


def _progress_columns(env: Envelope) -> dict[str, Any]:
    """Job columns a progress event sets (beyond status and phase)."""
    p, t = env.payload, env.type
    cols: dict[str, Any] = {}
    if "total" in p:
        cols["total"] = p["total"]
    if "done" in p:
        cols["done"] = p["done"]
    if t in ("BatchErased", "BatchExported"):
        cols.update(rows_per_second=p["rows_per_second"], eta_seconds=p["eta_seconds"])
    if t in ("ErasureSoftDeleted", "JobCompleted"):
        cols.update(eta_seconds=0, result={"verification": p["verification"]})
    if t == "ErasureSoftDeleted":
        cols["purge_after"] = datetime.fromisoformat(p["purge_after"])
    if t == "ExportReady":
        cols["result"] = p
    if t in ("JobFailed", "JobCancelled", "SubjectAmbiguous"):
        cols["error"] = p.get("reason")
    if t == "SubjectNotFound":
        cols["result"] = {"outcome": "not_found"}
    if t == "SubjectAmbiguous":
        cols["result"] = {"outcome": "ambiguous"}
    if p.get("needs_review") or (t == "JobCompleted" and "needs_review" in p):
        cols["needs_review"] = p["needs_review"]  # JobCompleted's replaces the list
    return cols


async def apply_progress(pool: asyncpg.Pool, env: Envelope) -> bool:
    """Fold a worker's event into the job, as the lifecycle allows; record it in the
    timeline. Idempotent: a redelivered or late event changes nothing."""
    if env.job_id is None:
        return False
    move = lifecycle.move_for(env.type, env.payload)
    if move is None:  # no state change (e.g. CommandRefused): still part of the timeline
        async with pool.acquire() as conn:
            await record_event(conn, env)
        return False
    cols = _progress_columns(env)
    status = move.to or lifecycle.completed_status(env.payload.get("needs_review", []))
    args: list[Any] = [env.job_id, list(move.from_states), status, move.phase, env.occurred_at]
    sets = []
    for name, value in cols.items():
        args.append(value)
        if name == "done":
            sets.append(f"done = GREATEST(done, ${len(args)})")
        elif name == "needs_review" and env.type == "JobCompleted":
            # The worker's final list: items it resolved meanwhile (a purge that had to
            # wait for S3) are no longer in it.
            sets.append(f"needs_review = ${len(args)}")
        elif name == "needs_review":
            sets.append(f"needs_review = needs_review || ${len(args)}")
        else:
            sets.append(f"{name} = ${len(args)}")
    extra = "".join(f", {x}" for x in sets)
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(
            "UPDATE lethe.jobs SET status = $3, phase = $4, last_event_at = $5, "
            f"updated_at = now(){extra} WHERE id = $1 AND status = ANY($2) RETURNING id",
            *args,
        )
        await record_event(conn, env)
    return updated is not None


async def record_event(conn: asyncpg.Connection, env: Envelope) -> None:
    """Timeline entry; the same details the audit trail keeps (no personal data)."""
    await conn.execute(
        "INSERT INTO lethe.job_events (event_id, job_id, type, occurred_at, actor, details) "
        "SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM lethe.jobs WHERE id = $2) "
        "ON CONFLICT (event_id) DO NOTHING",
        env.event_id,
        env.job_id,
        env.type,
        env.occurred_at,
        f"{env.actor.kind}:{env.actor.id}",
        safe_details(env),
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


async def get_org(pool: asyncpg.Pool, org_id: str) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        "SELECT id, name, recovery_window_days, admins_submit_subject_requests "
        "FROM lethe.organisations WHERE id = $1",
        org_id,
    )
    return dict(r) if r else None


async def set_delegation(pool: asyncpg.Pool, org_id: str, on: bool, actor: Actor) -> bool:
    """Set whether admins may submit subject-level requests; a change is audited (outbox,
    OrgDelegationChanged with old and new) in the same transaction. Returns the old value."""
    async with pool.acquire() as conn, conn.transaction():
        old: bool = await conn.fetchval(
            "SELECT admins_submit_subject_requests FROM lethe.organisations "
            "WHERE id = $1 FOR UPDATE",
            org_id,
        )
        if old != on:
            await conn.execute(
                "UPDATE lethe.organisations SET admins_submit_subject_requests = $2 WHERE id = $1",
                org_id,
                on,
            )
            env = make_event(OrgDelegationChanged(old=old, new=on), actor=actor, org_id=org_id)
            await add_outbox(conn, AUDIT, env)
        return old
