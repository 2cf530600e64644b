"""Building the draft from the catalog facts (the rules are in the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.catalog import ForeignKey, TableFacts
from shared.datamap_draft.columns import (
    DraftError,
    address_like,
    email_column,
    link_nullable,
    org_column,
    personal_columns,
)
from shared.datamap_draft.model import Draft, Relation, TableDraft
from shared.datamap_draft.rules import assign_kinds, guess_subject, reaches, subject_identities


def build_draft(
    facts: Sequence[TableFacts], *, subject: str | None = None, platform_org: str | None = None
) -> Draft:
    """The proposed map (see the module docstring) from the catalog facts."""
    b = _Builder(facts, subject, single_tenant=platform_org is not None)
    b.owned_relations()
    b.other_tables()
    b.annotate()
    org_col = b.org_column
    return Draft(
        subject=b.subject,
        subject_org_column=org_col,
        subject_identities=subject_identities(b.tables[b.subject]),
        subject_review=(
            [
                f"org_column {org_col} guessed by name: on a single-tenant platform remove it "
                "(here and on every table) and set platform_org"
            ]
            if org_col
            else []
        ),
        platform_org=None if org_col else (platform_org or "CHANGE-ME"),
        tables={
            n: b.drafts[n]
            for n in [b.subject, *sorted(b.drafts, key=lambda n: (b.depth.get(n, 99), n))]
        },
        not_mapped=sorted(n for n in b.tables if n not in b.drafts),
        notes=b.notes,
    )


class _Builder:
    def __init__(
        self, facts: Sequence[TableFacts], subject: str | None, *, single_tenant: bool = False
    ) -> None:
        self.single_tenant = single_tenant
        self.tables: dict[str, TableFacts] = {}
        self.notes: list[str] = []
        for t in facts:
            if t.name in self.tables:
                self.notes.append(f"{t.schema}.{t.name} left out: name taken by another schema")
            else:
                self.tables[t.name] = t
        if not self.tables:
            raise DraftError("no table in the schemas read")
        # table -> the other tables with a foreign key to it
        self.incoming: dict[str, set[str]] = {name: set() for name in self.tables}
        for t in self.tables.values():
            for fk in t.foreign_keys:
                if fk.ref_table in self.tables and fk.ref_table != t.name:
                    self.incoming[fk.ref_table].add(t.name)
        self.subject = subject or guess_subject(self.tables, self.incoming)
        if self.subject not in self.tables:
            raise DraftError(
                f"--subject: no table {self.subject!r} (tables: {', '.join(sorted(self.tables))})"
            )
        subj = self.tables[self.subject]
        self.org_column = self.org_of(subj)
        # the organisations table: where the subject's org column points
        self.org_table = next(
            (fk.ref_table for fk in subj.foreign_keys if fk.columns == (self.org_column,)), None
        )
        self.depth = self._owned()
        self.drafts: dict[str, TableDraft] = {}
        self.draft(self.subject, "subject")

    def org_of(self, t: TableFacts) -> str | None:
        """The table's org column by name; none on a platform said to be single-tenant."""
        return None if self.single_tenant else org_column(t)

    def followed(self, t: TableFacts, fk: ForeignKey) -> bool:
        """A foreign key that may be a relation: not a self-reference, not the org column's."""
        return fk.ref_table in self.tables and fk.ref_table not in (self.org_table, t.name)

    def _owned(self) -> dict[str, int]:
        """Tables with a foreign key to the subject or to a table owned by it -> distance."""
        depth = {self.subject: 0}
        frontier = [self.subject]
        while frontier:
            reached = [
                name
                for name, t in self.tables.items()
                if name not in depth
                and name != self.org_table
                and any(self.followed(t, fk) and fk.ref_table in frontier for fk in t.foreign_keys)
            ]
            depth.update(dict.fromkeys(reached, depth[frontier[0]] + 1))
            frontier = reached
        return depth

    def draft(self, name: str, role: str) -> TableDraft:
        if name not in self.drafts:
            t = self.tables[name]
            d = TableDraft(name, t.primary_key, org_column=self.org_of(t), role=role)
            if not t.primary_key:
                d.review.append("no primary key: give one (a unique column or a list)")
            self.drafts[name] = d
        return self.drafts[name]

    def owned_relations(self) -> None:
        """Parents among owned tables (kinds by `assign_kinds`), shared address-like targets, and
        the links not followed, said on each table."""
        skipped: dict[str, list[str]] = {}
        candidates: list[tuple[str, ForeignKey]] = []
        for name in sorted(self.depth, key=lambda n: (self.depth[n], n)):
            t = self.tables[name]
            self.draft(name, "owned" if name != self.subject else "subject")
            for fk in t.foreign_keys:
                if not self.followed(t, fk):  # self-references: in `annotate`, for every table
                    continue
                if fk.ref_table in self.depth:
                    candidates.append((name, fk))
                elif address_like(self.tables[fk.ref_table]):
                    target = self.draft(fk.ref_table, "shared")
                    target.referenced_by.append(Relation(name, fk.columns, "shared"))
                else:
                    skipped.setdefault(name, []).append(f"{fk.ref_table} ({', '.join(fk.columns)})")
        # links towards the subject first: a link that would close a cycle is the one left out
        d = self.depth
        candidates.sort(key=lambda c: (d[c[1].ref_table] - d[c[0]], d[c[0]], c[0]))
        edges: dict[str, set[str]] = {}  # child -> parents
        links: dict[str, list[ForeignKey]] = {}
        for name, fk in candidates:
            if reaches(edges, fk.ref_table, name):
                skipped.setdefault(name, []).append(
                    f"{fk.ref_table} ({', '.join(fk.columns)}, would make a cycle)"
                )
            else:
                links.setdefault(name, []).append(fk)
                edges.setdefault(name, set()).add(fk.ref_table)
        for name in self.depth:
            assign_kinds(self.tables[name], self.drafts[name], links.get(name, []), self.subject)
            if name in skipped:
                self.drafts[name].review.append(
                    "links not followed (someone else's rows or lookups): "
                    + "; ".join(skipped[name])
                )

    def other_tables(self) -> None:
        """The organisation table, tables matched by an email column, org-scoped tables."""
        for name, t in self.tables.items():
            if name in self.drafts:
                continue
            if name == self.org_table:
                d = self.draft(name, "organisations")
                d.org_column = t.primary_key[0] if len(t.primary_key) == 1 else None
                d.review.append("the organisation row (org scope): delete, or mask its name")
            elif (email := email_column(t)) is not None:
                d = self.draft(name, "identities")
                if self.org_column and d.org_column is None:
                    # The loader refuses identities without an org column on a multi-tenant
                    # platform (the same email in two orgs is two people): left for review.
                    d.review.append(
                        f"email column {email} but no org column: to match its rows by "
                        f"identity, give `org_column` and `identities: {{email: {email}}}`"
                    )
                    continue
                d.identities = {"email": email}
                if self.incoming[name]:
                    d.review.append(
                        f"people of another kind (referenced by "
                        f"{', '.join(sorted(self.incoming[name]))}): drop `identities` if they "
                        "are not the subject's"
                    )
            elif self.org_of(t) is not None:
                self.draft(name, "org")

    def annotate(self) -> None:
        """Self-references (always `reference`) and what to review on each table."""
        for d in self.drafts.values():
            t = self.tables[d.name]
            for fk in t.foreign_keys:
                if fk.ref_table != d.name:
                    continue
                nullable = link_nullable(t, fk)
                d.parents.append(
                    Relation(d.name, fk.columns, "reference", "null" if nullable else None)
                )
                if not nullable:
                    d.review.append(
                        f"self-reference {', '.join(fk.columns)} is NOT NULL: "
                        "detach: reassign with a tombstone"
                    )
            linked = {c for fk in t.foreign_keys for c in fk.columns}
            personal = [f"{c} ({k})" for c, k in personal_columns(t) if c not in linked]
            if personal and d.role != "subject":
                d.review.append("personal-looking columns: " + ", ".join(personal))
            if len(d.referenced_by) > 1 or (d.referenced_by and d.parents):
                d.review.append("several relations: check every kind")
            others = sorted(self.incoming[d.name] - {r.table for r in d.referenced_by})
            if d.role == "shared" and others:
                d.review.append(f"also referenced by {', '.join(others)} (those rows keep it)")
