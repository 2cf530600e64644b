"""Organisations and their API keys (stored only as hashes)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import asyncpg

from services.intake.domain import Caller


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
