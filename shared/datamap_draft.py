"""A draft data map (version 2, docs/datamap.md) from what the live database says about
itself: tables, primary keys, foreign keys and column names and types. Pure: catalog facts
in (`shared.catalog.read_catalog`), YAML text out; `lethe datamap draft` prints it.

What is proposed, every table marked `# review:`:
- the subject table: `--subject`, else a table with an email column that other tables
  reference most; its identities: email, phone, external id columns by name, its key as user_id;
- `owned` (parents): a table with a foreign key to the subject or to a table owned by it;
  when a table has several such links, the one to the subject is owned, a nullable other one
  is a `reference` detached to null, a NOT NULL one stays owned and is flagged;
- `shared` (referenced_by): an address-like table (address, phone, postcode columns, no
  email) that an owned table points at;
- `reference`: a self-reference (employee -> manager), detached to null when nullable;
- the org column by name (org_id, tenant_id, store_id, ...) or none (single-tenant:
  `platform_org`); the organisation table itself maps with `org_column` on its own key.
  Given `platform_org`, the platform is single-tenant: no org column anywhere;
- tables with an email column and no link to the subject: matched by `identities` (on a
  multi-tenant platform only where the table has an org column; else left for review).
A partitioned table appears once (its parent; the catalog reader leaves partitions out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.catalog import Column, ForeignKey, TableFacts

TEXT_BASES = frozenset({"text", "varchar", "bpchar", "citext"})
ORG_COLUMNS = (
    "org_id",
    "organisation_id",
    "organization_id",
    "tenant_id",
    "store_id",
    "company_id",
    "workspace_id",
)
_PERSON_ID = re.compile(r"(^|_)(user|customer|member|person|client|subscriber|patient)_?id$")
_EXTERNAL_ID = ("external_id", "external_ref", "external_key", "external_user_id")
_PERSON_TABLE = re.compile(r"(user|customer|member|person|people|client|staff|employee|account)")


class DraftError(ValueError):
    pass


def personal_kind(column: Column) -> str | None:
    """What a column's name says it holds: email, phone, name, address, ip, person_id,
    external_id; None when nothing personal shows."""
    n = column.name.lower()
    text = column.base in TEXT_BASES
    if text and ("email" in n or n in ("mail", "e_mail")):
        return "email"
    if "phone" in n or "mobile" in n or n in ("tel", "telephone", "msisdn", "fax"):
        return "phone"
    if n in ("ip", "ip_addr", "remote_addr", "ip_address") or n.endswith("_ip"):
        return "ip"
    if any(w in n for w in ("address", "street", "postcode", "postal", "zip")):
        return "address"
    if text and (n in ("name", "surname", "username", "login") or n.endswith("_name")):
        return "name"
    if n in _EXTERNAL_ID:
        return "external_id"
    if _PERSON_ID.search(n):
        return "person_id"
    return None


def personal_columns(table: TableFacts) -> list[tuple[str, str]]:
    return [(c.name, k) for c in table.columns if (k := personal_kind(c)) is not None]


def _email_column(table: TableFacts) -> str | None:
    emails = [c.name for c in table.columns if personal_kind(c) == "email" and not c.is_array]
    return "email" if "email" in emails else (emails[0] if emails else None)


def _org_column(table: TableFacts) -> str | None:
    names = {c.name for c in table.columns}
    return next((n for n in ORG_COLUMNS if n in names), None)


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
        subject_identities=_subject_identities(b.tables[b.subject]),
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
        self.subject = subject or _guess_subject(self.tables, self.incoming)
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
        return None if self.single_tenant else _org_column(t)

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
        """Parents among owned tables (kinds by `_kinds`), shared address-like targets, and
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
                elif _address_like(self.tables[fk.ref_table]):
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
            if _reaches(edges, fk.ref_table, name):
                skipped.setdefault(name, []).append(
                    f"{fk.ref_table} ({', '.join(fk.columns)}, would make a cycle)"
                )
            else:
                links.setdefault(name, []).append(fk)
                edges.setdefault(name, set()).add(fk.ref_table)
        for name in self.depth:
            _kinds(self.tables[name], self.drafts[name], links.get(name, []), self.subject)
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
            elif (email := _email_column(t)) is not None:
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
                nullable = _nullable(t, fk)
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


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(edges.get(n, ()))
    return False


def _subject_identities(subj: TableFacts) -> dict[str, str]:
    """email, phone, external id columns by name and type; the key as user_id."""
    identities: dict[str, str] = {}
    if (email := _email_column(subj)) is not None:
        identities["email"] = email
    for c in subj.columns:
        kind = personal_kind(c)
        if kind == "phone" and "phone" not in identities and c.base in TEXT_BASES:
            identities["phone"] = c.name
        elif kind == "external_id" and "external_id" not in identities:
            identities["external_id"] = c.name
    if len(subj.primary_key) == 1:
        identities["user_id"] = subj.primary_key[0]
    if not identities:
        raise DraftError(f"subject table {subj.name}: no identity column (email, phone, key)")
    return identities


def _nullable(t: TableFacts, fk: ForeignKey) -> bool:
    return all(not (c := t.column(n)) or not c.not_null for n in fk.columns)


def _kinds(t: TableFacts, d: TableDraft, links: list[ForeignKey], subject: str) -> None:
    """One link: owned. Several: the one to the subject owned, a nullable other one a
    reference detached to null, a NOT NULL other one owned (and flagged)."""
    direct = any(fk.ref_table == subject for fk in links)
    for fk in links:
        if len(links) == 1 or fk.ref_table == subject or not direct:
            d.parents.append(Relation(fk.ref_table, fk.columns, "owned"))
        elif _nullable(t, fk):
            d.parents.append(Relation(fk.ref_table, fk.columns, "reference", "null"))
        else:
            d.parents.append(Relation(fk.ref_table, fk.columns, "owned"))
    if len(links) > 1:
        parents = ", ".join(f"{fk.ref_table} ({', '.join(fk.columns)})" for fk in links)
        d.review.append(
            f"linked to several owned parents: {parents}; a row can be linked to two people: "
            "owned goes with either, reference keeps the row and detaches the link"
        )


def _address_like(t: TableFacts) -> bool:
    """Someone's address or contact row, not a person, not a lookup."""
    kinds = {k for _, k in personal_columns(t)}
    return (
        bool(kinds & {"address", "phone"})
        and "email" not in kinds
        and not _PERSON_TABLE.search(t.name)
    )


def _guess_subject(tables: dict[str, TableFacts], incoming: dict[str, set[str]]) -> str:
    with_email = [n for n, t in tables.items() if _email_column(t) is not None]
    if not with_email:
        raise DraftError("no table with an email column: name the subject table with --subject")

    def score(n: str) -> tuple[int, int, int, str]:
        refs = sum(fk.ref_table == n for t in tables.values() for fk in t.foreign_keys)
        return (-len(incoming[n]), -refs, 0 if _PERSON_TABLE.search(n) else 1, n)

    return min(with_email, key=score)


# ------------------------------------------------------------------ YAML

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def _s(value: str) -> str:
    """A YAML scalar: plain for identifiers, double-quoted (JSON) otherwise."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _cols(cols: tuple[str, ...]) -> str:
    return _s(cols[0]) if len(cols) == 1 else "[" + ", ".join(_s(c) for c in cols) + "]"


def _relation(r: Relation) -> str:
    detach = f', detach: "{r.detach}"' if r.detach else ""
    return f"{{table: {_s(r.table)}, column: {_cols(r.column)}, kind: {r.kind}{detach}}}"


def render_draft(d: Draft, *, source: str = "the live database") -> str:
    out = [
        f"# Draft data map (version 2, docs/datamap.md) written by `lethe datamap draft` from "
        f"{source}.",
        "# Nothing here is decided: read every `# review:` line, then run `lethe datamap check`.",
        *(f"# note: {n}" for n in d.notes),
        "version: 2",
        "subject:",
        *(f"  # review: {line}" for line in d.subject_review),
        f"  table: {_s(d.subject)}",
    ]
    if d.subject_org_column:
        out.append(f"  org_column: {_s(d.subject_org_column)}")
    out.append("  identities:")
    out += [f"    {kind}: {_s(col)}" for kind, col in d.subject_identities.items()]
    if d.platform_org is not None:
        out.append(
            f"platform_org: {_s(d.platform_org)}  # review: single-tenant (no org column): "
            "the Lethe organisation this platform is"
        )
    out.append("tables:")
    for t in d.tables.values():
        out.append(f"  {_s(t.name)}:")
        out += [f"    # review: {line}" for line in t.review]
        out.append(f"    primary_key: {_cols(t.primary_key) if t.primary_key else '[]'}")
        if t.org_column:
            out.append(f"    org_column: {_s(t.org_column)}")
        out.append(f"    action: delete  # review: {_ACTION_HINT[t.role]}")
        if t.identities:
            pairs = ", ".join(f"{k}: {_s(v)}" for k, v in t.identities.items())
            out.append(f"    identities: {{{pairs}}}")
        for key, relations in (("parents", t.parents), ("referenced_by", t.referenced_by)):
            if relations:
                out.append(f"    {key}:")
                out += [f"      - {_relation(r)}" for r in relations]
    if d.not_mapped:
        out.append(
            "# not mapped (no link to the subject, no identity, no org column): "
            + ", ".join(d.not_mapped)
        )
    return "\n".join(out) + "\n"


_ACTION_HINT = {
    "subject": "the subject's own row",
    "owned": "delete, mask or keep",
    "shared": "goes only when nothing else references it",
    "identities": "rows matched by identity",
    "org": "org scope only: all its rows of the organisation",
    "organisations": "org scope only",
}


def draft_datamap(
    facts: Sequence[TableFacts],
    *,
    subject: str | None = None,
    platform_org: str | None = None,
    source: str = "the live database",
) -> str:
    """The draft map's YAML from the catalog facts."""
    return render_draft(
        build_draft(facts, subject=subject, platform_org=platform_org), source=source
    )
