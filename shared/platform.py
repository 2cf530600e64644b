"""Data-map-driven SQL that changes the platform database (eraser and retention).

Which rows belong to a subject is the resolver's (`shared/resolver/`); this module acts on
given keys: delete or mask them (returning the originals for the restoration log), detach
links, put rows back. Identifiers come from the validated data map and are quoted; values
are always parameters. Everything is set-based (`= ANY($1)` over key chunks, `DELETE ...
RETURNING`, `json_populate_recordset`), never one statement per row. Keys travel as text
(`pk::text`, or a JSON array for a composite key) and are cast back with the key's types.
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

from shared.datamap import DataMap, Relation, TableMap, parse_mask
from shared.resolver import q

KEY_CHUNK = 10_000
REDACTED = "[redacted]"
# Masked values carry a marker, so verification can tell a masked value from a live one.
MASK_PREFIX = {"hash": "sha256:", "hmac": "hmac:", "random_string": "rnd:"}
PYTHON_STRATEGIES = frozenset({"redact", "hash", "hmac", "random_string"})
# What a chunk does: the table's own action, or detach the links of one `parents` relation.
ERASE = "erase"
# The data map's `hide` step: the subject's row hidden before its plan (restored after it).
HIDE = "hide"


def detach_op(index: int) -> str:
    return f"detach:{index}"


def detach_relation(t: TableMap, op: str) -> Relation | None:
    if not op.startswith("detach:"):
        return None
    return t.parents[int(op.split(":", 1)[1])]


def detach_mask(r: Relation) -> dict[str, str]:
    """A detach is a mask of the link column(s): null, or the tombstone's key."""
    if r.detach == "reassign":
        return {r.columns[0]: f"reassign:{r.tombstone}"}
    return dict.fromkeys(r.columns, "null")


def _types(pk_type: str) -> list[str]:
    return pk_type.split(";")


def key_text(t: TableMap, alias: str) -> str:
    pks = t.pk_columns
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])}::text"
    return f"json_build_array({', '.join(f'{alias}.{q(c)}' for c in pks)})::text"


def key_in(t: TableMap, pk_type: str, alias: str, param: str = "$1") -> str:
    """`alias`'s key is among the text keys in `param`."""
    pks, types = t.pk_columns, _types(pk_type)
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])} = ANY({param}::text[]::{types[0]}[])"
    parts = ", ".join(f"(k.j->>{i})::{typ}" for i, typ in enumerate(types))
    cols = ", ".join(f"{alias}.{q(c)}" for c in pks)
    return f"({cols}) IN (SELECT {parts} FROM (SELECT unnest({param}::text[])::json AS j) k)"


def _same_key(t: TableMap, a: str, b: str) -> str:
    return " AND ".join(f"{a}.{q(c)} = {b}.{q(c)}" for c in t.pk_columns)


async def chunk_object_keys(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> list[str]:
    if t.object_key_column is None:
        return []
    col = q(t.object_key_column)
    rows = await conn.fetch(
        f"SELECT DISTINCT x.{col} FROM {q(table)} x "
        f"WHERE {key_in(t, pk_type, 'x')} AND x.{col} IS NOT NULL",
        list(keys),
    )
    return [r[0] for r in rows]


# ------------------------------------------------------------------ soft delete and restore


@dataclass(frozen=True)
class Removed:
    """What one chunk took out of the live tables: keys, and each original row as JSON."""

    keys: list[str]
    rows: list[str]


async def delete_returning(
    conn: asyncpg.Connection, table: str, t: TableMap, pk_type: str, keys: Sequence[str]
) -> Removed:
    """Delete the rows; returns them exactly as they were (json_agg of the whole rows)."""
    r = await conn.fetchrow(
        f"WITH d AS (DELETE FROM {q(table)} x WHERE {key_in(t, pk_type, 'x')} RETURNING x.*) "
        f"SELECT coalesce(array_agg({key_text(t, 'd')}), '{{}}') AS keys,"
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


def _sql_mask(col: str, spec: str, typ: str, alias: str) -> str | None:
    """The SET expression of a strategy Postgres computes (None: computed in Python)."""
    strategy, arg = parse_mask(spec)
    c = f"{alias}.{q(col)}"
    if strategy == "null":
        return "NULL"
    if strategy in ("fixed", "reassign"):
        return "'" + str(arg).replace("'", "''") + f"'::text::{typ}"
    if strategy == "truncate":
        return f"date_trunc('{arg}', {c})::{typ}"
    if strategy == "round":
        return f"(round({c}::numeric / {arg}) * {arg})::{typ}"
    return None


async def mask_returning(
    conn: asyncpg.Connection,
    table: str,
    t: TableMap,
    pk_type: str,
    keys: Sequence[str],
    hmac_key: bytes,
    mask: dict[str, str] | None = None,
    col_types: dict[str, str] | None = None,
) -> Removed:
    """Mask the rows' columns in place (two statements per chunk); returns the originals.

    `mask` defaults to the table's; a detach passes its link column's. `col_types` gives
    the column types for strategies Postgres computes (fixed, reassign, truncate, round).
    """
    mask = t.mask if mask is None else mask
    types = col_types or {}
    in_py = [c for c, s in mask.items() if parse_mask(s)[0] in PYTHON_STRATEGIES]
    selected = ", ".join(f"x.{q(c)}::text" for c in in_py)
    order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
    rows = await conn.fetch(
        f"SELECT {key_text(t, 'x')} AS k, row_to_json(x)::text AS j"
        f"{', ' + selected if selected else ''} FROM {q(table)} x "
        f"WHERE {key_in(t, pk_type, 'x')} ORDER BY {order} FOR UPDATE",
        list(keys),
    )
    if not rows:
        return Removed([], [])
    sets = [
        f"{q(c)} = {expr}"
        for c, s in mask.items()
        if (expr := _sql_mask(c, s, types.get(c, "text"), "x")) is not None
    ]
    args: list[list[Any]] = [[r["k"] for r in rows]]
    for i, c in enumerate(in_py):
        args.append([mask_value(parse_mask(mask[c])[0], r[2 + i], hmac_key) for r in rows])
        sets.append(f"{q(c)} = v.c{i}")
    cols = ", ".join(["k", *(f"c{i}" for i in range(len(in_py)))])
    params = ", ".join(f"${i + 1}::text[]" for i in range(len(args)))
    pks = t.pk_columns
    keyed = (
        f"x.{q(pks[0])} = v.k::{pk_type}"
        if len(pks) == 1
        else key_in(t, pk_type, "x", "ARRAY[v.k]")
    )
    await conn.execute(
        f"UPDATE {q(table)} x SET {', '.join(sets)} FROM unnest({params}) AS v({cols}) "
        f"WHERE {keyed}",
        *args,
    )
    return Removed([r["k"] for r in rows], [r["j"] for r in rows])


def _parents_exist(dm: DataMap, t: TableMap, alias: str) -> str:
    conds = []
    for p in t.parents:
        target = dm.tables[p.table]
        link = " AND ".join(
            f"{q(pk)} = {alias}.{q(c)}" for c, pk in zip(p.columns, target.pk_columns, strict=True)
        )
        first = f"{alias}.{q(p.columns[0])}"
        conds.append(f"({first} IS NULL OR EXISTS (SELECT 1 FROM {q(p.table)} WHERE {link}))")
    return " AND ".join(conds) or "true"


async def restore_rows(
    conn: asyncpg.Connection, dm: DataMap, table: str, rows_json: str, op: str = ERASE
) -> list[str]:
    """Put rows (or detached links) back as they were; returns the keys that came back.

    A row whose key (or another unique key) is taken again, or whose parent is not there,
    does not come back: the caller reports it for manual review.
    """
    t = dm.tables[table]
    src = f"json_populate_recordset(NULL::{q(table)}, $1::text::json) r"
    relation = detach_relation(t, op)
    changed = list(relation.columns) if relation else list(t.mask) if t.action == "mask" else None
    if op == HIDE:
        if t.hide is None:
            return []  # the map no longer says which columns: held until the purge
        changed = list(t.hide.values)
    if changed is not None:
        sets = ", ".join(f"{q(c)} = r.{q(c)}" for c in changed)
        sql = (
            f"UPDATE {q(table)} x SET {sets} FROM {src} WHERE {_same_key(t, 'x', 'r')} "
            f"AND {_parents_exist(dm, t, 'r')} RETURNING {key_text(t, 'x')}"
        )
    else:
        sql = (
            f"INSERT INTO {q(table)} OVERRIDING SYSTEM VALUE SELECT r.* FROM {src} "
            f"WHERE {_parents_exist(dm, t, 'r')} ON CONFLICT DO NOTHING "
            f"RETURNING {key_text(t, q(table))}"
        )
    return [r[0] for r in await conn.fetch(sql, rows_json)]


def rows_by_key(dm: DataMap, table: str, rows_json: str) -> dict[str, Any]:
    pks = dm.tables[table].pk_columns
    out = {}
    for r in json.loads(rows_json):
        key = str(r[pks[0]]) if len(pks) == 1 else json.dumps([r[c] for c in pks])
        out[key] = r
    return out


def _unmasked(col: str, spec: str, typ: str) -> str:
    strategy = parse_mask(spec)[0]
    c = f"x.{q(col)}"
    if strategy == "null":
        return f"{c} IS NOT NULL"
    if strategy == "redact":
        return f"{c} IS DISTINCT FROM '{REDACTED}'"
    if strategy in MASK_PREFIX:
        return f"{c}::text NOT LIKE '{MASK_PREFIX[strategy]}%'"
    return f"{c} IS DISTINCT FROM {_sql_mask(col, spec, typ, 'x')}"


async def count_unmasked(
    conn: asyncpg.Connection,
    table: str,
    t: TableMap,
    pk_type: str,
    keys: Sequence[str],
    col_types: dict[str, str] | None = None,
) -> int:
    """Rows of a masked table among `keys` that still hold an original value."""
    types = col_types or {}
    conds = [_unmasked(c, s, types.get(c, "text")) for c, s in t.mask.items()]
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {q(table)} x WHERE {key_in(t, pk_type, 'x')}"
        f" AND ({' OR '.join(conds)})",
        list(keys),
    )
    return n
