from __future__ import annotations

from pathlib import Path

import pytest

from shared.datamap import DataMapError, load_datamap

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


def test_sample_map_orders_parents_first() -> None:
    dm = load_datamap(SAMPLE)
    order = dm.reachable()
    assert order[0] == "users"
    assert order.index("conversations") < order.index("messages") < order.index("media_objects")


def test_cycle_is_refused_with_the_path(tmp_path: Path) -> None:
    p = tmp_path / "map.yaml"
    p.write_text(
        "subject: {table: a, org_column: org, identities: {email: email}}\n"
        "tables:\n"
        "  a: {primary_key: id, parents: [{table: b, column: b_id}]}\n"
        "  b: {primary_key: id, parents: [{table: a, column: a_id}]}\n"
    )
    with pytest.raises(DataMapError, match="cycle"):
        load_datamap(p)


def test_unknown_table_and_bad_identifier_are_named(tmp_path: Path) -> None:
    p = tmp_path / "map.yaml"
    p.write_text(
        "subject: {table: a, org_column: org, identities: {email: email}}\n"
        "tables:\n"
        "  a: {primary_key: 'id; drop table x'}\n"
        "  c: {primary_key: id, parents: [{table: nope, column: x}]}\n"
    )
    with pytest.raises(DataMapError) as err:
        load_datamap(p)
    assert str(p) in str(err.value) and "tables.a.primary_key" in str(err.value)
