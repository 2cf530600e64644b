"""Data map mistakes are refused with the file, the table and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.crypto import (
    CryptoError,
    new_data_key,
    open_sealed,
    parse_master_key,
    seal,
    unwrap_key,
    wrap_key,
)
from shared.datamap import DataMapError, load_datamap

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
HEAD = "subject: {table: users, org_column: org_id, identities: {email: email}}\ntables:\n"


def _load(tmp_path: Path, text: str) -> str:
    p = tmp_path / "map.yaml"
    p.write_text(text)
    with pytest.raises(DataMapError) as err:
        load_datamap(p)
    assert str(p) in str(err.value)
    return str(err.value)


def test_sample_waves_put_children_before_parents() -> None:
    waves = load_datamap(SAMPLE).waves()
    where = {t: i for i, tables in enumerate(waves) for t in tables}
    assert where["media_objects"] < where["messages"] < where["conversations"] < where["users"]
    assert where["payments"] < where["users"] and where["newsletter_signups"] == 0


def test_unknown_table_is_named(tmp_path: Path) -> None:
    msg = _load(
        tmp_path, HEAD + "  users: {primary_key: id, parents: [{table: nope, column: x}]}\n"
    )
    assert "tables.users.parents" in msg and "'nope'" in msg


def test_cycle_is_named_with_its_path(tmp_path: Path) -> None:
    msg = _load(
        tmp_path,
        HEAD
        + "  users: {primary_key: id}\n"
        + "  a: {primary_key: id, parents: [{table: b, column: b_id}]}\n"
        + "  b: {primary_key: id, parents: [{table: a, column: a_id}]}\n",
    )
    assert "cycle" in msg and ("a -> b -> a" in msg or "b -> a -> b" in msg)


def test_missing_identity_is_named(tmp_path: Path) -> None:
    msg = _load(
        tmp_path,
        "subject: {table: users, org_column: org_id, identities: {}}\n"
        "tables:\n  users: {primary_key: id}\n",
    )
    assert "subject.identities" in msg and "missing identity" in msg


def test_mask_mistakes_are_named(tmp_path: Path) -> None:
    msg = _load(tmp_path, HEAD + "  users: {primary_key: id, action: mask}\n")
    assert "tables.users" in msg and "mask" in msg
    msg = _load(tmp_path, HEAD + "  users: {primary_key: id, action: mask, mask: {email: blur}}\n")
    assert "tables.users.mask.email" in msg
    msg = _load(tmp_path, HEAD + "  users: {primary_key: id, retention: forever}\n")
    assert "tables.users.retention" in msg and "forever" in msg


def test_sealing_binds_key_and_place() -> None:
    master = parse_master_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    key = new_data_key()
    wrapped = wrap_key(master, key, b"job-1")
    assert unwrap_key(master, wrapped, b"job-1") == key
    blob = seal(key, b"rows", b"chunk-1")
    assert open_sealed(key, blob, b"chunk-1") == b"rows"
    for bad in (
        lambda: open_sealed(key, blob, b"chunk-2"),
        lambda: unwrap_key(master, wrapped, b"job-2"),
    ):
        with pytest.raises(CryptoError):
            bad()
    with pytest.raises(CryptoError, match="32 bytes"):
        parse_master_key("c2hvcnQ=")
