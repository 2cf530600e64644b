"""Deterministic rows of one shop, at ages relative to `now`, with what each test looks at.

Orders (days old): `old` 400 and 500 (their label used by nobody else), `mixed_old` 400
(its label shared with the fresh `mixed_new`, 10), `complained` 600 (a complaint holds it),
`fresh` 30. Two lines per order. An invoice for `old[0]` and for `fresh`. Notes: on `old[0]`
(400), on `mixed_new` (100 and 10). Visits: anonymous 40 days old (3), anonymous 5 days old
(2), a member's 40 days old (2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg


@dataclass(frozen=True)
class ShopSeed:
    shop: int
    old: list[int]
    mixed_old: int
    mixed_new: int
    complained: int
    fresh: int
    old_label: int
    mixed_label: int
    old_invoice: int
    fresh_invoice: int


async def seed_shop(conn: asyncpg.Connection, shop: int, now: datetime) -> ShopSeed:
    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    await conn.execute("INSERT INTO shop (shop_id, name) VALUES ($1, $2)", shop, f"Shop {shop}")
    member = await conn.fetchval(
        "INSERT INTO member (shop_id, email) VALUES ($1, $2) RETURNING member_id",
        shop,
        f"buyer{shop}@example.com",
    )

    async def label() -> int:
        v: int = await conn.fetchval(
            "INSERT INTO label (address) VALUES ('1 Road') RETURNING label_id"
        )
        return v

    async def order(days: int, label_id: int | None) -> int:
        oid: int = await conn.fetchval(
            "INSERT INTO orders (shop_id, member_id, label_id, placed_at) "
            "VALUES ($1, $2, $3, $4) RETURNING order_id",
            shop,
            member,
            label_id,
            ago(days),
        )
        await conn.execute(
            "INSERT INTO order_line (order_id, line_no, item) VALUES ($1, 1, 'a'), ($1, 2, 'b')",
            oid,
        )
        return oid

    old_label, mixed_label = await label(), await label()
    old = [await order(400, old_label), await order(500, old_label)]
    mixed_old = await order(400, mixed_label)
    mixed_new = await order(10, mixed_label)
    complained = await order(600, None)
    fresh = await order(30, await label())
    await conn.execute(
        "INSERT INTO complaint (order_id, body) VALUES ($1, 'never arrived')", complained
    )
    invoices = [
        await conn.fetchval(
            "INSERT INTO invoice (shop_id, order_id, amount) VALUES ($1, $2, 10) "
            "RETURNING invoice_id",
            shop,
            o,
        )
        for o in (old[0], fresh)
    ]
    for o, days in ((old[0], 400), (mixed_new, 100), (mixed_new, 10)):
        await conn.execute(
            "INSERT INTO order_note (order_id, written_at, body) VALUES ($1, $2, 'note')",
            o,
            ago(days),
        )
    visits = [(None, 40)] * 3 + [(None, 5)] * 2 + [(member, 40)] * 2
    await conn.executemany(
        "INSERT INTO visit (shop_id, visit_no, member_id, seen_at) VALUES ($1, $2, $3, $4)",
        [(shop, i + 1, m, ago(d)) for i, (m, d) in enumerate(visits)],
    )
    return ShopSeed(
        shop, old, mixed_old, mixed_new, complained, fresh, old_label, mixed_label, *invoices
    )


async def fingerprint(conn: asyncpg.Connection, shop: int) -> dict[str, str]:
    """md5 of every row of the shop, per table (rows reached through their order or label)."""
    sql = {
        "member": "SELECT m::text FROM member m WHERE shop_id = $1",
        "orders": "SELECT o::text FROM orders o WHERE shop_id = $1",
        "order_line": "SELECT l::text FROM order_line l JOIN orders o USING (order_id) "
        "WHERE o.shop_id = $1",
        "order_note": "SELECT n::text FROM order_note n JOIN orders o USING (order_id) "
        "WHERE o.shop_id = $1",
        "label": "SELECT l::text FROM label l WHERE l.label_id IN "
        "(SELECT label_id FROM orders WHERE shop_id = $1)",
        "invoice": "SELECT i::text FROM invoice i WHERE shop_id = $1",
        "complaint": "SELECT c::text FROM complaint c JOIN orders o USING (order_id) "
        "WHERE o.shop_id = $1",
        "visit": "SELECT v::text FROM visit v WHERE shop_id = $1",
    }
    out = {}
    for table, q in sql.items():
        out[table] = await conn.fetchval(
            f"SELECT md5(coalesce(string_agg(t, '|' ORDER BY t), '')) FROM ({q}) AS x(t)", shop
        )
    return out
