"""Queries on the platform's own tables that the eraser runs itself (the resolver and
shared/platform.py build most of them; this is where they are executed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.datamap import TableMap
from shared.platform import key_in, key_text
from shared.resolver import q


async def key_texts(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> list[str]:
    """The first column of a key query (the resolver's key or detach SQL), as text."""
    return [r[0] for r in await conn.fetch(sql, *args)]


async def count(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> int:
    n: int = await conn.fetchval(sql, *args)
    return n


async def delete_keys(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> int:
    """Delete the rows of `table` with these keys (text); returns how many went."""
    status = await conn.execute(f"DELETE FROM {q(table)} x WHERE {key_in(t, pk_type, 'x')}", keys)
    return int(status.split()[-1])


async def keys_in_org(
    conn: asyncpg.Connection, table: str, t: Any, org_id: str, keys: Sequence[str]
) -> set[str]:
    """Of `keys` (key text) of a platform table, those whose org column is `org_id`."""
    rows = await conn.fetch(
        f"SELECT {key_text(t, 'x')} FROM {q(table)} x "
        f"WHERE {key_text(t, 'x')} = ANY($1::text[]) AND x.{q(t.org_column)}::text = $2",
        list(keys),
        org_id,
    )
    return {r[0] for r in rows}
