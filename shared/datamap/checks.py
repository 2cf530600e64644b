"""Checks of a data map as it loads, beyond each field's own: references between tables,
relation shapes and kinds, cycles, retention. Each raises ValueError naming the field
(`load_datamap` prefixes the file)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.datamap.model import DataMap, Relation, TableMap


def check_references(dm: DataMap) -> None:
    """The map as a whole: subject, tables, relations, order, waves, retention scoping."""
    s = dm.subject
    if s.table not in dm.tables:
        raise ValueError(f"subject.table: unknown table {s.table!r}")
    if len(dm.tables[s.table].pk_columns) != 1:
        raise ValueError(f"subject.table: {s.table!r} needs a single-column primary key")
    if dm.single_tenant and not dm.platform_org:
        raise ValueError(
            "platform_org: a map without subject.org_column is single-tenant and must name "
            "the one Lethe organisation it belongs to"
        )
    for name, t in dm.tables.items():
        check_table(dm, name, t)
    dm.order()  # raises on a cycle of relations
    dm.waves(list(dm.tables))  # raises on a cycle of links (what to delete first)
    for name, t in dm.tables.items():
        if (
            t.retention_column
            and not dm.single_tenant
            and t.org_column is None
            and not dm.retention_org(name)
        ):
            raise ValueError(
                f"tables.{name}.retention_column: the table needs `org_column` "
                "(or a parent with one) so retention can apply per organisation"
            )


def check_table(dm: DataMap, name: str, t: TableMap) -> None:
    """One table: its relations, identities and retention category."""
    rels = t.relations
    for side, i, r in rels:
        _check_relation(dm, name, t, side, i, r, several=len(rels) > 1)
    if t.identities and not dm.single_tenant and t.org_column is None:
        raise ValueError(
            f"tables.{name}.identities: a table matched by identity needs `org_column`"
        )
    if t.hide is not None:
        _check_hide(dm, name, t)
    if t.retention is not None and t.retention not in dm.retention_categories:
        raise ValueError(
            f"tables.{name}.retention: unknown category {t.retention!r} "
            f"(declare it under retention_categories)"
        )


def _check_relation(
    dm: DataMap, name: str, t: TableMap, side: str, i: int, r: Relation, *, several: bool
) -> None:
    where = f"tables.{name}.{side}[{i}]"
    if r.table not in dm.tables:
        raise ValueError(f"{where}: unknown table {r.table!r}")
    target = dm.tables[r.table] if side == "parents" else t
    if len(r.columns) != len(target.pk_columns):
        raise ValueError(
            f"{where}.column: {len(r.columns)} column(s) cannot reference the "
            f"{len(target.pk_columns)}-column primary key of "
            f"{r.table if side == 'parents' else name!r}"
        )
    if several and r.kind is None:
        raise ValueError(
            f"{where}.kind: table {name!r} is reached by {len(t.relations)} relations; "
            "declare the kind of each (owned, shared or reference)"
        )
    if r.table == name and r.effective_kind != "reference":
        raise ValueError(f"{where}.kind: a self-relation must be `reference`")
    if side == "referenced_by" and r.detach == "reassign":
        raise ValueError(
            f"{where}.detach: the link lives in {r.table!r}; reassign it there "
            "(a `parents` relation of that table or its mask)"
        )


def _check_hide(dm: DataMap, name: str, t: TableMap) -> None:
    """A hide acts on the subject's own row, and must not change how the row is found again
    (a redelivered plan, verification, a restore resolve it once more)."""
    assert t.hide is not None
    where = f"tables.{name}.hide"
    s = dm.subject
    if name != s.table:
        raise ValueError(
            f"{where}: only the subject table ({s.table!r}) can hide its row: the hide acts "
            "on the subject's own row, before the rest of the erasure is planned"
        )
    if t.action == "keep":
        raise ValueError(f"{where}: the table's action is keep: a hidden row would never go")
    found_by = {*s.identities.values(), *t.identities.values(), dm.subject_org_column}
    for col in t.hide.values:
        if col in t.pk_columns:
            raise ValueError(f"{where}.set.{col}: the primary key cannot be set")
        if col in found_by:
            raise ValueError(
                f"{where}.set.{col}: the subject is found by this column; hide with another "
                "(e.g. a `disabled` flag or a `deactivated_at` timestamp)"
            )
        if t.where and re.search(rf"\b{re.escape(col)}\b", t.where):
            raise ValueError(
                f"{where}.set.{col}: the table's row filter reads this column, so a hidden "
                "row would no longer be found"
            )
