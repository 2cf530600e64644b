"""What erasing or exporting a subject must touch, written by hand in SQL per schema.

Independent of the resolver (`shared/resolver/`) and of the data map parser: each rule is
the reading of docs/datamap.md for one table of one map, stated in the docstrings below, so
that a property test can compare the resolver's plan and the exporter's rows to it.

Keys are key text: `pk::text` for a one-column key, the JSON array text of the key columns
for a composite key (`'[12, 34]'`, `'[5, "2026-01-04T11:00:00+00:00"]'`: timestamps as
`json_build_array` writes them in the session's TimeZone), as `tests.seeding.key_text_sql`.
A table with no key in a set is absent from that dict.

Each oracle first checks that the foreign keys of the live schema are the ones its rules were
written for, and fails naming the difference otherwise: a rule about "outside references"
must not silently miss a new referrer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from tests.schemas.rental import TOMBSTONE_CUSTOMER


@dataclass
class Expected:
    """Per table, the keys of the rows that:

    - `delete`: the subject's rows (owned, or shared with no outside reference) of tables
      whose action is delete;
    - `mask`: the subject's rows of tables whose action is mask (kept, columns masked);
    - `detach`: someone else's rows, kept, whose link column (`detach_columns[table]`) to a
      row of the subject is detached (`reference` relations on the parents side);
    - `kept_shared`: rows linked to the subject by a `shared` relation that stay because
      something outside the subject's rows still references them;
    - `objects`: S3 keys of the erased rows' objects.

    What is exported is exactly the subject's rows: `export` = `delete` + `mask` (no table of
    these maps has an owned row with action keep). Detached and kept shared rows are never
    exported.
    """

    delete: dict[str, set[str]] = field(default_factory=dict)
    mask: dict[str, set[str]] = field(default_factory=dict)
    detach: dict[str, set[str]] = field(default_factory=dict)
    detach_columns: dict[str, str] = field(default_factory=dict)
    kept_shared: dict[str, set[str]] = field(default_factory=dict)
    objects: set[str] = field(default_factory=set)

    @property
    def erase(self) -> dict[str, set[str]]:
        """Every row the erasure acts on as the subject's (deleted or masked)."""
        out = {t: set(k) for t, k in self.delete.items()}
        for t, keys in self.mask.items():
            out.setdefault(t, set()).update(keys)
        return out

    @property
    def export(self) -> dict[str, set[str]]:
        return self.erase

    def all_touched(self) -> dict[str, set[str]]:
        """Every row the erasure may change (erased or detached): a fingerprint of the
        database excluding these must not change."""
        out = self.erase
        for t, keys in self.detach.items():
            out.setdefault(t, set()).update(keys)
        return out


async def _keys(conn: asyncpg.Connection, sql: str, *args: object) -> set[str]:
    return {r[0] for r in await conn.fetch(sql, *args)}


def _put(target: dict[str, set[str]], table: str, keys: set[str]) -> None:
    if keys:
        target[table] = keys


async def _check_referrers(conn: asyncpg.Connection, expected: dict[str, set[str]]) -> None:
    """Each table -> the tables whose foreign keys reference it, as the rules assume."""
    rows = await conn.fetch(
        "SELECT t.relname AS target, c.relname AS source FROM pg_constraint k "
        "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class t ON t.oid = k.confrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE k.contype = 'f' AND n.nspname = 'public' AND k.conparentid = 0 "
        "AND t.relname = ANY($1::text[])",
        list(expected),
    )
    live: dict[str, set[str]] = {t: set() for t in expected}
    for r in rows:
        live[r["target"]].add(r["source"])
    if live != expected:
        raise AssertionError(
            f"the schema's foreign keys changed: oracle written for {expected}, live {live}; "
            "update tests/schemas/oracle.py"
        )


# ------------------------------------------------------------------------------- rental


RENTAL_REFERRERS = {
    "customer": {"rental", "payment", "referral"},
    "rental": {"payment"},
    "address": {"customer", "staff", "store"},
}


async def rental_expected(conn: asyncpg.Connection, customer_id: int) -> Expected:
    """The rental map (tests/schemas/rental/datamap.yaml), subject = customer `customer_id`.

    - customer: the subject's row (delete). The tombstone customer 0 is never a subject.
    - rental: `customer_id` = subject (owned; delete).
    - payment: `customer_id` = subject (owned; mask: customer_id -> 0, rental_id -> null,
      card_holder redacted), whichever rental it paid for (the subject paying for another
      customer's rental included). Detached: payments of others (`customer_id` <> subject)
      for one of the subject's rentals (reference, `rental_id` set to null).
    - referral: the subject on either side (owned by both; delete).
    - address: the subject's `customer.address_id` (shared, referenced by the customer
      row). Deleted when no other row references it: no other customer (the tombstone
      included), no staff member, no store (live foreign keys, `staff` and `store` being
      unmapped). Otherwise kept as it is (kept_shared; the subject's link goes with the
      subject's row, nothing to detach).
    - inventory, staff: nothing (reference; the subject's rentals point at inventory, which
      stays; staff are not reachable from a customer).
    """
    if customer_id == TOMBSTONE_CUSTOMER:
        raise ValueError("the tombstone customer is never a subject")
    await _check_referrers(conn, RENTAL_REFERRERS)
    e = Expected(detach_columns={"payment": "rental_id"})
    _put(
        e.delete,
        "customer",
        await _keys(
            conn, "SELECT customer_id::text FROM customer WHERE customer_id = $1", customer_id
        ),
    )
    _put(
        e.delete,
        "rental",
        await _keys(conn, "SELECT rental_id::text FROM rental WHERE customer_id = $1", customer_id),
    )
    _put(
        e.mask,
        "payment",
        await _keys(
            conn,
            "SELECT json_build_array(payment_id, paid_at)::text FROM payment "
            "WHERE customer_id = $1",
            customer_id,
        ),
    )
    _put(
        e.detach,
        "payment",
        await _keys(
            conn,
            "SELECT json_build_array(p.payment_id, p.paid_at)::text FROM payment p "
            "WHERE p.customer_id <> $1 "
            "AND p.rental_id IN (SELECT rental_id FROM rental WHERE customer_id = $1)",
            customer_id,
        ),
    )
    _put(
        e.delete,
        "referral",
        await _keys(
            conn,
            "SELECT json_build_array(referrer_id, referred_id)::text FROM referral "
            "WHERE referrer_id = $1 OR referred_id = $1",
            customer_id,
        ),
    )
    rows = await conn.fetch(
        "SELECT a.address_id::text AS key, ("
        "  EXISTS (SELECT 1 FROM customer c "
        "          WHERE c.address_id = a.address_id AND c.customer_id <> $1)"
        "  OR EXISTS (SELECT 1 FROM staff s WHERE s.address_id = a.address_id)"
        "  OR EXISTS (SELECT 1 FROM store s WHERE s.address_id = a.address_id)"
        ") AS referenced "
        "FROM address a "
        "WHERE a.address_id IN (SELECT address_id FROM customer WHERE customer_id = $1)",
        customer_id,
    )
    _put(e.delete, "address", {r["key"] for r in rows if not r["referenced"]})
    _put(e.kept_shared, "address", {r["key"] for r in rows if r["referenced"]})
    return e


# ------------------------------------------------------------------------------- sample


SAMPLE_REFERRERS = {
    "users": {"conversations", "messages", "payments"},
    "conversations": {"messages"},
    "messages": {"media_objects"},
    "organisations": {
        "users",
        "conversations",
        "payments",
        "newsletter_signups",
        "activity_logs",
        "metrics_samples",
        "anonymous_uploads",
    },
}
ForeignMessages = Literal["shared", "detach", "owned"]


async def sample_expected(
    conn: asyncpg.Connection,
    org_id: str,
    user_id: int,
    *,
    email: str | None = None,
    foreign_messages: ForeignMessages = "shared",
) -> Expected:
    """The sample map (deploy/local/sample/datamap.yaml), subject = user `user_id` of org
    `org_id`, requested by `email` (default: the user's email).

    - users: the subject's row (delete).
    - conversations: `user_id` = subject. `foreign_messages="shared"` (the sample map's
      choice: conversations -> users is `shared`): the conversation goes only when every
      message in it is the subject's; one with another person's message stays
      (`kept_shared`) and its `user_id` is detached (null). Other modes: owned; delete.
    - messages: `author_id` = subject, in any conversation (owned; delete), Ann's message in
      Bob's conversation included. Others' messages in the subject's conversations:
      `foreign_messages="detach"` (messages -> conversations is `reference`): kept, their
      `conversation_id` detached (detach); `"owned"`: deleted and exported with the
      conversation (the v1 behaviour, if the map keeps that relation owned).
    - media_objects: of the deleted messages (owned; delete), their `s3_key` in objects.
      Media of a kept message stays.
    - payments: `user_id` = subject (owned; mask).
    - newsletter_signups: `org_id` = org and `email` = the requested email, exactly (matched
      by identity within the org; the same email's sign-up in another org stays).
    - activity_logs, metrics_samples, anonymous_uploads, organisations: nothing (org-level
      rows, not any person's; only an organisation scope takes them).
    """
    await _check_referrers(conn, SAMPLE_REFERRERS)
    row = await conn.fetchrow("SELECT org_id, email FROM users WHERE id = $1", user_id)
    if row is None or row["org_id"] != org_id:
        raise ValueError(f"user {user_id} is not a user of org {org_id}")
    email = email if email is not None else row["email"]
    e = Expected()
    _put(e.delete, "users", {str(user_id)})
    if foreign_messages == "shared":
        others = (
            "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.author_id <> $1)"
        )
        gone = await _keys(
            conn,
            f"SELECT id::text FROM conversations c WHERE user_id = $1 AND NOT {others}",
            user_id,
        )
        stay = await _keys(
            conn, f"SELECT id::text FROM conversations c WHERE user_id = $1 AND {others}", user_id
        )
        _put(e.delete, "conversations", gone)
        _put(e.kept_shared, "conversations", stay)
        _put(e.detach, "conversations", stay)
        e.detach_columns["conversations"] = "user_id"
    else:
        _put(
            e.delete,
            "conversations",
            await _keys(conn, "SELECT id::text FROM conversations WHERE user_id = $1", user_id),
        )
    in_subject_conversations = (
        "conversation_id IN (SELECT id FROM conversations WHERE user_id = $1)"
    )
    deleted_messages = (
        f"author_id = $1 OR {in_subject_conversations}"
        if foreign_messages == "owned"
        else "author_id = $1"
    )
    _put(
        e.delete,
        "messages",
        await _keys(conn, f"SELECT id::text FROM messages WHERE {deleted_messages}", user_id),
    )
    if foreign_messages == "detach":
        e.detach_columns["messages"] = "conversation_id"
        _put(
            e.detach,
            "messages",
            await _keys(
                conn,
                "SELECT id::text FROM messages "
                f"WHERE author_id <> $1 AND {in_subject_conversations}",
                user_id,
            ),
        )
    media = await conn.fetch(
        "SELECT id::text AS key, s3_key FROM media_objects "
        f"WHERE message_id IN (SELECT id FROM messages WHERE {deleted_messages})",
        user_id,
    )
    _put(e.delete, "media_objects", {r["key"] for r in media})
    e.objects = {r["s3_key"] for r in media}
    _put(
        e.mask,
        "payments",
        await _keys(conn, "SELECT id::text FROM payments WHERE user_id = $1", user_id),
    )
    _put(
        e.delete,
        "newsletter_signups",
        await _keys(
            conn,
            "SELECT id::text FROM newsletter_signups WHERE org_id = $1 AND email = $2",
            org_id,
            email,
        ),
    )
    return e


async def sample_org_expected(conn: asyncpg.Connection, org_id: str) -> Expected:
    """The sample map, organisation scope for org `org_id`.

    - organisations: the org's row (mask: its name anonymised).
    - users, conversations, newsletter_signups, activity_logs, metrics_samples,
      anonymous_uploads: every row with `org_id` = org (delete); the uploads' `s3_key` in
      objects.
    - payments: `org_id` = org, or paid by one of its users (mask).
    - messages: in one of the org's conversations or written by one of its users (delete).
    - media_objects: of those messages (delete), their `s3_key` in objects.
    No other org's row, detached or not: every relation of the sample stays within an org.
    The rental platform has no organisation scope (single tenant: refused).
    """
    await _check_referrers(conn, SAMPLE_REFERRERS)
    e = Expected()
    _put(
        e.mask,
        "organisations",
        await _keys(conn, "SELECT id FROM organisations WHERE id = $1", org_id),
    )
    for table in (
        "users",
        "conversations",
        "newsletter_signups",
        "activity_logs",
        "metrics_samples",
        "anonymous_uploads",
    ):
        _put(
            e.delete,
            table,
            await _keys(conn, f"SELECT id::text FROM {table} WHERE org_id = $1", org_id),
        )
    _put(
        e.mask,
        "payments",
        await _keys(
            conn,
            "SELECT id::text FROM payments WHERE org_id = $1 "
            "OR user_id IN (SELECT id FROM users WHERE org_id = $1)",
            org_id,
        ),
    )
    org_messages = (
        "SELECT id FROM messages "
        "WHERE conversation_id IN (SELECT id FROM conversations WHERE org_id = $1) "
        "OR author_id IN (SELECT id FROM users WHERE org_id = $1)"
    )
    _put(
        e.delete,
        "messages",
        await _keys(conn, f"SELECT id::text FROM ({org_messages}) m", org_id),
    )
    media = await conn.fetch(
        f"SELECT id::text AS key, s3_key FROM media_objects WHERE message_id IN ({org_messages})",
        org_id,
    )
    _put(e.delete, "media_objects", {r["key"] for r in media})
    uploads = await _keys(conn, "SELECT s3_key FROM anonymous_uploads WHERE org_id = $1", org_id)
    e.objects = {r["s3_key"] for r in media} | uploads
    return e
