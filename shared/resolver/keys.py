"""Composed key SQL: the scope's rows of each table, by the paths the map's relations give
(`keys_sql` and the queries built on it), and `materialize` to compute them once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg

from shared.datamap import Relation
from shared.resolver.base import ResolverBase
from shared.resolver.scope import Scope, Subject
from shared.resolver.sql import Params, key_match, key_text, q, tuple_of


class KeySql(ResolverBase):
    def tables(self, scope: Scope) -> list[str]:
        """The tables that can hold the scope's rows, in the map's order."""
        if scope.rows is not None:
            return self.reached(scope.rows.table)
        return self.dm.in_scope(scope.organisation)

    def reached(self, root: str) -> list[str]:
        """`root` and every table an owned or shared relation reaches from it, in order."""
        dm = self.dm
        found = {root}
        for name in dm.order():
            if name not in found and any(
                r.table in found and r.effective_kind != "reference" and r.table != name
                for _, _, r in dm.tables[name].relations
            ):
                found.add(name)
        return [n for n in dm.order() if n in found]

    def keys_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        """SELECT of the key columns of the scope's rows of `table` (distinct)."""
        p = Params()
        return self._keys(table, subject, p, frozenset(), set(self.tables(subject.scope))), p.values

    def key_text_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        """The scope's keys of `table` as text, ordered (for chunking and streaming)."""
        sql, args = self.keys_sql(table, subject)
        order = ", ".join(f"s.{q(c)}" for c in self.dm.tables[table].pk_columns)
        return f"SELECT {key_text(self.dm, table, 's')} FROM ({sql}) s ORDER BY {order}", args

    def rows_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        t = self.dm.tables[table]
        sql, args = self.keys_sql(table, subject)
        pk = tuple_of("x", t.pk_columns)
        order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        return f"SELECT x.* FROM {q(table)} x WHERE {pk} IN ({sql}) ORDER BY {order}", args

    def count_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        sql, args = self.keys_sql(table, subject)
        return f"SELECT count(*) FROM ({sql}) AS k", args

    def detach_sql(self, table: str, relation: Relation, subject: Subject) -> tuple[str, list[Any]]:
        """Keys (text, ordered) of rows of `table` linked by `relation` to the scope's rows
        that stay (not the scope's own): their link must be detached before those go."""
        dm = self.dm
        t = dm.tables[table]
        p = Params()
        scope_tables = set(self.tables(subject.scope))
        target = self._keys(relation.table, subject, p, frozenset(), scope_tables)
        cond = f"{tuple_of('x', relation.columns)} IN ({target})"
        if relation.table != table and table in scope_tables:
            own = self._keys(table, subject, p, frozenset(), scope_tables)
            cond += f" AND {tuple_of('x', t.pk_columns)} NOT IN ({own})"
        order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        return (
            f"SELECT {key_text(dm, table, 'x')} FROM {q(table)} x WHERE {cond} ORDER BY {order}",
            p.values,
        )

    def _from_materialized(self, table: str, subject: Subject) -> str:
        cols = ", ".join(q(c) for c in self.dm.tables[table].pk_columns)
        return f"SELECT {cols} FROM {subject.materialized[table]}"

    async def materialize(self, conn: asyncpg.Connection, subject: Subject) -> Subject:
        """The scope's keys of every table in temporary tables (dropped at the end of the
        caller's transaction), each computed once from the ones before it; queries through
        the returned Subject read them."""
        assert conn.is_in_transaction(), "materialized keys live as long as the transaction"
        done: dict[str, str] = {}
        for i, table in enumerate(self.tables(subject.scope)):
            sql, args = self.keys_sql(table, replace(subject, materialized=done))
            name = f"lethe_keys_{i}"
            cols = ", ".join(q(c) for c in self.dm.tables[table].pk_columns)
            # (CREATE TABLE AS takes no parameters: the shape first, then the rows.)
            await conn.execute(
                f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "
                f"SELECT {cols} FROM {q(table)} WITH NO DATA"
            )
            await conn.execute(f"INSERT INTO {name} {sql}", *args)
            await conn.execute(f"ANALYZE {name}")
            done[table] = name
        return replace(subject, materialized=dict(done))

    def _keys(
        self,
        table: str,
        subject: Subject,
        p: Params,
        excluded: frozenset[str],
        scope_tables: set[str],
    ) -> str:
        """SELECT <pk columns> FROM table: the scope's rows, without paths through `excluded`.

        One SELECT per path, UNIONed: each can use its own index (an OR of them cannot).
        """
        t = self.dm.tables[table]
        if table in subject.materialized and not excluded:
            return self._from_materialized(table, subject)
        a = f"t{len(excluded)}"
        sel = ", ".join(f"{a}.{q(c)}" for c in t.pk_columns)
        base = f"SELECT {sel} FROM {q(table)} {a} WHERE "
        flt = self._filter(table, a)
        paths = self._start_paths(table, a, subject, p)
        inner = excluded | {table}
        for side, _, r in t.relations:
            if r.table == table or r.table in excluded or r.table not in scope_tables:
                continue
            if r.effective_kind == "reference":
                continue
            paths.append(self._relation_path(table, a, side, r, subject, p, inner, scope_tables))
        if not paths:
            return f"{base}false"
        return " UNION ".join(f"{base}({c}) {flt}" for c in paths)

    def _start_paths(self, table: str, a: str, subject: Subject, p: Params) -> list[str]:
        """Conditions (alias `a`) on `table`'s own rows that the scope names directly: given
        rows, the org's rows, the subject's row, rows matched by identity."""
        dm, scope = self.dm, subject.scope
        t = dm.tables[table]
        paths: list[str] = []
        if scope.rows is not None:
            if table == scope.rows.table:
                paths.append(
                    key_match(dm, self.live, table, a, p.ref("rows", list(scope.rows.keys)))
                )
        elif scope.organisation and t.org_column is not None:
            paths.append(self._org_cond(table, a, t.org_column, p, scope.org_id))
        elif not scope.organisation:
            if table == dm.subject.table:
                if subject.subject_keys:
                    paths.append(
                        key_match(
                            dm, self.live, table, a, p.ref("subject", list(subject.subject_keys))
                        )
                    )
            elif t.identities:
                conds = [
                    self._identity_cond(
                        table, a, col, kind, p.ref(f"id:{kind}", self.normalise(kind, v))
                    )
                    for kind, v in sorted((scope.identities or {}).items())
                    if (col := self.usable(t.identities, kind))
                ]
                if conds:
                    org = self._org_cond(table, a, t.org_column, p, scope.org_id)
                    paths.append(f"{org} AND ({' OR '.join(conds)})")
        return paths

    def _relation_path(
        self,
        table: str,
        a: str,
        side: str,
        r: Relation,
        subject: Subject,
        p: Params,
        inner: frozenset[str],
        scope_tables: set[str],
    ) -> str:
        """The condition (alias `a`) on `table`'s rows reached through relation `r` from
        the scope's rows of its other end (owned or shared)."""
        dm, t = self.dm, self.dm.tables[table]
        # A source already materialized is its whole set: the same rows, because a
        # shared source row only counts when its referrers here are the subject's anyway.
        src = (
            self._from_materialized(r.table, subject)
            if r.table in subject.materialized
            else self._keys(r.table, subject, p, inner, scope_tables)
        )
        if side == "parents":
            cond = f"{tuple_of(a, r.columns)} IN ({src})"
        else:
            srct = dm.tables[r.table]
            link = ", ".join(f"h.{q(c)}" for c in r.columns)
            cond = (
                f"{tuple_of(a, t.pk_columns)} IN (SELECT {link} FROM {q(r.table)} h "
                f"WHERE {tuple_of('h', srct.pk_columns)} IN ({src}))"
            )
        if r.effective_kind == "shared":
            cond += self._unshared(table, a, r, subject, p, inner, scope_tables)
        return cond

    def _unshared(
        self,
        table: str,
        a: str,
        via: Relation,
        subject: Subject,
        p: Params,
        excluded: frozenset[str],
        scope_tables: set[str],
    ) -> str:
        """Conditions that keep a shared row out while anyone else still links to it."""
        dm = self.dm
        t = dm.tables[table]
        out = []
        for side, _, r in t.relations:
            if side != "parents" or r is via or r.effective_kind != "shared" or r.table == table:
                continue
            link = tuple_of(a, r.columns)
            first = f"{a}.{q(r.columns[0])}"
            ok = [f"{first} IS NULL"]
            if r.table in scope_tables and r.table not in excluded:
                ok.append(f"{link} IN ({self._keys(r.table, subject, p, excluded, scope_tables)})")
            out.append(f" AND ({' OR '.join(ok)})")
        for holder, columns in self._referrers(table):
            ht = dm.tables.get(holder)
            hcols = ", ".join(f"h.{q(c)}" for c in columns)
            match = f"({hcols}) = ({', '.join(f'{a}.{q(c)}' for c in t.pk_columns)})"
            if ht is not None and holder in scope_tables and holder not in excluded:
                theirs = self._keys(holder, subject, p, excluded, scope_tables)
                match += f" AND {tuple_of('h', ht.pk_columns)} NOT IN ({theirs})"
            out.append(f" AND NOT EXISTS (SELECT 1 FROM {q(holder)} h WHERE {match})")
        return "".join(out)
