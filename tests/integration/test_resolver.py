"""The one resolver on the sample schema, with data that overlaps the way real data does:
the same email in two organisations, other people's messages in the subject's conversation,
the subject's message in someone else's, and an organisation next to one that must survive."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.datamap import check_against_database, load_datamap
from shared.resolver import Ambiguous, Resolver, Scope, ScopeError, stream_keys

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


@dataclass
class World:
    org1: str
    org2: str
    ann: int
    bob: int
    ann2: int
    email: str
    bob_phone: str
    ids: dict[str, int]


async def _world(conn: asyncpg.Connection) -> World:
    tag = uuid.uuid4().hex[:8]
    org1, org2 = f"org-{tag}-1", f"org-{tag}-2"
    email = f"ann-{tag}@example.com"
    for o in (org1, org2):
        await conn.execute("INSERT INTO organisations (id, name) VALUES ($1, $2)", o, f"Org {o}")

    async def user(org: str, mail: str, phone: str) -> int:
        uid: int = await conn.fetchval(
            "INSERT INTO users (org_id, email, name, phone) VALUES ($1, $2, 'x', $3) RETURNING id",
            org,
            mail,
            phone,
        )
        return uid

    async def conv(org: str, uid: int) -> int:
        cid: int = await conn.fetchval(
            "INSERT INTO conversations (org_id, user_id, title) VALUES ($1, $2, 't') RETURNING id",
            org,
            uid,
        )
        return cid

    async def msg(cid: int, uid: int) -> int:
        mid: int = await conn.fetchval(
            "INSERT INTO messages (conversation_id, author_id, body) VALUES ($1, $2, 'b') "
            "RETURNING id",
            cid,
            uid,
        )
        return mid

    async def media(mid: int) -> int:
        oid: int = await conn.fetchval(
            "INSERT INTO media_objects (message_id, s3_key, content_type, size_bytes) "
            "VALUES ($1, $2, 'image/png', 1) RETURNING id",
            mid,
            f"k/{mid}",
        )
        return oid

    ann = await user(org1, email, f"+1{tag}1")
    bob = await user(org1, f"bob-{tag}@example.com", f"+1{tag}2")
    ann2 = await user(org2, email.upper(), f"+1{tag}3")
    ids: dict[str, int] = {}
    ids["a1"], ids["a2"], ids["b1"], ids["c1"] = (
        await conv(org1, ann),
        await conv(org1, ann),
        await conv(org1, bob),
        await conv(org2, ann2),
    )
    ids["m1"], ids["m2"] = await msg(ids["a1"], ann), await msg(ids["a1"], ann)
    ids["m3"], ids["m4"] = await msg(ids["a2"], ann), await msg(ids["a2"], bob)
    ids["m5"], ids["m6"] = await msg(ids["b1"], ann), await msg(ids["b1"], bob)
    ids["m7"] = await msg(ids["c1"], ann2)
    ids["o1"], ids["o4"] = await media(ids["m1"]), await media(ids["m4"])
    for name, org, uid in (("p1", org1, ann), ("p2", org1, bob), ("p3", org2, ann2)):
        ids[name] = await conn.fetchval(
            "INSERT INTO payments (org_id, user_id, billing_email, amount_cents) "
            "VALUES ($1, $2, 'b@x', 100) RETURNING id",
            org,
            uid,
        )
    for name, org in (("n1", org1), ("n2", org2)):
        ids[name] = await conn.fetchval(
            "INSERT INTO newsletter_signups (org_id, email) VALUES ($1, $2) RETURNING id",
            org,
            email,
        )
    ids["l1"] = await conn.fetchval(
        "INSERT INTO activity_logs (org_id, event) VALUES ($1, 'login') RETURNING id", org1
    )
    ids["l2"] = await conn.fetchval(
        "INSERT INTO activity_logs (org_id, event) VALUES ($1, 'login') RETURNING id", org2
    )
    return World(org1, org2, ann, bob, ann2, email, f"+1{tag}2", ids)


@pytest.fixture
async def resolver(platform_db: asyncpg.Pool) -> Resolver:
    dm = load_datamap(SAMPLE)
    async with platform_db.acquire() as conn:
        live = await check_against_database(dm, conn)
    return Resolver(dm, live)


async def _keys(conn: asyncpg.Connection, r: Resolver, scope: Scope) -> dict[str, set[str]]:
    subject = await r.resolve(conn, scope)
    out: dict[str, set[str]] = {}
    async with conn.transaction():
        for table in r.tables(scope):
            sql, args = r.key_text_sql(table, subject)
            found: set[str] = set()
            async for page in stream_keys(conn, sql, args, 2):
                found.update(page)
            out[table] = found
    return out


def _s(*ids: int) -> set[str]:
    return {str(i) for i in ids}


async def test_a_subject_is_exactly_their_rows(
    platform_db: asyncpg.Pool, resolver: Resolver
) -> None:
    async with platform_db.acquire() as conn:
        w = await _world(conn)
        keys = await _keys(conn, resolver, Scope(w.org1, {"email": w.email.upper()}))
        i = w.ids
        assert keys == {
            "users": _s(w.ann),
            # A2 has Bob's message in it: it stays (and is detached); A1 goes.
            "conversations": _s(i["a1"]),
            # Ann's messages everywhere, Bob's nowhere (m4 in Ann's conversation stays).
            "messages": _s(i["m1"], i["m2"], i["m3"], i["m5"]),
            "media_objects": _s(i["o1"]),
            "payments": _s(i["p1"]),
            # Same email in the other organisation: not this subject.
            "newsletter_signups": _s(i["n1"]),
        }
        subject = await resolver.resolve(conn, Scope(w.org1, {"email": w.email}))
        rel = resolver.dm.tables["conversations"].parents[0]
        sql, args = resolver.detach_sql("conversations", rel, subject)
        assert {r[0] for r in await conn.fetch(sql, *args)} == _s(i["a2"])


async def test_hashed_identities_resolve_the_same_subject(
    platform_db: asyncpg.Pool, resolver: Resolver
) -> None:
    import hashlib

    async with platform_db.acquire() as conn:
        w = await _world(conn)
        digest = hashlib.sha256(w.email.lower().encode()).hexdigest()
        md5 = hashlib.md5(w.email.lower().encode()).hexdigest()
        plain = await _keys(conn, resolver, Scope(w.org1, {"email": w.email}))
        assert await _keys(conn, resolver, Scope(w.org1, {"email_sha256": digest})) == plain
        assert await _keys(conn, resolver, Scope(w.org1, {"email_md5": md5.upper()})) == plain


async def test_identities_of_two_people_are_refused_naming_the_kinds(
    platform_db: asyncpg.Pool, resolver: Resolver
) -> None:
    async with platform_db.acquire() as conn:
        w = await _world(conn)
        with pytest.raises(Ambiguous, match="email and phone identify different people"):
            await resolver.resolve(conn, Scope(w.org1, {"email": w.email, "phone": w.bob_phone}))


async def test_nobody_resolves_to_no_rows_anywhere(
    platform_db: asyncpg.Pool, resolver: Resolver
) -> None:
    async with platform_db.acquire() as conn:
        w = await _world(conn)
        keys = await _keys(conn, resolver, Scope(w.org1, {"email": "nobody@example.com"}))
        assert not any(keys.values())
        with pytest.raises(ScopeError, match="none of the identities"):
            await resolver.resolve(conn, Scope(w.org1, {"ad_id": "x"}))


async def test_an_organisation_is_every_row_of_it_and_nothing_of_the_other(
    platform_db: asyncpg.Pool, resolver: Resolver
) -> None:
    async with platform_db.acquire() as conn:
        w = await _world(conn)
        keys = await _keys(conn, resolver, Scope(w.org1, None))
        i = w.ids
        assert keys["organisations"] == {w.org1}
        assert keys["users"] == _s(w.ann, w.bob)
        assert keys["conversations"] == _s(i["a1"], i["a2"], i["b1"])
        assert keys["messages"] == _s(*(i[f"m{n}"] for n in range(1, 7)))
        assert keys["media_objects"] == _s(i["o1"], i["o4"])
        assert keys["payments"] == _s(i["p1"], i["p2"])
        assert keys["newsletter_signups"] == _s(i["n1"])
        assert keys["activity_logs"] == _s(i["l1"])
