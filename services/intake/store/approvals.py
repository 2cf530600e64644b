"""The approval step (an org's channels, held requests, the decisions' moves) and requests
linked to an open job of the same subject (lethe.job_links)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.intake.store.db import Db
from services.intake.store.jobs import _JOB_COLUMNS
from shared import lifecycle
from shared.events import Envelope


async def approval_channels(db: Db, org_id: str) -> list[str]:
    found: list[str] | None = await db.fetchval(
        "SELECT approval_channels FROM lethe.organisations WHERE id = $1", org_id
    )
    return list(found or [])


async def set_approval_channels(
    conn: asyncpg.Connection, org_id: str, channels: list[str]
) -> list[str]:
    """Set the channels whose jobs wait for approval; returns the old ones."""
    old: list[str] = await conn.fetchval(
        "SELECT approval_channels FROM lethe.organisations WHERE id = $1 FOR UPDATE", org_id
    )
    await conn.execute(
        "UPDATE lethe.organisations SET approval_channels = $2 WHERE id = $1", org_id, channels
    )
    return list(old)


async def hold(conn: asyncpg.Connection, job_id: uuid.UUID, topic: str, env: Envelope) -> None:
    """Keep the job's request event until an admin decides."""
    await hold_many(conn, [(job_id, topic, env)])


async def hold_many(conn: asyncpg.Connection, held: list[tuple[uuid.UUID, str, Envelope]]) -> None:
    """`hold` for many jobs, in one round trip (a bulk request's members)."""
    await conn.executemany(
        "INSERT INTO lethe.held_requests (job_id, topic, event) VALUES ($1, $2, $3)",
        [(job_id, topic, env.model_dump(mode="json")) for job_id, topic, env in held],
    )


async def take_held(conn: asyncpg.Connection, job_id: uuid.UUID) -> tuple[str, Envelope] | None:
    """The held request event, deleted (it goes to the outbox, or nowhere on a denial)."""
    r = await conn.fetchrow(
        "DELETE FROM lethe.held_requests WHERE job_id = $1 RETURNING topic, event", job_id
    )
    return (r["topic"], Envelope.model_validate(r["event"])) if r else None


_MOVE = (
    "UPDATE lethe.jobs SET status = $3, phase = $4, last_event_at = $5, "
    "error = coalesce($6, error), updated_at = now() WHERE id = $1 AND status = ANY($2)"
)


def _move_args(env: Envelope, error: str | None) -> tuple[Any, ...]:
    m = lifecycle.move_for(env.type, env.payload)
    assert m is not None and m.to is not None
    return (env.job_id, list(m.from_states), m.to, m.phase, env.occurred_at, error)


async def move(conn: asyncpg.Connection, env: Envelope, error: str | None = None) -> None:
    """Intake's own state change (ApprovalRequired, RequestApproved, RequestDenied), as
    `lifecycle.PROGRESS` says: the same move a rebuild from the events makes."""
    await conn.execute(_MOVE, *_move_args(env, error))


async def move_many(conn: asyncpg.Connection, envs: list[Envelope]) -> None:
    """`move` for many jobs, in one round trip (a bulk request's held members)."""
    await conn.executemany(_MOVE, [_move_args(env, None) for env in envs])


async def awaiting(db: Db, org_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """The org's jobs awaiting approval, the nearest deadline first."""
    rows = await db.fetch(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND status = $2 "
        "ORDER BY coalesce(extended_due_at, due_at), received_at LIMIT $3",
        org_id,
        lifecycle.HELD,
        limit,
    )
    return [dict(r) for r in rows]


# --- linked (duplicate) requests -----------------------------------------------------------


async def job_of_request(db: Db, org_id: str, request_id: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await db.fetchval(
        "SELECT id FROM lethe.jobs WHERE org_id = $1 AND request_id = $2", org_id, request_id
    )
    return found


async def link_of_request(db: Db, org_id: str, request_id: str) -> dict[str, Any] | None:
    r = await db.fetchrow(
        "SELECT id, job_id, request_fingerprint FROM lethe.job_links "
        "WHERE org_id = $1 AND request_id = $2",
        org_id,
        request_id,
    )
    return dict(r) if r else None


def _subject_lock(org_id: str, subject_hash: str, job_type: str) -> str:
    return f"{org_id}\n{subject_hash}\n{job_type}"


_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 17))"
_OPEN = (
    f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE org_id = $1 AND subject_hash = ANY($2) "
    "AND type = $3 AND scope = 'subject' AND status = ANY($4) ORDER BY received_at FOR SHARE"
)


async def open_job(
    conn: asyncpg.Connection, org_id: str, subject_hash: str, job_type: str
) -> dict[str, Any] | None:
    """The subject's open job of this type, share-locked (its progress waits until a link made
    now is committed, so the link is seen when the job is done). Two submissions of the same
    subject are serialised by an advisory lock: the second sees the first's job."""
    await conn.execute(_LOCK, _subject_lock(org_id, subject_hash, job_type))
    r = await conn.fetchrow(_OPEN, org_id, [subject_hash], job_type, list(lifecycle.OPEN))
    return dict(r) if r else None


async def open_jobs(
    conn: asyncpg.Connection, org_id: str, subject_hashes: list[str], job_type: str
) -> dict[str, dict[str, Any]]:
    """`open_job` for many subjects of one org (a bulk request's), by subject hash: the same
    advisory locks, taken in one round trip in a stable order (two bulks naming the same
    subjects wait for each other, they do not deadlock), then the open jobs share-locked."""
    keys = sorted({_subject_lock(org_id, h, job_type) for h in subject_hashes})
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 17))) "
        "FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n)",
        keys,
    )
    rows = await conn.fetch(
        _OPEN, org_id, sorted(set(subject_hashes)), job_type, list(lifecycle.OPEN)
    )
    found: dict[str, dict[str, Any]] = {}
    for r in rows:  # the oldest open job of each subject, as `open_job`
        found.setdefault(r["subject_hash"], dict(r))
    return found


# (id, org_id, job_id, request_id, request_fingerprint, channel, actor, requester_email,
# received_at)
LinkRow = tuple[uuid.UUID, str, uuid.UUID, str | None, str | None, str, str, str | None, datetime]


async def insert_links(conn: asyncpg.Connection, rows: list[LinkRow]) -> None:
    await conn.executemany(
        "INSERT INTO lethe.job_links (id, org_id, job_id, request_id, request_fingerprint, "
        "channel, actor, requester_email, received_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        rows,
    )


async def take_links_to_tell(conn: asyncpg.Connection, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The job's links whose requesters were not told yet: marked told, their address
    returned once and forgotten (personal data leaves with the request)."""
    rows = await conn.fetch(
        "UPDATE lethe.job_links l SET notified_at = now(), requester_email = NULL "
        "FROM (SELECT id, requester_email FROM lethe.job_links "
        "      WHERE job_id = $1 AND notified_at IS NULL FOR UPDATE) old "
        "WHERE l.id = old.id RETURNING l.id, l.received_at, old.requester_email",
        job_id,
    )
    return [dict(r) for r in rows]


async def links_of(db: Db, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, request_id, channel, actor, received_at, notified_at "
        "FROM lethe.job_links WHERE job_id = $1 ORDER BY received_at",
        job_id,
    )
    return [dict(r) for r in rows]


async def job_row(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    """Any org's job, locked: links made to it meanwhile wait (`open_job` share-locks it)."""
    r = await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM lethe.jobs WHERE id = $1 FOR UPDATE", job_id
    )
    return dict(r) if r else None
