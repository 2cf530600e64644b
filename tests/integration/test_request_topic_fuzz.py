"""The request topic takes anything: random bytes, empty and huge messages, wrong JSON types
and shapes on `lethe.requests.v1` are each answered with a RequestRejected naming the reason
(under the message's own key), a message larger than the broker takes is refused to its
producer, and the consumer goes on: a valid request published after them becomes a job."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.events.topics import REQUESTS, REQUESTS_REJECTED
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.integration
EMAIL = {"email": "ann@example.com"}
SEED = random.Random(20261127)
NO_KEY = "not JSON, and no key"


def _cases(org_id: str) -> list[tuple[str, bytes | None]]:
    """(what, value): each must be rejected."""

    def msg(**kw: Any) -> bytes:
        return json.dumps(kw).encode()

    valid = {"type": "erasure", "subject": EMAIL}
    deep = b"[" * 5000 + b"]" * 5000
    return [
        ("random bytes", SEED.randbytes(512)),
        ("random bytes, 64 KiB", SEED.randbytes(65536)),
        ("not UTF-8", b"\xff\xfe{\x00\x00}"),
        ("empty", b""),
        ("no value (tombstone)", None),
        ("a JSON number", b"42"),
        ("a JSON string", b'"erase me"'),
        ("JSON null", b"null"),
        ("JSON true", b"true"),
        ("a JSON array", b'[{"org_id": 1}]'),
        ("nested 5000 deep", deep),
        ("org_id a number", msg(org_id=5, source="shop", request=valid)),
        ("org_id null", msg(org_id=None, source="shop", request=valid)),
        ("source a list", msg(org_id=org_id, source=["shop"], request=valid)),
        ("request a string", msg(org_id=org_id, source="shop", request="erase ann")),
        ("request a list", msg(org_id=org_id, source="shop", request=[valid])),
        (
            "type a number",
            msg(org_id=org_id, source="shop", request={**valid, "type": 1}),
        ),
        (
            "include_media a string",
            msg(org_id=org_id, source="shop", request={**valid, "include_media": "yes"}),
        ),
        (
            "link_ttl_hours a string",
            msg(org_id=org_id, source="shop", request={**valid, "link_ttl_hours": "24"}),
        ),
        (
            "subject a number",
            msg(org_id=org_id, source="shop", request={"type": "erasure", "subject": 7}),
        ),
        (
            "1 MB reason",
            msg(org_id=org_id, source="shop", request={**valid, "reason": "x" * 1_000_000}),
        ),
        (
            "40 000 unknown fields",
            msg(
                org_id=org_id,
                source="shop",
                request={**valid, **{f"field_{i}": i for i in range(40_000)}},
            ),
        ),
        ("source 1 MB", msg(org_id=org_id, source="s" * 1_000_000, request=valid)),
    ]


@pytest.fixture(scope="module")
async def intake(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings))
    async with http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


async def _rejections(bootstrap: str, since_ms: int, keys: set[str]) -> dict[str, dict[str, Any]]:
    """The RequestRejected payloads published since `since_ms`, by original key (a message
    without a key under `None`)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, dict[str, Any]] = {}
    try:
        parts = [TopicPartition(REQUESTS_REJECTED, p) for p in range(3)]
        consumer.assign(parts)
        offsets = await consumer.offsets_for_times({p: since_ms for p in parts})
        end = await consumer.end_offsets(parts)
        for p in parts:
            at = offsets.get(p)
            consumer.seek(p, at.offset if at else end[p])
        while any([await consumer.position(p) < end[p] for p in parts]):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    payload = json.loads(rec.value)["payload"]
                    key = payload.get("original_key")
                    # A message without a key is answered all the same (original_key null).
                    if key in keys or (key is None and "Invalid JSON" in payload["reason"]):
                        found[key if key is not None else "None"] = payload
    finally:
        await consumer.stop()
    return found


async def test_the_request_topic_rejects_anything_malformed_and_goes_on(
    intake: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool, prepared: Any
) -> None:
    bootstrap = prepared.kafka_bootstrap_servers
    since = int(time.time() * 1000) - 1000
    cases = _cases(org.id)
    run = uuid.uuid4().hex[:8]
    keys = {f"{org.id}-fuzz-{run}-{i}": what for i, (what, _) in enumerate(cases)}
    # Up to the broker's default limit (1 MiB per message) and a little over it.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 << 20)
    await producer.start()
    try:
        for key, (_, value) in zip(keys, cases, strict=True):
            await producer.send_and_wait(REQUESTS, value, key=key.encode())
        await producer.send_and_wait(REQUESTS, NO_KEY.encode())  # no key at all
        with pytest.raises(MessageSizeTooLargeError):  # the broker protects the consumer
            await producer.send_and_wait(REQUESTS, b"{" * (2 << 20), key=b"too-big")
        valid = {
            "org_id": org.id,
            "source": "accounts-service",
            "request": {"type": "erasure", "subject": EMAIL, "request_id": f"after-{run}"},
        }
        await producer.send_and_wait(REQUESTS, json.dumps(valid).encode(), key=org.id.encode())
    finally:
        await producer.stop()

    async def job() -> asyncpg.Record | None:
        return await lethe_db.fetchrow(
            "SELECT channel FROM lethe.jobs WHERE org_id = $1 AND request_id = $2",
            org.id,
            f"after-{run}",
        )

    assert (await eventually(job, what="the valid request after the bad ones", timeout=60))[
        "channel"
    ] == "kafka"

    async def all_rejected() -> dict[str, dict[str, Any]] | None:
        found = await _rejections(bootstrap, since, set(keys))
        return found if len(found) == len(keys) + 1 else None

    try:
        found = await eventually(all_rejected, what="a RequestRejected for each", timeout=60)
    except AssertionError:
        found = await _rejections(bootstrap, since, set(keys))
        missing = [what for key, what in {**keys, "None": "no key"}.items() if key not in found]
        raise AssertionError(f"no RequestRejected for: {missing}") from None
    for key, what in {**keys, "None": "no key"}.items():
        payload = found[key]
        assert payload["reason"] and payload["errors"], (what, payload)
        assert len(payload["reason"]) <= 2000 and len(payload["errors"]) <= 20, (what, payload)
    # Only the valid request made a job.
    count = await lethe_db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org.id)
    assert count == 1
