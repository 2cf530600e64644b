"""Exactly the subject's data (issue 12), on the sample schema and on a second one nobody
here wrote it for (tests/schemas/rental: composite keys, a partitioned table, a
self-reference, NOT NULL integer foreign keys, rows of two people, no org column).

For each: what the exporter streams and what the eraser plans are the same set, and both
equal a hand-written oracle (tests/schemas/oracle.py); an erasure then changes exactly those
rows (a fingerprint of every other row is unchanged), detaches exactly the links the oracle
names, and a restore puts the whole database back as it was."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from services.eraser import service, store
from shared.datamap import load_datamap
from shared.events import Envelope, make_event
from shared.events.jobs import ErasureRequested, RestoreErasure
from shared.platform import key_text
from shared.resolver import Resolver, Scope
from shared.settings import LetheSettings
from tests.conftest import Org, SchemaDB
from tests.erasing import (
    ACTOR,
    InProcessEraser,
    eraser_for_sample,
    erasure_request,
    in_process_eraser,
    planned,
)
from tests.schemas import rental
from tests.schemas.oracle import Expected, rental_expected, sample_expected
from tests.schemas.rental.seed import seed_rental
from tests.seeding import OverlapSeed, fingerprint, seed_overlap

pytestmark = pytest.mark.integration


def _identities(env: Envelope) -> dict[str, str]:
    return env.payload_as(ErasureRequested).subject.identities()  # type: ignore[union-attr]


async def _exported(r: Resolver, conn: asyncpg.Connection, scope: Scope) -> dict[str, set[str]]:
    """The keys of the rows the exporter streams (its `rows_sql`), per table."""
    subject = await r.resolve(conn, scope)
    out: dict[str, set[str]] = {}
    for table in r.tables(scope):
        sql, args = r.rows_sql(table, subject)
        key = key_text(r.dm.tables[table], "x")
        keys = {row[0] for row in await conn.fetch(f"SELECT {key} FROM ({sql}) x", *args)}
        if keys:
            out[table] = keys
    return out


async def _erase_and_restore(
    run: InProcessEraser,
    platform: asyncpg.Pool,
    env: Envelope,
    expected: Expected,
    while_erased: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> None:
    assert env.job_id is not None
    async with platform.acquire() as conn:
        before = await fingerprint(conn)
        others_before = await fingerprint(conn, exclude=expected.all_touched())
    await service.plan(env, run.deps)
    plan, detach = await planned(run.deps.lethe, env.job_id)
    assert plan == expected.erase, "the eraser's plan is not the oracle's"
    assert detach == expected.detach, "the links detached are not the oracle's"
    await run.drain()
    job = await store.get_job(run.deps.lethe, env.job_id)
    assert job is not None and job.status == "soft_deleted", job
    soft = run.of("ErasureSoftDeleted")[-1]
    assert soft["verification"]["ok"] is True, str(soft["verification"])
    async with platform.acquire() as conn:
        # Nobody else touched: every row outside the subject's and the detached is the same.
        assert await fingerprint(conn, exclude=expected.all_touched()) == others_before
        gone = await _exported(run.deps.resolver, conn, Scope(env.org_id or "", _identities(env)))
        assert not any(t for t, k in gone.items() if run.deps.datamap.tables[t].action == "delete")
        for table, column in expected.detach_columns.items():
            t = run.deps.datamap.tables[table]
            for key in expected.detach.get(table, ()):
                value = await conn.fetchval(
                    f"SELECT x.{column} FROM {table} x WHERE {key_text(t, 'x')} = $1", key
                )
                assert value is None, f"{table} {key}: {column} still links the subject"
        if while_erased is not None:
            await while_erased(conn)
    await service.restore(
        make_event(RestoreErasure(), actor=ACTOR, job_id=env.job_id, org_id=env.org_id), run.deps
    )
    restored = run.of("JobRestored")[-1]
    assert restored["needs_review"] == [], restored
    async with platform.acquire() as conn:
        assert await fingerprint(conn) == before, "a restore must put everything back"


async def _overlap(platform_db: asyncpg.Pool, s3: Any, org: Org) -> tuple[OverlapSeed, Expected]:
    """Two overlapping orgs of the sample platform (Ann is the subject) and the oracle."""
    org2 = f"{org.id}-b"
    async with platform_db.acquire() as conn:
        await conn.execute("INSERT INTO organisations (id, name) VALUES ($1, 'x')", org.id)
        await conn.execute("INSERT INTO organisations (id, name) VALUES ($1, 'y')", org2)
        seed = await seed_overlap(conn, org.id, org2, s3=s3)
        expected = await sample_expected(conn, org.id, seed.users["ann"], email=seed.email)
    return seed, expected


async def test_sample_schema_erases_and_exports_exactly_the_subject(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    seed, expected = await _overlap(platform_db, s3, org)
    run = await eraser_for_sample(base_settings, lethe_db, platform_db, s3)
    async with platform_db.acquire() as conn:
        exported = await _exported(run.deps.resolver, conn, Scope(org.id, {"email": seed.email}))
    assert exported == expected.export
    # Bob's message in Ann's conversation is not Ann's: neither exported nor erased.
    assert str(seed.bob_in_ann_conversation) not in exported["messages"]
    await _erase_and_restore(
        run, platform_db, erasure_request(org.id, {"email": seed.email}), expected
    )


async def test_rental_schema_erases_and_exports_exactly_the_customer(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    rental_db: SchemaDB,
    rental_org: Org,
    s3: Any,
) -> None:
    async with rental_db.pool.acquire() as conn:
        seed = await seed_rental(conn, filler=20, tag=uuid.uuid4().hex[:6])
        email = await conn.fetchval("SELECT email FROM customer WHERE customer_id = $1", seed.a)
        expected = await rental_expected(conn, seed.a)

    async def reassigned(conn: asyncpg.Connection) -> None:
        # The customer's payments stay for the books, moved to the tombstone customer (a NOT
        # NULL integer link cannot be nulled), and lose the card holder's name.
        rows = await conn.fetch(
            "SELECT customer_id, card_holder FROM payment "
            "WHERE json_build_array(payment_id, paid_at)::text = ANY($1::text[])",
            list(expected.mask["payment"]),
        )
        assert rows and all(r["customer_id"] == rental.TOMBSTONE_CUSTOMER for r in rows)
        assert all(r["card_holder"] in (None, "[redacted]") for r in rows)

    dm = load_datamap(rental.DATAMAP)
    run = await in_process_eraser(base_settings, lethe_db, rental_db.pool, dm, s3=s3)
    async with rental_db.pool.acquire() as conn:
        exported = await _exported(
            run.deps.resolver, conn, Scope(rental.PLATFORM_ORG, {"email": email})
        )
    assert exported == expected.export
    await _erase_and_restore(
        run,
        rental_db.pool,
        erasure_request(rental.PLATFORM_ORG, {"email": email}),
        expected,
        reassigned,
    )


async def test_delete_media_false_keeps_the_objects_and_says_which(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    seed, expected = await _overlap(platform_db, s3, org)
    assert expected.objects, "the seed gives Ann's messages media objects"
    settings = LetheSettings(**base_settings)
    run = await eraser_for_sample(base_settings, lethe_db, platform_db, s3)
    env = erasure_request(org.id, {"email": seed.email}, window=0, delete_media=False)
    await service.plan(env, run.deps)
    await run.drain()
    assert env.job_id is not None
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "purged"
    assert run.of("JobCompleted")[-1]["verification"]["ok"] is True
    kept = {k for k, _ in await store.objects(lethe_db, env.job_id, "kept")}
    assert kept == expected.objects
    for key in expected.objects:  # still there, where they were
        await s3.head_object(Bucket=settings.platform_bucket, Key=key)
    async with platform_db.acquire() as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM media_objects WHERE s3_key = ANY($1::text[])",
            list(expected.objects),
        )
    assert left == 0, "the rows linking to the objects are gone"
