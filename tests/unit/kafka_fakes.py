"""In-memory Kafka for handler tests: a service's router on a broker built as in production
(`create_broker`: audit copy and tracing middleware), run by FastStream's TestKafkaBroker,
with recorders on the dead-letter and audit topics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.events import Envelope
from shared.events.topics import AUDIT, DLQ
from shared.kafka import create_broker, event_headers


def fake_settings(**overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "dlq_retries": 3,
        "dlq_retry_horizon_seconds": 120.0,
        "erase_concurrency": 1,
        "erase_job_concurrency": 1,
        "public_mode": False,
        "notify_retries": 3,
        "notify_backoff_seconds": 0.01,
    }
    values.update(overrides)
    return SimpleNamespace(group=lambda name: f"test-{name}", **values)


def fake_runtime(settings: SimpleNamespace | None = None, **attrs: Any) -> Any:
    """What a service's `build_router` reads from its runtime (the deps are the tests')."""
    return SimpleNamespace(settings=settings or fake_settings(), **attrs)


@dataclass
class Recorded:
    dlq: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    audit: list[Envelope] = field(default_factory=list)
    topics: dict[str, list[Envelope]] = field(default_factory=dict)  # `running(..., also=)`


@asynccontextmanager
async def running(
    router: KafkaRouter, *, also: tuple[str, ...] = ()
) -> AsyncIterator[tuple[KafkaBroker, Recorded]]:
    broker = create_broker("localhost:9092", service="test")
    broker.include_router(router)
    seen = Recorded()

    @broker.subscriber(DLQ, group_id="test-dlq-reader")
    async def _dlq(message: KafkaMessage) -> None:
        seen.dlq.append((message.body, dict(message.headers)))

    @broker.subscriber(AUDIT, group_id="test-audit-reader")
    async def _audit(message: KafkaMessage) -> None:
        with contextlib.suppress(ValidationError):  # a test's poison message, not an event
            seen.audit.append(Envelope.model_validate_json(message.body))

    for topic in also:
        broker.subscriber(topic, group_id=f"test-reader-{topic}")(_collect(seen, topic))

    async with TestKafkaBroker(broker) as br:
        yield br, seen


def _collect(seen: Recorded, topic: str) -> Callable[[Envelope], Awaitable[None]]:
    found = seen.topics[topic] = []

    async def collect(env: Envelope) -> None:
        found.append(env)

    return collect


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
