"""Intake's SQL for API keys written by the key use cases (services/intake/service/keys.py):
in the caller's transaction, so the key and its audit event commit together."""

from __future__ import annotations

import secrets
import uuid

import asyncpg

from services.intake.store.orgs import hash_key


async def insert_api_key(
    conn: asyncpg.Connection, org_id: str, role: str, name: str
) -> tuple[uuid.UUID, str]:
    """(key id, the key itself): stored only as a hash, so this is the one time it shows."""
    key_id, key = uuid.uuid4(), "lethe_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO lethe.api_keys (id, org_id, key_hash, role, name) VALUES ($1, $2, $3, $4, $5)",
        key_id,
        org_id,
        hash_key(key),
        role,
        name,
    )
    return key_id, key


async def revoke_api_key(
    conn: asyncpg.Connection, org_id: str, key_id: uuid.UUID
) -> tuple[str, str] | None:
    """(role, name) of the key revoked now; None when the org has no such active key."""
    row = await conn.fetchrow(
        "UPDATE lethe.api_keys SET revoked_at = now() "
        "WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL RETURNING role, name",
        key_id,
        org_id,
    )
    return (row["role"], row["name"]) if row is not None else None
