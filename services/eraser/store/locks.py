"""Advisory locks: the per-job fence (platform database), one purger per job and one purge
sweep at a time (Lethe's database)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

from shared.db import session_lock

FENCE_CLASS = 7_715_006  # with hashtext(job id): the per-job fence, platform database
SWEEP_LOCK = 7_715_004  # one purge sweep at a time over all replicas
PURGE_LOCK_CLASS = 7_715_005  # with hashtext(job id): one purger per job (Lethe database)
WAVE_LOCK_CLASS = 7_715_008  # with hashtext(job id): one caller moves a job's wave on (Lethe)


async def fence_xact(conn: asyncpg.Connection, job_id: uuid.UUID, *, shared: bool = False) -> None:
    """The job's fence until the end of `conn`'s current transaction: exclusive, or shared
    (chunks of one job share it with each other, never with cancel, restore or the purge)."""
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {fn}($1, hashtext($2))", FENCE_CLASS, str(job_id))


@asynccontextmanager
async def fence_session(
    platform: asyncpg.Pool, job_id: uuid.UUID
) -> AsyncIterator[asyncpg.Connection]:
    """The job's fence as a session lock on one connection, released at the end (and by the
    pool's reset if anything breaks)."""
    async with platform.acquire() as conn:
        await session_lock(
            conn, "SELECT pg_advisory_lock($1, hashtext($2))", FENCE_CLASS, str(job_id)
        )
        try:
            yield conn
        finally:
            await conn.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))", FENCE_CLASS, str(job_id)
            )


@asynccontextmanager
async def _job_try_lock(
    lethe: asyncpg.Pool, lock_class: int, job_id: uuid.UUID
) -> AsyncIterator[bool]:
    """Yields whether this caller holds the job's lock of `lock_class` (False: another does)."""
    async with lethe.acquire() as conn:
        if not await session_lock(
            conn, "SELECT pg_try_advisory_lock($1, hashtext($2))", lock_class, str(job_id)
        ):
            yield False
            return
        try:
            yield True
        finally:
            await conn.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))", lock_class, str(job_id)
            )


def purge_lock(lethe: asyncpg.Pool, job_id: uuid.UUID) -> AbstractAsyncContextManager[bool]:
    """Whether this caller holds the job's purge lock (False: another replica does)."""
    return _job_try_lock(lethe, PURGE_LOCK_CLASS, job_id)


def wave_lock(lethe: asyncpg.Pool, job_id: uuid.UUID) -> AbstractAsyncContextManager[bool]:
    """Whether this caller may move the job's wave on (False: another caller does)."""
    return _job_try_lock(lethe, WAVE_LOCK_CLASS, job_id)


@asynccontextmanager
async def sweep_lock(lethe: asyncpg.Pool) -> AsyncIterator[bool]:
    """Yields whether this caller holds the sweep lock (False: another sweeper runs)."""
    async with lethe.acquire() as conn:
        if not await session_lock(conn, "SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
            yield False
            return
        try:
            yield True
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
