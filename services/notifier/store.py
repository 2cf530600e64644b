"""deliveries (one row per event and recipient, so a redelivered event is not re-sent),
owner contacts and registered webhooks."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

import asyncpg


async def claim(
    pool: asyncpg.Pool,
    command_event_id: uuid.UUID,
    recipient: str,
    *,
    job_id: uuid.UUID | None,
    channel: str,
    template: str,
) -> bool:
    """True when this (event, recipient) still needs sending: first time, or after a failure."""
    status = await pool.fetchval(
        "INSERT INTO lethe.deliveries (command_event_id, recipient, job_id, channel, template, "
        "status, attempts) VALUES ($1, $2, $3, $4, $5, 'sending', 1) "
        "ON CONFLICT (command_event_id, recipient) DO UPDATE "
        "SET attempts = lethe.deliveries.attempts + 1, status = 'sending' "
        "WHERE lethe.deliveries.status <> 'sent' RETURNING status",
        command_event_id,
        recipient,
        job_id,
        channel,
        template,
    )
    return status is not None


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


async def remove_webhook(pool: asyncpg.Pool, hook_id: uuid.UUID) -> bool:
    done = await pool.execute(
        "UPDATE lethe.webhooks SET removed_at = now() WHERE id = $1 AND removed_at IS NULL",
        hook_id,
    )
    return bool(done.endswith(" 1"))
