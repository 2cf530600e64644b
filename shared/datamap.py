"""The data map: the platform's tables, how they hang off a subject, and what to do with them.

Shared by the eraser and the exporter, so what is exported is exactly what would be erased.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)


class DataMapError(ValueError):
    pass


Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class Parent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Identifier
    column: Identifier = Field(description="Column here referencing the parent's primary key")


class TableMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primary_key: Identifier
    action: Literal["delete", "keep"] = "delete"
    parents: list[Parent] = []
    object_key_column: Identifier | None = None


class SubjectMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Identifier
    org_column: Identifier
    identities: dict[str, Identifier] = Field(
        description="identity kind -> column, e.g. email: email"
    )


class DataMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    subject: SubjectMap
    tables: dict[Identifier, TableMap]

    @model_validator(mode="after")
    def _check_references(self) -> DataMap:
        if self.subject.table not in self.tables:
            raise ValueError(f"subject.table: unknown table {self.subject.table!r}")
        for name, t in self.tables.items():
            for p in t.parents:
                if p.table not in self.tables:
                    raise ValueError(f"tables.{name}.parents: unknown table {p.table!r}")
        self.order()  # raises on a cycle
        return self

    def order(self) -> list[str]:
        """Tables parents-first (subject table first); children are erased in reverse."""
        ordered: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ValueError(f"relation cycle: {' -> '.join((*path, name))}")
            state[name] = "visiting"
            for p in self.tables[name].parents:
                visit(p.table, (*path, name))
            state[name] = "done"
            ordered.append(name)

        for name in self.tables:
            visit(name, ())
        return ordered

    def reachable(self) -> list[str]:
        """Tables reached from the subject, parents first."""
        reached = {self.subject.table}
        out = []
        for name in self.order():
            t = self.tables[name]
            if name in reached or any(p.table in reached for p in t.parents):
                reached.add(name)
                out.append(name)
        return out


def load_datamap(path: Path) -> DataMap:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataMapError(f"{path}: cannot read data map: {exc}") from exc
    try:
        return DataMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise DataMapError(f"{path}: invalid data map: {problems}") from exc
