"""The one resolver: a subject (or an organisation) -> its rows, table by table, as SQL.

Eraser, exporter, verification and retention all ask this module, so what is exported is
exactly what would be erased. Rules (docs/datamap.md):

- **Subject scope**: the identities are first resolved to the subject row in the subject
  table; identities that point at more than one row are `Ambiguous` (nothing is done), and
  from then on the subject is that one key. Tables with `identities` add the rows they match.
- **Organisation scope**: every table with an org column gives all its rows of the org.
- **Relations** add rows: `owned` always, `shared` only when no row outside the subject's
  still references the row and its other shared links point at the subject or nowhere,
  `reference` never (the row is someone else's; its link is detached: `detach_sql`).

Everything is composed SQL (`keys_sql`, `rows_sql`), run by Postgres, streamed by the caller
through a server-side cursor (`stream_keys`): no key list is ever collected here. Identifiers
come from the validated map and are quoted; values are parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asyncpg

from shared.datamap import HASHES, DataMap, LiveSchema, Relation, TableMap


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ScopeError(ValueError):
    """The request cannot be resolved (reason for the requester, no personal data)."""


class Ambiguous(ScopeError):
    """The identities resolve to more than one subject: refuse, never over-erase."""


@dataclass(frozen=True)
class Rows:
    """Given rows of one table (text keys): a retention batch, as a scope of its own."""

    table: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    org_id: str
    identities: dict[str, str] | None  # None: the whole organisation (unless `rows`)
    rows: Rows | None = None  # these rows and what hangs off them (retention)

    @property
    def organisation(self) -> bool:
        return self.identities is None and self.rows is None


@dataclass(frozen=True)
class Subject:
    """A resolved scope: the subject's key (if any row of the subject table matched)."""

    scope: Scope
    subject_keys: tuple[str, ...] = ()
    ignored_kinds: tuple[str, ...] = ()
    # Table -> a temporary table already holding its keys (`materialize`): later tables read
    # it instead of composing its query again.
    materialized: Mapping[str, str] = field(default_factory=dict)


def key_text(dm: DataMap, table: str, alias: str) -> str:
    """A row's key as text: `pk::text`, or a JSON array for a composite key."""
    pks = dm.tables[table].pk_columns
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])}::text"
    return f"json_build_array({', '.join(f'{alias}.{q(c)}' for c in pks)})::text"


def key_match(dm: DataMap, live: LiveSchema, table: str, alias: str, param: str) -> str:
    """`alias`'s key is one of the text keys in `param` (a text[] placeholder)."""
    pks = dm.tables[table].pk_columns
    types = live.key_types(dm, table)
    if len(pks) == 1:
        return f"{alias}.{q(pks[0])} = ANY({param}::text[]::{types[0]}[])"
    parts = ", ".join(f"(k.j->>{i})::{typ}" for i, typ in enumerate(types))
    cols = ", ".join(f"{alias}.{q(c)}" for c in pks)
    return f"({cols}) IN (SELECT {parts} FROM (SELECT unnest({param}::text[])::json AS j) k)"


def _tuple(alias: str, columns: list[str]) -> str:
    inner = ", ".join(f"{alias}.{q(c)}" for c in columns)
    return f"({inner})" if len(columns) > 1 else inner


@dataclass
class _Params:
    values: list[Any] = field(default_factory=list)
    slots: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str, value: Any) -> str:
        if name not in self.slots:
            self.values.append(value)
            self.slots[name] = f"${len(self.values)}"
        return self.slots[name]


class Resolver:
    def __init__(self, dm: DataMap, live: LiveSchema) -> None:
        self.dm, self.live = dm, live

    # ------------------------------------------------------------------ the subject row

    def _org_cond(
        self, table: str, alias: str, org_column: str | None, p: _Params, org: str
    ) -> str:
        if org_column is None:
            return "true"
        typ = self.live.type_of(table, org_column)
        return f"{alias}.{q(org_column)} = {p.ref('org', org)}::text::{typ}"

    def _identity_cond(self, table: str, alias: str, column: str, kind: str, slot: str) -> str:
        col = f"{alias}.{q(column)}"
        base, _, algo = kind.rpartition("_")
        if base and algo in HASHES:
            norm = f"lower(btrim({col}::text))"
            if algo == "md5":
                return f"md5({norm}) = {slot}"
            if algo == "sha256":
                return f"encode(sha256(convert_to({norm}, 'UTF8')), 'hex') = {slot}"
            return f"encode(digest({norm}, 'sha1'), 'hex') = {slot}"
        if kind == "email":
            return f"lower({col}::text) = {slot}"
        return f"{col}::text = {slot}"

    def usable(self, columns: dict[str, str], kind: str) -> str | None:
        """The column an identity kind is matched on here (hashed kinds use their base)."""
        if kind in columns:
            return columns[kind]
        base, _, algo = kind.rpartition("_")
        if base in columns and algo in HASHES:
            if algo == "sha1" and not self.live.has_pgcrypto:
                return None
            return columns[base]
        return None

    @staticmethod
    def normalise(kind: str, value: str) -> str:
        base, _, algo = kind.rpartition("_")
        if base and algo in HASHES:
            return value.strip().lower()
        return value.strip().lower() if kind == "email" else value

    async def check_org(self, conn: asyncpg.Connection, scope: Scope) -> None:
        dm = self.dm
        if dm.single_tenant:
            if scope.org_id != dm.platform_org:
                raise ScopeError(
                    f"this platform's data belongs to organisation {dm.platform_org!r} only"
                )
            if scope.organisation:
                raise ScopeError(
                    "the platform is single-tenant: an organisation erasure or export would "
                    "take the whole platform; refused"
                )
            return
        for name in self.dm.tables:
            t = self.dm.tables[name]
            if t.org_column is None or name not in self.live.columns:
                continue
            typ = self.live.type_of(name, t.org_column)
            try:
                await conn.fetchval(f"SELECT $1::text::{typ}", scope.org_id)
            except (asyncpg.DataError, asyncpg.PostgresError):
                raise ScopeError(
                    f"the organisation id is not a valid {typ} for {name}.{t.org_column}"
                ) from None

    async def resolve(self, conn: asyncpg.Connection, scope: Scope) -> Subject:
        """Check the scope and find the subject row; raises ScopeError / Ambiguous."""
        await self.check_org(conn, scope)
        if scope.identities is None:
            return Subject(scope)
        dm, s = self.dm, self.dm.subject
        usable = {k: v for k, v in scope.identities.items() if self.usable(s.identities, k)}
        ignored = tuple(sorted(set(scope.identities) - set(usable)))
        if not usable:
            raise ScopeError(
                "none of the identities given can be matched here "
                f"(the data map knows {', '.join(sorted(s.identities))})"
            )
        org_col = dm.subject_org_column
        matched: dict[str, set[str]] = {}
        for kind, value in sorted(usable.items()):
            p = _Params()
            col = self.usable(s.identities, kind)
            assert col is not None
            slot = p.ref("v", self.normalise(kind, value))
            cond = self._identity_cond(s.table, "s", col, kind, slot)
            org = self._org_cond(s.table, "s", org_col, p, scope.org_id)
            rows = await conn.fetch(
                f"SELECT {key_text(dm, s.table, 's')} FROM {q(s.table)} s "
                f"WHERE {org} AND {cond} {self._filter(s.table, 's')} LIMIT 3",
                *p.values,
            )
            matched[kind] = {r[0] for r in rows}
        keys = set().union(*matched.values())
        if len(keys) > 1:
            raise Ambiguous(_ambiguity(matched))
        return Subject(scope, tuple(sorted(keys)), ignored)

    # ------------------------------------------------------------------ composed SQL

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
        p = _Params()
        return self._keys(table, subject, p, frozenset(), set(self.tables(subject.scope))), p.values

    def key_text_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        """The scope's keys of `table` as text, ordered (for chunking and streaming)."""
        sql, args = self.keys_sql(table, subject)
        order = ", ".join(f"s.{q(c)}" for c in self.dm.tables[table].pk_columns)
        return f"SELECT {key_text(self.dm, table, 's')} FROM ({sql}) s ORDER BY {order}", args

    def rows_sql(self, table: str, subject: Subject) -> tuple[str, list[Any]]:
        t = self.dm.tables[table]
        sql, args = self.keys_sql(table, subject)
        pk = _tuple("x", t.pk_columns)
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
        p = _Params()
        scope_tables = set(self.tables(subject.scope))
        target = self._keys(relation.table, subject, p, frozenset(), scope_tables)
        cond = f"{_tuple('x', relation.columns)} IN ({target})"
        if relation.table != table and table in scope_tables:
            own = self._keys(table, subject, p, frozenset(), scope_tables)
            cond += f" AND {_tuple('x', t.pk_columns)} NOT IN ({own})"
        order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        return (
            f"SELECT {key_text(dm, table, 'x')} FROM {q(table)} x WHERE {cond} ORDER BY {order}",
            p.values,
        )

    # ------------------------------------------------------------------ retention

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
        self, table: str, org_id: str | None, cutoff: datetime, p: _Params, *, held: bool
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
        p = _Params()
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
                where += f" AND {_tuple('x', t.pk_columns)} > ({bound})"
        order = ", ".join(f"x.{q(c)}" for c in t.pk_columns)
        sql = f"SELECT {key_text(dm, table, 'x')} FROM {q(table)} x WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return sql, p.values

    def aged_count_sql(
        self, table: str, org_id: str | None, cutoff: datetime, *, held: bool = False
    ) -> tuple[str, list[Any]]:
        """How many rows `aged_keys_sql` gives (held: how many are kept, still referenced)."""
        p = _Params()
        where = self._aged(table, org_id, cutoff, p, held=held)
        return f"SELECT count(*) FROM {q(table)} x WHERE {where}", p.values

    def batch(self, org_id: str | None, table: str, keys: list[str]) -> Subject:
        """A retention batch as a scope: these rows of `table` and the rows related to them
        (owned: with them; shared: when nobody else's; reference: kept, link detached)."""
        return Subject(Scope(org_id or "", None, Rows(table, tuple(keys))))

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

    def _filter(self, table: str, alias: str) -> str:
        t = self.dm.tables[table]
        out = f"AND ({t.where})" if t.where else ""
        tombs = self._tombstones(table)
        if tombs:
            pk = t.pk_columns[0]
            typ = self.live.type_of(table, pk)
            listed = ", ".join(f"'{str(v).replace(chr(39), chr(39) * 2)}'::{typ}" for v in tombs)
            out += f" AND {alias}.{q(pk)} NOT IN ({listed})"
        return out

    def _tombstones(self, table: str) -> list[str | int]:
        return [
            r.tombstone
            for t in self.dm.tables.values()
            for r in t.parents
            if r.table == table and r.tombstone is not None
        ]

    def _keys(
        self,
        table: str,
        subject: Subject,
        p: _Params,
        excluded: frozenset[str],
        scope_tables: set[str],
    ) -> str:
        """SELECT <pk columns> FROM table: the scope's rows, without paths through `excluded`.

        One SELECT per path, UNIONed: each can use its own index (an OR of them cannot).
        """
        dm, scope = self.dm, subject.scope
        t = dm.tables[table]
        if table in subject.materialized and not excluded:
            return self._from_materialized(table, subject)
        a = f"t{len(excluded)}"
        sel = ", ".join(f"{a}.{q(c)}" for c in t.pk_columns)
        base = f"SELECT {sel} FROM {q(table)} {a} WHERE "
        flt = self._filter(table, a)
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
        inner = excluded | {table}
        for side, _, r in t.relations:
            if r.table == table or r.table in excluded or r.table not in scope_tables:
                continue
            kind = r.effective_kind
            if kind == "reference":
                continue
            # A source already materialized is its whole set: the same rows, because a
            # shared source row only counts when its referrers here are the subject's anyway.
            src = (
                self._from_materialized(r.table, subject)
                if r.table in subject.materialized
                else self._keys(r.table, subject, p, inner, scope_tables)
            )
            if side == "parents":
                cond = f"{_tuple(a, r.columns)} IN ({src})"
            else:
                srct = dm.tables[r.table]
                link = ", ".join(f"h.{q(c)}" for c in r.columns)
                cond = (
                    f"{_tuple(a, t.pk_columns)} IN (SELECT {link} FROM {q(r.table)} h "
                    f"WHERE {_tuple('h', srct.pk_columns)} IN ({src}))"
                )
            if kind == "shared":
                cond += self._unshared(table, a, r, subject, p, inner, scope_tables)
            paths.append(cond)
        if not paths:
            return f"{base}false"
        return " UNION ".join(f"{base}({c}) {flt}" for c in paths)

    def _unshared(
        self,
        table: str,
        a: str,
        via: Relation,
        subject: Subject,
        p: _Params,
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
            link = _tuple(a, r.columns)
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
                match += f" AND {_tuple('h', ht.pk_columns)} NOT IN ({theirs})"
            out.append(f" AND NOT EXISTS (SELECT 1 FROM {q(holder)} h WHERE {match})")
        return "".join(out)

    def _referrers(self, table: str) -> list[tuple[str, list[str]]]:
        """(holder table, its columns) of every link into `table`: the map's and the DB's."""
        found: dict[tuple[str, tuple[str, ...]], None] = {}
        for name, t in self.dm.tables.items():
            for r in t.parents:
                if r.table == table and name != table:
                    found[(name, tuple(r.columns))] = None
        for r in self.dm.tables[table].referenced_by:
            found[(r.table, tuple(r.columns))] = None
        for fk in self.live.referrers(table):
            if fk.holder != table:
                found[(fk.holder, fk.columns)] = None
        return [(h, list(c)) for h, c in found]


def _ambiguity(matched: dict[str, set[str]]) -> str:
    many = [k for k, v in matched.items() if len(v) > 1]
    if many:
        return f"{' and '.join(many)} each match more than one person: nothing was done"
    found = [k for k, v in matched.items() if v]
    return f"{' and '.join(found)} identify different people: nothing was done"


async def stream_keys(
    conn: asyncpg.Connection, sql: str, args: list[Any], page: int
) -> AsyncIterator[list[str]]:
    """Pages of text keys from a server-side cursor (the caller holds a transaction)."""
    cur = await conn.cursor(sql, *args)
    while True:
        rows = await cur.fetch(page)
        if not rows:
            return
        yield [r[0] for r in rows]


def table_map(dm: DataMap, table: str) -> TableMap:
    return dm.tables[table]
