"""Exports as intake reads them: a download's export and link, the link counters, revocation.

The exporter writes `exports` and `download_tokens` (services/exporter/store.py); intake
serves the downloads, counts them against each link's limit and revokes links.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def for_download(
    pool: asyncpg.Pool, job_id: uuid.UUID, token_id: uuid.UUID
) -> dict[str, Any] | None:
    """The export and the presented link's state (read by intake on every download)."""
    r = await pool.fetchrow(
        "SELECT e.job_id, e.org_id, e.status, e.object_key, e.wrapped_key, e.size_bytes, "
        "t.revoked_at, t.expires_at AS token_expires_at, t.downloads, t.max_downloads "
        "FROM lethe.exports e "
        "JOIN lethe.download_tokens t ON t.job_id = e.job_id "
        "WHERE e.job_id = $1 AND t.token_id = $2",
        job_id,
        token_id,
    )
    return dict(r) if r else None


async def org_of_export(pool: asyncpg.Pool, job_id: uuid.UUID) -> str | None:
    """The organisation an export belongs to (to file a refused attempt under it)."""
    org: str | None = await pool.fetchval(
        "SELECT org_id FROM lethe.exports WHERE job_id = $1", job_id
    )
    return org


async def use_link(pool: asyncpg.Pool, token_id: uuid.UUID) -> tuple[int, int] | None:
    """Count one download of a bearer link: (this download's number, the limit), or None
    when the link is used up or revoked. Atomic: concurrent downloads cannot pass the limit."""
    r = await pool.fetchrow(
        "UPDATE lethe.download_tokens SET downloads = downloads + 1 WHERE token_id = $1 "
        "AND revoked_at IS NULL AND downloads < max_downloads "
        "RETURNING downloads, max_downloads",
        token_id,
    )
    return (r["downloads"], r["max_downloads"]) if r else None


async def give_back(pool: asyncpg.Pool, token_id: uuid.UUID) -> None:
    """Undo `use_link` for a download that could not start (the object was not readable)."""
    await pool.execute(
        "UPDATE lethe.download_tokens SET downloads = downloads - 1 "
        "WHERE token_id = $1 AND downloads > 0",
        token_id,
    )


async def revoke_links(pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str) -> int:
    status = await pool.execute(
        "UPDATE lethe.download_tokens t SET revoked_at = now() FROM lethe.exports e "
        "WHERE t.job_id = e.job_id AND e.job_id = $1 AND e.org_id = $2 AND t.revoked_at IS NULL",
        job_id,
        org_id,
    )
    return int(status.split()[-1])


async def live_link(
    pool: asyncpg.Pool, job_id: uuid.UUID, org_id: str | None
) -> dict[str, Any] | None:
    """The newest download link of a ready export that is neither revoked nor expired (of one
    org, unless org_id is None: the subject's status page), with its downloads so far."""
    r = await pool.fetchrow(
        "SELECT t.token_id, t.recipient_hash, t.expires_at, t.downloads, t.max_downloads "
        "FROM lethe.download_tokens t JOIN lethe.exports e ON e.job_id = t.job_id "
        "WHERE t.job_id = $1 AND ($2::text IS NULL OR e.org_id = $2) "
        "AND e.status = 'ready' AND t.revoked_at IS NULL AND t.expires_at > now() "
        "ORDER BY t.expires_at DESC LIMIT 1",
        job_id,
        org_id,
    )
    return dict(r) if r else None
