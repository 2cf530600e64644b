"""The draft map before it is written out: tables, relations, what to review."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Relation:
    table: str
    column: tuple[str, ...]
    kind: str  # owned | shared | reference
    detach: str | None = None


@dataclass
class TableDraft:
    name: str
    primary_key: tuple[str, ...]
    org_column: str | None = None
    identities: dict[str, str] = field(default_factory=dict)
    parents: list[Relation] = field(default_factory=list)
    referenced_by: list[Relation] = field(default_factory=list)
    review: list[str] = field(default_factory=list)  # what to look at, one comment each
    role: str = ""  # subject | owned | shared | identities | org | organisations


@dataclass
class Draft:
    subject: str
    subject_org_column: str | None
    subject_identities: dict[str, str]
    platform_org: str | None
    subject_review: list[str]
    tables: dict[str, TableDraft]
    not_mapped: list[str]
    notes: list[str]
