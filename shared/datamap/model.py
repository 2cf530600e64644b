"""The data map's model: tables, relations, masks and the subject, as pydantic models, and
`load_datamap`, which reads the YAML and refuses a mistake naming the file, table and field
(shape here, references between tables in `checks`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.datamap.checks import check_references
from shared.datamap.connectors import Connector, check_connectors
from shared.datamap.graph import MapGraph


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


HideValue = StrictBool | StrictInt | StrictFloat | StrictStr | None


class Hide(BaseModel):
    """The subject's own row hidden at once, before its erasure is planned: columns set to
    literal values (`hide: {set: {disabled: true}}`, docs/datamap.md), restorable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    values: dict[Identifier, HideValue] = Field(
        alias="set", min_length=1, description="column -> the literal value that hides the row"
    )

    @field_validator("values", mode="before")
    @classmethod
    def _literals(cls, v: object) -> object:
        for col, value in v.items() if isinstance(v, dict) else ():
            if value is not None and not isinstance(value, bool | int | float | str):
                raise ValueError(
                    f"{col}: a hide sets a literal value (true or false, a number, a string "
                    f"or null), not {value!r}"
                )
        return v

    @property
    def mask(self) -> dict[str, str]:
        """The same change as a mask (`fixed:<value>`, or `null`): one code path sets it."""
        return {c: "null" if v is None else f"fixed:{_literal(v)}" for c, v in self.values.items()}


def _literal(v: bool | int | float | str) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


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
    hide: Hide | None = Field(None, description="subject table only: hide the row at once")
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


class DataMap(MapGraph, BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1, 2] = 2
    subject: SubjectMap
    platform_org: str | None = Field(
        None, description="single-tenant platforms: the one Lethe organisation they map to"
    )
    retention_categories: dict[Identifier, RetentionCategory] = {}
    tables: dict[Identifier, TableMap]
    connectors: dict[Identifier, Connector] = Field(
        default_factory=dict, description="systems outside the platform database"
    )
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
        check_references(self)
        check_connectors(self)
        return self


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
