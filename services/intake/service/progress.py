"""Job state follows the progress topic: a batch of the workers' events folded into the jobs
and their timelines in one transaction (a job's events in the topic's order), then what a
final event sets off (linked requesters told, a bulk member's outcome).

Every fold is idempotent (the timeline keeps an event once, a state moves only forward), so a
batch that fails is folded again whole. When it fails for one event (a bug, bad data, not an
outage) the events are folded one by one instead, each in its own transaction, and only the
ones that fail are retried and, in the end, dead-lettered (`RecordsFailed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from services.intake import store
from services.intake.links import StatusLinks
from services.intake.service import bulk, duplicates, tasks
from services.intake.service.uow import UnitOfWork
from shared.events import Envelope
from shared.events.progress import ManualTasksOpened
from shared.messaging import RecordsFailed
from shared.messaging.faults import transient


@dataclass(frozen=True)
class Record:
    """One event of the batch, with the bytes and key it came as (for a dead letter)."""

    env: Envelope
    raw: bytes
    key: bytes | None


async def _fold(
    conn: asyncpg.Connection, env: Envelope, links: Callable[[], StatusLinks | None]
) -> None:
    if env.type == ManualTasksOpened.event_type:
        await tasks.record_opened(conn, env)
        return
    await store.fold(conn, env, tasks.when_completed(env, links))


async def take(
    pool: asyncpg.Pool,
    uow: Callable[[], UnitOfWork],
    batch: list[Record],
    links: Callable[[], StatusLinks | None],
) -> None:
    """Fold the batch (see the module's docstring), then the final events' follow-ups."""
    failed: list[tuple[Record, Exception]] = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            for rec in batch:
                await _fold(conn, rec.env, links)
    except Exception as exc:
        if transient(exc) or len(batch) == 1:
            raise  # an outage (or one event): retried as it is
        for rec in batch:  # find the event that fails; the others are folded
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await _fold(conn, rec.env, links)
            except Exception as one:
                if transient(one):
                    raise
                failed.append((rec, one))
    bad = {id(rec) for rec, _ in failed}
    for rec in batch:
        if id(rec) in bad:
            continue
        # Requests linked to this job hear when it is done (also on a redelivery, once).
        await duplicates.tell_linked(uow(), rec.env)
        await bulk.on_job_event(uow(), rec.env)  # a bulk member's outcome, and its summary
    if failed:
        cause = failed[0][1]
        raise RecordsFailed([(r.raw, r.key) for r, _ in failed], cause) from cause
