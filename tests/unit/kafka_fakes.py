"""In-memory Kafka for handler tests: a service's router on a broker built as in production
(`create_broker`: audit copy and tracing middleware), run by FastStream's TestKafkaBroker,
with recorders on the dead-letter and audit topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.events import Envelope
from shared.events.topics import AUDIT, DLQ
from shared.kafka import create_broker, event_headers


def fake_settings(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "dlq_retries": 3,
        "erase_concurrency": 1,
        "public_mode": False,
        "notify_retries": 3,
        "notify_backoff_seconds": 0.01,
    }
    values.update(overrides)
    return SimpleNamespace(group=lambda name: f"test-{name}", **values)


@dataclass
class Recorded:
    dlq: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    audit: list[Envelope] = field(default_factory=list)


@asynccontextmanager
async def running(router: KafkaRouter) -> AsyncIterator[tuple[KafkaBroker, Recorded]]:
    broker = create_broker("localhost:9092", service="test")
    broker.include_router(router)
    seen = Recorded()

    @broker.subscriber(DLQ, group_id="test-dlq-reader")
    async def _dlq(message: KafkaMessage) -> None:
        seen.dlq.append((message.body, dict(message.headers)))

    @broker.subscriber(AUDIT, group_id="test-audit-reader")
    async def _audit(message: KafkaMessage) -> None:
        seen.audit.append(Envelope.model_validate_json(message.body))

    async with TestKafkaBroker(broker) as br:
        yield br, seen


async def send(broker: KafkaBroker, topic: str, env: Envelope) -> None:
    await broker.publish(
        env.model_dump_json().encode(), topic, key=env.key(), headers=event_headers(env)
    )


def recorder(calls: list[tuple[str, Envelope]], name: str) -> Callable[..., Awaitable[Any]]:
    async def record(env: Envelope, *args: Any, **kwargs: Any) -> bool:
        calls.append((name, env))
        return False

    return record


def failing(calls: list[tuple[str, Envelope]], name: str) -> Callable[..., Awaitable[Any]]:
    async def fail(env: Envelope, *args: Any, **kwargs: Any) -> None:
        calls.append((name, env))
        raise RuntimeError(f"{name} is down")

    return fail
