"""The data map: the platform's tables, how they hang off a subject, and what to do with them.

One model for the eraser, the exporter, verification and retention (format: docs/datamap.md).
A mistake is refused with an error naming the file, the table and the field: first when the
YAML is loaded (shape, references, kinds, cycles), then at start-up against the live database
(`check_against_database`: tables and columns exist, relations resolve, masks fit the columns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)


class DataMapError(ValueError):
    pass


Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Columns = Identifier | list[Identifier]
Kind = Literal["owned", "shared", "reference"]
# Strategies that write text: the column must hold text.
TEXT_STRATEGIES = frozenset({"redact", "hash", "hmac", "random_string"})
_PARAM_STRATEGIES = {"fixed", "reassign", "truncate", "round"}
_TRUNCATE_UNITS = {"day", "month", "year"}
# Longest value each text strategy writes (checked against varchar(n)).
TEXT_LENGTH = {"redact": 10, "hash": 71, "hmac": 69, "random_string": 28}
# Hashed identities, as OpenDSR controllers send them: <kind>_<algorithm> of the normalised value.
HASHES = ("sha256", "sha1", "md5")


def cols(c: str | list[str]) -> list[str]:
    return [c] if isinstance(c, str) else list(c)


def parse_mask(spec: str) -> tuple[str, str | None]:
    """'hash' -> ('hash', None); 'round:100' -> ('round', '100'). Raises ValueError."""
    name, sep, arg = spec.partition(":")
    if not sep:
        if name in {"null", *TEXT_STRATEGIES}:
            return name, None
        raise ValueError(
            f"unknown mask {spec!r} (null, redact, hash, hmac, random_string, fixed:<value>, "
            "reassign:<key>, truncate:<day|month|year>, round:<n>)"
        )
    if name not in _PARAM_STRATEGIES:
        raise ValueError(f"unknown mask {name!r} in {spec!r}")
    if name == "truncate" and arg not in _TRUNCATE_UNITS:
        raise ValueError(f"truncate takes day, month or year, not {arg!r}")
    if name == "round" and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", arg):
        raise ValueError(f"round takes a positive number, not {arg!r}")
    return name, arg


def _check_mask(spec: str) -> str:
    parse_mask(spec)
    return spec


MaskSpec = Annotated[str, AfterValidator(_check_mask)]


class Relation(BaseModel):
    """A link between this table and `table`.

    `column` is in this table for `parents`, in the other one for `referenced_by`.
    """

    model_config = ConfigDict(extra="forbid")
    table: Identifier
    column: Columns = Field(description="the linking column(s); a list for a composite key")
    kind: Kind | None = Field(None, description="owned | shared | reference (docs/datamap.md)")
    detach: Literal["null", "reassign"] = "null"
    tombstone: str | int | None = Field(None, description="key of the row links are moved to")

    @model_validator(mode="after")
    def _check(self) -> Relation:
        if self.detach == "reassign" and self.tombstone is None:
            raise ValueError("detach: reassign needs `tombstone: <key of a row of the parent>`")
        return self

    @property
    def columns(self) -> list[str]:
        return cols(self.column)

    @property
    def effective_kind(self) -> Kind:
        return self.kind or "owned"


# Kept for readers of version 1 maps: a parent is a relation whose column is here.
Parent = Relation


class TableMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary_key: Columns
    action: Literal["delete", "mask", "keep"] = "delete"
    mask: dict[Identifier, MaskSpec] = Field(
        default_factory=dict, description="column -> strategy, for action: mask"
    )
    identities: dict[Identifier, Identifier] = Field(
        default_factory=dict,
        description="identity kind -> column holding it here (rows matched directly)",
    )
    org_column: Identifier | None = Field(None, description="Column holding the org id")
    parents: list[Relation] = []
    referenced_by: list[Relation] = []
    where: str | None = Field(None, description="row filter (SQL predicate), checked at start")
    object_key_column: Identifier | None = None
    retention: Identifier | None = Field(None, description="retention category of the rows")
    retention_column: Identifier | None = Field(
        None, description="timestamp column the retention age is measured on"
    )

    @field_validator("where")
    @classmethod
    def _check_where(cls, v: str | None) -> str | None:
        # A predicate, not a statement: EXPLAIN at start checks the rest.
        if v is not None and (";" in v or "--" in v or "/*" in v):
            raise ValueError("a row filter is one predicate (no ';' or comments)")
        return v

    @model_validator(mode="after")
    def _check_action(self) -> TableMap:
        if self.action == "mask" and not self.mask:
            raise ValueError("action mask needs `mask: {column: strategy}`")
        if self.action != "mask" and self.mask:
            raise ValueError(f"`mask` is only allowed with action mask (action is {self.action})")
        for pk in self.pk_columns:
            if pk in self.mask:
                raise ValueError(f"mask: the primary key {pk!r} cannot be masked")
        if self.retention_column is not None and self.retention is None:
            raise ValueError("retention_column: needs a `retention` category")
        return self

    @property
    def pk_columns(self) -> list[str]:
        return cols(self.primary_key)

    @property
    def relations(self) -> list[tuple[str, int, Relation]]:
        """(side, index, relation) for every relation, `parents` first."""
        return [("parents", i, r) for i, r in enumerate(self.parents)] + [
            ("referenced_by", i, r) for i, r in enumerate(self.referenced_by)
        ]


class SubjectMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Identifier
    org_column: Identifier | None = None
    identities: dict[str, Identifier] = Field(
        description="identity kind -> column, e.g. email: email"
    )

    @field_validator("identities")
    @classmethod
    def _check_identities(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("missing identity (name at least one column, e.g. email: email)")
        return v


class RetentionCategory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(ge=0)
    description: str = ""


class DataMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1, 2] = 2
    subject: SubjectMap
    platform_org: str | None = Field(
        None, description="single-tenant platforms: the one Lethe organisation they map to"
    )
    retention_categories: dict[Identifier, RetentionCategory] = {}
    tables: dict[Identifier, TableMap]
    _source: str = PrivateAttr(default="<data map>")

    @property
    def source(self) -> str:
        return self._source

    @property
    def single_tenant(self) -> bool:
        return self.subject_org_column is None

    @property
    def subject_org_column(self) -> str | None:
        return self.subject.org_column or self.tables[self.subject.table].org_column

    @model_validator(mode="after")
    def _check_references(self) -> DataMap:
        s = self.subject
        if s.table not in self.tables:
            raise ValueError(f"subject.table: unknown table {s.table!r}")
        if len(self.tables[s.table].pk_columns) != 1:
            raise ValueError(f"subject.table: {s.table!r} needs a single-column primary key")
        if self.single_tenant and not self.platform_org:
            raise ValueError(
                "platform_org: a map without subject.org_column is single-tenant and must name "
                "the one Lethe organisation it belongs to"
            )
        for name, t in self.tables.items():
            self._check_table(name, t)
        self.order()  # raises on a cycle of relations
        self.waves(list(self.tables))  # raises on a cycle of links (what to delete first)
        for name, t in self.tables.items():
            if (
                t.retention_column
                and not self.single_tenant
                and t.org_column is None
                and not self.retention_org(name)
            ):
                raise ValueError(
                    f"tables.{name}.retention_column: the table needs `org_column` "
                    "(or a parent with one) so retention can apply per organisation"
                )
        return self

    def _check_table(self, name: str, t: TableMap) -> None:
        rels = t.relations
        for side, i, r in rels:
            where = f"tables.{name}.{side}[{i}]"
            if r.table not in self.tables:
                raise ValueError(f"{where}: unknown table {r.table!r}")
            target = self.tables[r.table] if side == "parents" else t
            if len(r.columns) != len(target.pk_columns):
                raise ValueError(
                    f"{where}.column: {len(r.columns)} column(s) cannot reference the "
                    f"{len(target.pk_columns)}-column primary key of "
                    f"{r.table if side == 'parents' else name!r}"
                )
            if len(rels) > 1 and r.kind is None:
                raise ValueError(
                    f"{where}.kind: table {name!r} is reached by {len(rels)} relations; "
                    "declare the kind of each (owned, shared or reference)"
                )
            if r.table == name and r.effective_kind != "reference":
                raise ValueError(f"{where}.kind: a self-relation must be `reference`")
            if side == "referenced_by" and r.detach == "reassign":
                raise ValueError(
                    f"{where}.detach: the link lives in {r.table!r}; reassign it there "
                    "(a `parents` relation of that table or its mask)"
                )
        if t.identities and not self.single_tenant and t.org_column is None:
            raise ValueError(
                f"tables.{name}.identities: a table matched by identity needs `org_column`"
            )
        if t.retention is not None and t.retention not in self.retention_categories:
            raise ValueError(
                f"tables.{name}.retention: unknown category {t.retention!r} "
                f"(declare it under retention_categories)"
            )

    # ------------------------------------------------------------------ graph

    def sources(self, table: str) -> list[str]:
        """Tables whose subject rows decide this table's (its relations' other ends)."""
        return [r.table for _, _, r in self.tables[table].relations if r.table != table]

    def order(self) -> list[str]:
        """Tables with every relation's other end first (the subject table among the first)."""
        ordered: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ValueError(
                    f"tables.{name}.parents: relation cycle: {' -> '.join((*path, name))}"
                )
            state[name] = "visiting"
            for src in self.sources(name):
                visit(src, (*path, name))
            state[name] = "done"
            ordered.append(name)

        visit(self.subject.table, ())
        for name in self.tables:
            visit(name, ())
        return ordered

    def in_scope(self, organisation: bool = False) -> list[str]:
        """Tables that can hold rows of the subject (or of the org), in `order()`.

        Start: the subject table, tables matched by identity, and for an organisation every
        table with an org column; then every table an owned or shared relation reaches.
        """
        found: set[str] = set()
        for name in self.order():
            t = self.tables[name]
            start = (
                t.org_column is not None
                if organisation
                else (name == self.subject.table or bool(t.identities))
            )
            if start or any(
                r.table in found and r.effective_kind != "reference" and r.table != name
                for _, _, r in t.relations
            ):
                found.add(name)
        return [n for n in self.order() if n in found]

    def reachable(self) -> list[str]:
        """Tables that can hold a subject's rows (subject scope), in `order()`."""
        return self.in_scope(False)

    def detaches(self, scope: list[str]) -> list[tuple[str, int, Relation]]:
        """(table, parents index, relation): links into the scope's rows to detach.

        A `reference` link, or a `shared` one whose row stays, points at a row that goes; the
        row holding the link stays, so the link is set to null or moved to the tombstone.
        """
        out = []
        for name, t in self.tables.items():
            for i, r in enumerate(t.parents):
                if r.table in scope and r.effective_kind in ("reference", "shared"):
                    out.append((name, i, r))
        return out

    def holder_edges(self) -> set[tuple[str, str]]:
        """(holder, target): the holder's rows link to the target's and must go first."""
        edges = set()
        for name, t in self.tables.items():
            for side, _, r in t.relations:
                if r.table != name:
                    edges.add((name, r.table) if side == "parents" else (r.table, name))
        return edges

    def waves(
        self, tables: list[str] | None = None, extra: set[tuple[str, str]] | None = None
    ) -> list[list[str]]:
        """Tables grouped so that every table comes after all the tables that link to it.

        Wave 0 holds the tables nothing links to; a table is in wave 1 + the highest wave of
        the tables linking to it. Erasing wave by wave never deletes a row while another
        still points at it; restoring in reverse order puts targets back first. `extra`
        adds links the live database knows (foreign keys) beyond the map's relations.
        """
        tables = self.reachable() if tables is None else tables
        inside = set(tables)
        edges = {(h, g) for h, g in self.holder_edges() | (extra or set()) if h != g}
        edges = {(h, g) for h, g in edges if h in inside and g in inside}
        height: dict[str, int] = {}

        def h(name: str, path: tuple[str, ...]) -> int:
            if name in path:
                raise ValueError(
                    f"tables.{name}: links form a cycle: {' -> '.join((*path, name))} "
                    "(no order deletes them; make one relation `reference`)"
                )
            if name not in height:
                holders = [a for a, b in edges if b == name]
                height[name] = 1 + max((h(x, (*path, name)) for x in holders), default=-1)
            return height[name]

        for name in tables:
            h(name, ())
        top = max(height.values(), default=-1)
        return [[t for t in tables if height[t] == w] for w in range(top + 1)]

    def retention_org(self, table: str) -> tuple[str, str, str] | None:
        """(parent table, column here, parent's org column) when the org is one level up."""
        for p in self.tables[table].parents:
            parent = self.tables[p.table]
            if parent.org_column is not None and len(p.columns) == 1 and p.table != table:
                return p.table, p.columns[0], parent.org_column
        return None

    def retention_tables(self, category: str | None = None) -> list[str]:
        """Tables aged by a timestamp column (optionally of one category), parents first."""
        return [
            n
            for n in self.order()
            if self.tables[n].retention_column is not None
            and (category is None or self.tables[n].retention == category)
        ]

    def descendants(self, table: str) -> list[str]:
        """Tables owned through `parents` relations by `table`, children before parents."""
        found = {table}
        for name in self.order():
            if any(
                p.table in found and p.effective_kind == "owned" and p.table != name
                for p in self.tables[name].parents
            ):
                found.add(name)
        return [n for n in reversed(self.order()) if n in found and n != table]


def load_datamap(path: Path) -> DataMap:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataMapError(f"{path}: cannot read data map: {exc}") from exc
    try:
        dm = DataMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}".removeprefix(": ")
            for e in exc.errors()
        )
        raise DataMapError(f"{path}: invalid data map: {problems}") from exc
    dm._source = str(path)
    return dm


def _where(loc: tuple[int | str, ...]) -> str:
    """('tables', 'p', 'parents', 0, 'detach') -> 'tables.p.parents[0].detach'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


# ------------------------------------------------------------------ the live database

_TEXT_TYPES = ("text", "character varying", "character", "citext")
_TIME_TYPES = ("timestamp", "date")
_NUMBER_TYPES = ("integer", "bigint", "smallint", "numeric", "real", "double precision")


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
        for side, i, r in t.relations:
            await self.check_relation(conn, name, side, i, r)
        if t.where is not None:
            try:
                await conn.execute(f"EXPLAIN SELECT 1 FROM {_q(name)} WHERE {t.where}")
            except asyncpg.PostgresError as exc:
                self.add(f"tables.{name}.where: {t.where!r} is not a valid filter: {exc}")

    async def check_mask(
        self, conn: asyncpg.Connection, table: str, col: str, spec: str, typ: str
    ) -> None:
        where = f"tables.{table}.mask.{col}"
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
