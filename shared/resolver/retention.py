"""Retention's SQL: the rows of a table older than a cutoff in an organisation, which of
them stay because something that stays still links to them, and a batch of them as a scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from shared.resolver.base import ResolverBase
from shared.resolver.scope import Rows, Scope, ScopeError, Subject
from shared.resolver.sql import Params, key_text, q, tuple_of


class RetentionSql(ResolverBase):
    async def check_retention_org(self, conn: asyncpg.Connection, org_id: str | None) -> bool:
        """False when the platform cannot hold rows of `org_id` (a single-tenant platform
        belongs to `platform_org` only); raises ScopeError when the id does not cast to an
        org column a retention table is scoped by."""
        dm = self.dm
        if org_id is None:
            return True
        if dm.single_tenant:
            return org_id == dm.platform_org
        for table in dm.retention_tables():
            owner, column = self._retention_org_column(table)
            if owner not in self.live.columns:
                continue
            typ = self.live.type_of(owner, column)
            try:
                await conn.fetchval(f"SELECT $1::text::{typ}", org_id)
            except (asyncpg.DataError, asyncpg.PostgresError):
                raise ScopeError(
                    f"the organisation id {org_id!r} is not a valid {typ} for {owner}.{column}"
                ) from None
        return True

    def _retention_org_column(self, table: str) -> tuple[str, str]:
        """(table holding the org column, the column) for a retention table's rows."""
        t = self.dm.tables[table]
        if t.org_column is not None:
            return table, t.org_column
        via = self.dm.retention_org(table)
        assert via is not None  # the data map refuses a retention table without an org path
        return via[0], via[2]

    def _aged(
        self, table: str, org_id: str | None, cutoff: datetime, p: Params, *, held: bool
    ) -> str:
        """WHERE clause (alias x) of `table`'s rows older than `cutoff` in the org, passing
        the table's filter, no tombstone; `held`: those still referenced by rows that stay
        and cannot be detached (else: those retention takes)."""
        dm = self.dm
        t = dm.tables[table]
        conds = [f"x.{q(t.retention_column or '')} < {p.ref('cutoff', cutoff)}"]
        if org_id is not None and not dm.single_tenant:
            slot = p.ref("org", org_id)
            if t.org_column is not None:
                typ = self.live.type_of(table, t.org_column)
                conds.append(f"x.{q(t.org_column)} = {slot}::text::{typ}")
            else:
                parent, column, org_col = dm.retention_org(table) or ("", "", "")
                typ = self.live.type_of(parent, org_col)
                ppk = q(dm.tables[parent].pk_columns[0])
                conds.append(
                    f"x.{q(column)} IN (SELECT o.{ppk} FROM {q(parent)} o "
                    f"WHERE o.{q(org_col)} = {slot}::text::{typ})"
                )
        holds = [
            f"EXISTS (SELECT 1 FROM {q(holder)} h WHERE "
            f"({', '.join(f'h.{q(c)}' for c in columns)}) = "
            f"({', '.join(f'x.{q(c)}' for c in t.pk_columns)}))"
            for holder, columns in self.holders(table)
        ]
        if held:
            conds.append(f"({' OR '.join(holds) or 'false'})")
        else:
            conds.extend(f"NOT {h}" for h in holds)
        return " AND ".join(conds) + " " + self._filter(table, "x")

    def holders(self, table: str) -> list[tuple[str, list[str]]]:
        """Links into `table` that no erasure of its rows can follow: the holder's row would
        stay pointing at a row that goes. A `parents` relation of the holder's (owned: the
        holder's row goes too; shared or reference: its link is detached) is followable;
        `referenced_by` relations of `table` itself and foreign keys the map does not
        declare are not: a row they reference is kept (docs/datamap.md, Retention)."""
        declared = {
            (name, tuple(r.columns))
            for name, t in self.dm.tables.items()
            for r in t.parents
            if r.table == table
        }
        return [(h, c) for h, c in self._referrers(table) if (h, tuple(c)) not in declared]

    def aged_keys_sql(
        self,
        table: str,
        org_id: str | None,
        cutoff: datetime,
        *,
        after: str | None = None,
        limit: int | None = None,
    ) -> tuple[str, list[Any]]:
        """Text keys (ordered by the key) of `table`'s rows retention takes: older than
        `cutoff`, of the org (org column cast to its live type, or through the parent that
        holds it; single-tenant: every row), passing the table's `where:` filter, no
        tombstone, nothing that stays still pointing at them. Keyset pages: `after` is the
        last key of the previous page."""
        dm = self.dm
        t = dm.tables[table]
        p = Params()
        where = self._aged(table, org_id, cutoff, p, held=False)
        if after is not None:
            slot = p.ref("after", after)
            types = self.live.key_types(dm, table)
            if len(t.pk_columns) == 1:
                where += f" AND x.{q(t.pk_columns[0])} > {slot}::text::{types[0]}"
            else:
                bound = ", ".join(
                    f"({slot}::text::json->>{i})::{typ}" for i, typ in enumerate(types)
                )
                where += f" AND {tuple_of('x', t.pk_columns)} > ({bound})"
        order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        sql = f"SELECT {key_text(dm, table, 'x')} FROM {q(table)} x WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql, p.values

    def aged_count_sql(
        self, table: str, org_id: str | None, cutoff: datetime, *, held: bool = False
    ) -> tuple[str, list[Any]]:
        """How many rows `aged_keys_sql` gives (held: how many are kept, still referenced)."""
        p = Params()
        where = self._aged(table, org_id, cutoff, p, held=held)
        return f"SELECT count(*) FROM {q(table)} x WHERE {where}", p.values

    def batch(self, org_id: str | None, table: str, keys: list[str]) -> Subject:
        """A retention batch as a scope: these rows of `table` and the rows related to them
        (owned: with them; shared: when nobody else's; reference: kept, link detached)."""
        return Subject(Scope(org_id or "", None, Rows(table, tuple(keys))))
