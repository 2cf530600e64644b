"""The rules the draft applies: the subject table and its identities, the kinds of a table's
links to owned parents, and cycle detection between them."""

from __future__ import annotations

from shared.catalog import ForeignKey, TableFacts
from shared.datamap_draft.columns import (
    PERSON_TABLE,
    TEXT_BASES,
    DraftError,
    email_column,
    link_nullable,
    personal_kind,
)
from shared.datamap_draft.model import Relation, TableDraft


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
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


def subject_identities(subj: TableFacts) -> dict[str, str]:
    """email, phone, external id columns by name and type; the key as user_id."""
    identities: dict[str, str] = {}
    if (email := email_column(subj)) is not None:
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


def assign_kinds(t: TableFacts, d: TableDraft, links: list[ForeignKey], subject: str) -> None:
    """One link: owned. Several: the one to the subject owned, a nullable other one a
    reference detached to null, a NOT NULL other one owned (and flagged)."""
    direct = any(fk.ref_table == subject for fk in links)
    for fk in links:
        if len(links) == 1 or fk.ref_table == subject or not direct:
            d.parents.append(Relation(fk.ref_table, fk.columns, "owned"))
        elif link_nullable(t, fk):
            d.parents.append(Relation(fk.ref_table, fk.columns, "reference", "null"))
        else:
            d.parents.append(Relation(fk.ref_table, fk.columns, "owned"))
    if len(links) > 1:
        parents = ", ".join(f"{fk.ref_table} ({', '.join(fk.columns)})" for fk in links)
        d.review.append(
            f"linked to several owned parents: {parents}; a row can be linked to two people: "
            "owned goes with either, reference keeps the row and detaches the link"
        )


def guess_subject(tables: dict[str, TableFacts], incoming: dict[str, set[str]]) -> str:
    with_email = [n for n, t in tables.items() if email_column(t) is not None]
    if not with_email:
        raise DraftError("no table with an email column: name the subject table with --subject")

    def score(n: str) -> tuple[int, int, int, str]:
        refs = sum(fk.ref_table == n for t in tables.values() for fk in t.foreign_keys)
        return (-len(incoming[n]), -refs, 0 if PERSON_TABLE.search(n) else 1, n)

    return min(with_email, key=score)
