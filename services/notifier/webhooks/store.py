"""The webhook queue's SQL: `lethe.deliveries` rows of channel 'webhook', one per (progress
event, webhook), claimed fairly across organisations with the notifier's leased claim
(services/notifier/lease.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.notifier import lease


@dataclass(frozen=True)
class Queued:
    """One recorded webhook delivery, as claimed for sending."""

    event_id: uuid.UUID
    recipient: str  # 'webhook:<hook id>'
    hook_id: uuid.UUID
    org_id: str
    job_id: uuid.UUID | None
    subject_hash: str | None
    template: str  # the progress event's type
    body: bytes
    attempts: int
    deadline_at: datetime | None
    url: str | None  # None: the webhook was removed since
    secret: str | None


async def record(
    pool: asyncpg.Pool,
    event_id: uuid.UUID,
    *,
    org_id: str,
    job_id: uuid.UUID | None,
    subject_hash: str | None,
    template: str,
    body: bytes,
    deadline_at: datetime,
) -> int:
    """One pending delivery per active webhook of the organisation, in one statement; how many
    were new (a redelivered event adds none). A row from before the queue (no body) and not
    sent is taken over, and sent from here."""
    rows = await pool.fetch(
        "INSERT INTO lethe.deliveries AS d (command_event_id, recipient, job_id, channel, "
        "template, status, attempts, org_id, subject_hash, hook_id, body, deadline_at) "
        "SELECT $1, 'webhook:' || w.id, $2, 'webhook', $3, 'pending', 0, w.org_id, $4, w.id, "
        "$5, $6 FROM lethe.webhooks w WHERE w.org_id = $7 AND w.removed_at IS NULL "
        "ORDER BY w.created_at, w.id "
        "ON CONFLICT (command_event_id, recipient) DO UPDATE SET org_id = EXCLUDED.org_id, "
        "subject_hash = EXCLUDED.subject_hash, hook_id = EXCLUDED.hook_id, body = EXCLUDED.body, "
        "deadline_at = EXCLUDED.deadline_at, status = 'pending', next_attempt_at = now(), "
        "claimed_at = NULL WHERE d.body IS NULL AND d.status <> 'sent' RETURNING 1",
        event_id,
        job_id,
        template,
        subject_hash,
        body,
        deadline_at,
        org_id,
    )
    return len(rows)


_DUE = "d.status = 'pending' AND d.next_attempt_at <= now()"
_WEBHOOK = "d.channel = 'webhook' AND d.body IS NOT NULL"

# Each organisation's due rows, oldest first, at most its free slots ($3 less what it has in
# flight, $1/$2), none behind an unfinished earlier webhook of the same job to the same hook;
# then round-robin: every organisation's first before anyone's second, up to $4 in all.
_CLAIM = f"""
WITH busy AS (SELECT * FROM unnest($1::text[], $2::int[]) AS b (org_id, n)),
orgs AS (
    SELECT DISTINCT d.org_id FROM lethe.deliveries d
     WHERE {_WEBHOOK} AND d.status IN ('pending', 'sending')
),
picked AS (
    SELECT p.command_event_id, p.recipient, p.next_attempt_at, p.seq,
           row_number() OVER (PARTITION BY o.org_id ORDER BY p.next_attempt_at, p.seq) AS turn
      FROM orgs o
      LEFT JOIN busy b ON b.org_id = o.org_id
     CROSS JOIN LATERAL (
        SELECT d.command_event_id, d.recipient, d.next_attempt_at, d.seq
          FROM lethe.deliveries d
         WHERE d.org_id = o.org_id AND {_WEBHOOK}
           AND {lease.claimable("d", ready=_DUE, lease_param="$5")}
           AND NOT EXISTS (SELECT 1 FROM lethe.deliveries e
                            WHERE e.channel = 'webhook' AND e.job_id = d.job_id
                              AND e.recipient = d.recipient AND e.seq < d.seq
                              AND e.status IN ('pending', 'sending'))
         ORDER BY d.next_attempt_at, d.seq
         LIMIT greatest(0, $3 - coalesce(b.n, 0))
           FOR UPDATE OF d SKIP LOCKED
     ) p
),
chosen AS (SELECT command_event_id, recipient FROM picked ORDER BY turn, next_attempt_at, seq
            LIMIT $4),
claimed AS (
    UPDATE lethe.deliveries c SET {lease.take("c")}
      FROM chosen x
     WHERE c.command_event_id = x.command_event_id AND c.recipient = x.recipient
    RETURNING c.command_event_id, c.recipient, c.hook_id, c.org_id, c.job_id, c.subject_hash,
              c.template, c.body, c.attempts, c.deadline_at
)
SELECT c.*, w.url, w.secret
  FROM claimed c LEFT JOIN lethe.webhooks w ON w.id = c.hook_id AND w.removed_at IS NULL
"""


async def claim(
    pool: asyncpg.Pool,
    in_flight: dict[str, int],
    per_org: int,
    limit: int,
    lease_seconds: float,
) -> list[Queued]:
    """Take up to `limit` due webhooks, at most `per_org` in flight per organisation (counting
    `in_flight`), round-robin across organisations. Replicas skip each other's locked rows."""
    rows = await pool.fetch(
        _CLAIM, list(in_flight), list(in_flight.values()), per_org, limit, lease_seconds
    )
    return [
        Queued(
            **{k: v for k, v in dict(r).items() if k != "command_event_id"},
            event_id=r["command_event_id"],
        )
        for r in rows
    ]


async def release(pool: asyncpg.Pool, rows: list[Queued]) -> None:
    """Claimed but not started (its organisation had no free slot): pending, as it was."""
    await pool.execute(
        "UPDATE lethe.deliveries SET status = 'pending', attempts = attempts - 1, "
        "claimed_at = NULL WHERE (command_event_id, recipient) IN "
        "(SELECT * FROM unnest($1::uuid[], $2::text[])) AND status = 'sending'",
        [q.event_id for q in rows],
        [q.recipient for q in rows],
    )


async def sent(pool: asyncpg.Pool, q: Queued, code: int) -> None:
    await pool.execute(
        "UPDATE lethe.deliveries SET status = 'sent', http_status = $3, last_error = NULL, "
        "sent_at = now(), claimed_at = NULL WHERE command_event_id = $1 AND recipient = $2",
        q.event_id,
        q.recipient,
        code,
    )


async def failed(
    pool: asyncpg.Pool, q: Queued, code: int | None, error: str, retry_at: datetime | None
) -> None:
    """`retry_at`: pending again from then; None: given up."""
    await pool.execute(
        "UPDATE lethe.deliveries SET status = CASE WHEN $5::timestamptz IS NULL "
        "THEN 'failed' ELSE 'pending' END, http_status = $3, last_error = $4, "
        "next_attempt_at = coalesce($5, next_attempt_at), claimed_at = NULL "
        "WHERE command_event_id = $1 AND recipient = $2",
        q.event_id,
        q.recipient,
        code,
        error[:500],
        retry_at,
    )
