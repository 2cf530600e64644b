"""The outbox: events written with the state they describe, published by the relay."""

from __future__ import annotations

import uuid

import asyncpg

from shared.events import Envelope
from shared.events.topics import JOBS_EXPORT


async def add_outbox(conn: asyncpg.Connection, topic: str, env: Envelope) -> None:
    await conn.execute(
        "INSERT INTO lethe.outbox (topic, event) VALUES ($1, $2)",
        topic,
        env.model_dump(mode="json"),
    )


async def add_outbox_many(conn: asyncpg.Connection, events: list[tuple[str, Envelope]]) -> None:
    """Many events in one round trip (a bulk request's jobs)."""
    await conn.executemany(
        "INSERT INTO lethe.outbox (topic, event) VALUES ($1, $2)",
        [(topic, env.model_dump(mode="json")) for topic, env in events],
    )


async def take_back_export(conn: asyncpg.Connection, job_id: uuid.UUID) -> bool:
    """Delete a pending export's request from the outbox (the exporter never sees it). False
    when it is no longer there: the exporter has it."""
    taken = await conn.fetch(
        "DELETE FROM lethe.outbox WHERE topic = $1 AND event->>'job_id' = $2 RETURNING id",
        JOBS_EXPORT,
        str(job_id),
    )
    return bool(taken)


async def take_outbox(conn: asyncpg.Connection, limit: int) -> list[tuple[int, str, Envelope]]:
    """Lock a batch of unpublished events (SKIP LOCKED: replicas share the relay)."""
    rows = await conn.fetch(
        "SELECT id, topic, event FROM lethe.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [(r["id"], r["topic"], Envelope.model_validate(r["event"])) for r in rows]


async def delete_outbox(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute("DELETE FROM lethe.outbox WHERE id = ANY($1)", ids)
