"""Data map mistakes found when the YAML is loaded (issue 12, acceptance 2): each refused with
the file, the table and the field named, and what to do about it. Mistakes that need the live
database (types, NOT NULL, tombstones, row filters, foreign keys) are in
tests/integration/test_datamap_checks.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.datamap import DataMapError, load_datamap

pytestmark = pytest.mark.unit
HEAD = "subject: {table: users, org_column: org_id, identities: {email: email}}\ntables:\n"


def _refused(tmp_path: Path, text: str) -> str:
    p = tmp_path / "map.yaml"
    p.write_text(text)
    with pytest.raises(DataMapError) as err:
        load_datamap(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: invalid data map: "), msg
    assert "Value error" not in msg  # pydantic's wording is not the user's business
    return msg


def test_a_table_with_two_relations_and_no_kinds_is_named_and_told_to_declare_them(
    tmp_path: Path,
) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  conversations: {primary_key: id, parents: [{table: users, column: user_id}]}\n"
        "  messages:\n"
        "    primary_key: id\n"
        "    parents:\n"
        "      - {table: conversations, column: conversation_id}\n"
        "      - {table: users, column: author_id}\n",
    )
    assert "tables.messages.parents[0].kind" in msg
    assert "table 'messages' is reached by 2 relations" in msg
    assert "declare the kind of each (owned, shared or reference)" in msg


def test_one_relation_needs_no_kind_and_is_owned(tmp_path: Path) -> None:
    p = tmp_path / "map.yaml"
    p.write_text(
        HEAD + "  users: {primary_key: id}\n"
        "  messages: {primary_key: id, parents: [{table: users, column: author_id}]}\n"
    )
    assert load_datamap(p).tables["messages"].parents[0].effective_kind == "owned"


@pytest.mark.parametrize("kind", [None, "owned", "shared"])
def test_a_self_relation_must_be_reference(tmp_path: Path, kind: str | None) -> None:
    declared = f", kind: {kind}" if kind else ""
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  staff:\n    primary_key: id\n"
        f"    parents: [{{table: staff, column: manager_id{declared}}}]\n",
    )
    assert "tables.staff.parents[0].kind: a self-relation must be `reference`" in msg


def test_reassign_without_a_tombstone(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  payments:\n"
        "    primary_key: id\n"
        "    parents: [{table: users, column: user_id, kind: reference, detach: reassign}]\n",
    )
    assert "tables.payments.parents[0]: detach: reassign needs `tombstone:" in msg


def test_reassign_from_the_other_side_is_refused(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  address:\n"
        "    primary_key: id\n"
        "    referenced_by:\n"
        "      - {table: users, column: address_id, kind: reference, detach: reassign,"
        " tombstone: 0}\n",
    )
    assert "tables.address.referenced_by[0].detach: the link lives in 'users'" in msg


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("blur", "unknown mask 'blur'"),
        ("scramble:3", "unknown mask 'scramble'"),
        ("truncate:week", "truncate takes day, month or year, not 'week'"),
        ("round:-5", "round takes a positive number, not '-5'"),
    ],
)
def test_an_unknown_or_malformed_mask(tmp_path: Path, spec: str, said: str) -> None:
    msg = _refused(
        tmp_path,
        HEAD + f"  users: {{primary_key: id, action: mask, mask: {{email: '{spec}'}}}}\n",
    )
    assert f"tables.users.mask.email: {said}" in msg


def test_a_composite_relation_with_the_wrong_number_of_columns(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  inventory: {primary_key: [store_id, item_no], action: keep}\n"
        "  rentals:\n"
        "    primary_key: id\n"
        "    parents:\n"
        "      - {table: users, column: user_id, kind: owned}\n"
        "      - {table: inventory, column: item_no, kind: reference}\n",
    )
    assert (
        "tables.rentals.parents[1].column: 1 column(s) cannot reference the 2-column "
        "primary key of 'inventory'" in msg
    )
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  inventory:\n"
        "    primary_key: [store_id, item_no]\n"
        "    referenced_by: [{table: users, column: [a, b, c], kind: reference}]\n",
    )
    assert "tables.inventory.referenced_by[0].column: 3 column(s) cannot reference" in msg


def test_a_single_tenant_map_without_platform_org(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        "subject: {table: customer, identities: {email: email}}\n"
        "tables:\n  customer: {primary_key: customer_id}\n",
    )
    assert "platform_org: a map without subject.org_column is single-tenant" in msg
    p = tmp_path / "ok.yaml"
    p.write_text(
        "subject: {table: customer, identities: {email: email}}\nplatform_org: shop\n"
        "tables:\n  customer: {primary_key: customer_id}\n"
    )
    dm = load_datamap(p)
    assert dm.single_tenant and dm.platform_org == "shop"


def test_a_relation_cycle_is_named_with_its_path(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id}\n"
        "  a: {primary_key: id, parents: [{table: users, column: u, kind: owned},"
        " {table: b, column: b_id, kind: owned}]}\n"
        "  b: {primary_key: id, parents: [{table: c, column: c_id}]}\n"
        "  c: {primary_key: id, parents: [{table: a, column: a_id}]}\n",
    )
    assert "relation cycle" in msg
    assert any(path in msg for path in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"))


def test_a_row_filter_is_one_predicate(tmp_path: Path) -> None:
    msg = _refused(
        tmp_path,
        HEAD + "  users: {primary_key: id, where: 'true; DROP TABLE users'}\n",
    )
    assert "tables.users.where: a row filter is one predicate" in msg
