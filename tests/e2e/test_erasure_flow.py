"""The thin slice, end to end: five services as processes on real Kafka/Postgres/S3/SMTP."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg
from shared.auditchain.verify import verify_chain
from shared.events.topics import DLQ, JOBS_ERASE
from tests.conftest import Org
from tests.helpers import eventually, find_record, job_in, mails_to, s3_exists, submit
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
BUCKET = "lethe-platform"


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    return await seed_sample(
        platform_db,
        s3,
        org.id,
        bucket=BUCKET,
        heavy=4,
        conversations_per_user=3,
        messages_per_conversation=20,
        media_every=4,
    )


async def _submit_and_finish(
    client: httpx.AsyncClient, org: Org, body: dict[str, Any], timeout: float = 90
) -> dict[str, Any]:
    job_id = await submit(client, org, body)
    return await job_in(client, org, job_id, ("completed", "failed"), timeout=timeout)


async def _rows_of(platform_db: asyncpg.Pool, user_id: int) -> dict[str, int]:
    r = await platform_db.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE id = $1) AS users, "
        "(SELECT count(*) FROM conversations WHERE user_id = $1) AS conversations, "
        "(SELECT count(*) FROM messages WHERE author_id = $1) AS messages, "
        "(SELECT count(*) FROM media_objects m JOIN messages g ON g.id = m.message_id "
        " WHERE g.author_id = $1) AS media",
        user_id,
    )
    return dict(r)


async def _exists(s3: Any, key: str) -> bool:
    return await s3_exists(s3, BUCKET, key)


async def test_erasure_goes_through_all_five_services(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
    prepared: infra.Endpoints,
) -> None:
    subject, others = seeded.users[0], seeded.users[1:]
    assert subject.object_keys and all(o.object_keys for o in others)
    before = {o.id: await _rows_of(platform_db, o.id) for o in others}
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"

    job = await _submit_and_finish(
        client,
        org,
        {
            "type": "erasure",
            "subject": {"email": subject.email},
            "notify_email": requester,
            "request_id": f"req-{uuid.uuid4()}",
            "recovery_window_days": 0,
        },
    )

    assert job["status"] == "completed", job
    assert job["total"] == seeded.rows_of(subject) == job["done"]
    assert job["percent"] == 100.0 and job["result"]["verification"]["ok"] is True
    # The subject's rows and objects are gone; nobody else lost anything.
    assert await _rows_of(platform_db, subject.id) == {
        "users": 0,
        "conversations": 0,
        "messages": 0,
        "media": 0,
    }
    assert not any([await _exists(s3, k) for k in subject.object_keys])
    for o in others:
        assert await _rows_of(platform_db, o.id) == before[o.id]
        assert all([await _exists(s3, k) for k in o.object_keys])
    # The requester is told.
    mails = await eventually(
        lambda: _async(mails_to(prepared.mail_dir, requester)), what="completion email"
    )
    assert job["id"] in mails[0]["Subject"]
    # Every step is in an intact audit chain, with no raw identity in it.
    actions = await eventually(
        lambda: _audit_actions(lethe_db, job["id"], "NotificationSent"),
        what="the notification's audit row",
    )
    assert {
        "ErasureRequested",
        "ErasurePlanned",
        "BatchErased",
        "JobCompleted",
        "SendEmail",
        "NotificationSent",
    } <= set(actions)
    dump = await lethe_db.fetchval(
        "SELECT string_agg(details::text || coalesce(subject_hash, ''), ' ') "
        "FROM lethe.audit_log WHERE job_id = $1",
        uuid.UUID(job["id"]),
    )
    assert subject.email not in dump and requester not in dump
    verdict = await verify_chain(lethe_db)
    assert verdict.ok, verdict


async def _async(value: Any) -> Any:
    return value


async def _audit_actions(pool: asyncpg.Pool, job_id: str, needed: str) -> list[str] | None:
    rows = await pool.fetch(
        "SELECT action FROM lethe.audit_log WHERE job_id = $1 ORDER BY seq", uuid.UUID(job_id)
    )
    actions = [r["action"] for r in rows]
    return actions if needed in actions else None


async def test_a_redelivered_erasure_changes_nothing(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
) -> None:
    request_id = f"req-{uuid.uuid4()}"
    body = {
        "type": "erasure",
        "subject": {"email": seeded.users[1].email},
        "request_id": request_id,
        "recovery_window_days": 0,
    }
    job = await _submit_and_finish(client, org, body)
    assert job["status"] == "completed"
    # Same idempotency key over HTTP: the same job, nothing new.
    again = await client.post("/v1/requests", json=body, headers=org.headers)
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    job_uuid = uuid.UUID(job["id"])
    await eventually(
        lambda: _audit_actions(lethe_db, job["id"], "JobCompleted"),
        what="JobCompleted in the audit trail",
    )
    audit_before = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.audit_log WHERE job_id = $1", job_uuid
    )

    # Redeliver the very ErasureRequested record Kafka holds for this job.
    key = job["id"].encode()
    raw = await find_record(prepared.kafka_bootstrap_servers, JOBS_ERASE, lambda r: r.key == key)
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(JOBS_ERASE, raw, key=job["id"].encode())
    finally:
        await producer.stop()

    await eventually(
        lambda: _audit_actions(lethe_db, job["id"], "DuplicateIgnored"),
        what="the duplicate's own audit record",
    )
    assert await lethe_db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org.id) == 1
    assert (
        await lethe_db.fetchval(
            "SELECT count(*) FROM lethe.erase_tasks WHERE job_id = $1", job_uuid
        )
        == 1
    )
    audit_after = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.audit_log WHERE job_id = $1", job_uuid
    )
    assert audit_after == audit_before + 1  # only the DuplicateIgnored record
    final = (await client.get(f"/v1/jobs/{job['id']}", headers=org.headers)).json()
    assert final["status"] == "completed" and final["done"] == job["done"]


async def test_bad_input_gets_clear_errors(client: httpx.AsyncClient, org: Org) -> None:
    r = await client.post(
        "/v1/requests", json={"type": "erasure", "subject": {}}, headers=org.headers
    )
    assert r.status_code == 422 and "at least one identity" in r.text
    r = await client.post("/v1/requests", json={"type": "erasure"})
    assert r.status_code == 401 and "Bearer" in r.text
    r = await client.post(
        "/v1/requests",
        json={"type": "erasure", "scope": "organisation", "confirm_org_name": "wrong"},
        headers=org.headers,
    )
    assert r.status_code == 422 and "confirm_org_name" in r.text
    r = await client.get(f"/v1/jobs/{uuid.uuid4()}", headers=org.headers)
    assert r.status_code == 404


async def test_a_poison_message_is_dead_lettered_and_the_consumer_goes_on(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    prepared: infra.Endpoints,
) -> None:
    marker = f"poison-{uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=prepared.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(JOBS_ERASE, b"not json " + marker, key=marker)
    finally:
        await producer.stop()
    dead = await _find_record_eventually(prepared.kafka_bootstrap_servers, marker)
    assert marker in dead
    job = await _submit_and_finish(
        client,
        org,
        {
            "type": "erasure",
            "subject": {"email": seeded.users[2].email},
            "recovery_window_days": 0,
        },
    )
    assert job["status"] == "completed"


async def _find_record_eventually(bootstrap: str, marker: bytes) -> bytes:
    async def probe() -> bytes | None:
        try:
            return await find_record(bootstrap, DLQ, lambda r: marker in r.value)
        except AssertionError:
            return None

    return await eventually(probe, what="the poison message in the DLQ", timeout=60)
