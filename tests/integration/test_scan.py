"""The identity scan looks through every text-like column of the platform database, whatever
the data map says; on real Postgres, each test in a schema of its own."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.eraser.store import migrate_platform
from shared.scan import ScanHit, scan_identities

pytestmark = pytest.mark.integration


@pytest.fixture
async def schema(platform_db: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh schema shaped like a platform nobody mapped: plain, jsonb, json, composite key,
    a partitioned table without a key, a citext column, and a table with no text at all."""
    name = f"scan_{uuid.uuid4().hex[:10]}"
    async with platform_db.acquire() as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        await conn.execute(
            f"""
            CREATE SCHEMA {name};
            SET search_path = {name}, public;
            CREATE TABLE profiles (id bigint PRIMARY KEY, contact text, nick varchar(40));
            CREATE TABLE events (id bigint PRIMARY KEY, payload jsonb, raw json);
            CREATE TABLE logins (tenant int, seq int, login citext, code char(12),
                                 tags text[], PRIMARY KEY (tenant, seq));
            CREATE TABLE audit (at date NOT NULL, line text) PARTITION BY RANGE (at);
            CREATE TABLE audit_2025 PARTITION OF audit
                FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE audit_2026 PARTITION OF audit
                FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            CREATE TABLE counters (id int PRIMARY KEY, n bigint);
            RESET search_path;
            """
        )
    yield name
    async with platform_db.acquire() as conn:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")


def _person() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"Ann.{tag}@Example.com", f"+44 20 {int(tag, 16) % 10**8:08d}"


async def test_no_hit_is_ok_and_says_what_was_scanned(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    email, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.profiles VALUES (1, 'someone@example.com', 'ann');"
            f'INSERT INTO {schema}.events VALUES (1, \'{{"a": "b"}}\', \'["x"]\')'
        )
    report = await scan_identities(platform_db, {"email": email, "phone": phone}, schemas=[schema])
    assert report.ok
    assert report.hits == [] and report.skipped == []
    assert sorted(report.scanned) == sorted(
        f"{schema}.{c}"
        for c in (
            "profiles.contact",
            "profiles.nick",
            "events.payload",
            "events.raw",
            "logins.login",
            "logins.code",
            "logins.tags",
            "audit.line",
        )
    )
    assert report.scanned_columns == 8


async def test_a_hit_in_an_unmapped_table_names_table_column_and_key(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    email, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.profiles VALUES (41, 'nobody', 'x'), (42, $1, 'y')", phone
        )
    report = await scan_identities(platform_db, {"email": email, "phone": phone}, schemas=[schema])
    assert not report.ok
    assert report.hits == [ScanHit(table=f"{schema}.profiles", column="contact", key="42")]


async def test_an_email_in_another_case_and_in_a_citext_or_char_column(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    email, _ = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.profiles VALUES (7, $1, $2)", email.upper(), email.lower()
        )
        await conn.execute(
            f"INSERT INTO {schema}.logins VALUES (3, 9, $1, 'x', ARRAY['a', $2])",
            email.swapcase(),
            email.upper(),
        )
    report = await scan_identities(platform_db, {"email": email}, schemas=[schema])
    assert not report.ok
    assert {(h.table, h.column, h.key) for h in report.hits} == {
        (f"{schema}.profiles", "contact", "7"),
        (f"{schema}.profiles", "nick", "7"),
        (f"{schema}.logins", "login", "[3, 9]"),
        (f"{schema}.logins", "tags", "[3, 9]"),
    }


async def test_a_phone_is_matched_exactly_not_by_case_or_substring(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    _, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.profiles VALUES (1, $1, NULL), (2, $2, NULL)",
            f"call {phone}",
            phone + "0",
        )
    report = await scan_identities(platform_db, {"phone": phone}, schemas=[schema])
    assert report.ok, report.hits


async def test_a_value_anywhere_inside_jsonb_and_json(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    email, phone = _person()
    nested = {"order": {"contacts": [{"kind": "phone", "value": phone}], "n": 3}}
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.events VALUES (1, $1::text::jsonb, NULL),"
            f" (2, NULL, $2::text::json), (3, $3::text::jsonb, NULL)",
            json.dumps(nested),
            # json keeps its text as written: the scan reads it through jsonb (escapes decoded)
            json.dumps({"to": [email.upper()]}, ensure_ascii=True).replace("@", "\\u0040"),
            json.dumps({"note": f"{phone} is not a whole string here"}),
        )
    report = await scan_identities(platform_db, {"email": email, "phone": phone}, schemas=[schema])
    assert {(h.column, h.key) for h in report.hits} == {("payload", "1"), ("raw", "2")}


async def test_a_partitioned_table_is_scanned_once_through_its_parent(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    _, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.audit VALUES ('2025-03-01', $1), ('2026-03-01', $1)", phone
        )
    report = await scan_identities(platform_db, {"phone": phone}, schemas=[schema])
    assert [h.table for h in report.hits] == [f"{schema}.audit"] * 2
    keys = sorted(h.key for h in report.hits)  # no key: the partition and the row's ctid
    assert keys[0].startswith(f"{schema}.audit_2025:(") and keys[1].startswith(
        f"{schema}.audit_2026:("
    )
    assert not any("audit_20" in s for s in report.scanned)


async def test_hits_are_limited_per_table(platform_db: asyncpg.Pool, schema: str) -> None:
    _, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {schema}.profiles SELECT g, $1, NULL FROM generate_series(1, 30) g",
            phone,
        )
    report = await scan_identities(
        platform_db, {"phone": phone}, schemas=[schema], limit_per_table=5
    )
    assert len(report.hits) == 5
    assert report.truncated == [f"{schema}.profiles"]
    assert not report.ok


async def test_lethes_restoration_log_is_not_scanned(
    base_settings: dict[str, str], platform_db: asyncpg.Pool, schema: str
) -> None:
    email, _ = _person()
    await migrate_platform(base_settings["platform_database_url"])
    job = uuid.uuid4()
    async with platform_db.acquire() as conn:
        await conn.execute(
            "INSERT INTO lethe.restoration_log (job_id, chunk_no, table_name, keys, sealed)"
            " VALUES ($1, 0, $2, ARRAY[$2], '\\x00')",
            job,
            email,
        )
    try:
        report = await scan_identities(platform_db, {"email": email}, schemas=["lethe", schema])
    finally:
        async with platform_db.acquire() as conn:
            await conn.execute("DELETE FROM lethe.restoration_log WHERE job_id = $1", job)
    assert report.ok, report.hits
    assert not any(s.startswith("lethe.") for s in report.scanned)


async def test_the_sample_platform_is_scanned_mapped_or_not(platform_db: asyncpg.Pool) -> None:
    email, phone = _person()
    report = await scan_identities(platform_db, {"email": email, "phone": phone})
    assert report.ok
    for column in ("users.email", "payments.billing_email", "activity_logs.event"):
        assert column in report.scanned


async def test_a_spent_budget_reports_tables_skipped_not_ok(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    email, _ = _person()
    report = await scan_identities(platform_db, {"email": email}, schemas=[schema], budget_s=0)
    assert not report.ok
    assert report.hits == [] and report.scanned == []
    assert {s.table for s in report.skipped} == {
        f"{schema}.{t}" for t in ("profiles", "events", "logins", "audit")
    }
    assert {s.reason for s in report.skipped} == {"budget"}


async def test_a_table_that_times_out_is_skipped_and_the_rest_not_reached(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    """A table held by another session's lock cannot be read within the budget."""
    email, _ = _person()
    async with platform_db.acquire() as locker:
        tx = locker.transaction()
        await tx.start()
        await locker.execute(f"LOCK TABLE {schema}.audit IN ACCESS EXCLUSIVE MODE")
        try:
            report = await asyncio.wait_for(
                scan_identities(platform_db, {"email": email}, schemas=[schema], budget_s=1.5),
                timeout=20,
            )
        finally:
            await tx.rollback()
    assert not report.ok
    assert report.elapsed_s < 5
    skipped = {s.table: s.reason for s in report.skipped}
    assert skipped.pop(f"{schema}.audit") == "timeout"  # first: same size, first by name
    assert set(skipped.values()) == {"budget"}
    assert f"{schema}.audit.line" not in report.scanned


async def test_a_connection_works_too_but_not_inside_a_transaction(
    platform_db: asyncpg.Pool, schema: str
) -> None:
    _, phone = _person()
    async with platform_db.acquire() as conn:
        await conn.execute(f"INSERT INTO {schema}.profiles VALUES (5, $1, NULL)", phone)
        report = await scan_identities(conn, {"phone": phone}, schemas=[schema])
        assert [h.key for h in report.hits] == ["5"]
        async with conn.transaction():
            with pytest.raises(ValueError, match="outside a transaction"):
                await scan_identities(conn, {"phone": phone}, schemas=[schema])
