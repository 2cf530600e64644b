"""What a table's columns say about it: personal columns by name and type, its email and
org columns, whether it looks like an address row."""

from __future__ import annotations

import re

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
PERSON_TABLE = re.compile(r"(user|customer|member|person|people|client|staff|employee|account)")


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


def email_column(table: TableFacts) -> str | None:
    emails = [c.name for c in table.columns if personal_kind(c) == "email" and not c.is_array]
    return "email" if "email" in emails else (emails[0] if emails else None)


def org_column(table: TableFacts) -> str | None:
    names = {c.name for c in table.columns}
    return next((n for n in ORG_COLUMNS if n in names), None)


def link_nullable(t: TableFacts, fk: ForeignKey) -> bool:
    return all(not (c := t.column(n)) or not c.not_null for n in fk.columns)


def address_like(t: TableFacts) -> bool:
    """Someone's address or contact row, not a person, not a lookup."""
    kinds = {k for _, k in personal_columns(t)}
    return (
        bool(kinds & {"address", "phone"})
        and "email" not in kinds
        and not PERSON_TABLE.search(t.name)
    )
