"""The auditor's batches against real Postgres and Kafka: one transaction per batch keeps the
order, appends a redelivered event once, signs checkpoints where one-by-one appends would,
and a poison record (not an envelope, or a value Postgres refuses) is dead-lettered alone
while the rest of its batch is appended."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.local import infra
from services.auditor import ingest, store
from services.auditor.app import create_app as create_auditor
from services.auditor.settings import AuditorSettings
from services.auditor.store import Signer
from shared.auditchain.verify import verify_chain
from shared.events.topics import AUDIT, DLQ
from tests.helpers import eventually
from tests.integration import test_audit_trail as trail
from tests.integration.test_audit_trail import KEY, TRUSTED, Scratch, _event

pytestmark = pytest.mark.integration
scratch = trail.scratch  # the same fixture: a fresh Lethe database per test


async def _ids(scratch: Scratch, org: str | None = None) -> list[uuid.UUID]:
    rows = await scratch.pool.fetch(
        "SELECT event_id FROM lethe.audit_log WHERE $1::text IS NULL OR org_id = $1 ORDER BY seq",
        org,
    )
    return [r["event_id"] for r in rows]


async def test_batches_append_each_event_once_in_order_signed_as_one_by_one(
    scratch: Scratch,
) -> None:
    events = [_event(i=i) for i in range(23)]
    signer = Signer(KEY, 5)
    first = await store.append_batch(scratch.pool, events[:10], signer=signer)
    assert [r.seq for r in first] == list(range(1, 11))
    # Redelivered: overlapping what is recorded, and an event twice in the batch.
    again = await store.append_batch(scratch.pool, events[4:18] + events[12:14], signer=signer)
    assert [r.event_id for r in again] == [e.event_id for e in events[10:18]]
    assert await store.append_batch(scratch.pool, events[:18], signer=signer) == []
    for e in events[18:]:
        await store.append(scratch.pool, e, signer=signer)
    assert await _ids(scratch) == [e.event_id for e in events]
    signed = await scratch.pool.fetch("SELECT seq FROM lethe.audit_checkpoints ORDER BY seq")
    assert [r["seq"] for r in signed] == [5, 10, 15, 20]
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.rows == 23 and v.checkpoints == 4 and v.unsigned_tail == 3, v


async def test_a_value_postgres_refuses_is_set_aside_and_the_rest_appended(
    scratch: Scratch,
) -> None:
    events = [_event(i=i) for i in range(6)]
    events[2] = _event(org="org-\x00", i=2)  # text cannot hold NUL: refused on every try
    refused = await ingest.append(scratch.pool, events, Signer(KEY, 2))
    assert [i for i, _ in refused] == [2] and "0x00" in refused[0][1]
    assert await _ids(scratch) == [e.event_id for i, e in enumerate(events) if i != 2]
    v = await verify_chain(scratch.pool, TRUSTED)
    assert v.ok and v.rows == 5 and v.checkpoints == 2, v


async def test_the_auditor_dead_letters_poison_alone_and_appends_the_rest(
    scratch: Scratch, base_settings: dict[str, Any], prepared: infra.Endpoints
) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    settings = AuditorSettings(**{**base_settings, "database_url": scratch.dsn})
    group_id = f"test-auditor-poison-{uuid.uuid4().hex[:8]}"
    events = [_event(org=org, i=i) for i in range(40)]
    poison = [b"not an envelope", _event(org=f"{org}\x00", i=99).model_dump_json().encode()]
    values = [e.model_dump_json().encode() for e in events]
    values[20:20] = poison
    bootstrap = prepared.kafka_bootstrap_servers
    dlq = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await dlq.start()
    try:
        part = TopicPartition(DLQ, 0)
        dlq.assign([part])
        await dlq.seek_to_end(part)
        await dlq.position(part)
        async with create_auditor(settings, group_id=group_id):
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
            await producer.start()
            try:
                for value in values:  # sent together: they arrive in one or a few batches
                    await producer.send(AUDIT, value, key=org.encode())
                await producer.flush()
            finally:
                await producer.stop()

            async def all_in() -> bool:
                return len(await _ids(scratch, org)) == len(events)

            await eventually(all_in, what="the batch around the poison appended", timeout=90)
            dead = await _dead_letters(dlq, settings.group(group_id), 2)
    finally:
        await dlq.stop()
    assert await _ids(scratch, org) == [e.event_id for e in events]  # in order, each once
    assert sorted(value for value, _ in dead) == sorted(poison)
    assert {error.split(":")[0] for _, error in dead} >= {"invalid message"}
    v = await verify_chain(scratch.pool)
    assert v.ok, v


async def _dead_letters(dlq: AIOKafkaConsumer, group: str, n: int) -> list[tuple[bytes, str]]:
    found: list[tuple[bytes, str]] = []

    async def read() -> bool:
        for records in (await dlq.getmany(timeout_ms=500)).values():
            for rec in records:
                headers = {k: v.decode() for k, v in rec.headers}
                if headers.get("lethe-consumer-group") == group:
                    found.append((rec.value, headers["lethe-error"]))
        return len(found) >= n

    await eventually(read, what=f"{n} dead letters from {group}", timeout=60)
    return found
