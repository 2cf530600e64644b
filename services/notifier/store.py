"""deliveries (one row per event and recipient, so a redelivered event is not re-sent),
owner contacts and registered webhooks."""

from __future__ import annotations

import enum
import secrets
import uuid
from dataclasses import dataclass

import asyncpg


class Claim(enum.Enum):
    GO = "go"  # ours to send now
    DONE = "done"  # already sent: a redelivery
    BUSY = "busy"  # another consumer is sending it right now


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
        "ON CONFLICT (command_event_id, recipient) DO UPDATE "
        "SET attempts = d.attempts + 1, status = 'sending', claimed_at = now() "
        "WHERE d.status = 'failed' OR (d.status = 'sending' "
        "AND d.claimed_at < now() - make_interval(secs => $6)) RETURNING true",
        command_event_id,
        recipient,
        job_id,
        channel,
        template,
        lease_seconds,
    )
    if claimed:
        return Claim.GO
    status = await pool.fetchval(
        "SELECT status FROM lethe.deliveries WHERE command_event_id = $1 AND recipient = $2",
        command_event_id,
        recipient,
    )
    return Claim.DONE if status == "sent" else Claim.BUSY


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
