"""Dead-lettering on the real Kafka: a handler that keeps failing is retried until the retry
horizon, then its message lands on `lethe.dlq.v1` (original bytes and key, with source topic,
group and error); `lethe dlq list / show / replay` find it and, once the cause is fixed, put it
back on its topic, where it is processed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from services.cli.dlq import DeadLetter, read_all
from shared.events.topics import TopicSpec
from shared.kafka import apply_topics, create_broker
from shared.messaging import Delivery
from tests.helpers import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HORIZON = 1.5  # seconds: short, so that the test sees the give-up soon


class Flaky:
    """A handler's cause of failure, fixed by the test."""

    def __init__(self) -> None:
        self.broken = True
        self.attempts: list[float] = []
        self.processed: list[bytes] = []


@pytest.fixture
async def topic(infra_settings: dict[str, Any]) -> str:
    name = f"test.dlq.{uuid.uuid4().hex[:8]}"
    await apply_topics(infra_settings["kafka_bootstrap_servers"], [TopicSpec(name, 1)])
    return name


@pytest.fixture
async def flaky(infra_settings: dict[str, Any], topic: str) -> AsyncIterator[Flaky]:
    state = Flaky()
    delivery = Delivery(horizon_seconds=HORIZON)
    router = KafkaRouter(middlewares=[delivery])
    group = f"test-dlq-{uuid.uuid4().hex[:6]}"

    # Many attempts allowed: the horizon, not the count, ends the retries here.
    @router.subscriber(topic, **delivery.consumer(group, retries=100, backoff_seconds=0.2))
    async def handle(message: KafkaMessage) -> None:
        state.attempts.append(time.monotonic())
        if state.broken:
            raise ConnectionError("the database is down")
        state.processed.append(message.body)

    broker = create_broker(infra_settings["kafka_bootstrap_servers"], service="test-dlq")
    broker.include_router(router)
    async with broker:
        await broker.start()
        yield state


async def _lethe(infra_settings: dict[str, Any], *args: str) -> str:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra_settings["kafka_bootstrap_servers"],
        "DATABASE_URL": infra_settings["database_url"],
        "LETHE_ENV_FILE": "/nonexistent",
        "COLUMNS": "250",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli import app; app()",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def _dead_letter_from(bootstrap: str, topic: str) -> DeadLetter | None:
    found = [d for d in await read_all(bootstrap) if d.source_topic == topic]
    return found[0] if found else None


async def test_exhausted_retries_are_dead_lettered_and_replayed(
    infra_settings: dict[str, Any], topic: str, flaky: Flaky
) -> None:
    bootstrap = infra_settings["kafka_bootstrap_servers"]
    body = json.dumps({"marker": uuid.uuid4().hex}).encode()
    await _publish(bootstrap, topic, body, key=b"job-1")

    dead = await eventually(
        lambda: _dead_letter_from(bootstrap, topic), what="the dead letter", timeout=60
    )
    assert dead.value == body and dead.key == b"job-1"
    assert dead.headers["lethe-error"] == "ConnectionError: the database is down"
    assert dead.headers["lethe-consumer-group"].startswith("test-dlq-")
    # Retried with backoff until the horizon, not for the 100 attempts allowed.
    assert 3 <= len(flaky.attempts) < 100
    assert flaky.attempts[-1] - flaky.attempts[0] <= HORIZON
    assert flaky.processed == []

    listed = await _lethe(infra_settings, "dlq", "list", "--source-topic", topic)
    assert dead.ref in listed and "not an envelope" in listed
    shown = await _lethe(infra_settings, "dlq", "show", dead.ref)
    assert "the database is down" in shown

    flaky.broken = False  # the cause is fixed
    await _lethe(infra_settings, "dlq", "replay", dead.ref)
    await eventually(
        lambda: _async(flaky.processed or None), what="the replayed message", timeout=60
    )
    assert flaky.processed == [body]
    # Nothing new on the DLQ: the replay went through.
    assert [d.ref for d in await read_all(bootstrap) if d.source_topic == topic] == [dead.ref]


async def _publish(bootstrap: str, topic: str, body: bytes, *, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, body, key=key)
    finally:
        await producer.stop()


async def _async(value: Any) -> Any:
    return value
