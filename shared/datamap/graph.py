"""The data map as a graph: which tables a scope reaches, in which order, and the waves
that erase (and restore) them without breaking a link (docs/datamap.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.datamap.model import Relation, SubjectMap, TableMap


class MapGraph:
    """Graph methods of `DataMap` (mixed into it), on its `subject` and `tables`."""

    if TYPE_CHECKING:
        subject: SubjectMap
        tables: dict[str, TableMap]

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
