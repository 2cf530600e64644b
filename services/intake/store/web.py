"""The web UI's SQL: sessions and the progress snapshots its pages and streams show."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

import asyncpg

from services.intake.domain import Caller


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(pool: asyncpg.Pool, key_id: uuid.UUID, ttl: timedelta) -> tuple[str, str]:
    """A new session for an API key: (cookie token, CSRF token). Expired ones are dropped."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM lethe.web_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO lethe.web_sessions (token_hash, key_id, csrf, expires_at) "
            "VALUES ($1, $2, $3, now() + $4::interval)",
            _hash(token),
            key_id,
            csrf,
            ttl,
        )
    return token, csrf


async def session_caller(pool: asyncpg.Pool, token: str) -> tuple[Caller, str] | None:
    """The caller behind a live session and its CSRF token (None: expired, revoked key)."""
    r = await pool.fetchrow(
        "SELECT k.id, k.org_id, k.role, o.name, o.recovery_window_days, s.csrf, "
        "o.admins_submit_subject_requests "
        "FROM lethe.web_sessions s JOIN lethe.api_keys k ON k.id = s.key_id "
        "JOIN lethe.organisations o ON o.id = k.org_id "
        "WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL",
        _hash(token),
    )
    if r is None:
        return None
    who = Caller(
        org_id=r["org_id"],
        org_name=r["name"],
        role=r["role"],
        key_id=r["id"],
        recovery_window_days=r["recovery_window_days"],
        admins_submit_subject_requests=r["admins_submit_subject_requests"],
    )
    return who, r["csrf"]


async def close_session(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute("DELETE FROM lethe.web_sessions WHERE token_hash = $1", _hash(token))


async def progress_rows(
    pool: asyncpg.Pool, job_ids: list[uuid.UUID], org_id: str | None
) -> list[dict[str, Any]]:
    """Progress columns of the given jobs (of one org, unless org_id is None: the subject
    status page, whose link already names one job)."""
    rows = await pool.fetch(
        "SELECT id, status, phase, done, total, rows_per_second, eta_seconds FROM lethe.jobs "
        "WHERE id = ANY($1) AND ($2::text IS NULL OR org_id = $2)",
        job_ids,
        org_id,
    )
    return [dict(r) for r in rows]


async def job_any_org(pool: asyncpg.Pool, job_id: uuid.UUID) -> dict[str, Any] | None:
    r = await pool.fetchrow(
        "SELECT id, type, scope, status, phase, done, total, rows_per_second, eta_seconds, "
        "received_at, due_at, extended_due_at FROM lethe.jobs WHERE id = $1",
        job_id,
    )
    return dict(r) if r else None
