"""The CLI's own reads of Lethe's database (the services' SQL stays in their stores)."""

from __future__ import annotations

import asyncpg


async def org_ids(pool: asyncpg.Pool, org: str | None = None) -> list[str]:
    """Every organisation's id, in order; or just `org`, when it exists."""
    rows = await pool.fetch(
        "SELECT id FROM lethe.organisations WHERE $1::text IS NULL OR id = $1 ORDER BY id", org
    )
    return [r[0] for r in rows]
