"""Test data for the sample platform, and fingerprints of a platform database.

- `seed_sample`: one org of the sample platform with the sizes the e2e tests use (the
  `_seed` helper copied across tests/e2e; they can call this one).
- `seed_overlap`: two orgs whose data overlaps the ways real data does (the same email in
  both, other people's messages in the subject's conversation and the subject's in theirs,
  payments, newsletter sign-ups, org-level logs, metrics and anonymous uploads).
- `fingerprint`: md5 of every row per table, to check that nobody else was touched.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from deploy.local.sample.seed import SeededOrg, seed_org
from shared.storage import ensure_bucket

PLATFORM_BUCKET = "lethe-platform"

# ----------------------------------------------------------------------------- fingerprint


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def primary_key(conn: asyncpg.Connection, table: str, schema: str = "public") -> list[str]:
    """The primary key's columns in key order (partitioned tables too); [] without one."""
    rows = await conn.fetch(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY k.ord",
        schema,
        table,
    )
    return [r[0] for r in rows]


def key_text_sql(columns: list[str], alias: str = "t") -> str:
    """SQL for a row's key as text: `pk::text` for one column, the JSON array text of the
    columns for a composite key (`'[1, 7]'`, `'[3, "2026-01-04T11:00:00+00:00"]'`)."""
    cols = [f"{alias}.{_ident(c)}" for c in columns]
    if len(cols) == 1:
        return f"{cols[0]}::text"
    return f"json_build_array({', '.join(cols)})::text"


async def user_tables(conn: asyncpg.Connection, schema: str = "public") -> list[str]:
    """Tables of the schema, partitioned tables as one (their partitions are not listed)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname",
        schema,
    )
    return [r[0] for r in rows]


async def fingerprint(
    conn: asyncpg.Connection,
    *,
    exclude: dict[str, set[str]] | None = None,
    tables: list[str] | None = None,
    where: dict[str, str] | None = None,
    schema: str = "public",
) -> dict[str, str]:
    """Table -> md5 of its rows (`row_to_json`, ordered by primary key), leaving out the rows
    whose key text (see `key_text_sql`) is in `exclude[table]` and, per table, the rows not
    matching the SQL predicate `where[table]` (on alias `t`).

    Compare a fingerprint taken before an operation with one taken after, excluding the rows
    the operation may change: any other row inserted, changed or deleted changes its table's
    digest. Default: every table of the schema (a partitioned table through its parent).
    """
    exclude = exclude or {}
    where = where or {}
    names = tables if tables is not None else await user_tables(conn, schema)
    unknown = (set(exclude) | set(where)) - set(names)
    if unknown:
        raise ValueError(f"fingerprint: tables {sorted(unknown)} are not fingerprinted")
    out: dict[str, str] = {}
    for table in names:
        pk = await primary_key(conn, table, schema)
        if not pk and exclude.get(table):
            raise ValueError(f"fingerprint: {table} has no primary key to exclude rows by")
        order = ", ".join(f"t.{_ident(c)}" for c in pk) if pk else "row_to_json(t)::text"
        conditions = []
        if pk:
            conditions.append(f"NOT ({key_text_sql(pk)} = ANY($1::text[]))")
        if table in where:
            conditions.append(f"({where[table]})")
        sql = (
            f"SELECT md5(coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY {order}), ''))"
            f" FROM {_ident(schema)}.{_ident(table)} AS t"
            + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        )
        args = [sorted(exclude.get(table, ()))] if pk else []
        out[table] = await conn.fetchval(sql, *args)
    return out


# ----------------------------------------------------------------------- the sample platform


async def seed_sample(
    platform_db: asyncpg.Pool,
    s3: Any,
    org_id: str,
    *,
    heavy: int = 1,
    bucket: str = PLATFORM_BUCKET,
    **sizes: Any,
) -> SeededOrg:
    """One org of the sample platform: 3 users with 4 conversations of 25 messages, a media
    object every 50th message, user 0 with `heavy` times the conversations; `sizes` override
    any of `seed_org`'s keyword arguments."""
    kwargs: dict[str, Any] = {
        "users": 3,
        "conversations_per_user": 4,
        "messages_per_conversation": 25,
        "media_every": 50,
        "heavy_user_factor": heavy,
    } | sizes
    async with platform_db.acquire() as conn:
        return await seed_org(conn, s3, bucket, org_id, **kwargs)


@dataclass(frozen=True)
class OverlapSeed:
    """What `seed_overlap` made. Ann (org1) is the subject the tests erase or export."""

    org1: str
    org2: str
    email: str  # Ann's, in org1 and in org2 (two users), signed up to both newsletters
    phone: str  # Ann's (org1)
    external_id: str  # Ann's (org1)
    users: dict[str, int]  # "ann", "bob", "carol" (org1); "ann2", "dan" (org2)
    conversations: dict[str, int]  # "ann", "bob", "carol", "ann2"
    messages: dict[str, list[int]]  # "<author> in <conversation owner>" -> ids
    media: dict[int, str]  # message id -> S3 key of its media object
    payments: dict[str, list[int]]  # user -> payment ids
    signups: dict[str, int]  # "ann", "bob", "carol", "reader" (no user), "ann2" -> id
    history: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # org -> table -> ids
    anonymous_keys: dict[str, list[str]] = field(default_factory=dict)  # org -> S3 keys

    @property
    def bob_in_ann_conversation(self) -> int:
        return self.messages["bob in ann"][0]

    @property
    def ann_in_bob_conversation(self) -> int:
        return self.messages["ann in bob"][0]


async def _insert_id(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    value: int = await conn.fetchval(sql + " RETURNING id", *args)
    return value


async def seed_overlap(
    conn: asyncpg.Connection,
    org1: str,
    org2: str,
    *,
    s3: Any = None,
    bucket: str = PLATFORM_BUCKET,
) -> OverlapSeed:
    """Two orgs of the sample platform whose data overlaps (in one transaction):

    org1: Ann (the subject), Bob, Carol. org2: Ann2 (Ann's email, another person to the
    platform) and Dan. Ann's conversation has 3 messages of Ann and 1 of Bob (with a media
    object); Bob's conversation has 2 of Bob and 1 of Ann (with media); Ann has a media
    object on one of her messages in her conversation; Carol's conversation is hers alone;
    Ann2's has a message of Dan. Payments: Ann 2, Bob 1, Carol 1, Ann2 1. Newsletter sign-ups
    with Ann's email in both orgs, Bob's, Carol's, and a reader without an account in org1.
    Each org has activity logs, metrics samples and anonymous uploads. With `s3`, the media
    and the uploads' objects are put in `bucket` (created if missing).
    """
    async with conn.transaction():
        seed = await _overlap(conn, org1, org2)
    if s3 is not None:
        await ensure_bucket(s3, bucket)
        keys = list(seed.media.values()) + [k for ks in seed.anonymous_keys.values() for k in ks]
        await asyncio.gather(
            *(s3.put_object(Bucket=bucket, Key=k, Body=b"overlap " + k.encode()) for k in keys)
        )
    return seed


async def _overlap(conn: asyncpg.Connection, org1: str, org2: str) -> OverlapSeed:
    now = datetime.now(UTC).replace(microsecond=0)
    tag = uuid.uuid4().hex[:8]
    email = f"ann.{tag}@overlap.example"
    phone, external_id = f"+44 7700 {tag[:6]}", f"ext-ann-{tag}"
    for org in (org1, org2):
        await conn.execute(
            "INSERT INTO organisations (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            org,
            f"Org {org}",
        )

    async def user(org: str, name: str, mail: str, ph: str | None, ext: str | None) -> int:
        return await _insert_id(
            conn,
            "INSERT INTO users (org_id, email, name, phone, external_id, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            org,
            mail,
            name,
            ph,
            ext,
            now - timedelta(days=30),
        )

    users = {
        "ann": await user(org1, "Ann Example", email, phone, external_id),
        "bob": await user(
            org1, "Bob Other", f"bob.{tag}@overlap.example", f"+44 7701 {tag[:6]}", None
        ),
        "carol": await user(org1, "Carol Third", f"carol.{tag}@overlap.example", None, None),
        "ann2": await user(org2, "Ann Namesake", email, f"+44 7702 {tag[:6]}", f"ext-ann2-{tag}"),
        "dan": await user(org2, "Dan Fourth", f"dan.{tag}@overlap.example", None, None),
    }
    org_of = {"ann": org1, "bob": org1, "carol": org1, "ann2": org2, "dan": org2}
    conversations = {
        owner: await _insert_id(
            conn,
            "INSERT INTO conversations (org_id, user_id, title, created_at) "
            "VALUES ($1, $2, $3, $4)",
            org_of[owner],
            users[owner],
            f"{owner}'s conversation",
            now - timedelta(days=20),
        )
        for owner in ("ann", "bob", "carol", "ann2")
    }
    messages: dict[str, list[int]] = {}
    media: dict[int, str] = {}
    plan = [  # (author, conversation owner, messages, indexes of those with a media object)
        ("ann", "ann", 3, {0}),
        ("bob", "ann", 1, {0}),
        ("bob", "bob", 2, set()),
        ("ann", "bob", 1, {0}),
        ("carol", "carol", 2, {1}),
        ("ann2", "ann2", 2, {0}),
        ("dan", "ann2", 1, set()),
    ]
    n = 0
    for author, owner, count, with_media in plan:
        ids = messages.setdefault(f"{author} in {owner}", [])
        for i in range(count):
            n += 1
            msg = await _insert_id(
                conn,
                "INSERT INTO messages (conversation_id, author_id, body, created_at) "
                "VALUES ($1, $2, $3, $4)",
                conversations[owner],
                users[author],
                f"{author} writes to {owner}'s conversation, message {i}",
                now - timedelta(days=10, minutes=n),
            )
            ids.append(msg)
            if i in with_media:
                key = f"media/{org_of[owner]}/overlap-{msg}.txt"
                await conn.execute(
                    "INSERT INTO media_objects (message_id, s3_key, content_type, size_bytes) "
                    "VALUES ($1, $2, 'text/plain', 42)",
                    msg,
                    key,
                )
                media[msg] = key
    payments: dict[str, list[int]] = {}
    user_emails = {
        name: await conn.fetchval("SELECT email FROM users WHERE id = $1", uid)
        for name, uid in users.items()
    }
    for name, count in (("ann", 2), ("bob", 1), ("carol", 1), ("ann2", 1)):
        payments[name] = [
            await _insert_id(
                conn,
                "INSERT INTO payments (org_id, user_id, billing_name, billing_email, card_last4, "
                "amount_cents, paid_at) VALUES ($1, $2, $3, $4, '4242', $5, $6)",
                org_of[name],
                users[name],
                f"Billing {name}",
                user_emails[name],
                1000 * (p + 1),
                now - timedelta(days=5, hours=p),
            )
            for p in range(count)
        ]
    signups = {}
    for name, org, mail in (
        ("ann", org1, email),
        ("bob", org1, user_emails["bob"]),
        ("carol", org1, user_emails["carol"]),
        ("reader", org1, f"reader.{tag}@overlap.example"),
        ("ann2", org2, email),
    ):
        signups[name] = await _insert_id(
            conn,
            "INSERT INTO newsletter_signups (org_id, email, topics, created_at) "
            "VALUES ($1, $2, '{news}', $3)",
            org,
            mail,
            now - timedelta(days=15),
        )
    history: dict[str, dict[str, list[int]]] = {}
    anonymous_keys: dict[str, list[str]] = {}
    for org in (org1, org2):
        logs = [
            await _insert_id(
                conn,
                "INSERT INTO activity_logs (org_id, event, created_at) VALUES ($1, $2, $3)",
                org,
                f"event {d}",
                now - timedelta(days=d, hours=1),
            )
            for d in range(3)
        ]
        metrics = [
            await _insert_id(
                conn,
                "INSERT INTO metrics_samples (org_id, name, value, recorded_at) "
                "VALUES ($1, 'active_users', $2, $3)",
                org,
                float(d),
                now - timedelta(days=d, hours=1),
            )
            for d in range(3)
        ]
        keys = [f"anonymous/{org}/overlap-{d}.bin" for d in range(2)]
        uploads = [
            await _insert_id(
                conn,
                "INSERT INTO anonymous_uploads (org_id, session_id, s3_key, created_at) "
                "VALUES ($1, $2, $3, $4)",
                org,
                f"session-{d}",
                k,
                now - timedelta(days=d, hours=1),
            )
            for d, k in enumerate(keys)
        ]
        history[org] = {
            "activity_logs": logs,
            "metrics_samples": metrics,
            "anonymous_uploads": uploads,
        }
        anonymous_keys[org] = keys
    return OverlapSeed(
        org1=org1,
        org2=org2,
        email=email,
        phone=phone,
        external_id=external_id,
        users=users,
        conversations=conversations,
        messages=messages,
        media=media,
        payments=payments,
        signups=signups,
        history=history,
        anonymous_keys=anonymous_keys,
    )
