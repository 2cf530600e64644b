"""Overlapping data on the sample platform (tests/seeding.seed_overlap) and the oracle of
what erasing Ann, or her whole organisation, must touch: nothing of the other org, not the
same email's user there, Bob's message in Ann's conversation as the map declares."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.schemas.oracle import Expected, sample_expected, sample_org_expected
from tests.seeding import PLATFORM_BUCKET, OverlapSeed, fingerprint, seed_overlap, seed_sample

pytestmark = pytest.mark.integration


@pytest.fixture
async def overlap(platform_db: asyncpg.Pool, s3: Any) -> OverlapSeed:
    org1, org2 = (f"org-{uuid.uuid4().hex[:12]}" for _ in range(2))
    async with platform_db.acquire() as conn:
        return await seed_overlap(conn, org1, org2, s3=s3)


def _ids(*groups: list[int] | int) -> set[str]:
    out: set[str] = set()
    for g in groups:
        out.update(str(i) for i in (g if isinstance(g, list) else [g]))
    return out


async def test_the_seed_overlaps_across_people_and_orgs(
    overlap: OverlapSeed, platform_db: asyncpg.Pool, s3: Any
) -> None:
    o = overlap
    same_email = await platform_db.fetch(
        "SELECT org_id, id FROM users WHERE email = $1 ORDER BY org_id = $2 DESC", o.email, o.org1
    )
    assert [(r["org_id"], r["id"]) for r in same_email] == [
        (o.org1, o.users["ann"]),
        (o.org2, o.users["ann2"]),
    ]
    authors_in_ann = await platform_db.fetchval(
        "SELECT array_agg(DISTINCT author_id ORDER BY author_id) FROM messages "
        "WHERE conversation_id = $1",
        o.conversations["ann"],
    )
    assert authors_in_ann == sorted([o.users["ann"], o.users["bob"]])
    ann_in_bob = await platform_db.fetchrow(
        "SELECT conversation_id, author_id FROM messages WHERE id = $1", o.ann_in_bob_conversation
    )
    assert dict(ann_in_bob) == {
        "conversation_id": o.conversations["bob"],
        "author_id": o.users["ann"],
    }
    assert {o.bob_in_ann_conversation, o.ann_in_bob_conversation} <= set(o.media)
    signups = await platform_db.fetch(
        "SELECT org_id FROM newsletter_signups WHERE email = $1 ORDER BY org_id = $2 DESC",
        o.email,
        o.org1,
    )
    assert [r[0] for r in signups] == [o.org1, o.org2]
    for org in (o.org1, o.org2):
        assert {t: len(ids) for t, ids in o.history[org].items()} == {
            "activity_logs": 3,
            "metrics_samples": 3,
            "anonymous_uploads": 2,
        }
        head = await s3.head_object(Bucket=PLATFORM_BUCKET, Key=o.anonymous_keys[org][0])
        assert head["ContentLength"] > 0
    head = await s3.head_object(Bucket=PLATFORM_BUCKET, Key=o.media[o.bob_in_ann_conversation])
    assert head["ContentLength"] > 0


async def test_the_oracle_erases_ann_and_only_ann(
    overlap: OverlapSeed, platform_db: asyncpg.Pool
) -> None:
    o = overlap
    async with platform_db.acquire() as conn:
        kept = await sample_expected(conn, o.org1, o.users["ann"], foreign_messages="detach")
        owned = await sample_expected(conn, o.org1, o.users["ann"], foreign_messages="owned")
        with pytest.raises(ValueError, match="not a user of org"):
            await sample_expected(conn, o.org2, o.users["ann"])
    ann_messages = o.messages["ann in ann"] + o.messages["ann in bob"]
    ann_media = {k for m, k in o.media.items() if m in ann_messages}
    assert len(ann_media) == 2
    common = {
        "users": _ids(o.users["ann"]),
        "conversations": _ids(o.conversations["ann"]),
        "newsletter_signups": _ids(o.signups["ann"]),
    }
    # Bob's message in Ann's conversation is Bob's: kept, detached from the conversation.
    assert kept.delete == common | {
        "messages": _ids(ann_messages),
        "media_objects": kept.delete["media_objects"],
    }
    assert len(kept.delete["media_objects"]) == 2 and kept.objects == ann_media
    assert kept.detach == {"messages": _ids(o.bob_in_ann_conversation)}
    assert kept.detach_columns == {"messages": "conversation_id"}
    assert kept.mask == {"payments": _ids(o.payments["ann"])}
    assert kept.export == kept.erase and kept.kept_shared == {}
    # If the map keeps messages -> conversations owned, it goes (and is exported) with it.
    assert owned.delete["messages"] == _ids(ann_messages, o.bob_in_ann_conversation)
    assert owned.objects == ann_media | {o.media[o.bob_in_ann_conversation]}
    assert owned.detach == {}


async def test_the_org_oracle_takes_every_org_row_and_none_of_the_other_org(
    overlap: OverlapSeed, platform_db: asyncpg.Pool
) -> None:
    o = overlap
    async with platform_db.acquire() as conn:
        e = await sample_org_expected(conn, o.org1)
        other = await sample_org_expected(conn, o.org2)
    org1_users = ("ann", "bob", "carol")
    org1_messages = [m for k, ms in o.messages.items() if not k.endswith("ann2") for m in ms]
    assert e.mask == {
        "organisations": {o.org1},
        "payments": _ids(*(o.payments[u] for u in org1_users)),
    }
    assert e.delete == {
        "users": _ids(*(o.users[u] for u in org1_users)),
        "conversations": _ids(*(o.conversations[u] for u in org1_users)),
        "messages": _ids(org1_messages),
        "media_objects": e.delete["media_objects"],
        "newsletter_signups": _ids(*(o.signups[s] for s in ("ann", "bob", "carol", "reader"))),
        **{t: _ids(ids) for t, ids in o.history[o.org1].items()},
    }
    assert e.objects == {k for m, k in o.media.items() if m in org1_messages} | set(
        o.anonymous_keys[o.org1]
    )
    for table, keys in e.erase.items():
        assert not keys & other.erase.get(table, set()), table


async def test_a_hand_erasure_of_ann_leaves_every_other_row_as_it_was(
    overlap: OverlapSeed, platform_db: asyncpg.Pool
) -> None:
    """Erasing exactly the oracle's rows (owned variant: no detach needed) changes nothing
    else, Ann's namesake in the other org included: the fingerprint sees no difference."""
    o = overlap
    async with platform_db.acquire() as conn:
        e = await sample_expected(conn, o.org1, o.users["ann"], foreign_messages="owned")
        before = await fingerprint(conn, exclude=e.all_touched())
        tr = conn.transaction()
        await tr.start()
        try:
            await _erase_by_hand(conn, e)
            after = await fingerprint(conn, exclude=e.all_touched())
            ann2 = await conn.fetchval("SELECT count(*) FROM users WHERE email = $1", o.email)
        finally:
            await tr.rollback()
    assert after == before and ann2 == 1


async def _erase_by_hand(conn: asyncpg.Connection, e: Expected) -> None:
    await conn.execute(
        "UPDATE payments SET user_id = NULL, billing_name = NULL, billing_email = NULL "
        "WHERE id::text = ANY($1::text[])",
        sorted(e.mask.get("payments", ())),
    )
    for table in ("media_objects", "messages", "conversations", "newsletter_signups", "users"):
        await conn.execute(
            f"DELETE FROM {table} WHERE id::text = ANY($1::text[])",
            sorted(e.delete.get(table, ())),
        )


async def test_seed_sample_makes_the_e2e_sizes(platform_db: asyncpg.Pool, s3: Any) -> None:
    org_id = f"org-{uuid.uuid4().hex[:12]}"
    seeded = await seed_sample(platform_db, s3, org_id, heavy=3, messages_per_conversation=5)
    assert [u.conversations for u in seeded.users] == [12, 4, 4]
    assert [u.messages for u in seeded.users] == [60, 20, 20]
    assert (
        await platform_db.fetchval(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.org_id = $1",
            org_id,
        )
        == 100
    )
