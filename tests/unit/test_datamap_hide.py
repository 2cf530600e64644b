"""The data map's `hide` step, as it loads (docs/datamap.md, Hiding the subject at once):
literal values on the subject table's own columns, refused elsewhere with the file, the
table and the field named. Its fit to the live columns is checked at start
(tests/integration/test_datamap_checks.py covers the mask checks it reuses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.datamap import DataMapError, load_datamap

pytestmark = pytest.mark.unit
HEAD = "subject: {table: users, org_column: org_id, identities: {email: email}}\ntables:\n"
MESSAGES = "  messages: {primary_key: id, parents: [{table: users, column: author_id}]}\n"


def _load(tmp_path: Path, users: str, extra: str = MESSAGES) -> Path:
    p = tmp_path / "map.yaml"
    p.write_text(HEAD + f"  users: {{primary_key: id, org_column: org_id, {users}}}\n" + extra)
    return p


def _refused(p: Path) -> str:
    with pytest.raises(DataMapError) as err:
        load_datamap(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: invalid data map: "), msg
    assert "Value error" not in msg
    return msg


@pytest.mark.parametrize(
    ("written", "mask"),
    [
        ("{disabled: true}", {"disabled": "fixed:true"}),
        ("{deactivated_at: '2000-01-01'}", {"deactivated_at": "fixed:2000-01-01"}),
        ("{status: 0, note: null}", {"status": "fixed:0", "note": "null"}),
    ],
)
def test_hide_sets_literal_values_on_the_subject_table(
    tmp_path: Path, written: str, mask: dict[str, str]
) -> None:
    hide = load_datamap(_load(tmp_path, f"hide: {{set: {written}}}")).tables["users"].hide
    assert hide is not None and hide.mask == mask


def test_a_map_without_hide_has_none(tmp_path: Path) -> None:
    assert load_datamap(_load(tmp_path, "action: delete")).tables["users"].hide is None


def test_hide_on_another_table_is_refused(tmp_path: Path) -> None:
    other = "  messages: {primary_key: id, parents: [{table: users, column: author_id}], "
    msg = _refused(_load(tmp_path, "action: delete", other + "hide: {set: {hidden: true}}}\n"))
    assert "tables.messages.hide: only the subject table ('users') can hide its row" in msg


@pytest.mark.parametrize(
    ("users", "field", "said"),
    [
        ("hide: {set: {email: x}}", "hide.set.email", "the subject is found by this column"),
        ("hide: {set: {org_id: x}}", "hide.set.org_id", "the subject is found by this column"),
        ("hide: {set: {id: 0}}", "hide.set.id", "the primary key cannot be set"),
        ("action: keep, hide: {set: {disabled: true}}", "hide", "action is keep"),
        (
            "where: 'NOT disabled', hide: {set: {disabled: true}}",
            "hide.set.disabled",
            "the table's row filter reads this column",
        ),
        ("hide: {set: {}}", "hide.set", "at least 1 item"),
        ("hide: {set: {disabled: [1]}}", "hide.set: disabled", "a hide sets a literal value"),
        ("hide: {disabled: true}", "hide", "set"),
    ],
)
def test_a_hide_that_cannot_work_is_refused(
    tmp_path: Path, users: str, field: str, said: str
) -> None:
    msg = _refused(_load(tmp_path, users))
    assert f"tables.users.{field}" in msg and said in msg


def test_the_sample_map_hides_by_disabling_the_account() -> None:
    sample = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
    hide = load_datamap(sample).tables["users"].hide
    assert hide is not None and hide.values == {"disabled": True}
