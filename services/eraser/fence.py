"""Fencing: cancel, restore and the purge of a job happen one at a time, and never while
one of its chunks commits.

The fence is a Postgres advisory lock keyed by the job, in the platform database (the rows
and the restoration log live there), taken in the transaction that makes the change; the
job's state (Lethe's database) is re-read under it and must allow the operation. So:

- a chunk whose job was cancelled, restored or purged while it waited (rate limit, object
  moves) commits nothing: its transaction rolls back and its objects come back out of
  quarantine;
- a cancel lands between chunk commits, never inside one;
- chunks of one job hold the fence *shared*: they touch disjoint rows, so they commit side
  by side (an exclusive fence per chunk made a job's chunks commit one at a time, whatever
  the concurrency: most of a chunk's time was spent waiting for it);
- a restore and the purge never overlap: the first to take the fence moves the job on, the
  other finds a state that refuses it.

`ALLOWED` is the eraser's table of which state each operation needs; `restored` and `purged`
allow nothing (terminal). Intake keeps the job-level table (shared/lifecycle.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from services.eraser import store
from services.eraser.models import Job
from services.eraser.store.locks import FENCE_CLASS, fence_session, fence_xact

# The eraser's job states (lethe.erase_tasks.status) and what each operation needs.
STATES = (
    "planning",
    "erasing",
    "soft_deleted",
    "cancelled",
    "purging",
    "purged",
    "restored",
    "failed",
)
ALLOWED: dict[str, tuple[str, ...]] = {
    "chunk": ("erasing",),  # delete or mask a chunk's rows
    "hide": ("planning",),  # hide the subject's row (the map's `hide`), before the plan
    "cancel": ("planning", "erasing"),
    "restore": ("soft_deleted", "cancelled"),
    "purge": ("soft_deleted", "cancelled", "purging"),  # purging: a purge resumed
}
TERMINAL = ("purged", "restored", "failed")


class Fenced(Exception):
    """The job's state (re-read under the fence) does not allow the operation."""

    def __init__(self, operation: str, status: str | None) -> None:
        super().__init__(f"cannot {operation}: the erasure is {status or 'unknown'}")
        self.operation = operation
        self.status = status


def allowed(operation: str, status: str | None) -> bool:
    return status is not None and status in ALLOWED[operation]


async def lock(conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
    """Take the job's fence until the end of `conn`'s current transaction."""
    assert conn.is_in_transaction(), "the fence is taken inside the transaction it guards"
    await fence_xact(conn, job_id)


async def enter(
    conn: asyncpg.Connection, lethe: asyncpg.Pool, job_id: uuid.UUID, operation: str
) -> Job:
    """Fence, then re-read the job: returns it if `operation` is allowed, else raises Fenced."""
    await lock(conn, job_id)
    job = await store.get_job(lethe, job_id)
    if job is None or not allowed(operation, job.status):
        raise Fenced(operation, None if job is None else job.status)
    return job


async def enter_chunk(conn: asyncpg.Connection, lethe: asyncpg.Pool, job_id: uuid.UUID) -> None:
    """`enter` for a chunk's commit, on its hot path: the fence shared with the job's other
    chunks (exclusive against cancel, restore, purge); only the state is re-read."""
    assert conn.is_in_transaction(), "the fence is taken inside the transaction it guards"
    await fence_xact(conn, job_id, shared=True)
    status = await store.job_status(lethe, job_id)
    if not allowed("chunk", status):
        raise Fenced("chunk", status)


@asynccontextmanager
async def held(platform: asyncpg.Pool, job_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
    """The fence over several transactions on one connection (a restore, record by record).

    A session lock on the same key, so it excludes the transaction-level fences of chunks,
    cancel and purge; released at the end (and by the pool's reset if anything breaks).
    """
    async with fence_session(platform, job_id) as conn:
        yield conn


__all__ = [
    "ALLOWED",
    "FENCE_CLASS",
    "STATES",
    "TERMINAL",
    "Fenced",
    "allowed",
    "enter",
    "enter_chunk",
    "held",
    "lock",
]
