"""A job's progress folded from the workers' events, and its timeline (job_events)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.intake.domain.progress import progress_columns
from services.intake.store.tasks import open_task_count
from shared import lifecycle
from shared.events import Envelope
from shared.events.envelope import safe_details

# Called in the transaction that completed a job with a JobCompleted, with the requester's
# address as it was before (a final job forgets it: 0013's trigger).
OnCompleted = Callable[[asyncpg.Connection, str | None], Awaitable[None]]


async def apply_progress(
    pool: asyncpg.Pool, env: Envelope, completed: OnCompleted | None = None
) -> bool:
    """Fold a worker's event into the job, as the lifecycle allows; record it in the
    timeline. Idempotent: a redelivered or late event changes nothing."""
    if env.job_id is None:
        return False
    async with pool.acquire() as conn, conn.transaction():
        return await fold(conn, env, completed)


async def fold(
    conn: asyncpg.Connection, env: Envelope, completed: OnCompleted | None = None
) -> bool:
    """`apply_progress` in the caller's transaction (many events in one: the Kafka handler's
    batch). True when the job's state moved."""
    if env.job_id is None:
        return False
    move = lifecycle.move_for(env.type, env.payload)
    if move is None:  # no state change (e.g. CommandRefused): still part of the timeline
        await record_event(conn, env)
        return False
    cols = progress_columns(env.type, env.payload)
    status = move.to or lifecycle.completed_status(env.payload.get("needs_review", []))
    args: list[Any] = [env.job_id, list(move.from_states), status, move.phase, env.occurred_at]
    sets = []
    for name, value in cols.items():
        args.append(value)
        if name == "done":
            sets.append(f"done = GREATEST(done, ${len(args)})")
        elif name == "needs_review" and env.type == "JobCompleted":
            # The worker's final list: items it resolved meanwhile (a purge that had to
            # wait for S3) are no longer in it.
            sets.append(f"needs_review = ${len(args)}")
        elif name == "needs_review":
            # JobCompleted repeats the items ErasureSoftDeleted reported: each is kept once.
            sets.append(
                f"needs_review = needs_review || (SELECT coalesce(jsonb_agg(i), '[]'::jsonb) "
                f"FROM jsonb_array_elements(${len(args)}::jsonb) AS i "
                "WHERE NOT jobs.needs_review @> jsonb_build_array(i))"
            )
        else:
            sets.append(f"{name} = ${len(args)}")
    extra = "".join(f", {x}" for x in sets)
    to = None
    if env.type == "JobCompleted":
        # Under the job's lock (an admin closing the last task takes it too): with manual
        # tasks open the job waits for them instead of completing.
        to = await conn.fetchval(
            "SELECT requester_email FROM lethe.jobs WHERE id = $1 FOR UPDATE", env.job_id
        )
        if await open_task_count(conn, env.job_id):
            args[2:4] = [lifecycle.AWAITING_TASKS, "manual_tasks"]
    updated = await conn.fetchval(
        "UPDATE lethe.jobs SET status = $3, phase = $4, last_event_at = $5, "
        f"updated_at = now(){extra} WHERE id = $1 AND status = ANY($2) RETURNING id",
        *args,
    )
    await record_event(conn, env)
    if updated is not None and completed is not None and args[2] in lifecycle.FINAL:
        await completed(conn, to)
    return updated is not None


_RECORD = (
    "INSERT INTO lethe.job_events (event_id, job_id, type, occurred_at, actor, details) "
    "SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM lethe.jobs WHERE id = $2) "
    "ON CONFLICT (event_id) DO NOTHING"
)


def _event_args(env: Envelope) -> tuple[Any, ...]:
    actor = f"{env.actor.kind}:{env.actor.id}"
    return (env.event_id, env.job_id, env.type, env.occurred_at, actor, safe_details(env))


async def record_event(conn: asyncpg.Connection, env: Envelope) -> None:
    """Timeline entry; the same details the audit trail keeps (no personal data)."""
    await conn.execute(_RECORD, *_event_args(env))


async def record_events(conn: asyncpg.Connection, envs: list[Envelope]) -> None:
    """Many timeline entries in one round trip."""
    await conn.executemany(_RECORD, [_event_args(e) for e in envs])
