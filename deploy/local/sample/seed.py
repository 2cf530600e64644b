"""Sample platform data, loaded with COPY: used by `make demo`, the tests and the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from shared.settings import LetheSettings
from shared.storage import ensure_bucket, s3_client

SCHEMA = Path(__file__).with_name("platform.sql")
_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


@dataclass
class SeededUser:
    id: int
    email: str
    conversations: int = 0
    messages: int = 0
    payments: int = 0
    signups: int = 0
    object_keys: list[str] = field(default_factory=list)


@dataclass
class SeededOrg:
    org_id: str
    users: list[SeededUser]

    def rows_of(self, user: SeededUser) -> int:
        return (
            1
            + user.conversations
            + user.messages
            + len(user.object_keys)
            + user.payments
            + user.signups
        )


async def apply_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA.read_text())
    finally:
        await conn.close()


async def _reserve_ids(conn: asyncpg.Connection, sequence: str, n: int) -> list[int]:
    """Take n ids from the sequence, so concurrent seeders never collide."""
    rows = await conn.fetch(f"SELECT nextval('{sequence}') FROM generate_series(1, $1)", n)
    return [r[0] for r in rows]


def _age(m: int, history: bool) -> timedelta:
    return timedelta(weeks=m) if history else timedelta(minutes=m)


async def _seed_history(conn: asyncpg.Connection, org_id: str, now: datetime) -> list[str]:
    """Logs, metrics and anonymous uploads of every age; returns the uploads' object keys."""
    await conn.copy_records_to_table(
        "activity_logs",
        records=[(org_id, f"event {d}", now - timedelta(days=d, hours=1)) for d in range(120)],
        columns=["org_id", "event", "created_at"],
    )
    await conn.copy_records_to_table(
        "metrics_samples",
        records=[
            (org_id, "active_users", float(d), now - timedelta(days=d, hours=1))
            for d in range(0, 500, 5)
        ],
        columns=["org_id", "name", "value", "recorded_at"],
    )
    keys = [f"anonymous/{org_id}/{d}.bin" for d in range(20)]
    await conn.copy_records_to_table(
        "anonymous_uploads",
        records=[
            (org_id, f"session-{d}", k, now - timedelta(days=d, hours=1))
            for d, k in enumerate(keys)
        ],
        columns=["org_id", "session_id", "s3_key", "created_at"],
    )
    return keys


async def seed_org(
    conn: asyncpg.Connection,
    s3: Any,
    bucket: str,
    org_id: str,
    *,
    users: int,
    conversations_per_user: int,
    messages_per_conversation: int,
    media_every: int,
    heavy_user_factor: int = 1,
    payments_per_user: int = 2,
    newsletter: bool = True,
    history: bool = False,
) -> SeededOrg:
    """One org; user 0 gets `heavy_user_factor` times the conversations (the demo subject).

    Every user also gets `payments_per_user` payments (masked on erasure, not deleted) and,
    with `newsletter`, a newsletter sign-up under their email (matched by identity).
    With `history`, data of every age for the retention policies: message m of a
    conversation is m weeks old, plus activity logs (0..119 days), metrics (0..499 days) and
    anonymous uploads with S3 objects (0..19 days).
    """
    rng = random.Random(org_id)
    now = datetime.now(UTC)
    seeded = await _seed_users(conn, org_id, users)
    counts = [
        conversations_per_user * (heavy_user_factor if i == 0 else 1) for i in range(len(seeded))
    ]
    conv_owner = await _seed_conversations(conn, org_id, seeded, counts, now)
    await _seed_messages(
        conn, org_id, seeded, conv_owner, messages_per_conversation, media_every, history, rng, now
    )
    if payments_per_user:
        await _seed_payments(conn, org_id, seeded, payments_per_user)
    if newsletter:
        await _seed_signups(conn, org_id, seeded)
    anonymous_keys = await _seed_history(conn, org_id, now) if history else []
    await ensure_bucket(s3, bucket)
    await _put_objects(s3, bucket, [k for u in seeded for k in u.object_keys])
    await _put_objects(s3, bucket, anonymous_keys)
    return SeededOrg(org_id, seeded)


async def _seed_users(conn: asyncpg.Connection, org_id: str, users: int) -> list[SeededUser]:
    """The organisation row and its users (email, name, external id by index)."""
    await conn.execute(
        "INSERT INTO organisations (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        org_id,
        f"Org {org_id}",
    )
    user_rows = await conn.fetch(
        "INSERT INTO users (org_id, email, name, external_id) "
        "SELECT $1, 'user' || i || '@' || $1 || '.example', 'User ' || i, $1 || '-ext-' || i "
        "FROM generate_series(0, $2 - 1) AS i RETURNING id, email",
        org_id,
        users,
    )
    return [SeededUser(r["id"], r["email"]) for r in user_rows]


async def _seed_conversations(
    conn: asyncpg.Connection,
    org_id: str,
    seeded: list[SeededUser],
    counts: list[int],
    now: datetime,
) -> list[tuple[int, int]]:
    """`counts[i]` conversations of user i; returns (conversation id, user index) of each."""
    conv_ids = iter(await _reserve_ids(conn, "conversations_id_seq", sum(counts)))
    conv_records, conv_owner = [], []
    for u_index, (u, n) in enumerate(zip(seeded, counts, strict=True)):
        for _ in range(n):
            conv_id = next(conv_ids)
            conv_records.append((conv_id, org_id, u.id, "conversation", now))
            conv_owner.append((conv_id, u_index))
        u.conversations = n
    await conn.copy_records_to_table(
        "conversations",
        records=conv_records,
        columns=["id", "org_id", "user_id", "title", "created_at"],
    )
    return conv_owner


async def _seed_messages(
    conn: asyncpg.Connection,
    org_id: str,
    seeded: list[SeededUser],
    conv_owner: list[tuple[int, int]],
    per_conversation: int,
    media_every: int,
    history: bool,
    rng: random.Random,
    now: datetime,
) -> None:
    """Messages of every conversation, by its owner; every `media_every`-th id has a media
    object (its S3 key noted on the user, uploaded later)."""
    msg_ids = iter(await _reserve_ids(conn, "messages_id_seq", len(conv_owner) * per_conversation))
    msg_records, media_records = [], []
    for conv_id, u_index in conv_owner:
        for m in range(per_conversation):
            msg_id = next(msg_ids)
            body = " ".join(rng.choice(_WORDS) for _ in range(12))
            msg_records.append((msg_id, conv_id, seeded[u_index].id, body, now - _age(m, history)))
            seeded[u_index].messages += 1
            if media_every and msg_id % media_every == 0:
                key = f"media/{org_id}/{msg_id}.txt"
                media_records.append((msg_id, key, "text/plain", len(body)))
                seeded[u_index].object_keys.append(key)
    await conn.copy_records_to_table(
        "messages",
        records=msg_records,
        columns=["id", "conversation_id", "author_id", "body", "created_at"],
    )
    await conn.copy_records_to_table(
        "media_objects",
        records=media_records,
        columns=["message_id", "s3_key", "content_type", "size_bytes"],
    )


async def _seed_payments(
    conn: asyncpg.Connection, org_id: str, seeded: list[SeededUser], per_user: int
) -> None:
    await conn.execute(
        "INSERT INTO payments (org_id, user_id, billing_name, billing_email, card_last4, "
        "amount_cents) SELECT $1, u.id, 'Billing ' || u.email, u.email, "
        "lpad((u.id % 10000)::text, 4, '0'), 100 * p "
        "FROM unnest($2::bigint[], $3::text[]) AS u(id, email), generate_series(1, $4) AS p",
        org_id,
        [u.id for u in seeded],
        [u.email for u in seeded],
        per_user,
    )
    for u in seeded:
        u.payments = per_user


async def _seed_signups(conn: asyncpg.Connection, org_id: str, seeded: list[SeededUser]) -> None:
    await conn.execute(
        "INSERT INTO newsletter_signups (org_id, email, topics) "
        "SELECT $1, e, '{news,offers}' FROM unnest($2::text[]) AS e",
        org_id,
        [u.email for u in seeded],
    )
    for u in seeded:
        u.signups = 1


async def _put_objects(s3: Any, bucket: str, keys: list[str]) -> None:
    """A small object per key, 16 uploads at a time."""
    sem = asyncio.Semaphore(16)

    async def put(key: str) -> None:
        async with sem:
            await s3.put_object(Bucket=bucket, Key=key, Body=b"sample media " + key.encode())

    await asyncio.gather(*(put(k) for k in keys))


async def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--org", default="acme")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--conversations", type=int, default=5)
    ap.add_argument("--messages", type=int, default=30)
    ap.add_argument("--media-every", type=int, default=200)
    ap.add_argument("--heavy", type=int, default=40)
    args = ap.parse_args()
    settings = LetheSettings()
    await apply_schema(settings.platform_database_url)
    conn = await asyncpg.connect(settings.platform_database_url)
    try:
        if await conn.fetchval("SELECT count(*) FROM users WHERE org_id = $1", args.org):
            print(f"org {args.org} already has sample data")
            return
        async with s3_client(settings) as s3:
            org = await seed_org(
                conn,
                s3,
                settings.platform_bucket,
                args.org,
                users=args.users,
                conversations_per_user=args.conversations,
                messages_per_conversation=args.messages,
                media_every=args.media_every,
                heavy_user_factor=args.heavy,
                history=True,
            )
        msgs = sum(u.messages for u in org.users)
        print(
            f"org {args.org}: {len(org.users)} users, {msgs} messages; "
            f"demo subject {org.users[0].email} owns {org.rows_of(org.users[0])} rows"
        )
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(_main())
