"""Fresh platform databases on the test Postgres, for schemas other than the sample one.

The eraser keeps its restoration log in the platform database it erases from
(`services/eraser/platform_migrations`, applied at start-up by `migrate_platform`, as
`deploy/local/stack.prepare` leaves it to the eraser), so a database erasures run in needs
those migrations too: `apply_platform_migrations`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.eraser.store import migrate_platform


def with_database(dsn: str, name: str) -> str:
    """The same server and user, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_dsn: str, prefix: str) -> str:
    """A new empty database `<prefix>_<random>` next to admin_dsn's; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def apply_sql(dsn: str, path: Path) -> None:
    sql = path.read_text()  # noqa: ASYNC240 (a small file, at fixture set-up)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def apply_platform_migrations(dsn: str) -> list[str]:
    """The eraser's platform migrations (restoration log), as its start-up applies them."""
    return await migrate_platform(dsn)
