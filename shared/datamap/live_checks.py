"""Does the map fit the live database? `check_against_database` refuses one that does not,
naming every mismatch: unknown tables and columns, relation types, masks, tombstones, row
filters, and the order of erasure under the live foreign keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import asyncpg

from shared.datamap.connectors import OAuthRevocation
from shared.datamap.live import Column, LiveSchema, read_live_schema
from shared.datamap.model import (
    TEXT_LENGTH,
    TEXT_STRATEGIES,
    DataMap,
    DataMapError,
    Relation,
    TableMap,
    parse_mask,
)

_TEXT_TYPES = ("text", "character varying", "character", "citext")
_TIME_TYPES = ("timestamp", "date")
_NUMBER_TYPES = ("integer", "bigint", "smallint", "numeric", "real", "double precision")


async def check_against_database(dm: DataMap, conn: asyncpg.Connection) -> LiveSchema:
    """Refuse a map that does not fit the live schema; returns what the schema says.

    Every table and column named must exist (in the connection's search path), a relation's
    columns must have its target key's types, masks must fit their columns, tombstones must
    exist, row filters must parse, and the map's order must hold for the live foreign keys.
    """
    live = await read_live_schema(conn, list(dm.tables))
    problems = _Problems(dm, live)
    for name, t in dm.tables.items():
        if name not in live.columns:
            problems.add(f"tables.{name}: unknown table {name!r} in the platform database")
            continue
        await problems.check_table(conn, name, t)
    s = dm.subject
    if s.table in live.columns:
        if s.org_column is not None:
            problems.need(s.table, "subject.org_column", s.org_column, prefix="")
        for kind, col in s.identities.items():
            problems.need(s.table, f"subject.identities.{kind}", col, prefix="")
    for name, c in dm.connectors.items():
        if isinstance(c, OAuthRevocation) and c.table in live.columns:
            for col in c.tokens:
                problems.need(c.table, f"connectors.{name}.tokens", col, prefix="")
    if not problems.items:
        try:
            dm.waves(list(dm.tables), live.link_edges(dm))
        except ValueError as exc:
            problems.add(f"{exc} (with the database's foreign keys)")
    if problems.items:
        raise DataMapError(
            f"{dm.source}: does not match the database: " + "; ".join(problems.items)
        )
    return live


@dataclass
class _Problems:
    dm: DataMap
    live: LiveSchema
    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.items.append(text)

    def need(self, table: str, where: str, column: str, prefix: str = "tables.") -> str | None:
        col = self.live.columns.get(table, {}).get(column)
        if col is None:
            self.add(f"{prefix}{where}: unknown column {column!r} in table {table!r}")
            return None
        return col.type

    async def check_table(self, conn: asyncpg.Connection, name: str, t: TableMap) -> None:
        for pk in t.pk_columns:
            self.need(name, f"{name}.primary_key", pk)
        for field_name in ("object_key_column", "org_column"):
            col = getattr(t, field_name)
            if col:
                self.need(name, f"{name}.{field_name}", col)
        if t.retention_column:
            typ = self.need(name, f"{name}.retention_column", t.retention_column)
            if typ is not None and not typ.startswith(_TIME_TYPES):
                self.add(
                    f"tables.{name}.retention_column: column {t.retention_column!r} is {typ}, "
                    "not a timestamp"
                )
        for kind, col in t.identities.items():
            self.need(name, f"{name}.identities.{kind}", col)
        for col, spec in t.mask.items():
            typ = self.need(name, f"{name}.mask.{col}", col)
            if typ is not None:
                await self.check_mask(conn, name, col, spec, typ)
        for col, spec in (t.hide.mask if t.hide else {}).items():
            typ = self.need(name, f"{name}.hide.set.{col}", col)
            if typ is not None:
                await self.check_mask(conn, name, col, spec, typ, f"tables.{name}.hide.set.{col}")
        for side, i, r in t.relations:
            await self.check_relation(conn, name, side, i, r)
        if t.where is not None:
            try:
                await conn.execute(f"EXPLAIN SELECT 1 FROM {_q(name)} WHERE {t.where}")
            except asyncpg.PostgresError as exc:
                self.add(f"tables.{name}.where: {t.where!r} is not a valid filter: {exc}")

    async def check_mask(
        self,
        conn: asyncpg.Connection,
        table: str,
        col: str,
        spec: str,
        typ: str,
        where: str | None = None,
    ) -> None:
        where = where or f"tables.{table}.mask.{col}"
        strategy, arg = parse_mask(spec)
        if strategy in TEXT_STRATEGIES:
            if not typ.startswith(_TEXT_TYPES):
                self.add(f"{where}: strategy {strategy} writes text, but column {col!r} is {typ}")
            m = re.search(r"\((\d+)\)", typ)
            if m and TEXT_LENGTH[strategy] > int(m.group(1)):
                self.add(
                    f"{where}: strategy {strategy} writes {TEXT_LENGTH[strategy]} characters, "
                    f"but column {col!r} is {typ}"
                )
        elif strategy == "null" and self.live.columns[table][col].not_null:
            self.add(f"{where}: strategy null, but column {col!r} is NOT NULL")
        elif strategy == "truncate" and not typ.startswith(_TIME_TYPES):
            self.add(f"{where}: truncate needs a date or timestamp, but column {col!r} is {typ}")
        elif strategy == "round" and not typ.startswith(_NUMBER_TYPES):
            self.add(f"{where}: round needs a number, but column {col!r} is {typ}")
        elif strategy in ("fixed", "reassign"):
            try:
                await conn.fetchval(f"SELECT $1::text::{typ}", arg)
            except (asyncpg.PostgresError, asyncpg.exceptions.DataError) as exc:
                self.add(f"{where}: {arg!r} is not a value of column {col!r} ({typ}): {exc}")
                return
            target = self.link_target(table, col) if strategy == "reassign" else None
            if target is not None and not await self.row_exists(conn, target[0], target[1], arg):
                self.add(f"{where}: no row {arg!r} in {target[0]!r} to move links to")

    def link_target(self, table: str, col: str) -> tuple[str, str] | None:
        """(target table, its key column) that a one-column link `table.col` points at: by
        the map's `parents`, else by a foreign key of the database."""
        for r in self.dm.tables[table].parents:
            target = self.dm.tables.get(r.table)
            if r.columns == [col] and target is not None and len(target.pk_columns) == 1:
                return r.table, target.pk_columns[0]
        fks = self.live.foreign_keys
        return next(
            (
                (fk.target, fk.target_columns[0])
                for fk in fks
                if fk.holder == table and fk.columns == (col,)
            ),
            None,
        )

    async def row_exists(self, conn: asyncpg.Connection, table: str, pk: str, key: object) -> bool:
        col = self.live.columns.get(table, {}).get(pk)
        if col is None:
            return True  # reported for the table itself
        try:
            found = await conn.fetchval(
                f"SELECT true FROM {_q(table)} WHERE {_q(pk)} = $1::text::{col.type}", str(key)
            )
        except asyncpg.PostgresError:
            found = False
        return bool(found)

    async def check_relation(
        self, conn: asyncpg.Connection, name: str, side: str, i: int, r: Relation
    ) -> None:
        where = f"tables.{name}.{side}[{i}]"
        holder, target = (name, r.table) if side == "parents" else (r.table, name)
        tpk = self.dm.tables[target].pk_columns
        if target not in self.live.columns or holder not in self.live.columns:
            return  # reported for the table itself
        for col, pk in zip(r.columns, tpk, strict=True):
            typ = self.need(holder, f"{where}.column", col, prefix="")
            pk_col = self.live.columns[target].get(pk)
            if typ and pk_col and typ != pk_col.type:
                self.add(
                    f"{where}: {holder}.{col} ({typ}) cannot reference {target}.{pk} "
                    f"({pk_col.type})"
                )
        if side != "parents" or r.effective_kind == "owned":
            return
        holder_cols = self.live.columns[holder]
        if r.detach == "null" and any(
            holder_cols.get(c, Column("", False)).not_null for c in r.columns
        ):
            self.add(
                f"{where}.detach: {name}.{','.join(r.columns)} is NOT NULL, so a kept row "
                "cannot lose its link by null; use `detach: reassign` with a tombstone"
            )
        if r.detach == "reassign" and len(tpk) == 1:
            if not await self.row_exists(conn, target, tpk[0], r.tombstone):
                self.add(
                    f"{where}.tombstone: no row {r.tombstone!r} in {target!r} to move links to"
                )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
