"""The notifier's SQL: deliveries (one row per event and recipient, so a redelivered event is
not re-sent), OpenDSR callbacks (one row per progress event and URL), owner contacts and
registered webhooks. Both queues claim with the same leased claim (services/notifier/lease.py).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.notifier import lease
from services.notifier.lease import Claim

_FAILED = "d.status = 'failed'"  # a delivery whose last attempt failed: tried again


async def claim(
    pool: asyncpg.Pool,
    command_event_id: uuid.UUID,
    recipient: str,
    *,
    job_id: uuid.UUID | None,
    channel: str,
    template: str,
    lease_seconds: float = 60,
) -> Claim:
    """Take (event, recipient) for sending: the first time, after a failure, or when the
    previous claim's lease ran out (its sender died mid-send)."""
    claimed = await pool.fetchval(
        "INSERT INTO lethe.deliveries AS d (command_event_id, recipient, job_id, channel, "
        "template, status, attempts, claimed_at) VALUES ($1, $2, $3, $4, $5, 'sending', 1, now()) "
        f"ON CONFLICT (command_event_id, recipient) DO UPDATE SET {lease.take('d')} "
        f"WHERE {lease.claimable('d', ready=_FAILED, lease_param='$6')} "
        "RETURNING true",
        command_event_id,
        recipient,
        job_id,
        channel,
        template,
        lease_seconds,
    )
    status = None
    if not claimed:
        status = await pool.fetchval(
            "SELECT status FROM lethe.deliveries WHERE command_event_id = $1 AND recipient = $2",
            command_event_id,
            recipient,
        )
    return lease.outcome(bool(claimed), status)


async def mark(
    pool: asyncpg.Pool,
    command_event_id: uuid.UUID,
    recipient: str,
    status: str,
    error: str | None = None,
) -> None:
    await pool.execute(
        "UPDATE lethe.deliveries SET status = $3, last_error = $4, "
        "sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END "
        "WHERE command_event_id = $1 AND recipient = $2",
        command_event_id,
        recipient,
        status,
        error,
    )


async def give_up(pool: asyncpg.Pool, command_event_id: uuid.UUID, error: str) -> list[str]:
    """Mark every unsent delivery of the event failed; the recipients concerned."""
    rows = await pool.fetch(
        "UPDATE lethe.deliveries SET status = 'failed', last_error = $2 "
        "WHERE command_event_id = $1 AND status <> 'sent' RETURNING recipient",
        command_event_id,
        error,
    )
    return [r["recipient"] for r in rows]


# --- owner contacts -------------------------------------------------------------------


async def owner_emails(pool: asyncpg.Pool, org_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT email FROM lethe.org_contacts WHERE org_id = $1 AND role = 'owner' ORDER BY email",
        org_id,
    )
    return [r["email"] for r in rows]


async def add_contact(pool: asyncpg.Pool, org_id: str, email: str) -> None:
    await pool.execute(
        "INSERT INTO lethe.org_contacts (org_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        org_id,
        email.strip().lower(),
    )


async def remove_contact(pool: asyncpg.Pool, org_id: str, email: str) -> bool:
    done = await pool.execute(
        "DELETE FROM lethe.org_contacts WHERE org_id = $1 AND email = $2",
        org_id,
        email.strip().lower(),
    )
    return bool(done.endswith(" 1"))


# --- webhooks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    id: uuid.UUID
    org_id: str
    url: str
    secret: str


async def add_webhook(pool: asyncpg.Pool, org_id: str, url: str) -> Webhook:
    hook = Webhook(uuid.uuid4(), org_id, url, "whsec_" + secrets.token_urlsafe(32))
    await pool.execute(
        "INSERT INTO lethe.webhooks (id, org_id, url, secret) VALUES ($1, $2, $3, $4)",
        hook.id,
        hook.org_id,
        hook.url,
        hook.secret,
    )
    return hook


async def webhooks(pool: asyncpg.Pool, org_id: str | None = None) -> list[Webhook]:
    rows = await pool.fetch(
        "SELECT id, org_id, url, secret FROM lethe.webhooks WHERE removed_at IS NULL "
        "AND ($1::text IS NULL OR org_id = $1) ORDER BY org_id, created_at",
        org_id,
    )
    return [Webhook(**dict(r)) for r in rows]


async def remove_webhook(pool: asyncpg.Pool, hook_id: uuid.UUID) -> str | None:
    """The webhook's organisation, or None when there was no such active webhook."""
    org: str | None = await pool.fetchval(
        "UPDATE lethe.webhooks SET removed_at = now() WHERE id = $1 AND removed_at IS NULL "
        "RETURNING org_id",
        hook_id,
    )
    return org


# --- OpenDSR callbacks ------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """One recorded callback (progress event, URL), as claimed for sending."""

    event_id: uuid.UUID
    url: str
    job_id: uuid.UUID
    org_id: str | None
    subject_hash: str | None
    subject_request_id: str | None
    request_status: str
    endpoint: str | None
    body: bytes
    attempts: int
    deadline_at: datetime | None


# A new callback's columns, in this order: event_id, url, job_id, org_id, subject_hash,
# subject_request_id, request_status, endpoint, body, deadline_at.
NewRow = tuple[uuid.UUID, str, uuid.UUID, str, str | None, str, str, str, bytes, datetime]


async def record_callbacks(pool: asyncpg.Pool, rows: list[NewRow]) -> int:
    """Record each (event, URL) as pending; how many were new. A row from before the queue
    (no body) and not sent is taken over, and sent from here."""
    if not rows:
        return 0
    new = await pool.fetch(
        "INSERT INTO lethe.opendsr_callbacks (event_id, url, job_id, org_id, subject_hash, "
        "subject_request_id, request_status, endpoint, body, deadline_at, status, attempts) "
        "SELECT r.*, 'pending', 0 FROM unnest($1::uuid[], $2::text[], $3::uuid[], "
        "$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], "
        "$10::timestamptz[]) AS r ON CONFLICT (event_id, url) DO UPDATE SET "
        "org_id = EXCLUDED.org_id, subject_hash = EXCLUDED.subject_hash, "
        "subject_request_id = EXCLUDED.subject_request_id, endpoint = EXCLUDED.endpoint, "
        "body = EXCLUDED.body, deadline_at = EXCLUDED.deadline_at, status = 'pending', "
        "next_attempt_at = now(), claimed_at = NULL WHERE lethe.opendsr_callbacks.body IS "
        "NULL AND lethe.opendsr_callbacks.status <> 'sent' RETURNING url",
        *(list(col) for col in zip(*rows, strict=True)),
    )
    return len(new)


_DUE = "d.status = 'pending' AND d.next_attempt_at <= now()"


async def claim_callbacks(
    pool: asyncpg.Pool, full: list[str], limit: int, lease_seconds: float
) -> list[Callback]:
    """Take up to `limit` due callbacks (pending and due, or their lease ran out), none to
    an endpoint in `full`, none behind an unfinished earlier callback of the same job to
    the same URL. Replicas skip each other's locked rows."""
    rows = await pool.fetch(
        f"UPDATE lethe.opendsr_callbacks c SET {lease.take('c')} WHERE (c.event_id, c.url) IN ("
        " SELECT d.event_id, d.url FROM lethe.opendsr_callbacks d"
        f" WHERE {lease.claimable('d', ready=_DUE, lease_param='$3')}"
        " AND d.body IS NOT NULL AND NOT (d.endpoint = ANY($1::text[]))"
        " AND NOT EXISTS (SELECT 1 FROM lethe.opendsr_callbacks e WHERE e.job_id = d.job_id"
        "   AND e.url = d.url AND e.seq < d.seq AND e.status IN ('pending', 'sending'))"
        " ORDER BY d.next_attempt_at, d.seq LIMIT $2 FOR UPDATE SKIP LOCKED"
        ") RETURNING event_id, url, job_id, org_id, subject_hash, subject_request_id, "
        "request_status, endpoint, body, attempts, deadline_at",
        full,
        limit,
        lease_seconds,
    )
    return [Callback(**{**dict(r), "body": bytes(r["body"])}) for r in rows]


async def release_callbacks(pool: asyncpg.Pool, keys: list[tuple[uuid.UUID, str]]) -> None:
    """Claimed but not started (its endpoint had no free slot): back to pending, as it was."""
    await pool.executemany(
        "UPDATE lethe.opendsr_callbacks SET status = 'pending', attempts = attempts - 1, "
        "claimed_at = NULL WHERE event_id = $1 AND url = $2 AND status = 'sending'",
        keys,
    )


async def callback_sent(pool: asyncpg.Pool, event_id: uuid.UUID, url: str, code: int) -> None:
    await pool.execute(
        "UPDATE lethe.opendsr_callbacks SET status = 'sent', http_status = $3, "
        "last_error = NULL, sent_at = now(), claimed_at = NULL "
        "WHERE event_id = $1 AND url = $2",
        event_id,
        url,
        code,
    )


async def callback_failed(
    pool: asyncpg.Pool,
    event_id: uuid.UUID,
    url: str,
    code: int | None,
    error: str,
    retry_at: datetime | None,
) -> None:
    """`retry_at`: pending again from then; None: given up."""
    await pool.execute(
        "UPDATE lethe.opendsr_callbacks SET status = CASE WHEN $5::timestamptz IS NULL "
        "THEN 'failed' ELSE 'pending' END, http_status = $3, last_error = $4, "
        "next_attempt_at = coalesce($5, next_attempt_at), claimed_at = NULL "
        "WHERE event_id = $1 AND url = $2",
        event_id,
        url,
        code,
        error[:500],
        retry_at,
    )
