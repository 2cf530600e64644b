"""Deterministic rental data with overlap between people, for the correctness tests.

Customers A, B and C of a store of their own (one per seed, so seeds can repeat in one
database): A and B share an address, C has their own, the two staff members (a clerk and
their manager) live at a third, the store at a fourth. A rents three copies, B one, C one.
Payments: A for two of A's rentals (one in the 2025 partition, one in 2026), B for A's third
rental (a row linked to two people), A for B's rental, B and C for their own. Referrals: A
brought B, B brought A, B brought C. Plus `filler` customers with an address, a rental and a
payment each, for volume. Same arguments, same rows (up to the serial ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

BASE = datetime(2025, 12, 20, 10, 0, tzinfo=UTC)  # rentals straddle the payment partitions


@dataclass(frozen=True)
class RentalSeed:
    """Ids of the seeded rows; composite keys as key text (`'[1, 7]'`, see fingerprint)."""

    store: int
    a: int
    b: int
    c: int
    shared_address: int  # A's and B's
    c_address: int
    staff_address: int  # the clerk's and the manager's
    store_address: int
    clerk: int
    manager: int
    a_rentals: list[int]
    b_rental: int
    c_rental: int
    a_payments: list[str]  # paid by A: two for A's rentals, one for B's rental
    b_pays_for_a: str  # paid by B for A's third rental
    b_payment: str  # B for B's own rental
    c_payment: str
    referrals: dict[str, str]  # "a->b", "b->a", "b->c" -> key text
    filler: list[int] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)  # "a", "b", "c" -> email


async def _address(conn: asyncpg.Connection, street: str, city: str) -> int:
    addr_id: int = await conn.fetchval(
        "INSERT INTO address (address, district, city, postal_code, phone) "
        "VALUES ($1, 'District', $2, '1000', '555-0100') RETURNING address_id",
        street,
        city,
    )
    return addr_id


async def _customer(
    conn: asyncpg.Connection, store: int, first: str, last: str, email: str, address: int
) -> int:
    cust_id: int = await conn.fetchval(
        "INSERT INTO customer (store_id, first_name, last_name, email, address_id, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING customer_id",
        store,
        first,
        last,
        email,
        address,
        BASE - timedelta(days=365),
    )
    return cust_id


async def _rental(
    conn: asyncpg.Connection, store: int, item: int, customer: int, staff: int, day: int
) -> int:
    rental_id: int = await conn.fetchval(
        "INSERT INTO rental (rented_at, store_id, item_no, customer_id, staff_id, returned_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING rental_id",
        BASE + timedelta(days=day),
        store,
        item,
        customer,
        staff,
        BASE + timedelta(days=day + 3),
    )
    return rental_id


async def _payment(
    conn: asyncpg.Connection, customer: int, rental: int, staff: int, day: int, holder: str
) -> str:
    key: str = await conn.fetchval(
        "INSERT INTO payment (paid_at, customer_id, rental_id, staff_id, amount, card_holder) "
        "VALUES ($1, $2, $3, $4, 4.99, $5) "
        "RETURNING json_build_array(payment_id, paid_at)::text",
        BASE + timedelta(days=day, hours=1),
        customer,
        rental,
        staff,
        holder,
    )
    return key


async def _referral(conn: asyncpg.Connection, referrer: int, referred: int, day: int) -> str:
    key: str = await conn.fetchval(
        "INSERT INTO referral (referrer_id, referred_id, referred_at) VALUES ($1, $2, $3) "
        "RETURNING json_build_array(referrer_id, referred_id)::text",
        referrer,
        referred,
        BASE - timedelta(days=300 - day),
    )
    return key


async def _reserve(conn: asyncpg.Connection, sequence: str, n: int) -> list[int]:
    rows = await conn.fetch(f"SELECT nextval('{sequence}') FROM generate_series(1, $1)", n)
    return [r[0] for r in rows]


async def _filler(
    conn: asyncpg.Connection, store: int, clerk: int, n: int, suffix: str
) -> list[int]:
    """n customers with an address, a rental and a payment each, loaded with COPY."""
    if not n:
        return []
    addresses = await _reserve(conn, "address_address_id_seq", n)
    customers = await _reserve(conn, "customer_customer_id_seq", n)
    rentals = await _reserve(conn, "rental_rental_id_seq", n)
    payments = await _reserve(conn, "payment_payment_id_seq", n)
    days = [timedelta(days=i % 40) for i in range(n)]
    await conn.copy_records_to_table(
        "address",
        records=[
            (a, f"{100 + i} Filler Street", "District", "Elsewhere", "1000", "555-0199")
            for i, a in enumerate(addresses)
        ],
        columns=["address_id", "address", "district", "city", "postal_code", "phone"],
    )
    await conn.copy_records_to_table(
        "customer",
        records=[
            (c, store, f"Filler{i}", "Customer", f"f{i}{suffix}", a, BASE - timedelta(days=365))
            for i, (c, a) in enumerate(zip(customers, addresses, strict=True))
        ],
        columns=[
            "customer_id",
            "store_id",
            "first_name",
            "last_name",
            "email",
            "address_id",
            "created_at",
        ],
    )
    await conn.copy_records_to_table(
        "rental",
        records=[
            (r, BASE + d, store, 7 + i, c, clerk, BASE + d + timedelta(days=3))
            for i, (r, c, d) in enumerate(zip(rentals, customers, days, strict=True))
        ],
        columns=[
            "rental_id",
            "rented_at",
            "store_id",
            "item_no",
            "customer_id",
            "staff_id",
            "returned_at",
        ],
    )
    await conn.copy_records_to_table(
        "payment",
        records=[
            (p, BASE + d + timedelta(hours=1), c, r, clerk, Decimal("4.99"), f"FILLER {i}")
            for i, (p, c, r, d) in enumerate(zip(payments, customers, rentals, days, strict=True))
        ],
        columns=[
            "payment_id",
            "paid_at",
            "customer_id",
            "rental_id",
            "staff_id",
            "amount",
            "card_holder",
        ],
    )
    return customers


async def seed_rental(conn: asyncpg.Connection, *, filler: int = 0, tag: str = "") -> RentalSeed:
    """Seed one store's worth of overlapping data (in one transaction); `tag` goes into the
    emails so that several seeds in one database have distinct identities."""
    async with conn.transaction():
        return await _seed(conn, filler, tag)


async def _seed(conn: asyncpg.Connection, filler: int, tag: str) -> RentalSeed:
    suffix = f"{tag}@rental.example" if tag else "@rental.example"
    store_address = await _address(conn, "2 Market Street", "Lethe")
    store: int = await conn.fetchval(
        "INSERT INTO store (name, address_id) VALUES ($1, $2) RETURNING store_id",
        f"Store {tag or 'one'}",
        store_address,
    )
    films = [
        await conn.fetchval(
            "INSERT INTO film (title, rental_rate) VALUES ($1, 2.99) RETURNING film_id", title
        )
        for title in ("Academy Dinosaur", "Ace Goldfinger", "Adaptation Holes")
    ]
    items = 6 + filler
    await conn.copy_records_to_table(
        "inventory",
        records=[(store, n, films[n % len(films)]) for n in range(1, items + 1)],
        columns=["store_id", "item_no", "film_id"],
    )
    staff_address = await _address(conn, "3 Staff Lane", "Lethe")
    manager: int = await conn.fetchval(
        "INSERT INTO staff (first_name, last_name, email, store_id, address_id) "
        "VALUES ('Mike', 'Hillyer', $1, $2, $3) RETURNING staff_id",
        f"mike.hillyer{suffix}",
        store,
        staff_address,
    )
    clerk: int = await conn.fetchval(
        "INSERT INTO staff (first_name, last_name, email, store_id, address_id, manager_id) "
        "VALUES ('Jon', 'Stephens', $1, $2, $3, $4) RETURNING staff_id",
        f"jon.stephens{suffix}",
        store,
        staff_address,
        manager,
    )
    shared_address = await _address(conn, "47 MySakila Drive", "Lethe")
    c_address = await _address(conn, "28 MySQL Boulevard", "Lethe")
    emails = {p: f"{p}.customer{suffix}" for p in ("a", "b", "c")}
    a = await _customer(conn, store, "Mary", "Smith", emails["a"], shared_address)
    b = await _customer(conn, store, "Patricia", "Johnson", emails["b"], shared_address)
    c = await _customer(conn, store, "Linda", "Williams", emails["c"], c_address)

    a_rentals = [await _rental(conn, store, n, a, clerk, day=n * 5) for n in (1, 2, 3)]
    b_rental = await _rental(conn, store, 4, b, clerk, day=2)
    c_rental = await _rental(conn, store, 5, c, manager, day=4)
    a_payments = [
        await _payment(conn, a, a_rentals[0], clerk, 5, "MARY SMITH"),  # 2025 partition
        await _payment(conn, a, a_rentals[1], clerk, 15, "MARY SMITH"),  # 2026 partition
        await _payment(conn, a, b_rental, clerk, 3, "MARY SMITH"),  # A pays for B's rental
    ]
    b_pays_for_a = await _payment(conn, b, a_rentals[2], clerk, 16, "PATRICIA JOHNSON")
    b_payment = await _payment(conn, b, b_rental, clerk, 2, "PATRICIA JOHNSON")
    c_payment = await _payment(conn, c, c_rental, manager, 4, "LINDA WILLIAMS")
    referrals = {
        "a->b": await _referral(conn, a, b, 1),
        "b->a": await _referral(conn, b, a, 2),
        "b->c": await _referral(conn, b, c, 3),
    }

    filler_ids = await _filler(conn, store, clerk, filler, suffix)
    return RentalSeed(
        store=store,
        a=a,
        b=b,
        c=c,
        shared_address=shared_address,
        c_address=c_address,
        staff_address=staff_address,
        store_address=store_address,
        clerk=clerk,
        manager=manager,
        a_rentals=a_rentals,
        b_rental=b_rental,
        c_rental=c_rental,
        a_payments=a_payments,
        b_pays_for_a=b_pays_for_a,
        b_payment=b_payment,
        c_payment=c_payment,
        referrals=referrals,
        filler=filler_ids,
        emails=emails,
    )
