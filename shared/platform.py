"""Data-map-driven SQL against the platform database (shared by eraser and exporter).

Identifiers come from the validated data map (lowercase identifiers only) and are quoted;
values are always parameters. Everything is set-based: `= ANY($1)` over key chunks,
`DELETE ... RETURNING`, `json_populate_recordset`; never one statement per row.
Keys travel as text (`pk::text`) and are cast back with the key's type from the live schema.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.datamap import DataMap, TableMap

KEY_CHUNK = 10_000
REDACTED = "[redacted]"
# Masked values carry a marker, so verification can tell a masked value from a live one.
MASK_PREFIX = {"hash": "sha256:", "hmac": "hmac:", "random_string": "rnd:"}


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class AmbiguousSubject(ValueError):
    pass


def _keys_param(pk_type: str) -> str:
    return f"$1::text[]::{pk_type}[]"


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
    cond, args = _identity_condition(s.identities, identities, first_arg=2)
    sql = f"SELECT {pk} FROM {q(s.table)} WHERE {q(s.org_column)} = $1 AND ({cond})"
    rows = [r[0] for r in await conn.fetch(sql, org_id, *args)]
    if len(rows) > 1:
        # Identities that point at different people: refuse rather than over-erase.
        raise AmbiguousSubject(f"the identities match {len(rows)} different subjects")
    return rows


def _identity_condition(
    columns: dict[str, str], identities: dict[str, str], first_arg: int
) -> tuple[str, list[str]]:
    conds, args = [], []
    for kind, value in sorted(identities.items()):
        if kind not in columns:
            continue
        args.append(value.strip().lower() if kind == "email" else value)
        col, n = q(columns[kind]), first_arg + len(args) - 1
        conds.append(f"lower({col}) = ${n}" if kind == "email" else f"{col}::text = ${n}")
    return " OR ".join(conds) or "false", args


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
        if t.identities and t.org_column:
            found.update(await _identity_rows(conn, table, t, org_id, identities))
        keys[table] = sorted(found)
    return keys


async def _identity_rows(
    conn: asyncpg.Connection,
    table: str,
    t: TableMap,
    org_id: str,
    identities: dict[str, str] | None,
) -> list[Any]:
    assert t.org_column is not None
    base = f"SELECT {q(t.primary_key)} FROM {q(table)} WHERE {q(t.org_column)} = $1"
    if identities is None:  # the whole organisation
        return [r[0] for r in await conn.fetch(base, org_id)]
    cond, args = _identity_condition(t.identities, identities, first_arg=2)
    return [r[0] for r in await conn.fetch(f"{base} AND ({cond})", org_id, *args)]


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


# ------------------------------------------------------------------ soft delete and restore


@dataclass(frozen=True)
class Removed:
    """What one chunk took out of the live tables: keys, and each original row as JSON."""

    keys: list[str]
    rows: list[str]


async def chunk_object_keys(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> list[str]:
    if t.object_key_column is None:
        return []
    col = q(t.object_key_column)
    rows = await conn.fetch(
        f"SELECT DISTINCT {col} FROM {q(table)} "
        f"WHERE {q(t.primary_key)} = ANY({_keys_param(pk_type)}) AND {col} IS NOT NULL",
        list(keys),
    )
    return [r[0] for r in rows]


async def delete_returning(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> Removed:
    """Delete the rows; returns them exactly as they were (json_agg of the whole rows)."""
    r = await conn.fetchrow(
        f"WITH d AS (DELETE FROM {q(table)} WHERE {q(t.primary_key)} = ANY({_keys_param(pk_type)})"
        f" RETURNING *) SELECT coalesce(array_agg(d.{q(t.primary_key)}::text), '{{}}') AS keys,"
        " coalesce(array_agg(row_to_json(d)::text), '{}') AS rows FROM d",
        list(keys),
    )
    return Removed(list(r["keys"]), list(r["rows"]))


def mask_value(strategy: str, value: str | None, hmac_key: bytes) -> str | None:
    if value is None or strategy == "null":
        return None
    if strategy == "redact":
        return REDACTED
    if strategy == "hash":
        return MASK_PREFIX["hash"] + hashlib.sha256(value.encode()).hexdigest()
    if strategy == "hmac":
        return MASK_PREFIX["hmac"] + hmac.new(hmac_key, value.encode(), hashlib.sha256).hexdigest()
    return MASK_PREFIX["random_string"] + secrets.token_hex(12)


async def mask_returning(
    conn: asyncpg.Connection,
    table: str,
    t: TableMap,
    pk_type: str,
    keys: Sequence[str],
    hmac_key: bytes,
) -> Removed:
    """Mask the rows' columns in place (two statements per chunk); returns the originals."""
    pk = q(t.primary_key)
    text_cols = [c for c, s in t.mask.items() if s != "null"]
    selected = ", ".join(f"{q(c)}::text" for c in text_cols)
    rows = await conn.fetch(
        f"SELECT {pk}::text AS k, row_to_json(x)::text AS j{', ' + selected if selected else ''} "
        f"FROM {q(table)} x WHERE {pk} = ANY({_keys_param(pk_type)}) ORDER BY {pk} FOR UPDATE",
        list(keys),
    )
    if not rows:
        return Removed([], [])
    sets = [f"{q(c)} = NULL" for c, s in t.mask.items() if s == "null"]
    args: list[list[Any]] = [[r["k"] for r in rows]]
    for i, c in enumerate(text_cols):
        args.append([mask_value(t.mask[c], r[2 + i], hmac_key) for r in rows])
        sets.append(f"{q(c)} = v.c{i}")
    cols = ", ".join(["k", *(f"c{i}" for i in range(len(text_cols)))])
    params = ", ".join(f"${i + 1}::text[]" for i in range(len(args)))
    await conn.execute(
        f"UPDATE {q(table)} SET {', '.join(sets)} FROM unnest({params}) AS v({cols}) "
        f"WHERE {pk} = v.k::{pk_type}",
        *args,
    )
    return Removed([r["k"] for r in rows], [r["j"] for r in rows])


def _parents_exist(dm: DataMap, t: TableMap, alias: str) -> str:
    conds = []
    for p in t.parents:
        ppk = q(dm.tables[p.table].primary_key)
        col = f"{alias}.{q(p.column)}"
        conds.append(f"({col} IS NULL OR EXISTS (SELECT 1 FROM {q(p.table)} WHERE {ppk} = {col}))")
    return " AND ".join(conds) or "true"


async def restore_rows(
    conn: asyncpg.Connection, dm: DataMap, table: str, rows_json: str
) -> list[str]:
    """Put rows back as they were; returns the keys that came back.

    A row whose key (or another unique key) is taken again, or whose parent is not there,
    does not come back: the caller reports it for manual review.
    """
    t = dm.tables[table]
    pk = q(t.primary_key)
    src = f"json_populate_recordset(NULL::{q(table)}, $1::text::json) r"
    if t.action == "mask":
        sets = ", ".join(f"{q(c)} = r.{q(c)}" for c in t.mask)
        sql = (
            f"UPDATE {q(table)} x SET {sets} FROM {src} WHERE x.{pk} = r.{pk} "
            f"AND {_parents_exist(dm, t, 'r')} RETURNING x.{pk}::text"
        )
    else:
        sql = (
            f"INSERT INTO {q(table)} OVERRIDING SYSTEM VALUE SELECT r.* FROM {src} "
            f"WHERE {_parents_exist(dm, t, 'r')} ON CONFLICT DO NOTHING RETURNING {pk}::text"
        )
    return [r[0] for r in await conn.fetch(sql, rows_json)]


def rows_by_key(dm: DataMap, table: str, rows_json: str) -> dict[str, Any]:
    pk = dm.tables[table].primary_key
    return {str(r[pk]): r for r in json.loads(rows_json)}


async def count_unmasked(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> int:
    """Rows of a masked table among `keys` that still hold an original value."""
    conds = []
    for c, s in t.mask.items():
        if s == "null":
            conds.append(f"{q(c)} IS NOT NULL")
        elif s == "redact":
            conds.append(f"{q(c)} IS DISTINCT FROM '{REDACTED}'")
        else:
            conds.append(f"{q(c)}::text NOT LIKE '{MASK_PREFIX[s]}%'")
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {q(table)} WHERE {q(t.primary_key)} = ANY({_keys_param(pk_type)})"
        f" AND ({' OR '.join(conds)})",
        list(keys),
    )
    return n


async def remaining(
    conn: asyncpg.Connection,
    dm: DataMap,
    pk_types: dict[str, str],
    org_id: str,
    identities: dict[str, str] | None,
) -> dict[str, int]:
    """Verification: rows of the subject still live (masked rows count once unmasked only)."""
    found = await resolve(conn, dm, org_id, identities)
    left: dict[str, int] = {}
    for table, keys in found.items():
        t = dm.tables[table]
        if not keys or t.action == "keep":
            continue
        n = len(keys)
        if t.action == "mask":
            n = 0
            for i in range(0, len(keys), KEY_CHUNK):
                part = [str(k) for k in keys[i : i + KEY_CHUNK]]
                n += await count_unmasked(conn, table, t, pk_types[table], part)
        if n:
            left[table] = n
    return left
