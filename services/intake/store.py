"""Intake's SQL: organisations, API keys, jobs and the outbox."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from services.intake.domain import Caller, NewJob
from services.intake.domain.progress import STATE_FIELDS, JobEvent, progress_columns
from services.intake.opendsr import OpenDSRRequest
from shared import lifecycle
from shared.events import Envelope
from shared.events.envelope import safe_details
from shared.events.topics import JOBS_EXPORT


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


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection  # reads work on either; writes take a conn


async def insert_job(conn: asyncpg.Connection, job: NewJob) -> bool:
    """The job row, unless its idempotency key (org, request_id) was used: then False and
    nothing written. Its events go to the outbox through the unit of work."""
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
    return inserted is not None


async def job_by_request(db: Db, org_id: str, request_id: str | None) -> dict[str, Any]:
    """The job an idempotency key already names."""
    row = await db.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
        org_id,
        request_id,
    )
    assert row is not None
    return dict(row)


async def add_outbox(conn: asyncpg.Connection, topic: str, env: Envelope) -> None:
    await conn.execute(
        "INSERT INTO lethe.outbox (topic, event) VALUES ($1, $2)",
        topic,
        env.model_dump(mode="json"),
    )


async def take_back_export(conn: asyncpg.Connection, job_id: uuid.UUID) -> bool:
    """Delete a pending export's request from the outbox (the exporter never sees it). False
    when it is no longer there: the exporter has it."""
    taken = await conn.fetch(
        "DELETE FROM lethe.outbox WHERE topic = $1 AND event->>'job_id' = $2 RETURNING id",
        JOBS_EXPORT,
        str(job_id),
    )
    return bool(taken)


async def mark_cancelled(conn: asyncpg.Connection, job_id: uuid.UUID, at: datetime) -> None:
    """A job cancelled by intake itself (no worker had it)."""
    await conn.execute(
        "UPDATE lethe.jobs SET status = 'cancelled', phase = 'cancelled', "
        "last_event_at = $2, updated_at = now() WHERE id = $1",
        job_id,
        at,
    )


async def requester_email(db: Db, job_id: uuid.UUID) -> str | None:
    email: str | None = await db.fetchval(
        "SELECT requester_email FROM lethe.jobs WHERE id = $1", job_id
    )
    return email


async def extend_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, extended_due_at: datetime, reason: str
) -> None:
    """Record the one extension (checked by the caller under the job's row lock)."""
    await conn.execute(
        "UPDATE lethe.jobs SET extended_due_at = $2, extension_reason = $3, "
        "extension_notified_at = now(), updated_at = now() WHERE id = $1",
        job_id,
        extended_due_at,
        reason,
    )


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


async def get_job(
    db: Db, org_id: str, job_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """`lock`: FOR UPDATE, for a command checked and written in one transaction."""
    r = await db.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1 AND org_id = $2"
        + (" FOR UPDATE" if lock else ""),
        job_id,
        org_id,
    )
    return dict(r) if r else None


async def count_jobs(pool: asyncpg.Pool, org_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    return n


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
    cols = progress_columns(env.type, env.payload)
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
            # JobCompleted repeats the items ErasureSoftDeleted reported: each is kept once.
            sets.append(
                f"needs_review = needs_review || (SELECT coalesce(jsonb_agg(i), '[]'::jsonb) "
                f"FROM jsonb_array_elements(${len(args)}::jsonb) AS i "
                "WHERE NOT jobs.needs_review @> jsonb_build_array(i))"
            )
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


async def set_delegation(conn: asyncpg.Connection, org_id: str, on: bool) -> bool:
    """Set whether admins may submit subject-level requests; returns the old value."""
    old: bool = await conn.fetchval(
        "SELECT admins_submit_subject_requests FROM lethe.organisations WHERE id = $1 FOR UPDATE",
        org_id,
    )
    if old != on:
        await conn.execute(
            "UPDATE lethe.organisations SET admins_submit_subject_requests = $2 WHERE id = $1",
            org_id,
            on,
        )
    return old


# ------------------------------------------------------------------ OpenDSR requests
# (OpenDSR's own table; the job is intake's)

_OPENDSR_FACTS = (
    "SELECT j.id, j.type, j.status, j.due_at, j.extended_due_at, j.received_at, j.done, "
    "j.result, j.request_fingerprint, o.api_version, o.request_fingerprint AS dsr_fingerprint, "
    "o.subject_request_id FROM lethe.jobs j JOIN lethe.opendsr_requests o ON o.job_id = j.id "
)


async def opendsr_request(
    db: Db, org_id: str, subject_request_id: uuid.UUID, *, lock: bool = False
) -> dict[str, Any] | None:
    """The OpenDSR request and the facts of its job (`lock`: the job row, FOR UPDATE)."""
    row = await db.fetchrow(
        _OPENDSR_FACTS
        + "WHERE o.org_id = $1 AND o.subject_request_id = $2"
        + (" FOR UPDATE OF j" if lock else ""),
        org_id,
        subject_request_id,
    )
    return dict(row) if row else None


async def record_opendsr(
    db: Db, job_id: uuid.UUID, org_id: str, req: OpenDSRRequest, fingerprint: str
) -> None:
    """Idempotent: written with the job, and again (a no-op) after it."""
    await db.execute(
        "INSERT INTO lethe.opendsr_requests (job_id, org_id, subject_request_id, "
        "subject_request_type, regulation, api_version, property_id, submitted_time, "
        "status_callback_urls, request_fingerprint) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        job_id,
        org_id,
        uuid.UUID(req.subject_request_id),
        req.subject_request_type,
        req.regulation,
        req.api_version,
        None if req.property_id is None else str(req.property_id),
        req.submitted_time,
        req.status_callback_urls,
        fingerprint,
    )


# ------------------------------------------------------------------ rebuilding a job's state


async def job_state(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    """The columns that follow from the job's events, under the row's lock (the progress
    consumer waits, then applies what arrives on top of what is written here)."""
    r = await conn.fetchrow(
        f"SELECT {', '.join(STATE_FIELDS)} FROM lethe.jobs WHERE id = $1 FOR UPDATE", job_id
    )
    return dict(r) if r else None


async def write_state(conn: asyncpg.Connection, job_id: uuid.UUID, state: dict[str, Any]) -> None:
    names = [n for n in STATE_FIELDS if n in state]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    await conn.execute(
        f"UPDATE lethe.jobs SET {sets}, updated_at = now() WHERE id = $1",
        job_id,
        *(state[n] for n in names),
    )


async def timeline(db: Db, job_id: uuid.UUID) -> list[JobEvent]:
    rows = await db.fetch(
        "SELECT event_id, type, occurred_at, actor, details FROM lethe.job_events "
        "WHERE job_id = $1",
        job_id,
    )
    return [JobEvent(**dict(r)) for r in rows]


async def add_to_timeline(conn: asyncpg.Connection, job_id: uuid.UUID, e: JobEvent) -> None:
    await conn.execute(
        "INSERT INTO lethe.job_events (event_id, job_id, type, occurred_at, actor, details) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        e.event_id,
        job_id,
        e.type,
        e.occurred_at,
        e.actor,
        e.details,
    )
