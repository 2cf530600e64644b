"""What every part of the resolver shares: the map, the live schema, and the conditions
that match an organisation, an identity, a table's filter and the links into a table."""

from __future__ import annotations

from shared.datamap import HASHES, DataMap, LiveSchema
from shared.resolver.sql import Params, q


class ResolverBase:
    def __init__(self, dm: DataMap, live: LiveSchema) -> None:
        self.dm, self.live = dm, live

    # ------------------------------------------------------------------ the subject row

    def _org_cond(self, table: str, alias: str, org_column: str | None, p: Params, org: str) -> str:
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
