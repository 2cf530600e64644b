"""What the live database says about the mapped tables: column types, NOT NULL, foreign
keys, pgcrypto. Read once at start (`read_live_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from shared.datamap.model import DataMap


@dataclass(frozen=True)
class Column:
    type: str
    not_null: bool


@dataclass(frozen=True)
class ForeignKey:
    holder: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]


@dataclass
class LiveSchema:
    """What the live database says about the mapped tables, read once at start."""

    columns: dict[str, dict[str, Column]]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    has_pgcrypto: bool = False

    def type_of(self, table: str, column: str) -> str:
        return self.columns[table][column].type

    def key_types(self, dm: DataMap, table: str) -> list[str]:
        return [self.type_of(table, c) for c in dm.tables[table].pk_columns]

    def pk_types(self, dm: DataMap) -> dict[str, str]:
        """Table -> its key's type (';'-separated for a composite key)."""
        return {n: ";".join(self.key_types(dm, n)) for n in dm.tables if n in self.columns}

    def referrers(self, table: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.target == table]

    def link_edges(self, dm: DataMap) -> set[tuple[str, str]]:
        """(holder, target) of the live foreign keys between mapped tables."""
        return {
            (fk.holder, fk.target)
            for fk in self.foreign_keys
            if fk.holder in dm.tables and fk.target in dm.tables and fk.holder != fk.target
        }


async def read_live_schema(conn: asyncpg.Connection, tables: list[str]) -> LiveSchema:
    rows = await conn.fetch(
        "SELECT c.relname AS table, a.attname AS column, "
        "format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p') "
        "AND pg_table_is_visible(c.oid) AND a.attnum > 0 AND NOT a.attisdropped",
        tables,
    )
    columns: dict[str, dict[str, Column]] = {}
    for r in rows:
        columns.setdefault(r["table"], {})[r["column"]] = Column(r["type"], r["not_null"])
    # Every foreign key into a mapped table, from any visible table (mapped or not): a
    # `shared` row stays while any row outside the subject's still points at it.
    fk_rows = await conn.fetch(
        "SELECT h.relname AS holder, g.relname AS target, "
        "ARRAY(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i) "
        "      JOIN pg_attribute ON attrelid = k.conrelid AND attnum = u.n ORDER BY u.i) AS cols, "
        "ARRAY(SELECT attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i) "
        "      JOIN pg_attribute ON attrelid = k.confrelid AND attnum = u.n ORDER BY u.i) AS tcols "
        "FROM pg_constraint k JOIN pg_class h ON h.oid = k.conrelid "
        "JOIN pg_class g ON g.oid = k.confrelid "
        "WHERE k.contype = 'f' AND k.conparentid = 0 AND g.relname = ANY($1::text[]) "
        "AND pg_table_is_visible(g.oid) AND pg_table_is_visible(h.oid) AND NOT h.relispartition",
        tables,
    )
    fks = [
        ForeignKey(r["holder"], tuple(r["cols"]), r["target"], tuple(r["tcols"])) for r in fk_rows
    ]
    crypto = await conn.fetchval("SELECT to_regproc('digest') IS NOT NULL")
    return LiveSchema(columns, fks, bool(crypto))
