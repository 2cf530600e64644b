"""Reads and writes of `lethe jobs rebuild`: a job's state columns and its timeline."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.intake.domain.progress import STATE_FIELDS, JobEvent
from services.intake.store.db import Db


async def job_state(conn: asyncpg.Connection, job_id: uuid.UUID) -> dict[str, Any] | None:
    """The columns that follow from the job's events, under the row's lock (the progress
    consumer waits, then applies what arrives on top of what is written here)."""
    r = await conn.fetchrow(
        f"SELECT {', '.join(STATE_FIELDS)} FROM lethe.jobs WHERE id = $1 FOR UPDATE", job_id
    )
    return dict(r) if r else None


async def write_state(conn: asyncpg.Connection, job_id: uuid.UUID, state: dict[str, Any]) -> None:
    names = [n for n in STATE_FIELDS if n in state]
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    await conn.execute(
        f"UPDATE lethe.jobs SET {sets}, updated_at = now() WHERE id = $1",
        job_id,
        *(state[n] for n in names),
    )


async def job_timeline(db: Db, job_id: uuid.UUID) -> list[JobEvent]:
    rows = await db.fetch(
        "SELECT event_id, type, occurred_at, actor, details FROM lethe.job_events "
        "WHERE job_id = $1",
        job_id,
    )
    return [JobEvent(**dict(r)) for r in rows]


async def add_to_timeline(conn: asyncpg.Connection, job_id: uuid.UUID, e: JobEvent) -> None:
    await conn.execute(
        "INSERT INTO lethe.job_events (event_id, job_id, type, occurred_at, actor, details) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        e.event_id,
        job_id,
        e.type,
        e.occurred_at,
        e.actor,
        e.details,
    )
