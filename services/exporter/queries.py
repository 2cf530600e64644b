"""SQL that selects a subject's rows of one table, composed from the data map.

A table's rows are those matched directly by identity (tables with `identities`) or hanging
off a parent's rows, nesting the parents' key queries (`fk IN (SELECT pk ...)`) down to the
subject rows. Postgres does the joins, nothing is collected in Python, and a row reachable
along two paths appears once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.datamap import DataMap
from shared.platform import q


@dataclass(frozen=True)
class Scope:
    org_id: str
    identities: dict[str, str] | None  # None: the whole organisation


@dataclass
class _Params:
    """Placeholders handed out as a query uses them (one per distinct value)."""

    scope: Scope
    args: list[Any] = field(default_factory=list)
    _slots: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        if name not in self._slots:
            if name == "org":
                value: Any = self.scope.org_id
            else:
                raw = (self.scope.identities or {})[name]
                value = raw.strip().lower() if name == "email" else raw
            self.args.append(value)
            self._slots[name] = f"${len(self.args)}"
        return self._slots[name]


def scope(org_id: str, identities: dict[str, str] | None) -> Scope:
    return Scope(org_id, identities)


def _identity_match(columns: dict[str, str], org_column: str, p: _Params) -> str | None:
    org = f"{q(org_column)} = {p.ref('org')}"
    if p.scope.identities is None:
        return org
    conds = [
        f"lower({q(col)}) = {p.ref(kind)}" if kind == "email" else f"{q(col)}::text = {p.ref(kind)}"
        for kind, col in sorted(columns.items())
        if kind in p.scope.identities
    ]
    return f"({org} AND ({' OR '.join(conds)}))" if conds else None


def _keys(dm: DataMap, table: str, p: _Params) -> str:
    t = dm.tables[table]
    reached = set(dm.reachable())
    if table == dm.subject.table:
        conds = [_identity_match(dm.subject.identities, dm.subject.org_column, p) or "false"]
    else:
        conds = [
            f"{q(par.column)} IN ({_keys(dm, par.table, p)})"
            for par in t.parents
            if par.table in reached
        ]
        if t.identities and t.org_column:
            match = _identity_match(t.identities, t.org_column, p)
            if match:
                conds.append(match)
    # One SELECT per path, UNIONed: each can use its own index (an OR of them cannot).
    pk = q(t.primary_key)
    return " UNION ".join(f"SELECT {pk} FROM {q(table)} WHERE {c}" for c in conds or ["false"])


def keys_sql(dm: DataMap, table: str, sc: Scope) -> tuple[str, list[Any]]:
    """Primary keys of `table` reachable from the subject, and the query's arguments."""
    p = _Params(sc)
    return _keys(dm, table, p), p.args


def rows_sql(dm: DataMap, table: str, sc: Scope) -> tuple[str, list[Any]]:
    pk = q(dm.tables[table].primary_key)
    keys, args = keys_sql(dm, table, sc)
    return f"SELECT * FROM {q(table)} WHERE {pk} IN ({keys}) ORDER BY {pk}", args


def count_sql(dm: DataMap, table: str, sc: Scope) -> tuple[str, list[Any]]:
    keys, args = keys_sql(dm, table, sc)
    return f"SELECT count(*) FROM ({keys}) AS k", args
