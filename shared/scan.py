"""Verification that does not trust the data map: look for a subject's identity values in
every text-like column of every table of the platform database, mapped or not.

    report = await scan_identities(pool, {"email": "Ann@X.com", "phone": "+44..."},
                                   schemas=["public"], budget_s=30)

Columns looked at: text, varchar, char, citext (and arrays of them), json, jsonb (domains
over them too). A text value matches when it equals an identity value; an email matches in
any case. Inside json/jsonb a value matches when it appears as a JSON string anywhere in the
document (keys included). Smallest tables first (partitioned tables once, through their
parent; Lethe's own restoration log left out): the small ones (estimated 32 MB together) in
one statement with half the budget, then one statement per table, each with a
`statement_timeout` of what is left of the budget (the small ones too, one by one, when their
statement did not finish); a table not reached in time, timed out or
failing is reported in `skipped`, and the report is then not ok. The values are bound
parameters, never logged, never part of a report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from pydantic import BaseModel

from shared.catalog import CatalogCache, Column, TableFacts, quote_ident, read_catalog

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext"})
JSON_TYPES = frozenset({"json", "jsonb"})
# Below this much budget left a statement is not started.
_MIN_STATEMENT_S = 0.02
# Tables scanned in one statement together, smallest first, up to this estimated size.
_TOGETHER_BYTES = 32 * 1024 * 1024


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
    catalog: CatalogCache | None = None,
) -> ScanReport:
    """Scan the schemas' text-like columns for the identity values (kind -> raw value;
    kinds `email` and `*_email` match in any case). Read-only; see the module docstring.
    `catalog`: the tables as last read, checked against a digest instead of read each time."""
    exact, folded = _values(identities)
    if not exact and not folded:
        raise ValueError("scan_identities: no identity value to look for")
    if not isinstance(db, asyncpg.Pool) and db.is_in_transaction():
        # each table runs in a read-only transaction of its own, with its own timeout
        raise ValueError("scan_identities: give a connection outside a transaction (or a pool)")
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _scan(
                conn, exact, folded, list(schemas), budget_s, limit_per_table, catalog
            )
    return await _scan(db, exact, folded, list(schemas), budget_s, limit_per_table, catalog)


Todo = list[tuple[TableFacts, list[Column]]]


def _small_first(tables: Todo) -> int:
    """How many of the (smallest first) tables go into one statement together: while their
    estimated size stays under `_TOGETHER_BYTES`. One statement saves the round trips of a
    transaction per table, which is most of a scan's time on a small platform."""
    total, n = 0, 0
    for table, _ in tables:
        total += table.size_bytes
        if total > _TOGETHER_BYTES:
            break
        n += 1
    return n if n > 1 else 0


async def _fetch(conn: asyncpg.Connection, sql: str, args: list[list[str]], left: float) -> Any:
    """In a read-only transaction, with `left` seconds as its statement timeout."""
    async with conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")
        return await conn.fetch(sql, *args, timeout=left + 5)


async def _scan(
    conn: asyncpg.Connection,
    exact: list[str],
    folded: list[str],
    schemas: list[str],
    budget_s: float,
    limit: int,
    catalog: CatalogCache | None,
) -> ScanReport:
    started = time.monotonic()
    found = await (catalog.read(conn, schemas) if catalog else read_catalog(conn, schemas))
    todo: Todo = [
        (t, cols)
        for t in sorted(found, key=lambda t: (t.size_bytes, t.label))
        if (cols := [c for c in t.columns if scannable(c)])
    ]
    report = _Report()
    together = _small_first(todo)
    # Half the budget at most: sizes are estimates, and when this statement does not finish
    # the tables are scanned one by one below, each with what is left (a spent budget starts
    # nothing: every table is reported skipped there).
    left = (budget_s - (time.monotonic() - started)) / 2
    if together and left >= _MIN_STATEMENT_S:
        parts = [
            f"SELECT {i} AS t, key, hits FROM ({table_statement(t, cols, limit=limit)}) q{i}"
            for i, (t, cols) in enumerate(todo[:together])
        ]
        try:
            rows = await _fetch(conn, " UNION ALL ".join(parts), [exact, folded], left)
        except (TimeoutError, asyncpg.PostgresError):  # one by one below, said per table
            rows = None
        if rows is not None:
            for i, (table, columns) in enumerate(todo[:together]):
                report.add(table, columns, [r for r in rows if r["t"] == i], limit)
            todo = todo[together:]
    for table, columns in todo:
        left = budget_s - (time.monotonic() - started)
        if left < _MIN_STATEMENT_S:
            report.skipped.append(SkippedTable(table=table.label, reason="budget"))
            continue
        sql = table_statement(table, columns, limit=limit)
        try:
            rows = await _fetch(conn, sql, [exact, folded], left)
        except (asyncpg.QueryCanceledError, TimeoutError):
            report.skipped.append(SkippedTable(table=table.label, reason="timeout"))
            continue
        except asyncpg.PostgresError as exc:  # the message may quote data: class and code only
            reason = f"{type(exc).__name__} ({exc.sqlstate})"
            report.skipped.append(SkippedTable(table=table.label, reason=reason))
            continue
        report.add(table, columns, rows, limit)
    return report.done(time.monotonic() - started)


class _Report:
    def __init__(self) -> None:
        self.hits: list[ScanHit] = []
        self.scanned: list[str] = []
        self.skipped: list[SkippedTable] = []
        self.truncated: list[str] = []

    def add(self, table: TableFacts, columns: list[Column], rows: Any, limit: int) -> None:
        self.scanned.extend(f"{table.label}.{c.name}" for c in columns)
        if len(rows) >= limit:
            self.truncated.append(table.label)
        for r in rows:
            self.hits.extend(
                ScanHit(table=table.label, column=columns[i - 1].name, key=r["key"])
                for i in r["hits"]
            )

    def done(self, elapsed: float) -> ScanReport:
        report = ScanReport(
            ok=not self.hits and not self.skipped,
            hits=self.hits,
            scanned=self.scanned,
            skipped=self.skipped,
            truncated=self.truncated,
            elapsed_s=round(elapsed, 3),
        )
        log.info(
            "identity scan: %d hit(s), %d column(s) scanned, %d table(s) skipped, %.2fs",
            len(self.hits),
            len(self.scanned),
            len(self.skipped),
            report.elapsed_s,
        )
        return report
