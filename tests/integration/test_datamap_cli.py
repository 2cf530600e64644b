"""`lethe datamap draft` and `lethe datamap check [--scan]` on real Postgres: the sample
schema, and a rental shop schema nobody wrote the sample around, each read from the live
catalog; a draft is then loaded by the version 2 loader and checked as it was written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml
from typer.testing import CliRunner

from deploy.local import infra
from deploy.local.sample.seed import apply_schema
from services.cli import app as cli
from shared.datamap import DataMap, load_datamap

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SAMPLE_MAP = REPO / "deploy/local/sample/datamap.yaml"
RENTAL_SCHEMA = REPO / "tests/schemas/rental/schema.sql"


def lethe(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("PLATFORM_DATABASE_URL", url)
    monkeypatch.setenv("LETHE_ENV_FILE", "/nonexistent")
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
async def fresh_db(prepared: infra.Endpoints) -> AsyncIterator[str]:
    """An empty database of its own on the test Postgres; its URL."""
    name = f"draft_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(prepared.platform_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(prepared.platform_database_url)
        yield urlunsplit(parts._replace(path=f"/{name}"))
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def relations(m: dict[str, Any], table: str, key: str = "parents") -> list[tuple[Any, ...]]:
    return [
        (r["table"], r["column"], r["kind"], r.get("detach"))
        for r in m["tables"][table].get(key, [])
    ]


def test_draft_of_the_sample_schema(
    prepared: infra.Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = lethe(monkeypatch, prepared.platform_database_url, "datamap", "draft")
    assert code == 0, out
    m = yaml.safe_load(out)
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
    t = m["tables"]
    assert {n: t[n]["primary_key"] for n in SAMPLE_TABLES} == dict.fromkeys(SAMPLE_TABLES, "id")
    assert relations(m, "conversations") == [("users", "user_id", "owned", None)]
    assert sorted(relations(m, "messages")) == [
        ("conversations", "conversation_id", "owned", None),
        ("users", "author_id", "owned", None),
    ]
    assert relations(m, "media_objects") == [("messages", "message_id", "owned", None)]
    assert relations(m, "payments") == [("users", "user_id", "owned", None)]
    assert t["newsletter_signups"]["identities"] == {"email": "email"}
    assert t["organisations"]["org_column"] == "id"
    for name in ("activity_logs", "metrics_samples", "anonymous_uploads"):
        assert t[name]["org_column"] == "org_id" and "parents" not in t[name]
    assert out.count("action: delete  # review:") == len(t)


SAMPLE_TABLES = (
    "organisations",
    "users",
    "conversations",
    "messages",
    "media_objects",
    "payments",
    "newsletter_signups",
    "activity_logs",
    "metrics_samples",
    "anonymous_uploads",
)


async def test_draft_of_the_rental_schema(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(RENTAL_SCHEMA.read_text())
    finally:
        await conn.close()
    out_file = tmp_path / "draft.yaml"
    # the CLI runs its own event loop: off this test's loop
    code, out = await asyncio.to_thread(
        lethe, monkeypatch, fresh_db, "datamap", "draft", "--out", str(out_file)
    )
    assert code == 0, out
    text = out_file.read_text()
    m = yaml.safe_load(text)
    t = m["tables"]
    assert m["subject"]["table"] == "customer"
    assert m["subject"]["identities"] == {"email": "email", "user_id": "customer_id"}
    # store_id is taken for an org column by name, and flagged: this platform is single-tenant
    assert m["subject"]["org_column"] == "store_id"
    assert "org_column store_id guessed by name: on a single-tenant platform remove it" in text
    # a partitioned table once, by its parent, with its composite key
    assert t["payment"]["primary_key"] == ["payment_id", "paid_at"]
    assert not any(name.startswith("payment_") for name in t)
    assert "payment_2025" not in text
    assert t["referral"]["primary_key"] == ["referrer_id", "referred_id"]
    # kinds: the payer's payment owned, someone's payment for the rental a detached reference
    assert relations(m, "payment") == [
        ("customer", "customer_id", "owned", None),
        ("rental", "rental_id", "reference", "null"),
    ]
    assert sorted(relations(m, "referral")) == [
        ("customer", "referred_id", "owned", None),
        ("customer", "referrer_id", "owned", None),
    ]
    assert relations(m, "rental") == [("customer", "customer_id", "owned", None)]
    # the other direction: the customer's address, shared with staff and stores
    assert relations(m, "address", "referenced_by") == [("customer", "address_id", "shared", None)]
    assert "also referenced by staff, store (those rows keep it)" in text
    # the self-reference, detached to null (manager_id is nullable)
    assert ("staff", "manager_id", "reference", "null") in relations(m, "staff")
    # the shop's stock is not the customer's: not followed, and said so
    assert "inventory (store_id, item_no)" in text
    assert "film" not in t


def test_check_says_ok_for_the_sample_map(
    prepared: infra.Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = lethe(
        monkeypatch, prepared.platform_database_url, "datamap", "check", "--map", str(SAMPLE_MAP)
    )
    assert code == 0, out
    assert out.startswith(f"ok: {SAMPLE_MAP} matches the platform database")


def test_check_names_the_mistake_and_exits_1(
    prepared: infra.Endpoints, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "map.yaml"
    broken.write_text(
        SAMPLE_MAP.read_text().replace(
            "      - {table: messages, column: message_id}",
            "      - {table: messages, column: msg_id}",
        )
    )
    code, out = lethe(
        monkeypatch, prepared.platform_database_url, "datamap", "check", "--map", str(broken)
    )
    assert code == 1
    flat = " ".join(out.split())
    assert str(broken) in flat and "unknown column 'msg_id' in table 'media_objects'" in flat


async def test_check_scan_lists_unmapped_tables_that_look_personal(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await apply_schema(fresh_db)
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(
            """
            CREATE TABLE imported_contacts (id int PRIMARY KEY, contact text, extra jsonb,
                                            note text);
            INSERT INTO imported_contacts VALUES
                (1, 'ann@example.com', '{"tel": "+44 20 7946 0000"}', 'called twice'),
                (2, 'plain text', '{}', 'nothing');
            CREATE TABLE uploads (id int PRIMARY KEY, ip_address text, size int);
            CREATE TABLE settings_kv (k text PRIMARY KEY, v text);
            INSERT INTO settings_kv VALUES ('theme', 'dark'), ('limit', '12345678');
            """
        )
    finally:
        await conn.close()
    code, out = await asyncio.to_thread(
        lethe, monkeypatch, fresh_db, "datamap", "check", "--scan", "--map", str(SAMPLE_MAP)
    )
    assert code == 0, out
    assert "ok:" in out
    rows = {
        tuple(cell.strip() for cell in line.strip()[1:-1].split("│"))
        for line in out.splitlines()
        if line.startswith("│")
    }
    assert rows == {
        ("imported_contacts", "contact", "", "email"),
        ("imported_contacts", "extra", "", "phone"),
        ("uploads", "ip_address", "ip", ""),
    }  # organisations is in the sample map (its name masked): not listed
    assert "ann@example.com" not in out and "7946" not in out


async def _draft_then_check(
    monkeypatch: pytest.MonkeyPatch, url: str, out_file: Path, *draft_args: str
) -> tuple[DataMap, str]:
    """`lethe datamap draft --out`, then `lethe datamap check --map` of what it wrote."""
    code, out = await asyncio.to_thread(
        lethe, monkeypatch, url, "datamap", "draft", "--out", str(out_file), *draft_args
    )
    assert code == 0, out
    dm = load_datamap(out_file)  # the version 2 loader takes the draft as it is
    code, out = await asyncio.to_thread(
        lethe, monkeypatch, url, "datamap", "check", "--map", str(out_file)
    )
    assert code == 0, out
    assert out.startswith(f"ok: {out_file} matches the platform database"), out
    return dm, out_file.read_text()  # noqa: ASYNC240 (a small file)


async def test_draft_then_check_on_the_sample_schema(
    prepared: infra.Endpoints, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dm, _ = await _draft_then_check(
        monkeypatch, prepared.platform_database_url, tmp_path / "draft.yaml"
    )
    assert dm.subject.table == "users" and dm.subject_org_column == "org_id"
    assert set(dm.tables) == set(SAMPLE_TABLES)
    assert dm.tables["messages"].parents[0].kind == "owned"  # declared: two relations


async def test_draft_then_check_on_the_rental_schema(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute(RENTAL_SCHEMA.read_text())
    finally:
        await conn.close()
    dm, text = await _draft_then_check(
        monkeypatch, fresh_db, tmp_path / "draft.yaml", "--platform-org", "rental-shop"
    )
    # Said to be single-tenant: store_id is not taken for an org column anywhere.
    assert dm.single_tenant and dm.platform_org == "rental-shop"
    assert "org_column" not in text
    assert dm.tables["payment"].pk_columns == ["payment_id", "paid_at"]
    assert [(r.table, r.kind) for r in dm.tables["payment"].parents] == [
        ("customer", "owned"),
        ("rental", "reference"),
    ]
    assert dm.tables["staff"].parents[0].kind == "reference"  # the self-reference
