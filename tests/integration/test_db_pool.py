"""The pool's reset on release: a session lock taken through `shared.db.session_lock` never
outlives the connection's use, even when its owner forgot (or failed) to unlock it."""

from __future__ import annotations

import asyncpg

from deploy.local import infra
from shared.db import create_pool, session_lock

LOCK = 7_715_099


async def test_a_session_lock_left_behind_is_released_with_the_connection(
    prepared: infra.Endpoints, lethe_db: asyncpg.Pool
) -> None:
    pool = await create_pool(prepared.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert await session_lock(conn, "SELECT pg_try_advisory_lock($1)", LOCK)
        # Not unlocked by its owner: the reset released it, so another session takes it.
        async with lethe_db.acquire() as other:
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
            await other.execute("SELECT pg_advisory_unlock($1)", LOCK)
        # The pool's one connection works on, the lock no longer its own.
        async with pool.acquire() as conn:
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
                "AND pid = pg_backend_pid()",
                LOCK,
            )
            assert held == 0
    finally:
        await pool.close()


async def test_a_connection_used_without_session_state_comes_back_clean(
    prepared: infra.Endpoints,
) -> None:
    pool = await create_pool(prepared.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE t_pool (x int) ON COMMIT DROP")
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL statement_timeout = 1234")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            assert not conn.is_in_transaction()
    finally:
        await pool.close()
