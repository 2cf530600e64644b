"""The data map: the platform's tables, how they hang off a subject, and what to do with them.

Shared by the eraser and the exporter, so what is exported is exactly what would be erased.
A mistake is refused with an error naming the file, the table and the field: first when the
YAML is loaded (shape, references, cycles), then at start-up against the live database
(`check_against_database`: tables and columns exist, relations resolve, masks fit the types).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import yaml
from pydantic import (
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
MaskStrategy = Literal["null", "redact", "hash", "hmac", "random_string"]
# Strategies that write text: the column must hold text.
TEXT_STRATEGIES = frozenset({"redact", "hash", "hmac", "random_string"})


class Parent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Identifier
    column: Identifier = Field(description="Column here referencing the parent's primary key")


class TableMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary_key: Identifier
    action: Literal["delete", "mask", "keep"] = "delete"
    mask: dict[Identifier, MaskStrategy] = Field(
        default_factory=dict, description="column -> strategy, for action: mask"
    )
    identities: dict[Identifier, Identifier] = Field(
        default_factory=dict,
        description="identity kind -> column holding it here (rows matched directly)",
    )
    org_column: Identifier | None = Field(
        None, description="Column holding the org id (needed with `identities`)"
    )
    parents: list[Parent] = []
    object_key_column: Identifier | None = None
    retention: Identifier | None = Field(None, description="retention category of the rows")
    retention_column: Identifier | None = Field(
        None, description="timestamp column the retention age is measured on"
    )

    @model_validator(mode="after")
    def _check_action(self) -> TableMap:
        if self.action == "mask" and not self.mask:
            raise ValueError("action mask needs `mask: {column: strategy}`")
        if self.action != "mask" and self.mask:
            raise ValueError(f"`mask` is only allowed with action mask (action is {self.action})")
        if self.primary_key in self.mask:
            raise ValueError(f"mask: the primary key {self.primary_key!r} cannot be masked")
        if self.identities and self.org_column is None:
            raise ValueError("identities: a table matched by identity needs `org_column`")
        if self.retention_column is not None and self.retention is None:
            raise ValueError("retention_column: needs a `retention` category")
        return self


class SubjectMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Identifier
    org_column: Identifier
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
    version: Literal[1] = 1
    subject: SubjectMap
    retention_categories: dict[Identifier, RetentionCategory] = {}
    tables: dict[Identifier, TableMap]
    _source: str = PrivateAttr(default="<data map>")

    @property
    def source(self) -> str:
        return self._source

    @model_validator(mode="after")
    def _check_references(self) -> DataMap:
        if self.subject.table not in self.tables:
            raise ValueError(f"subject.table: unknown table {self.subject.table!r}")
        for name, t in self.tables.items():
            for p in t.parents:
                if p.table not in self.tables:
                    raise ValueError(f"tables.{name}.parents: unknown table {p.table!r}")
            if t.retention is not None and t.retention not in self.retention_categories:
                raise ValueError(
                    f"tables.{name}.retention: unknown category {t.retention!r} "
                    f"(declare it under retention_categories)"
                )
        self.order()  # raises on a cycle
        for name, t in self.tables.items():
            if t.retention_column and t.org_column is None and not self.retention_org(name):
                raise ValueError(
                    f"tables.{name}.retention_column: the table needs `org_column` "
                    "(or a parent with one) so retention can apply per organisation"
                )
        return self

    def retention_org(self, table: str) -> tuple[str, str, str] | None:
        """(parent table, column here, parent's org column) when the org is one level up."""
        for p in self.tables[table].parents:
            parent = self.tables[p.table]
            if parent.org_column is not None:
                return p.table, p.column, parent.org_column
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
        """Tables hanging off `table` through relations, children before their parents."""
        found = {table}
        for name in self.order():
            if any(p.table in found for p in self.tables[name].parents):
                found.add(name)
        return [n for n in reversed(self.order()) if n in found and n != table]

    def order(self) -> list[str]:
        """Tables parents-first (subject table first); children are erased in reverse."""
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
            for p in self.tables[name].parents:
                visit(p.table, (*path, name))
            state[name] = "done"
            ordered.append(name)

        for name in self.tables:
            visit(name, ())
        return ordered

    def reachable(self) -> list[str]:
        """Tables reached from the subject (by relation or identity), parents first."""
        reached = {self.subject.table}
        out = []
        for name in self.order():
            t = self.tables[name]
            if name in reached or t.identities or any(p.table in reached for p in t.parents):
                reached.add(name)
                out.append(name)
        return out

    def waves(self) -> list[list[str]]:
        """Reachable tables grouped so that every table comes after all its children.

        Wave 0 holds the leaves; a table is in wave 1 + the highest wave of its children.
        Erasing wave by wave never deletes a parent while a child still points at it;
        restoring in reverse order puts parents back first.
        """
        tables = self.reachable()
        height: dict[str, int] = {}
        for name in reversed(tables):  # children before parents
            children = [c for c in tables if any(p.table == name for p in self.tables[c].parents)]
            height[name] = 1 + max((height[c] for c in children), default=-1)
        top = max(height.values(), default=-1)
        return [[t for t in tables if height[t] == w] for w in range(top + 1)]


def load_datamap(path: Path) -> DataMap:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataMapError(f"{path}: cannot read data map: {exc}") from exc
    try:
        dm = DataMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".removeprefix(": ")
            for e in exc.errors()
        )
        raise DataMapError(f"{path}: invalid data map: {problems}") from exc
    dm._source = str(path)
    return dm


# ------------------------------------------------------------------ the live database

_TEXT_TYPES = ("text", "character varying", "character", "citext")


async def check_against_database(dm: DataMap, conn: asyncpg.Connection) -> dict[str, str]:
    """Refuse a map that does not fit the live schema; returns each table's primary key type.

    Every table and column named must exist (in the connection's search path), a relation's
    column must have its parent key's type, masked text strategies need text columns.
    """
    rows = await conn.fetch(
        "SELECT c.relname AS table, a.attname AS column, "
        "format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p') "
        "AND pg_table_is_visible(c.oid) AND a.attnum > 0 AND NOT a.attisdropped",
        list(dm.tables),
    )
    columns: dict[str, dict[str, tuple[str, bool]]] = {}
    for r in rows:
        columns.setdefault(r["table"], {})[r["column"]] = (r["type"], r["not_null"])
    problems: list[str] = []

    def need(table: str, field: str, column: str) -> str | None:
        typ = columns.get(table, {}).get(column)
        if typ is None:
            problems.append(f"tables.{table}.{field}: unknown column {column!r} in table {table!r}")
            return None
        return typ[0]

    for name, t in dm.tables.items():
        if name not in columns:
            problems.append(f"tables.{name}: unknown table {name!r} in the platform database")
            continue
        need(name, "primary_key", t.primary_key)
        if t.object_key_column:
            need(name, "object_key_column", t.object_key_column)
        if t.org_column:
            need(name, "org_column", t.org_column)
        if t.retention_column:
            typ = need(name, "retention_column", t.retention_column)
            if typ is not None and not typ.startswith(("timestamp", "date")):
                problems.append(
                    f"tables.{name}.retention_column: column {t.retention_column!r} is {typ}, "
                    "not a timestamp"
                )
        for kind, col in t.identities.items():
            need(name, f"identities.{kind}", col)
        for col, strategy in t.mask.items():
            typ = need(name, f"mask.{col}", col)
            if typ is None:
                continue
            if strategy in TEXT_STRATEGIES and not typ.startswith(_TEXT_TYPES):
                problems.append(
                    f"tables.{name}.mask.{col}: strategy {strategy} writes text, "
                    f"but column {col!r} is {typ}"
                )
            if strategy == "null" and columns[name][col][1]:
                problems.append(
                    f"tables.{name}.mask.{col}: strategy null, but column {col!r} is NOT NULL"
                )
        for i, p in enumerate(t.parents):
            typ = need(name, f"parents[{i}].column", p.column)
            parent_pk = columns.get(p.table, {}).get(dm.tables[p.table].primary_key)
            if typ and parent_pk and typ != parent_pk[0]:
                problems.append(
                    f"tables.{name}.parents[{i}]: {name}.{p.column} ({typ}) cannot reference "
                    f"{p.table}.{dm.tables[p.table].primary_key} ({parent_pk[0]})"
                )
    s = dm.subject
    if s.table in columns:
        if s.org_column not in columns[s.table]:
            problems.append(f"subject.org_column: unknown column {s.org_column!r} in {s.table!r}")
        for kind, col in s.identities.items():
            if col not in columns[s.table]:
                problems.append(
                    f"subject.identities.{kind}: unknown column {col!r} in table {s.table!r}"
                )
    if problems:
        raise DataMapError(f"{dm.source}: does not match the database: " + "; ".join(problems))
    return {name: columns[name][t.primary_key][0] for name, t in dm.tables.items()}
