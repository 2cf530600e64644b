"""`lethe datamap draft`'s proposals from catalog facts (no database): subject, relation kinds
in both directions, identities, org columns, review marks; the YAML parses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.catalog import Column, ForeignKey, TableFacts
from shared.datamap import DataMap, load_datamap
from shared.datamap_draft import DraftError, build_draft, draft_datamap, personal_kind

pytestmark = pytest.mark.unit

_BASE = {"text": "text", "bigint": "int8", "integer": "int4", "jsonb": "jsonb", "date": "date"}


def table(
    name: str,
    cols: str,
    pk: str | tuple[str, ...] = "id",
    fks: tuple[tuple[str | tuple[str, ...], str, str | tuple[str, ...]], ...] = (),
) -> TableFacts:
    """cols: "id bigint!, email text" (! is NOT NULL); fks: (columns, table, ref columns)."""
    columns = []
    for spec in cols.split(","):
        col, typ = spec.split()
        columns.append(Column(col, typ.rstrip("!"), _BASE[typ.rstrip("!")], typ.endswith("!")))
    tup = lambda v: (v,) if isinstance(v, str) else tuple(v)  # noqa: E731
    return TableFacts(
        schema="public",
        name=name,
        columns=tuple(columns),
        primary_key=tup(pk),
        foreign_keys=tuple(ForeignKey(tup(c), "public", t, tup(r)) for c, t, r in fks),
    )


SAMPLE = [
    table("organisations", "id text!, name text!"),
    table(
        "users",
        "id bigint!, org_id text!, email text!, name text, phone text, external_id text",
        fks=(("org_id", "organisations", "id"),),
    ),
    table(
        "conversations",
        "id bigint!, org_id text!, user_id bigint!, title text",
        fks=(("org_id", "organisations", "id"), ("user_id", "users", "id")),
    ),
    table(
        "messages",
        "id bigint!, conversation_id bigint!, author_id bigint!, body text!",
        fks=(("conversation_id", "conversations", "id"), ("author_id", "users", "id")),
    ),
    table(
        "media_objects",
        "id bigint!, message_id bigint!, s3_key text!",
        fks=(("message_id", "messages", "id"),),
    ),
    table(
        "payments",
        "id bigint!, org_id text!, user_id bigint, billing_email text",
        fks=(("org_id", "organisations", "id"), ("user_id", "users", "id")),
    ),
    table(
        "newsletter_signups",
        "id bigint!, org_id text!, email text!",
        fks=(("org_id", "organisations", "id"),),
    ),
    table(
        "activity_logs",
        "id bigint!, org_id text!, event text!",
        fks=(("org_id", "organisations", "id"),),
    ),
    table("countries", "code text!, label text!", pk="code"),
]

RENTAL = [
    table(
        "address", "address_id integer!, address text!, postal_code text, phone text", "address_id"
    ),
    table(
        "staff",
        "staff_id integer!, email text, address_id integer!, manager_id integer",
        "staff_id",
        (("address_id", "address", "address_id"), ("manager_id", "staff", "staff_id")),
    ),
    table(
        "customer",
        "customer_id integer!, email text, address_id integer",
        "customer_id",
        (("address_id", "address", "address_id"),),
    ),
    table("film", "film_id integer!, title text!", "film_id"),
    table(
        "inventory",
        "shop integer!, item_no integer!, film_id integer!",
        ("shop", "item_no"),
        (("film_id", "film", "film_id"),),
    ),
    table(
        "rental",
        "rental_id integer!, shop integer!, item_no integer!, customer_id integer!, "
        "staff_id integer!",
        "rental_id",
        (
            (("shop", "item_no"), "inventory", ("shop", "item_no")),
            ("customer_id", "customer", "customer_id"),
            ("staff_id", "staff", "staff_id"),
        ),
    ),
    table(
        "payment",
        "payment_id integer!, paid_at date!, customer_id integer!, rental_id integer, "
        "staff_id integer!",
        ("payment_id", "paid_at"),
        (
            ("customer_id", "customer", "customer_id"),
            ("rental_id", "rental", "rental_id"),
            ("staff_id", "staff", "staff_id"),
        ),
    ),
    table(
        "referral",
        "referrer_id integer!, referred_id integer!",
        ("referrer_id", "referred_id"),
        (("referrer_id", "customer", "customer_id"), ("referred_id", "customer", "customer_id")),
    ),
]


def parsed(facts: list[TableFacts], **kw: Any) -> dict[str, Any]:
    out = yaml.safe_load(draft_datamap(facts, **kw))
    assert isinstance(out, dict)
    return out


def rels(m: dict[str, Any], name: str, key: str = "parents") -> list[tuple[Any, ...]]:
    return [
        (r["table"], r["column"], r["kind"], r.get("detach"))
        for r in m["tables"][name].get(key, [])
    ]


def test_sample_schema_subject_identities_and_tenancy() -> None:
    m = parsed(SAMPLE)
    assert m["version"] == 2
    assert m["subject"] == {
        "table": "users",
        "org_column": "org_id",
        "identities": {
            "email": "email",
            "phone": "phone",
            "external_id": "external_id",
            "user_id": "id",
        },
    }
    assert "platform_org" not in m
    assert m["tables"]["organisations"]["org_column"] == "id"  # the org row, by its own key
    assert m["tables"]["activity_logs"] == {
        "primary_key": "id",
        "org_column": "org_id",
        "action": "delete",
    }
    assert m["tables"]["newsletter_signups"]["identities"] == {"email": "email"}
    assert "countries" not in m["tables"]
    assert {t["action"] for t in m["tables"].values()} == {"delete"}


def test_sample_schema_relations_follow_the_foreign_keys_with_kinds() -> None:
    m = parsed(SAMPLE)
    assert rels(m, "conversations") == [("users", "user_id", "owned", None)]
    # two owned parents, both NOT NULL: both owned, explicitly, and flagged
    assert rels(m, "messages") == [
        ("users", "author_id", "owned", None),
        ("conversations", "conversation_id", "owned", None),
    ]
    assert rels(m, "media_objects") == [("messages", "message_id", "owned", None)]
    assert rels(m, "payments") == [("users", "user_id", "owned", None)]
    assert "parents" not in m["tables"]["users"]  # its org link is the org column, not a relation


def test_every_table_is_marked_for_review() -> None:
    text = draft_datamap(SAMPLE)
    assert text.count("action: delete  # review:") == len(yaml.safe_load(text)["tables"])
    assert "# review: linked to several owned parents: users (author_id), conversations" in text
    assert "# not mapped (no link to the subject, no identity, no org column): countries" in text


def test_rental_schema_kinds_in_both_directions() -> None:
    m = parsed(RENTAL, platform_org="rental-shop")
    assert m["subject"] == {
        "table": "customer",
        "identities": {"email": "email", "user_id": "customer_id"},
    }
    assert m["platform_org"] == "rental-shop"
    assert m["tables"]["payment"]["primary_key"] == ["payment_id", "paid_at"]
    assert m["tables"]["referral"]["primary_key"] == ["referrer_id", "referred_id"]
    # payer owned; someone's payment for the subject's rental: a reference, detached (nullable)
    assert rels(m, "payment") == [
        ("customer", "customer_id", "owned", None),
        ("rental", "rental_id", "reference", "null"),
    ]
    assert rels(m, "referral") == [  # a row of two people: owned on both sides
        ("customer", "referrer_id", "owned", None),
        ("customer", "referred_id", "owned", None),
    ]
    assert rels(m, "rental") == [("customer", "customer_id", "owned", None)]
    # the customer's address: the column is in customer; shared (others use addresses too)
    assert rels(m, "address", "referenced_by") == [("customer", "address_id", "shared", None)]
    assert "parents" not in m["tables"]["address"]
    # staff: a person of another kind, self-reference as a detached reference
    assert rels(m, "staff") == [("staff", "manager_id", "reference", "null")]
    assert "inventory" not in m["tables"] and "film" not in m["tables"]
    text = draft_datamap(RENTAL)
    assert "links not followed (someone else's rows or lookups): inventory (shop, item_no)" in text
    assert "also referenced by staff (those rows keep it)" in text


def test_single_tenant_without_platform_org_is_a_placeholder_to_review() -> None:
    text = draft_datamap(RENTAL)
    assert "platform_org: CHANGE-ME  # review: single-tenant" in text


def _loads(tmp_path: Path, text: str) -> DataMap:
    p = tmp_path / "draft.yaml"
    p.write_text(text)
    return load_datamap(p)


def test_the_drafts_load_with_the_map_loader(tmp_path: Path) -> None:
    dm = _loads(tmp_path, draft_datamap(SAMPLE))
    assert dm.subject.table == "users" and dm.subject_org_column == "org_id"
    dm = _loads(tmp_path, draft_datamap(RENTAL, platform_org="rental-shop"))
    assert dm.single_tenant and dm.platform_org == "rental-shop"


def test_platform_org_makes_the_draft_single_tenant_whatever_the_column_names(
    tmp_path: Path,
) -> None:
    facts = [
        table("stores", "store_id integer!, name text!", "store_id"),
        table(
            "customers",
            "id integer!, store_id integer!, email text",
            "id",
            (("store_id", "stores", "store_id"),),
        ),
        table(
            "orders",
            "id integer!, store_id integer!, customer_id integer!",
            "id",
            (("store_id", "stores", "store_id"), ("customer_id", "customers", "id")),
        ),
    ]
    assert build_draft(facts).subject_org_column == "store_id"  # guessed by name
    text = draft_datamap(facts, platform_org="shop")
    assert "org_column" not in text and "platform_org: shop" in text
    dm = _loads(tmp_path, text)
    assert dm.single_tenant and set(dm.tables) == {"customers", "orders"}


def test_an_email_table_without_org_column_on_a_multi_tenant_platform_is_left_for_review(
    tmp_path: Path,
) -> None:
    facts = [*SAMPLE, table("leads", "id bigint!, email text!")]
    text = draft_datamap(facts)
    dm = _loads(tmp_path, text)  # the loader refuses identities without an org column
    assert dm.tables["leads"].identities == {}
    assert (
        "# review: email column email but no org column: to match its rows by identity, "
        "give `org_column` and `identities: {email: email}`" in text
    )


def test_a_composite_foreign_key_is_a_column_list() -> None:
    facts = [
        table("shops", "id integer!, email text", "id"),
        table(
            "items",
            "shop integer!, no integer!",
            ("shop", "no"),
            (("shop", "shops", "id"),),
        ),
        table(
            "loans",
            "id integer!, shop integer!, no integer!",
            "id",
            ((("shop", "no"), "items", ("shop", "no")),),
        ),
    ]
    m = parsed(facts, subject="shops")
    assert rels(m, "loans") == [("items", ["shop", "no"], "owned", None)]


def test_a_not_null_self_reference_asks_for_a_tombstone() -> None:
    facts = [
        table(
            "people",
            "id integer!, email text, boss_id integer!",
            "id",
            (("boss_id", "people", "id"),),
        )
    ]
    text = draft_datamap(facts)
    assert yaml.safe_load(text)["tables"]["people"]["parents"] == [
        {"table": "people", "column": "boss_id", "kind": "reference"}
    ]
    assert "self-reference boss_id is NOT NULL: detach: reassign with a tombstone" in text


def test_a_link_that_would_close_a_cycle_is_left_out() -> None:
    facts = [
        table(
            "users",
            "id integer!, email text, last_post_id integer",
            "id",
            (("last_post_id", "posts", "id"),),
        ),
        table("posts", "id integer!, user_id integer!", "id", (("user_id", "users", "id"),)),
    ]
    m = parsed(facts)
    assert rels(m, "posts") == [("users", "user_id", "owned", None)]
    assert "parents" not in m["tables"]["users"]
    assert "posts (last_post_id, would make a cycle)" in draft_datamap(facts)


def test_the_subject_is_the_email_table_referenced_most_or_given() -> None:
    assert build_draft(RENTAL).subject == "customer"  # staff has an email too, fewer links
    assert build_draft(RENTAL, subject="staff").subject == "staff"
    with pytest.raises(DraftError, match="--subject: no table 'nobody'"):
        build_draft(RENTAL, subject="nobody")
    with pytest.raises(DraftError, match="no table with an email column"):
        build_draft([table("film", "film_id integer!, title text!", "film_id")])


def test_names_that_are_not_plain_identifiers_are_quoted() -> None:
    facts = [table("Users", "ID integer!, email text", "ID")]
    m = parsed(facts)
    assert m["subject"]["table"] == "Users"
    assert m["tables"]["Users"]["primary_key"] == "ID"


@pytest.mark.parametrize(
    ("name", "typ", "kind"),
    [
        ("email", "text", "email"),
        ("billing_email", "text", "email"),
        ("email", "integer", None),
        ("phone_number", "text", "phone"),
        ("last_name", "text", "name"),
        ("postal_code", "text", "address"),
        ("client_ip", "text", "ip"),
        ("customer_id", "integer", "person_id"),
        ("external_id", "text", "external_id"),
        ("title", "text", None),
        ("amount", "integer", None),
    ],
)
def test_personal_kind_by_name_and_type(name: str, typ: str, kind: str | None) -> None:
    assert personal_kind(Column(name, typ, _BASE[typ])) == kind
