"""Retention on schemas that are not the sample one, each in a fresh database.

tests/schemas/shops: an integer org column (the org id cast to it, directly and through the
parent holding it), a `where:` filter that decides what a category means, a composite
primary key paged by keyset, and the relation kinds: an owned row goes with its order, a
shared label goes only when no order that stays uses it, a `reference` invoice stays with
its link detached, and an order a table outside the map still references is kept, never
deleted under it. The neighbouring shop is checked by fingerprint (md5 of every row).
tests/schemas/rental: a single-tenant platform (every row, for its one org only), payments
(a partitioned table, composite key) kept with their rental link detached."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import asyncpg
import pytest
import yaml

from services.eraser.deps import EraserDeps
from services.eraser.service import retention
from shared.db import create_pool
from shared.events import Actor, Envelope, make_event
from shared.events.retention import RetentionRequested
from shared.resolver import ScopeError
from tests.helpers import eraser_deps
from tests.schemas import databases, rental, shops
from tests.schemas.rental.seed import BASE, seed_rental
from tests.schemas.shops.seed import ShopSeed, fingerprint, seed_shop

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
_shop_ids = count(100)


@dataclass
class Shops:
    pool: asyncpg.Pool
    deps: EraserDeps


@pytest.fixture(scope="module")
async def shopdb(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[Shops]:
    admin = base_settings["platform_database_url"]
    dsn = await databases.create_database(admin, "shops")
    try:
        await databases.apply_sql(dsn, shops.SCHEMA)
        pool = await create_pool(dsn)
        try:
            settings = {**base_settings, "platform_database_url": dsn}
            settings["datamap_path"] = shops.DATAMAP
            deps = await eraser_deps(settings, lethe_db, pool, s3, batch_size=2)
            yield Shops(pool, deps)
        finally:
            await pool.close()
    finally:
        await databases.drop_database(admin, dsn)


async def two_shops(db: Shops) -> tuple[ShopSeed, ShopSeed]:
    async with db.pool.acquire() as conn:
        return await seed_shop(conn, next(_shop_ids), NOW), await seed_shop(
            conn, next(_shop_ids), NOW
        )


async def clean(db: Shops, shop: int | str, category: str, days: int) -> retention.Stats:
    return await retention.clean(
        db.deps,
        category=category,
        cutoff=NOW - timedelta(days=days),
        org_id=str(shop),
        public_mode=False,
    )


async def test_integer_org_column_and_the_relation_kinds(shopdb: Shops) -> None:
    s, other = await two_shops(shopdb)
    async with shopdb.pool.acquire() as conn:
        untouched = await fingerprint(conn, other.shop)
        mixed_notes = await conn.fetchval(
            "SELECT count(*) FROM order_note WHERE order_id = $1", s.mixed_new
        )

    stats = await clean(shopdb, s.shop, "orders", 365)

    pool = shopdb.pool
    rows = await pool.fetch("SELECT order_id FROM orders WHERE shop_id = $1", s.shop)
    left = {r[0] for r in rows}
    # Older than a year: the two old orders and the one sharing its label go; the order a
    # complaint (a table the map does not know) still points at stays; newer ones stay.
    assert left == {s.mixed_new, s.complained, s.fresh}
    lines = await pool.fetch(
        "SELECT DISTINCT order_id FROM order_line WHERE order_id = ANY($1::int[])",
        [*s.old, s.mixed_old, *left],
    )
    assert {r[0] for r in lines} == left  # owned: lines went with their orders only
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM order_note WHERE order_id = ANY($1::int[])", s.old
        )
        == 0
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM order_note WHERE order_id = $1", s.mixed_new)
        == mixed_notes
    )
    # shared: the label only old orders used is gone; the one a fresh order uses stays.
    labels = await pool.fetch(
        "SELECT label_id FROM label WHERE label_id = ANY($1::int[])", [s.old_label, s.mixed_label]
    )
    assert [r[0] for r in labels] == [s.mixed_label]
    # reference: the invoice of a deleted order stays, its link detached; the other is as it was.
    invoices = dict(
        await pool.fetch(
            "SELECT invoice_id, order_id FROM invoice WHERE invoice_id = ANY($1::int[])",
            [s.old_invoice, s.fresh_invoice],
        )
    )
    assert invoices == {s.old_invoice: None, s.fresh_invoice: s.fresh}
    assert (
        await pool.fetchval("SELECT count(*) FROM complaint WHERE order_id = $1", s.complained) == 1
    )
    # What the run says: rows per table, the detached link, the row kept and why.
    assert stats.rows == {"orders": 3, "order_line": 6, "order_note": 1, "label": 1}
    assert stats.detached == {"invoice": 1}
    assert stats.kept == {"orders": 1} and stats.remaining == {} and not stats.errors
    # The other shop: not one byte changed.
    async with pool.acquire() as conn:
        assert await fingerprint(conn, other.shop) == untouched


async def test_org_through_the_parent_cast_to_its_integer_column(shopdb: Shops) -> None:
    s, other = await two_shops(shopdb)
    async with shopdb.pool.acquire() as conn:
        untouched = await fingerprint(conn, other.shop)

    stats = await clean(shopdb, s.shop, "notes", 90)

    # order_note has no org column: its shop is its order's. The notes older than 90 days
    # (on an old order and on a fresh one) go; the 10-day note stays.
    ages = await shopdb.pool.fetch(
        "SELECT n.written_at FROM order_note n JOIN orders o USING (order_id) WHERE o.shop_id = $1",
        s.shop,
    )
    assert [NOW - r[0] for r in ages] == [timedelta(days=10)]
    assert stats.rows == {"order_note": 2} and stats.planned == {"order_note": 2}
    async with shopdb.pool.acquire() as conn:
        assert await fingerprint(conn, other.shop) == untouched


async def test_where_filter_limits_what_a_category_takes(shopdb: Shops) -> None:
    s, other = await two_shops(shopdb)
    async with shopdb.pool.acquire() as conn:
        untouched = await fingerprint(conn, other.shop)

    stats = await clean(shopdb, s.shop, "visits", 30)

    # `visits` means anonymous visits (where: member_id IS NULL): the three older than 30
    # days go (two keyset pages of the composite key); the member's old visits stay.
    left = await shopdb.pool.fetch(
        "SELECT member_id IS NULL AS anonymous, seen_at FROM visit WHERE shop_id = $1", s.shop
    )
    old = NOW - timedelta(days=30)
    assert sorted((r[0], r[1] < old) for r in left) == [
        (False, True),
        (False, True),
        (True, False),
        (True, False),
    ]
    assert stats.planned == {"visit": 3} and stats.rows == {"visit": 3}
    assert stats.remaining == {} and stats.kept == {}
    async with shopdb.pool.acquire() as conn:
        assert await fingerprint(conn, other.shop) == untouched


async def test_an_org_id_that_is_not_an_integer_fails_the_job_with_the_reason(
    shopdb: Shops,
) -> None:
    seen: list[Envelope] = []

    async def emit(_topic: str, env: Envelope) -> None:
        seen.append(env)

    shopdb.deps.emit = emit
    with pytest.raises(ScopeError, match=r"not a valid integer for orders\.shop_id"):
        await clean(shopdb, "acme", "orders", 365)
    payload = RetentionRequested(category="orders", days=365, cutoff=NOW - timedelta(days=365))
    env = make_event(payload, actor=Actor(kind="test", id="t"), job_id=uuid.uuid4(), org_id="acme")
    await retention.run_job(env, shopdb.deps, public_mode=False)
    failed = [e.payload for e in seen if e.type == "JobFailed"]
    assert failed and "not a valid integer for orders.shop_id" in failed[0]["reason"]


# ------------------------------------------------------------------ single-tenant


@pytest.fixture(scope="module")
async def rentaldb(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, s3: Any, tmp_path_factory: Any
) -> AsyncIterator[Shops]:
    """The rental platform (single-tenant) in a fresh database, its map with rentals aged."""
    raw = yaml.safe_load(rental.DATAMAP.read_text())
    raw["retention_categories"] = {"rentals": {"days": 365}}
    raw["tables"]["rental"].update(retention="rentals", retention_column="rented_at")
    path = tmp_path_factory.mktemp("rental") / "datamap.yaml"
    path.write_text(yaml.safe_dump(raw))
    admin = base_settings["platform_database_url"]
    dsn = await databases.create_database(admin, "rentret")
    try:
        await databases.apply_sql(dsn, rental.SCHEMA)
        pool = await create_pool(dsn)
        try:
            settings = {**base_settings, "platform_database_url": dsn, "datamap_path": path}
            deps = await eraser_deps(settings, lethe_db, pool, s3, batch_size=2)
            yield Shops(pool, deps)
        finally:
            await pool.close()
    finally:
        await databases.drop_database(admin, dsn)


async def test_single_tenant_takes_every_row_of_its_one_org_and_detaches_references(
    rentaldb: Shops,
) -> None:
    async with rentaldb.pool.acquire() as conn:
        s = await seed_rental(conn)
    pool = rentaldb.pool

    async def payments() -> dict[str, int | None]:
        rows = await pool.fetch(
            "SELECT json_build_array(payment_id, paid_at)::text, rental_id FROM payment"
        )
        return {r[0]: r[1] for r in rows}

    before = await payments()
    cutoff = BASE + timedelta(days=8)  # rentals of day 2, 4 and 5 are older
    other = await retention.clean(
        rentaldb.deps, category="rentals", cutoff=cutoff, org_id="another-org", public_mode=False
    )
    assert other.rows == {} and await payments() == before  # not this platform's org

    stats = await retention.clean(
        rentaldb.deps,
        category="rentals",
        cutoff=cutoff,
        org_id=rental.PLATFORM_ORG,
        public_mode=False,
    )

    left = {r[0] for r in await pool.fetch("SELECT rental_id FROM rental")}
    assert left == {s.a_rentals[1], s.a_rentals[2]}
    # reference: every payment stays (bookkeeping); those for a deleted rental lost the link.
    gone = {s.a_rentals[0], s.b_rental, s.c_rental}
    after = await payments()
    assert after == {k: (None if v in gone else v) for k, v in before.items()}
    assert stats.rows == {"rental": 3} and stats.detached == {"payment": 4}
    assert await pool.fetchval("SELECT count(*) FROM inventory") == 6  # the shop's, kept
