"""The second platform schema (tests/schemas/rental): it loads, its seed overlaps as stated,
the fingerprint sees every change but the excluded rows', and the oracle's sets are the ones
the seed was built to produce."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import yaml

from tests.conftest import Org, SchemaDB
from tests.schemas.oracle import Expected, rental_expected
from tests.schemas.rental import DATAMAP, PLATFORM_ORG, TOMBSTONE_CUSTOMER
from tests.schemas.rental.seed import RentalSeed, seed_rental
from tests.seeding import fingerprint, primary_key

pytestmark = pytest.mark.integration


async def _seed(rental_db: SchemaDB, filler: int = 0) -> RentalSeed:
    async with rental_db.pool.acquire() as conn:
        return await seed_rental(conn, filler=filler, tag=uuid.uuid4().hex[:8])


async def test_the_schema_loads_with_its_partitions_keys_and_indexed_foreign_keys(
    rental_db: SchemaDB,
) -> None:
    async with rental_db.pool.acquire() as conn:
        kind = await conn.fetchval(
            "SELECT relkind::text FROM pg_class WHERE oid = 'payment'::regclass"
        )
        partitions = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'payment'::regclass ORDER BY 1"
        )
        keys = {
            r["t"]: r["k"]
            for r in await conn.fetch(
                "SELECT conrelid::regclass::text AS t, "
                "array(SELECT attname FROM unnest(conkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n "
                "ORDER BY o) AS k "
                "FROM pg_constraint WHERE contype = 'p' AND conparentid = 0 "
                "AND connamespace = 'public'::regnamespace"
            )
        }
        # Every foreign key's columns lead some index of its table (partitioned ones too).
        unindexed = await conn.fetch(
            "SELECT conrelid::regclass::text AS t, conkey FROM pg_constraint f "
            "WHERE contype = 'f' AND conparentid = 0 "
            "AND connamespace = 'public'::regnamespace AND NOT EXISTS ("
            " SELECT 1 FROM pg_index i WHERE i.indrelid = f.conrelid"
            " AND (i.indkey::int2[])[0:cardinality(f.conkey) - 1] = f.conkey)"
        )
        self_ref = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = 'staff'::regclass AND confrelid = 'staff'::regclass"
        )
        composite_fk = await conn.fetchval(
            "SELECT cardinality(conkey) FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = 'rental'::regclass AND confrelid = 'inventory'::regclass"
        )
        not_null_fk = await conn.fetchval(
            "SELECT attnotnull FROM pg_attribute "
            "WHERE attrelid = 'payment'::regclass AND attname = 'customer_id'"
        )
        org_like = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name ~ '(org|tenant)'"
        )
        tombstone = await conn.fetchrow(
            "SELECT first_name, last_name, email FROM customer WHERE customer_id = 0"
        )
        restoration_log = await conn.fetchval("SELECT to_regclass('lethe.restoration_log')")
    assert kind == "p"
    assert [r[0] for r in partitions] == ["payment_2025", "payment_2026", "payment_other"]
    assert keys["payment"] == ["payment_id", "paid_at"]
    assert keys["inventory"] == ["store_id", "item_no"]
    assert keys["referral"] == ["referrer_id", "referred_id"]
    assert keys["customer"] == ["customer_id"]
    assert unindexed == []
    assert self_ref == 1 and composite_fk == 2 and not_null_fk is True
    assert org_like == []
    assert dict(tombstone) == {"first_name": "deleted", "last_name": "customer", "email": None}
    assert restoration_log is not None  # erasures can run in this database


async def test_the_seed_overlaps_people_and_fills_both_payment_partitions(
    rental_db: SchemaDB,
) -> None:
    s = await _seed(rental_db, filler=25)
    async with rental_db.pool.acquire() as conn:
        addresses = await conn.fetch(
            "SELECT customer_id, address_id FROM customer WHERE store_id = $1 ORDER BY 1", s.store
        )
        by_partition = await conn.fetch(
            "SELECT tableoid::regclass::text AS p, count(*) FROM payment "
            "WHERE staff_id IN ($1, $2) GROUP BY 1 ORDER BY 1",
            s.clerk,
            s.manager,
        )
        a_partitions = await conn.fetch(
            "SELECT DISTINCT tableoid::regclass::text FROM payment WHERE customer_id = $1",
            s.a,
        )
        two_people = await conn.fetchrow(
            "SELECT p.customer_id AS payer, r.customer_id AS renter FROM payment p "
            "JOIN rental r USING (rental_id) "
            "WHERE json_build_array(p.payment_id, p.paid_at)::text = $1",
            s.b_pays_for_a,
        )
        staff_addresses = await conn.fetch(
            "SELECT address_id, manager_id FROM staff WHERE staff_id IN ($1, $2) ORDER BY 1",
            s.clerk,
            s.manager,
        )
        referrals = await conn.fetch(
            "SELECT json_build_array(referrer_id, referred_id)::text FROM referral "
            "WHERE $1 IN (referrer_id, referred_id) OR $2 IN (referrer_id, referred_id)",
            s.a,
            s.b,
        )
    owned = dict(addresses)
    assert owned[s.a] == owned[s.b] == s.shared_address and owned[s.c] == s.c_address
    assert len(owned) == 3 + 25 and len(s.filler) == 25
    assert len({owned[f] for f in s.filler} | {s.shared_address, s.c_address}) == 27
    # 6 payments of A, B and C (day 2..16 after 2025-12-20) and one per filler customer.
    counts = {r["p"]: r["count"] for r in by_partition}
    assert set(counts) == {"payment_2025", "payment_2026"} and sum(counts.values()) == 6 + 25
    assert {r[0] for r in a_partitions} == {"payment_2025", "payment_2026"}
    assert dict(two_people) == {"payer": s.b, "renter": s.a}
    assert {r["address_id"] for r in staff_addresses} == {s.staff_address}
    assert sorted(r["manager_id"] is None for r in staff_addresses) == [False, True]
    assert {r[0] for r in referrals} == set(s.referrals.values())


async def _fingerprint_after(
    conn: asyncpg.Connection, sqls: list[str], exclude: dict[str, set[str]]
) -> dict[str, str]:
    """The fingerprint after the statements, which are then rolled back."""
    tr = conn.transaction()
    await tr.start()
    try:
        for sql in sqls:
            assert (await conn.execute(sql)).split()[-1] != "0", sql
        return await fingerprint(conn, exclude=exclude)
    finally:
        await tr.rollback()


async def test_the_fingerprint_changes_with_any_other_row_and_not_with_excluded_ones(
    rental_db: SchemaDB,
) -> None:
    s = await _seed(rental_db, filler=5)
    pay_key = "json_build_array(payment_id, paid_at)::text"
    exclude = {"payment": {s.a_payments[0]}, "customer": {str(s.a)}}
    async with rental_db.pool.acquire() as conn:
        before = await fingerprint(conn, exclude=exclude)
        assert set(before) >= {"payment", "referral", "inventory", "customer", "address"}
        assert not {"payment_2025", "payment_2026"} & set(before)  # through the parent
        # Excluded rows (a composite key of the partitioned table, a single key) change.
        excluded_changes = [
            f"UPDATE payment SET card_holder = 'X' WHERE {pay_key} = '{s.a_payments[0]}'",
            f"UPDATE customer SET first_name = 'X' WHERE customer_id = {s.a}",
        ]
        assert await _fingerprint_after(conn, excluded_changes, exclude) == before
        # Any other row: an update, a delete, an insert; each shows in its table only.
        for sql, table in (
            (
                f"UPDATE payment SET amount = amount + 1 WHERE {pay_key} = '{s.a_payments[1]}'",
                "payment",
            ),
            (f"UPDATE customer SET email = 'x' WHERE customer_id = {s.c}", "customer"),
            (f"DELETE FROM referral WHERE referrer_id = {s.b} AND referred_id = {s.c}", "referral"),
            (f"INSERT INTO film (title) VALUES ('{uuid.uuid4()}')", "film"),
            (f"UPDATE staff SET manager_id = NULL WHERE staff_id = {s.clerk}", "staff"),
        ):
            after = await _fingerprint_after(conn, [sql], exclude)
            assert {t for t in before if after[t] != before[t]} == {table}, sql
        # A change that leaves the row as it was is no change.
        same = f"UPDATE inventory SET film_id = film_id WHERE store_id = {s.store}"
        assert await _fingerprint_after(conn, [same], exclude) == before
        # Restricted to some tables and rows.
        some = await fingerprint(
            conn, tables=["referral"], where={"referral": f"t.referrer_id = {s.a}"}
        )
        assert list(some) == ["referral"]
        with pytest.raises(ValueError, match="not fingerprinted"):
            await fingerprint(conn, tables=["referral"], exclude={"payment": set()})


async def test_the_oracle_gives_the_sets_the_seed_was_built_for(rental_db: SchemaDB) -> None:
    s = await _seed(rental_db, filler=10)
    async with rental_db.pool.acquire() as conn:
        a = await rental_expected(conn, s.a)
        c = await rental_expected(conn, s.c)
        b = await rental_expected(conn, s.b)
        with pytest.raises(ValueError, match="tombstone"):
            await rental_expected(conn, 0)
    # A: shares the address with B (kept), B paid for one of A's rentals (detached).
    assert a.delete == {
        "customer": {str(s.a)},
        "rental": {str(r) for r in s.a_rentals},
        "referral": {s.referrals["a->b"], s.referrals["b->a"]},
    }
    assert a.mask == {"payment": set(s.a_payments)}
    assert a.detach == {"payment": {s.b_pays_for_a}} and a.detach_columns == {
        "payment": "rental_id"
    }
    assert a.kept_shared == {"address": {str(s.shared_address)}}
    assert a.export == a.erase == a.delete | a.mask
    # C: the only one at their address, which goes with them.
    assert c.delete == {
        "customer": {str(s.c)},
        "rental": {str(s.c_rental)},
        "referral": {s.referrals["b->c"]},
        "address": {str(s.c_address)},
    }
    assert c.mask == {"payment": {s.c_payment}} and c.detach == {} and c.kept_shared == {}
    # B: A's payment for B's rental is A's, detached from B's rental.
    assert b.detach == {"payment": {s.a_payments[2]}}
    assert b.mask == {"payment": {s.b_pays_for_a, s.b_payment}}


async def test_erasing_by_the_oracle_is_possible_and_touches_nobody_else(
    rental_db: SchemaDB,
) -> None:
    """The map is executable on the schema: in the oracle's order of detaching, masking and
    deleting no constraint refuses (NOT NULL payer reassigned to the tombstone, composite and
    partitioned keys), and a fingerprint excluding the oracle's rows is unchanged."""
    s = await _seed(rental_db, filler=10)
    async with rental_db.pool.acquire() as conn:
        e = await rental_expected(conn, s.a)
        before = await fingerprint(conn, exclude=e.all_touched())
        tr = conn.transaction()
        await tr.start()
        try:
            await _erase_by_hand(conn, e)
            after = await fingerprint(conn, exclude=e.all_touched())
            left = await conn.fetchval("SELECT count(*) FROM payment WHERE customer_id = $1", s.a)
            reassigned = await conn.fetchval(
                "SELECT count(*) FROM payment WHERE customer_id = 0 AND rental_id IS NULL "
                "AND card_holder IS NULL AND json_build_array(payment_id, paid_at)::text "
                "= ANY($1::text[])",
                s.a_payments,
            )
            shared = await conn.fetchval(
                "SELECT count(*) FROM address WHERE address_id = $1", s.shared_address
            )
        finally:
            await tr.rollback()
    assert after == before
    assert left == 0 and reassigned == 3 and shared == 1


async def _erase_by_hand(conn: asyncpg.Connection, e: Expected) -> None:
    pay_key = "json_build_array(payment_id, paid_at)::text"
    await conn.execute(
        f"UPDATE payment SET rental_id = NULL WHERE {pay_key} = ANY($1::text[])",
        sorted(e.detach.get("payment", ())),
    )
    await conn.execute(
        "UPDATE payment SET customer_id = 0, rental_id = NULL, card_holder = NULL "
        f"WHERE {pay_key} = ANY($1::text[])",
        sorted(e.mask.get("payment", ())),
    )
    await conn.execute(
        "DELETE FROM referral WHERE json_build_array(referrer_id, referred_id)::text "
        "= ANY($1::text[])",
        sorted(e.delete.get("referral", ())),
    )
    for table, pk in (
        ("rental", "rental_id"),
        ("customer", "customer_id"),
        ("address", "address_id"),
    ):
        await conn.execute(
            f"DELETE FROM {table} WHERE {pk}::text = ANY($1::text[])",
            sorted(e.delete.get(table, ())),
        )


async def test_the_data_map_names_the_live_keys_and_foreign_keys(rental_db: SchemaDB) -> None:
    """Read as plain YAML (independent of the map parser): every table's primary key is the
    live one, every relation is a live foreign key in the direction it says, every mask names
    a live column, and the reassign target is the tombstone row."""
    dm = yaml.safe_load(DATAMAP.read_text())
    assert dm["version"] == 2 and dm["platform_org"] == PLATFORM_ORG
    assert "org_column" not in dm["subject"]
    async with rental_db.pool.acquire() as conn:
        fks = {
            (r["src"], tuple(r["cols"]), r["dst"])
            for r in await conn.fetch(
                "SELECT conrelid::regclass::text AS src, confrelid::regclass::text AS dst, "
                "array(SELECT attname FROM unnest(conkey) WITH ORDINALITY k(n, o) "
                "JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n "
                "ORDER BY o) AS cols "
                "FROM pg_constraint WHERE contype = 'f' AND conparentid = 0"
            )
        }
        for table, spec in dm["tables"].items():
            pk = spec["primary_key"]
            assert await primary_key(conn, table) == (pk if isinstance(pk, list) else [pk])
            relations = spec.get("parents", []) + spec.get("referenced_by", [])
            assert len(relations) == 1 or all("kind" in r for r in relations), table
            for rel in spec.get("parents", []):
                cols = rel["column"] if isinstance(rel["column"], list) else [rel["column"]]
                assert (table, tuple(cols), rel["table"]) in fks, (table, rel)
            for rel in spec.get("referenced_by", []):
                cols = rel["column"] if isinstance(rel["column"], list) else [rel["column"]]
                assert (rel["table"], tuple(cols), table) in fks, (table, rel)
            for column in spec.get("mask", {}):
                assert await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns "
                    "WHERE table_name = $1 AND column_name = $2",
                    table,
                    column,
                ), (table, column)
        tombstone = await conn.fetchval(
            "SELECT count(*) FROM customer WHERE customer_id = $1", TOMBSTONE_CUSTOMER
        )
    assert dm["tables"]["payment"]["mask"]["customer_id"] == f"reassign:{TOMBSTONE_CUSTOMER}"
    assert tombstone == 1
    self_relations = [r for r in dm["tables"]["staff"]["parents"] if r["table"] == "staff"]
    assert [r["kind"] for r in self_relations] == ["reference"]


async def test_the_platform_org_is_a_lethe_org(rental_org: Org, lethe_db: asyncpg.Pool) -> None:
    name = await lethe_db.fetchval(
        "SELECT name FROM lethe.organisations WHERE id = $1", rental_org.id
    )
    assert rental_org.id == PLATFORM_ORG and name
