"""The privacy centre's SQL: an org's centre setting, and the one-time code challenges (keyed
hashes only; services/intake/domain/privacy.py decides)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

_CHALLENGE = (
    "id, org_id, request_type, subject_hash, code_hash, attempts, created_at, expires_at, "
    "used_at, job_id"
)


async def centre_org(pool: asyncpg.Pool, slug: str) -> dict[str, Any] | None:
    """The organisation whose centre lives at this slug, if it is on."""
    r = await pool.fetchrow(
        "SELECT id, name, recovery_window_days, privacy_centre_slug AS slug "
        "FROM lethe.organisations WHERE privacy_centre_slug = $1 AND privacy_centre_enabled",
        slug,
    )
    return dict(r) if r else None


async def centre_setting(pool: asyncpg.Pool, org_id: str) -> tuple[bool, str | None]:
    r = await pool.fetchrow(
        "SELECT privacy_centre_enabled, privacy_centre_slug FROM lethe.organisations WHERE id = $1",
        org_id,
    )
    assert r is not None  # the caller's own org
    return bool(r[0]), r[1]


async def set_centre(
    conn: asyncpg.Connection, org_id: str, enabled: bool, slug: str | None
) -> tuple[bool, str | None] | None:
    """Set the centre; the old (enabled, slug), or None when another org has the slug."""
    old = await conn.fetchrow(
        "SELECT privacy_centre_enabled, privacy_centre_slug FROM lethe.organisations "
        "WHERE id = $1 FOR UPDATE",
        org_id,
    )
    taken = await conn.fetchval(
        "SELECT 1 FROM lethe.organisations WHERE privacy_centre_slug = $1 AND id <> $2",
        slug,
        org_id,
    )
    if taken:
        return None
    await conn.execute(
        "UPDATE lethe.organisations SET privacy_centre_enabled = $2, privacy_centre_slug = $3 "
        "WHERE id = $1",
        org_id,
        enabled,
        slug,
    )
    return bool(old[0]), old[1]


async def recent_counts(
    conn: asyncpg.Connection, address_key: str, source_key: str, since: datetime
) -> tuple[int, int]:
    """Codes made since then for this address (any org) and from this source. The address is
    locked for the transaction, so two requests at once count each other."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('privacy:' || $1))", address_key)
    by_address = await conn.fetchval(
        "SELECT count(*) FROM lethe.privacy_challenges WHERE address_key = $1 AND created_at > $2",
        address_key,
        since,
    )
    by_source = await conn.fetchval(
        "SELECT count(*) FROM lethe.privacy_challenges WHERE source_key = $1 AND created_at > $2",
        source_key,
        since,
    )
    return int(by_address), int(by_source)


async def insert_challenge(conn: asyncpg.Connection, c: dict[str, Any]) -> None:
    # Challenges a day old serve no count any more: they go as new ones come.
    await conn.execute(
        "DELETE FROM lethe.privacy_challenges WHERE created_at < now() - interval '1 day'"
    )
    await conn.execute(
        "INSERT INTO lethe.privacy_challenges (id, org_id, request_type, subject_hash, "
        "address_key, source_key, code_hash, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        c["id"],
        c["org_id"],
        c["request_type"],
        c["subject_hash"],
        c["address_key"],
        c["source_key"],
        c["code_hash"],
        c["expires_at"],
    )


async def lock_challenge(
    conn: asyncpg.Connection, org_id: str, challenge_id: uuid.UUID
) -> dict[str, Any] | None:
    r = await conn.fetchrow(
        f"SELECT {_CHALLENGE} FROM lethe.privacy_challenges WHERE id = $1 AND org_id = $2 "
        "FOR UPDATE",
        challenge_id,
        org_id,
    )
    return dict(r) if r else None


async def count_attempt(conn: asyncpg.Connection, challenge_id: uuid.UUID) -> int:
    n: int = await conn.fetchval(
        "UPDATE lethe.privacy_challenges SET attempts = attempts + 1 WHERE id = $1 "
        "RETURNING attempts",
        challenge_id,
    )
    return n


async def consume(
    conn: asyncpg.Connection, challenge_id: uuid.UUID, job_id: uuid.UUID, max_attempts: int
) -> int | None:
    """Mark the challenge used by this job, in the job's transaction: its attempts, or None
    when it was used (or died) meanwhile."""
    n: int | None = await conn.fetchval(
        "UPDATE lethe.privacy_challenges SET used_at = now(), job_id = $2 "
        "WHERE id = $1 AND used_at IS NULL AND attempts < $3 AND expires_at > now() "
        "RETURNING attempts",
        challenge_id,
        job_id,
        max_attempts,
    )
    return n
