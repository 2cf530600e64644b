"""deliveries: one row per notification command, so a redelivered command is not re-sent."""

from __future__ import annotations

import uuid

import asyncpg


async def claim(
    pool: asyncpg.Pool, command_event_id: uuid.UUID, job_id: uuid.UUID | None, template: str
) -> bool:
    """True when this command still needs sending (first time, or a retry of a failure)."""
    status = await pool.fetchval(
        "INSERT INTO lethe.deliveries (command_event_id, job_id, channel, template, status, "
        "attempts) VALUES ($1, $2, 'email', $3, 'sending', 1) "
        "ON CONFLICT (command_event_id) DO UPDATE SET attempts = lethe.deliveries.attempts + 1 "
        "WHERE lethe.deliveries.status <> 'sent' RETURNING status",
        command_event_id,
        job_id,
        template,
    )
    return status is not None


async def mark(
    pool: asyncpg.Pool, command_event_id: uuid.UUID, status: str, error: str | None = None
) -> None:
    await pool.execute(
        "UPDATE lethe.deliveries SET status = $2, last_error = $3, "
        "sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END "
        "WHERE command_event_id = $1",
        command_event_id,
        status,
        error,
    )
