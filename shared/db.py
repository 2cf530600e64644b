"""asyncpg pool and the migration runner (numbered SQL files; tests run these too)."""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only serialises concurrent migrators.
_MIGRATION_LOCK = 7_715_001


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Connections that took session-level state (an advisory lock outside a transaction): the
# pool runs the full reset query on them when they come back.
_SESSION_STATE: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


def _raw(conn: Any) -> asyncpg.Connection:
    """The connection behind a pool's proxy."""
    return getattr(conn, "_con", None) or conn


async def session_lock(conn: Any, sql: str, *args: Any) -> Any:
    """Run `sql` that takes a session-level advisory lock (returns its value): the
    connection is reset in full when released, so a lock left by a failure never outlives
    its use. Every session-level lock goes through here (see `_reset`)."""
    _SESSION_STATE.add(_raw(conn))
    return await conn.fetchval(sql, *args)


async def _reset(conn: asyncpg.Connection) -> None:
    """On release. asyncpg's default runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip per use, on every query path. Lethe sets no
    session variables (only SET LOCAL), listens to nothing and opens cursors only inside
    transactions (closed at commit; an open transaction is rolled back by asyncpg before
    this), so only a connection that took a session lock needs the query."""
    raw = _raw(conn)
    if raw in _SESSION_STATE:
        _SESSION_STATE.discard(raw)
        await raw.execute(raw.get_reset_query())


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset
    )
    assert pool is not None
    return pool


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the numbered `*.sql` files not yet applied, each in its own transaction."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS lethe;"
            "CREATE TABLE IF NOT EXISTS lethe.schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"] for r in await conn.fetch("SELECT version FROM lethe.schema_migrations")
        }
        applied = []
        for path in sorted(directory.glob("*.sql")):  # noqa: ASYNC240 (start-up only)
            if path.stem in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO lethe.schema_migrations (version) VALUES ($1)", path.stem
                )
            applied.append(path.stem)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
