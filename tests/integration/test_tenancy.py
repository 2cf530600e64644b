"""Any tenancy (issue 12, item 5), on real Postgres: an org column of type integer or uuid
takes the Lethe org id cast to its type; an org id that does not cast is a clear refusal
(never a raw DataError) and its erasure ends `failed` with the reason; a single-tenant
platform refuses another organisation's job and any organisation-scope job; a row filter
(`where:`) is honoured by the resolver. The eraser's domain runs in-process on a fresh
database of its own (as tests/integration/test_exact_data.py does)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local import infra
from services.eraser import service, store
from services.exporter import service as exporter
from services.exporter import store as export_store
from shared.datamap import DataMap, check_against_database, load_datamap
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import ExportRequested, Subject
from shared.resolver import Resolver, Scope, ScopeError
from shared.settings import LetheSettings
from tests.conftest import Org, SchemaDB
from tests.erasing import InProcessEraser, erasure_request, in_process_eraser
from tests.schemas import databases, rental

pytestmark = pytest.mark.integration
ACTOR = Actor(kind="service", id="test")

SCHEMA = """
CREATE TABLE store (store_id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE member (
    id        bigserial PRIMARY KEY,
    store_id  integer NOT NULL REFERENCES store (store_id),
    email     text NOT NULL,
    closed    boolean NOT NULL DEFAULT false
);
CREATE TABLE visit (
    id         bigserial PRIMARY KEY,
    store_id   integer NOT NULL REFERENCES store (store_id),
    member_id  bigint REFERENCES member (id),
    note       text
);
CREATE INDEX visit_member ON visit (member_id);
CREATE TABLE workspace (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE account (
    id            bigserial PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspace (id),
    email         text NOT NULL
);
"""
INTEGER_MAP = """version: 2
subject: {table: member, org_column: store_id, identities: {email: email, user_id: id}}
tables:
  member: {primary_key: id, org_column: store_id}
  visit:
    primary_key: id
    parents: [{table: member, column: member_id}]
"""
# A row filter: the walk-in visits (no member) are a category of their own, taken by the
# store's organisation-scope jobs; closed memberships are not looked at.
FILTERED_MAP = """version: 2
subject: {table: member, org_column: store_id, identities: {email: email}}
tables:
  member: {primary_key: id, org_column: store_id, where: "NOT closed"}
  visit: {primary_key: id, org_column: store_id, where: "member_id IS NULL"}
"""
UUID_MAP = """version: 2
subject: {table: account, org_column: workspace_id, identities: {email: email}}
tables:
  account: {primary_key: id, org_column: workspace_id}
"""


@pytest.fixture(scope="module")
async def tenancy_db(prepared: infra.Endpoints) -> AsyncIterator[SchemaDB]:
    admin = prepared.platform_database_url
    dsn = await databases.create_database(admin, "tenancy")
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.close()
        await databases.apply_platform_migrations(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            yield SchemaDB(pool, dsn)
        finally:
            await pool.close()
    finally:
        await databases.drop_database(admin, dsn)


async def _map(tmp_path: Path, pool: asyncpg.Pool, text: str) -> tuple[DataMap, Resolver]:
    p = tmp_path / f"map-{uuid.uuid4().hex[:6]}.yaml"
    p.write_text(text)
    dm = load_datamap(p)
    async with pool.acquire() as conn:
        live = await check_against_database(dm, conn)
    return dm, Resolver(dm, live)


@dataclass
class Stores:
    a: int
    b: int
    email: str
    ann: int  # in store a
    ann_b: int  # the same email in store b: another person
    visits: dict[str, int] = field(default_factory=dict)


async def _stores(conn: asyncpg.Connection) -> Stores:
    a, b = random.sample(range(1_000, 2_000_000_000), 2)
    email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    for s in (a, b):
        await conn.execute("INSERT INTO store VALUES ($1, $2)", s, f"store {s}")

    async def member(store_id: int, mail: str, closed: bool = False) -> int:
        mid: int = await conn.fetchval(
            "INSERT INTO member (store_id, email, closed) VALUES ($1, $2, $3) RETURNING id",
            store_id,
            mail,
            closed,
        )
        return mid

    async def visit(store_id: int, member_id: int | None) -> int:
        vid: int = await conn.fetchval(
            "INSERT INTO visit (store_id, member_id) VALUES ($1, $2) RETURNING id",
            store_id,
            member_id,
        )
        return vid

    st = Stores(a, b, email, await member(a, email), await member(b, email))
    st.visits = {
        "ann": await visit(a, st.ann),
        "ann_b": await visit(b, st.ann_b),
        "walk_in_a": await visit(a, None),
        "walk_in_b": await visit(b, None),
    }
    st.visits["closed"] = await visit(a, await member(a, f"closed-{email}", closed=True))
    return st


async def _keys(conn: asyncpg.Connection, r: Resolver, scope: Scope) -> dict[str, set[str]]:
    subject = await r.resolve(conn, scope)
    out: dict[str, set[str]] = {}
    for table in r.tables(scope):
        sql, args = r.key_text_sql(table, subject)
        out[table] = {row[0] for row in await conn.fetch(sql, *args)}
    return out


async def test_an_integer_org_column_takes_the_org_id_cast_to_integer(
    tmp_path: Path, tenancy_db: SchemaDB
) -> None:
    _, r = await _map(tmp_path, tenancy_db.pool, INTEGER_MAP)
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
        keys = await _keys(conn, r, Scope(str(st.a), {"email": st.email}))
        assert keys == {"member": {str(st.ann)}, "visit": {str(st.visits["ann"])}}
        # The same email in the other store is another person.
        keys = await _keys(conn, r, Scope(str(st.b), {"email": st.email}))
        assert keys == {"member": {str(st.ann_b)}, "visit": {str(st.visits["ann_b"])}}
        whole = await _keys(conn, r, Scope(str(st.a), None))
        assert str(st.ann) in whole["member"] and str(st.ann_b) not in whole["member"]


async def test_an_org_id_that_does_not_cast_is_a_clear_refusal(
    tmp_path: Path, tenancy_db: SchemaDB
) -> None:
    _, r = await _map(tmp_path, tenancy_db.pool, INTEGER_MAP)
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
        for scope in (Scope("org-abc", {"email": st.email}), Scope("org-abc", None)):
            with pytest.raises(ScopeError) as err:
                await r.resolve(conn, scope)
            assert str(err.value) == (
                "the organisation id is not a valid integer for member.store_id"
            )
        # Out of range for the column is the same refusal, not an error of the database.
        with pytest.raises(ScopeError, match="not a valid integer"):
            await r.resolve(conn, Scope("99999999999", {"email": st.email}))


async def test_a_uuid_org_column(tmp_path: Path, tenancy_db: SchemaDB) -> None:
    _, r = await _map(tmp_path, tenancy_db.pool, UUID_MAP)
    w1, w2 = uuid.uuid4(), uuid.uuid4()
    email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    async with tenancy_db.pool.acquire() as conn:
        ids = {}
        for w in (w1, w2):
            await conn.execute("INSERT INTO workspace VALUES ($1, 'w')", w)
            ids[w] = await conn.fetchval(
                "INSERT INTO account (workspace_id, email) VALUES ($1, $2) RETURNING id", w, email
            )
        # Lethe's org id is text: the uuid in any case it was written in.
        keys = await _keys(conn, r, Scope(str(w1).upper(), {"email": email}))
        assert keys == {"account": {str(ids[w1])}}
        assert await _keys(conn, r, Scope(str(w2), None)) == {"account": {str(ids[w2])}}
        with pytest.raises(ScopeError) as err:
            await r.resolve(conn, Scope("org-abc", {"email": email}))
        assert "not a valid uuid for account.workspace_id" in str(err.value)


async def test_a_row_filter_selects_a_category_and_the_resolver_honours_it(
    tmp_path: Path, tenancy_db: SchemaDB
) -> None:
    dm, r = await _map(tmp_path, tenancy_db.pool, FILTERED_MAP)
    assert dm.tables["visit"].where == "member_id IS NULL"
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
        whole = await _keys(conn, r, Scope(str(st.a), None))
        # The store's walk-in visits only: not its members' visits, not the other store's.
        assert whole["visit"] == {str(st.visits["walk_in_a"])}
        closed = await conn.fetchval("SELECT id FROM member WHERE email = $1", f"closed-{st.email}")
        assert str(st.ann) in whole["member"] and str(closed) not in whole["member"]
        # A closed membership is outside the filter: not found, in the subject table too.
        subject = await r.resolve(conn, Scope(str(st.a), {"email": f"closed-{st.email}"}))
        assert subject.subject_keys == ()
        subject = await r.resolve(conn, Scope(str(st.a), {"email": st.email}))
        assert subject.subject_keys == (str(st.ann),)


# ------------------------------------------------------------------ the eraser's domain


async def _run(
    base_settings: dict[str, Any], lethe: asyncpg.Pool, platform: asyncpg.Pool, dm: DataMap
) -> InProcessEraser:
    # No object columns in these maps: S3 is never asked.
    return await in_process_eraser(base_settings, lethe, platform, dm, batch_size=10)


def _request(org_id: str, identities: dict[str, str] | None) -> Envelope:
    return erasure_request(org_id, identities, requester_email="dpo@example.test")


async def _failed(run: InProcessEraser, env: Envelope) -> str:
    """The job ended `failed`; the reason its progress event and its email give."""
    await service.plan(env, run.deps)
    assert env.job_id is not None
    job = await store.get_job(run.deps.lethe, env.job_id)
    assert job is not None and job.status == "failed", job
    assert run.queue == [], "nothing planned, nothing published"
    reason = run.of("JobFailed")[-1]["reason"]
    mails = [p for p in run.of("SendEmail") if p["template"] == "job_failed"]
    assert mails and mails[-1]["context"]["reason"] == reason
    return str(reason)


async def test_an_erasure_whose_org_id_does_not_cast_ends_failed_with_the_reason(
    tmp_path: Path, base_settings: dict[str, Any], lethe_db: asyncpg.Pool, tenancy_db: SchemaDB
) -> None:
    dm, _ = await _map(tmp_path, tenancy_db.pool, INTEGER_MAP)
    run = await _run(base_settings, lethe_db, tenancy_db.pool, dm)
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
        before = await conn.fetchval("SELECT count(*) FROM member")
    reason = await _failed(run, _request(f"org-{uuid.uuid4().hex[:8]}", {"email": st.email}))
    assert reason == "the organisation id is not a valid integer for member.store_id"
    assert await tenancy_db.pool.fetchval("SELECT count(*) FROM member") == before


async def test_an_erasure_with_an_integer_org_id_erases_that_store_s_person_only(
    tmp_path: Path, base_settings: dict[str, Any], lethe_db: asyncpg.Pool, tenancy_db: SchemaDB
) -> None:
    dm, _ = await _map(tmp_path, tenancy_db.pool, INTEGER_MAP)
    run = await _run(base_settings, lethe_db, tenancy_db.pool, dm)
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
    env = _request(str(st.a), {"email": st.email})
    await service.plan(env, run.deps)
    await run.drain()
    assert env.job_id is not None
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "soft_deleted", job
    assert run.of("ErasureSoftDeleted")[-1]["verification"]["ok"] is True
    left = {
        r[0]
        for r in await tenancy_db.pool.fetch("SELECT id FROM member WHERE email = $1", st.email)
    }
    assert left == {st.ann_b}
    visits = {r[0] for r in await tenancy_db.pool.fetch("SELECT id FROM visit")}
    assert st.visits["ann"] not in visits and st.visits["ann_b"] in visits


async def test_single_tenant_refuses_another_org_and_any_org_scope_job(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, rental_db: SchemaDB, rental_org: Org
) -> None:
    dm = load_datamap(rental.DATAMAP)
    assert dm.single_tenant and dm.platform_org == rental.PLATFORM_ORG
    run = await _run(base_settings, lethe_db, rental_db.pool, dm)
    async with rental_db.pool.acquire() as conn:
        email = f"c-{uuid.uuid4().hex[:8]}@example.com"
        await conn.execute(
            "INSERT INTO customer (store_id, first_name, last_name, email) "
            "VALUES (1, 'C', 'D', $1)",
            email,
        )
    before = await rental_db.pool.fetchval("SELECT count(*) FROM customer")
    reason = await _failed(run, _request("another-org", {"email": email}))
    assert reason == f"this platform's data belongs to organisation {rental.PLATFORM_ORG!r} only"
    reason = await _failed(run, _request(rental_org.id, None))
    assert "single-tenant" in reason and "whole platform" in reason
    assert await rental_db.pool.fetchval("SELECT count(*) FROM customer") == before


async def test_an_export_whose_org_id_does_not_cast_fails_with_the_reason(
    tmp_path: Path, base_settings: dict[str, Any], lethe_db: asyncpg.Pool, tenancy_db: SchemaDB
) -> None:
    dm, r = await _map(tmp_path, tenancy_db.pool, INTEGER_MAP)
    settings = LetheSettings(**base_settings)
    events: list[Envelope] = []

    async def emit(topic: str, env: Envelope) -> None:
        events.append(env)

    deps = exporter.ExporterDeps(
        lethe=lethe_db,
        platform=tenancy_db.pool,
        s3=None,  # refused before any archive is made
        bucket=settings.exports_bucket,
        media_bucket=settings.platform_bucket,
        datamap=dm,
        live=r.live,
        emit=emit,
        master_key=b"0" * 32,
        token_key=b"t",
        hash_key=b"h",
        api_url="http://intake",
    )
    async with tenancy_db.pool.acquire() as conn:
        st = await _stores(conn)
    req = ExportRequested(
        scope="subject",
        subject=Subject(email=st.email),
        regulation="gdpr",
        due_at="2030-01-01T00:00:00Z",
        channel="http",
    )
    env = make_event(req, actor=ACTOR, job_id=uuid.uuid4(), org_id="org-abc")
    await exporter.export(env, deps)
    assert [e.payload for e in events if e.type == "JobFailed"] == [
        {"reason": "the organisation id is not a valid integer for member.store_id"}
    ]
    assert env.job_id is not None
    assert await export_store.get_export(lethe_db, env.job_id) is None  # nothing begun
