"""Verification that does not trust the data map: look for a subject's identity values in
every text-like column of every table of the platform database, mapped or not.

    report = await scan_identities(pool, {"email": "Ann@X.com", "phone": "+44..."},
                                   schemas=["public"], budget_s=30)

Columns looked at: text, varchar, char, citext (and arrays of them), json, jsonb (domains
over them too). A text value matches when it equals an identity value; an email matches in
any case. Inside json/jsonb a value matches when it appears as a JSON string anywhere in the
document (keys included). One statement per table (partitioned tables once, through their
parent; Lethe's own restoration log left out), smallest tables first, each with a
`statement_timeout` of what is left of the budget; a table not reached in time, timed out or
failing is reported in `skipped`, and the report is then not ok. The values are bound
parameters, never logged, never part of a report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import asyncpg
from pydantic import BaseModel

from shared.catalog import Column, TableFacts, quote_ident, read_catalog

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext"})
JSON_TYPES = frozenset({"json", "jsonb"})
# Below this much budget left a statement is not started.
_MIN_STATEMENT_S = 0.02


class ScanHit(BaseModel):
    table: str  # bare in `public`, schema-qualified elsewhere
    column: str
    key: str  # primary key as text; a JSON array for a composite key; ctid without a key


class SkippedTable(BaseModel):
    table: str
    reason: str  # "budget": not reached in time; "timeout"; or the error's class and SQLSTATE


class ScanReport(BaseModel):
    ok: bool  # no hit and every table scanned
    hits: list[ScanHit]
    scanned: list[str]  # "table.column" of every column looked through
    skipped: list[SkippedTable]
    truncated: list[str]  # tables with more matching rows than the per-table limit
    elapsed_s: float

    @property
    def scanned_columns(self) -> int:
        return len(self.scanned)


def is_email_kind(kind: str) -> bool:
    return kind == "email" or kind.endswith("_email")


def scannable(column: Column) -> bool:
    return column.base in TEXT_TYPES or (column.base in JSON_TYPES and not column.is_array)


def _condition(column: Column) -> str:
    """SQL true when the column holds one of $1 (exact values) or $2 (lowercase emails).

    Both arrays are always bound; an empty one costs nothing (its EXISTS has no row)."""
    c = quote_ident(column.name)
    if column.base in JSON_TYPES:
        doc = f"{c}::jsonb::text"  # json through jsonb: escapes decoded, one spelling
        return (
            f"(EXISTS (SELECT 1 FROM unnest($1::text[]) v "
            f"WHERE strpos({doc}, to_json(v)::text) > 0)"
            f" OR EXISTS (SELECT 1 FROM unnest($2::text[]) v "
            f"WHERE strpos(lower({doc}), to_json(v)::text) > 0))"
        )
    if column.is_array:
        return (
            f"({c}::text[] && $1::text[]"
            f" OR EXISTS (SELECT 1 FROM unnest({c}::text[]) x WHERE lower(x) = ANY($2::text[])))"
        )
    return f"({c}::text = ANY($1::text[]) OR lower({c}::text) = ANY($2::text[]))"


def _key(table: TableFacts) -> str:
    pk = [quote_ident(k) for k in table.primary_key]
    if len(pk) == 1:
        return f"{pk[0]}::text"
    if pk:
        return f"json_build_array({', '.join(pk)})::text"
    if table.partitioned:  # a ctid is only unique within one partition
        return "tableoid::regclass::text || ':' || ctid::text"
    return "ctid::text"


def table_statement(table: TableFacts, columns: Sequence[Column], *, limit: int) -> str:
    """One statement for the table: the key and the positions (1-based) of matching columns
    of at most `limit` rows."""
    cases = ", ".join(
        f"CASE WHEN {_condition(col)} THEN {i} END" for i, col in enumerate(columns, 1)
    )
    return (
        f"SELECT key, hits FROM (SELECT {_key(table)} AS key, "
        f"array_remove(ARRAY[{cases}]::int[], NULL) AS hits FROM {table.sql_name}) s "
        f"WHERE cardinality(hits) > 0 LIMIT {int(limit)}"
    )


def _values(identities: Mapping[str, str | None]) -> tuple[list[str], list[str]]:
    exact: set[str] = set()
    folded: set[str] = set()
    for kind, raw in identities.items():
        value = (raw or "").strip()
        if not value:
            continue
        if is_email_kind(kind):
            folded.add(value.lower())
        else:
            exact.add(value)
    return sorted(exact), sorted(folded)


async def scan_identities(
    db: asyncpg.Pool | asyncpg.Connection,
    identities: Mapping[str, str | None],
    *,
    schemas: Sequence[str] = ("public",),
    budget_s: float = 30.0,
    limit_per_table: int = 20,
) -> ScanReport:
    """Scan the schemas' text-like columns for the identity values (kind -> raw value;
    kinds `email` and `*_email` match in any case). Read-only; see the module docstring."""
    exact, folded = _values(identities)
    if not exact and not folded:
        raise ValueError("scan_identities: no identity value to look for")
    if not isinstance(db, asyncpg.Pool) and db.is_in_transaction():
        # each table runs in a read-only transaction of its own, with its own timeout
        raise ValueError("scan_identities: give a connection outside a transaction (or a pool)")
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _scan(conn, exact, folded, list(schemas), budget_s, limit_per_table)
    return await _scan(db, exact, folded, list(schemas), budget_s, limit_per_table)


async def _scan(
    conn: asyncpg.Connection,
    exact: list[str],
    folded: list[str],
    schemas: list[str],
    budget_s: float,
    limit: int,
) -> ScanReport:
    started = time.monotonic()
    tables = sorted(await read_catalog(conn, schemas), key=lambda t: (t.size_bytes, t.label))
    hits: list[ScanHit] = []
    scanned: list[str] = []
    skipped: list[SkippedTable] = []
    truncated: list[str] = []
    for table in tables:
        columns = [c for c in table.columns if scannable(c)]
        if not columns:
            continue
        left = budget_s - (time.monotonic() - started)
        if left < _MIN_STATEMENT_S:
            skipped.append(SkippedTable(table=table.label, reason="budget"))
            continue
        sql = table_statement(table, columns, limit=limit)
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")
                rows = await conn.fetch(sql, exact, folded, timeout=left + 5)
        except (asyncpg.QueryCanceledError, TimeoutError):
            skipped.append(SkippedTable(table=table.label, reason="timeout"))
            continue
        except asyncpg.PostgresError as exc:  # the message may quote data: class and code only
            skipped.append(
                SkippedTable(table=table.label, reason=f"{type(exc).__name__} ({exc.sqlstate})")
            )
            continue
        scanned.extend(f"{table.label}.{c.name}" for c in columns)
        if len(rows) >= limit:
            truncated.append(table.label)
        for r in rows:
            hits.extend(
                ScanHit(table=table.label, column=columns[i - 1].name, key=r["key"])
                for i in r["hits"]
            )
    report = ScanReport(
        ok=not hits and not skipped,
        hits=hits,
        scanned=scanned,
        skipped=skipped,
        truncated=truncated,
        elapsed_s=round(time.monotonic() - started, 3),
    )
    log.info(
        "identity scan: %d hit(s), %d column(s) scanned, %d table(s) skipped, %.2fs",
        len(hits),
        len(scanned),
        len(skipped),
        report.elapsed_s,
    )
    return report
