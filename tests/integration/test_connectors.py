"""Connectors (issue 17, item 5), on real Postgres and a real HTTP server on 127.0.0.1 (callbacks
may reach loopback only because the tests allow it, as LETHE_CALLBACK_ALLOWED_NETWORKS does):

- an HTTP connector is called once per erasure at the purge, signed as webhooks are, and the
  receiver verifies the signature; its outcome is in the job's verification;
- a connector that keeps failing is retried with backoff, then the job has a review item;
- the subject's OAuth tokens are revoked (RFC 7009, client authenticated) before the rows
  holding them are erased, and only the subject's.

The eraser's domain runs in-process on a database of its own (as test_tenancy.py does).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local import infra
from services.eraser import bootstrap, service, store
from services.eraser.settings import EraserSettings
from shared.datamap import check_against_database, load_datamap
from tests.conftest import SchemaDB
from tests.connector_server import ConnectorServer
from tests.erasing import InProcessEraser, erasure_request
from tests.schemas import databases

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE users (id bigserial PRIMARY KEY, org_id text NOT NULL, email text NOT NULL);
CREATE TABLE oauth_tokens (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id),
    access_token   text NOT NULL,
    refresh_token  text
);
"""
MAP = """version: 2
subject: {{table: users, org_column: org_id, identities: {{email: email, user_id: id}}}}
tables:
  users: {{primary_key: id, org_column: org_id}}
  oauth_tokens:
    primary_key: id
    parents: [{{table: users, column: user_id}}]
connectors:
  crm:
    type: http
    url: "{erase_url}"
    secret_env: TEST_CRM_SECRET
  idp:
    type: oauth_revocation
    endpoint: "{revoke_url}"
    table: oauth_tokens
    tokens: {{access_token: access_token, refresh_token: refresh_token}}
    client_id_env: TEST_IDP_CLIENT_ID
    client_secret_env: TEST_IDP_CLIENT_SECRET
"""
ENV = {
    "TEST_CRM_SECRET": "crm-signing-secret-0123456789",
    "TEST_IDP_CLIENT_ID": "lethe-client",
    "TEST_IDP_CLIENT_SECRET": "idp-client-secret",
}


@pytest.fixture(scope="module")
async def connector_db(prepared: infra.Endpoints) -> AsyncIterator[SchemaDB]:
    admin = prepared.platform_database_url
    dsn = await databases.create_database(admin, "connectors")
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


@pytest.fixture
def server() -> Iterator[ConnectorServer]:
    s = ConnectorServer(
        ENV["TEST_CRM_SECRET"], ENV["TEST_IDP_CLIENT_ID"], ENV["TEST_IDP_CLIENT_SECRET"]
    )
    s.start()
    yield s
    s.stop()


async def _eraser(
    base_settings: dict[str, Any],
    lethe: asyncpg.Pool,
    db: SchemaDB,
    tmp_path: Path,
    server: ConnectorServer,
    *,
    allowed: list[str] | None = None,
    erase_path: str = "/erase",
) -> InProcessEraser:
    path = tmp_path / f"map-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(MAP.format(erase_url=server.url(erase_path), revoke_url=server.url("/revoke")))
    dm = load_datamap(path)
    settings = EraserSettings(
        **base_settings,
        erase_batch_size=10,
        # Chunks go to the task topic (this test's queue), not run inside the plan, so the
        # test can look between the revocation and the first chunk (plan.py revokes before
        # either path).
        erase_inline_small_jobs=False,
        connector_attempts=3,
        connector_backoff_seconds=0.05,
        connector_timeout_seconds=5,
        callback_allowed_networks=["127.0.0.0/8"] if allowed is None else allowed,
    )
    async with db.pool.acquire() as conn:
        live = await check_against_database(dm, conn)
    deps = bootstrap.build_deps(
        settings, lethe=lethe, platform=db.pool, s3=None, datamap=dm, live=live, environ=ENV
    )
    run = InProcessEraser(deps)
    deps.emit, deps.publish_chunk = run.emit, run.publish
    return run


async def _person(db: SchemaDB, org_id: str, tokens: int = 2) -> tuple[int, str, list[str]]:
    """A user of the org with `tokens` token rows (an access and a refresh token each)."""
    email = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    async with db.pool.acquire() as conn:
        uid: int = await conn.fetchval(
            "INSERT INTO users (org_id, email) VALUES ($1, $2) RETURNING id", org_id, email
        )
        values = []
        for _ in range(tokens):
            access, refresh = f"at-{uuid.uuid4().hex}", f"rt-{uuid.uuid4().hex}"
            await conn.execute(
                "INSERT INTO oauth_tokens (user_id, access_token, refresh_token) "
                "VALUES ($1, $2, $3)",
                uid,
                access,
                refresh,
            )
            values += [access, refresh]
    return uid, email, values


async def test_connectors_are_called_signed_and_tokens_revoked_before_the_rows_go(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    connector_db: SchemaDB,
    tmp_path: Path,
    server: ConnectorServer,
) -> None:
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    uid, email, tokens = await _person(connector_db, org_id)
    _, _, others = await _person(connector_db, org_id)  # someone else: never revoked
    run = await _eraser(base_settings, lethe_db, connector_db, tmp_path, server)
    env = erasure_request(org_id, {"email": email}, window=0)
    assert env.job_id is not None

    await service.plan(env, run.deps)
    # Planned, no chunk run yet: every token of the subject revoked, with the right hint,
    # by an authenticated client, while the rows holding them are still there.
    revoked = {r.form()["token"]: r.form()["token_type_hint"] for r in server.at("/revoke")}
    assert set(revoked) == set(tokens)
    assert {revoked[t] for t in tokens[0::2]} == {"access_token"}
    assert {revoked[t] for t in tokens[1::2]} == {"refresh_token"}
    assert all(r.verified for r in server.at("/revoke"))
    held = await connector_db.pool.fetchval(
        "SELECT count(*) FROM oauth_tokens WHERE user_id = $1", uid
    )
    assert held == 2 and run.queue, "revoked before any chunk erased the token rows"
    assert server.at("/erase") == [], "the HTTP erasure waits for the purge"

    await run.drain()  # the rows go; a window of 0 purges at once
    assert not await connector_db.pool.fetchval("SELECT count(*) FROM users WHERE id = $1", uid)
    assert not set(others) & {r.form()["token"] for r in server.at("/revoke")}

    calls = server.at("/erase")
    assert len(calls) == 1 and calls[0].verified, "signed as webhooks are, verified"
    body = calls[0].json()
    assert body["identities"] == {"email": email} and body["job_id"] == str(env.job_id)
    assert calls[0].headers["lethe-event-id"] == body["event_id"]

    (done,) = run.of("JobCompleted")
    assert done["verification"]["connectors"] == {
        "crm": {"kind": "http", "outcome": "done"},
        "idp": {"kind": "oauth_revocation", "outcome": "done", "tokens": 4, "failed_tokens": 0},
    }
    assert done["needs_review"] == []
    reported = {p["connector"]: p["outcome"] for p in run.of("ConnectorCalled")}
    assert reported == {"crm": "done", "idp": "done"}


async def test_a_failing_connector_is_retried_then_a_review_item(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    connector_db: SchemaDB,
    tmp_path: Path,
    server: ConnectorServer,
) -> None:
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    _, email, tokens = await _person(connector_db, org_id, tokens=1)
    server.status["/erase"] = [503]  # always busy
    server.status["/revoke"] = [500, 200]  # revocation: one failure, then fine
    run = await _eraser(base_settings, lethe_db, connector_db, tmp_path, server)
    env = erasure_request(org_id, {"email": email}, window=0)
    await service.plan(env, run.deps)
    await run.drain()

    assert len(server.at("/erase")) == 3, "three attempts (connector_attempts)"
    assert {r.form()["token"] for r in server.at("/revoke")} == set(tokens)
    (done,) = run.of("JobCompleted")
    assert done["verification"]["connectors"]["crm"] == {
        "kind": "http",
        "outcome": "failed",
        "code": "http_503",
    }
    assert done["verification"]["connectors"]["idp"]["outcome"] == "done"
    assert {"kind": "connector", "connector": "crm", "code": "http_503"} in done["needs_review"]
    assert env.job_id is not None
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "purged"


async def test_a_connector_inside_the_network_is_refused_in_production(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    connector_db: SchemaDB,
    tmp_path: Path,
    server: ConnectorServer,
) -> None:
    """Without LETHE_CALLBACK_ALLOWED_NETWORKS the guard refuses loopback: nothing is sent,
    the connectors fail at once (no retry) with the rule, and the job says so."""
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    _, email, _ = await _person(connector_db, org_id, tokens=1)
    run = await _eraser(base_settings, lethe_db, connector_db, tmp_path, server, allowed=[])
    env = erasure_request(org_id, {"email": email}, window=0)
    await service.plan(env, run.deps)
    await run.drain()
    assert server.received == []
    (done,) = run.of("JobCompleted")
    for name in ("crm", "idp"):
        outcome = done["verification"]["connectors"][name]
        assert outcome["outcome"] == "failed" and outcome["code"].startswith("refused:")
    assert {i["connector"] for i in done["needs_review"] if i["kind"] == "connector"} == {
        "crm",
        "idp",
    }
