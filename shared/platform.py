"""Data-map-driven SQL against the platform database (shared by eraser and exporter).

Identifiers come from the validated data map (lowercase identifiers only) and are quoted;
values are always parameters. Everything is set-based: `= ANY($1)` over key chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from shared.datamap import DataMap

KEY_CHUNK = 10_000


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class AmbiguousSubject(ValueError):
    pass


async def resolve_subject_rows(
    conn: asyncpg.Connection, dm: DataMap, org_id: str, identities: dict[str, str] | None
) -> list[Any]:
    """Primary keys of the subject rows: one person (by identities) or a whole org (None)."""
    s = dm.subject
    pk = q(dm.tables[s.table].primary_key)
    if identities is None:
        sql = f"SELECT {pk} FROM {q(s.table)} WHERE {q(s.org_column)} = $1 ORDER BY {pk}"
        return [r[0] for r in await conn.fetch(sql, org_id)]
    unknown = set(identities) - set(s.identities)
    if unknown:
        raise AmbiguousSubject(f"the data map knows no identity of kind {sorted(unknown)}")
    conds, args = [], [org_id]
    for kind, value in sorted(identities.items()):
        args.append(value.strip().lower() if kind == "email" else value)
        col = q(s.identities[kind])
        conds.append(
            f"lower({col}) = ${len(args)}" if kind == "email" else f"{col}::text = ${len(args)}"
        )
    sql = f"SELECT {pk} FROM {q(s.table)} WHERE {q(s.org_column)} = $1 AND ({' OR '.join(conds)})"
    rows = [r[0] for r in await conn.fetch(sql, *args)]
    if len(rows) > 1:
        # Identities that point at different people: refuse rather than over-erase.
        raise AmbiguousSubject(f"the identities match {len(rows)} different subjects")
    return rows


async def resolve(
    conn: asyncpg.Connection, dm: DataMap, org_id: str, identities: dict[str, str] | None
) -> dict[str, list[Any]]:
    """Keys per table reachable from the subject, parents first."""
    keys: dict[str, list[Any]] = {
        dm.subject.table: await resolve_subject_rows(conn, dm, org_id, identities)
    }
    for table in dm.reachable()[1:]:
        t = dm.tables[table]
        found: set[Any] = set()
        for p in t.parents:
            parent_keys = keys.get(p.table, [])
            for i in range(0, len(parent_keys), KEY_CHUNK):
                rows = await conn.fetch(
                    f"SELECT {q(t.primary_key)} FROM {q(table)} WHERE {q(p.column)} = ANY($1)",
                    parent_keys[i : i + KEY_CHUNK],
                )
                found.update(r[0] for r in rows)
        keys[table] = sorted(found)
    return keys


async def object_keys(
    conn: asyncpg.Connection, dm: DataMap, table: str, pks: Sequence[Any]
) -> list[str]:
    t = dm.tables[table]
    if t.object_key_column is None:
        return []
    rows = await conn.fetch(
        f"SELECT {q(t.object_key_column)} FROM {q(table)} "
        f"WHERE {q(t.primary_key)} = ANY($1) AND {q(t.object_key_column)} IS NOT NULL",
        list(pks),
    )
    return [r[0] for r in rows]


async def delete_rows(conn: asyncpg.Connection, dm: DataMap, table: str, pks: Sequence[Any]) -> int:
    t = dm.tables[table]
    status = await conn.execute(
        f"DELETE FROM {q(table)} WHERE {q(t.primary_key)} = ANY($1)", list(pks)
    )
    return int(status.split()[-1])
