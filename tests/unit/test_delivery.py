"""`shared.messaging.Delivery` on its own: the backoff between attempts (with jitter, within the
retry horizon), and a message whose dead-lettering failed is not committed (it comes again)."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.events import Envelope
from shared.messaging import delivery as delivery_module
from shared.messaging.delivery import Delivery, Policy
from tests.unit.kafka_fakes import running

pytestmark = pytest.mark.unit


def _failing_router(
    seen: list[KafkaMessage], given_up: list[str], *, retries: int, backoff: float = 0.5
) -> KafkaRouter:
    delivery = Delivery()
    router = KafkaRouter(middlewares=[delivery])

    async def give_up(env: Envelope, error: str) -> None:
        given_up.append(error)

    @router.subscriber(
        "test.topic",
        **delivery.consumer("g", retries=retries, backoff_seconds=backoff, on_give_up=give_up),
    )
    async def handle(message: KafkaMessage) -> None:
        seen.append(message)
        raise RuntimeError("still failing")

    return router


async def test_attempts_back_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(delivery_module.asyncio, "sleep", sleep)
    seen: list[KafkaMessage] = []
    async with running(_failing_router(seen, [], retries=4)) as (broker, recorded):
        await broker.publish(b"{}", "test.topic")
    assert len(seen) == 4
    # 0.5 s doubling, each with up to 25 % jitter either way.
    for wait, base in zip(waits, [0.5, 1.0, 2.0], strict=True):
        assert 0.75 * base <= wait <= 1.25 * base
    [(_, headers)] = recorded.dlq
    assert headers["lethe-error"] == "RuntimeError: still failing"


def test_no_wait_goes_past_the_horizon() -> None:
    policy = Policy(retries=100, backoff_seconds=1.0, horizon_seconds=10.0)
    assert 0.75 <= (policy.wait(1, elapsed=0.0) or 0) <= 1.25
    assert policy.wait(3, elapsed=4.0) is not None  # 4 s waited, about 4 more: within 10
    assert policy.wait(3, elapsed=7.5) is None  # the next wait (3-5 s) would end past it
    assert Policy(retries=3).wait(3, elapsed=0.0) is None  # out of attempts


async def test_a_message_not_dead_lettered_is_not_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def kafka_down(*args: Any, **kwargs: Any) -> None:
        raise OSError("kafka down")

    monkeypatch.setattr(delivery_module, "dead_letter", kafka_down)
    seen: list[KafkaMessage] = []
    given_up: list[str] = []
    async with running(_failing_router(seen, given_up, retries=1)) as (broker, recorded):
        await broker.publish(b"{}", "test.topic")
    [message] = seen
    # Nacked: the consumer seeks back to it, so it comes again rather than being skipped.
    assert message.committed is not None and message.committed.name == "NACKED"
    assert recorded.dlq == [] and given_up == []
