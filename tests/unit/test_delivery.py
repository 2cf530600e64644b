"""`shared.messaging.Delivery` on its own: the backoff between attempts (with jitter, within the
retry horizon), an outage retried until the horizon while a bug gets a few attempts, and a
message whose dead-lettering (or give-up hook) failed is not committed (it comes again)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError
from botocore.exceptions import ClientError, EndpointConnectionError
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.events import Actor, Envelope
from shared.messaging import delivery as delivery_module
from shared.messaging.delivery import Delivery, Policy
from shared.messaging.faults import transient
from tests.unit.kafka_fakes import running

pytestmark = pytest.mark.unit


def _failing_router(
    seen: list[KafkaMessage],
    given_up: list[str],
    *,
    retries: int,
    backoff: float = 0.5,
    error: Callable[[], Exception] = lambda: RuntimeError("still failing"),
    horizon: float = 120.0,
    hook_error: Exception | None = None,
) -> KafkaRouter:
    delivery = Delivery(horizon_seconds=horizon)
    router = KafkaRouter(middlewares=[delivery])

    async def give_up(env: Envelope, error: str) -> None:
        if hook_error is not None:
            raise hook_error
        given_up.append(error)

    @router.subscriber(
        "test.topic",
        **delivery.consumer("g", retries=retries, backoff_seconds=backoff, on_give_up=give_up),
    )
    async def handle(message: KafkaMessage) -> None:
        seen.append(message)
        raise error()

    return router


class Clock:
    """asyncio.sleep and time.monotonic of the delivery module: sleeping moves the clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        monkeypatch.setattr(delivery_module.asyncio, "sleep", self.sleep)
        monkeypatch.setattr(delivery_module.time, "monotonic", lambda: self.now)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _envelope() -> bytes:
    env = Envelope(type="Anything", actor=Actor(kind="service", id="t"), payload={})
    env = env.model_copy(update={"job_id": uuid.uuid4()})
    return env.model_dump_json().encode()


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
    # An outage is not counted, only timed; no single wait is longer than the cap (+ jitter).
    outage = Policy(retries=3, backoff_seconds=1.0, horizon_seconds=120.0)
    assert outage.wait(3, elapsed=0.0, outage=True) is not None
    assert (outage.wait(20, elapsed=50.0, outage=True) or 99) <= 15.0 * 1.25
    assert outage.wait(20, elapsed=110.0, outage=True) is None


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


async def test_an_outage_is_retried_until_the_horizon_not_for_a_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    seen: list[KafkaMessage] = []
    given_up: list[str] = []
    router = _failing_router(
        seen,
        given_up,
        retries=3,
        horizon=120.0,
        error=lambda: asyncpg.CannotConnectNowError("the database system is starting up"),
    )
    async with running(router) as (broker, recorded):
        await broker.publish(_envelope(), "test.topic")
    # Far more than 3 attempts, over (almost) the whole two minutes, no wait above 15 s (+25 %).
    assert len(seen) > 10
    assert 100.0 <= clock.now <= 120.0
    assert max(clock.waits) <= 15.0 * 1.25
    [(_, headers)] = recorded.dlq
    assert "starting up" in headers["lethe-error"]
    assert len(given_up) == 1


async def test_a_bug_gets_its_few_attempts_even_with_a_long_horizon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    seen: list[KafkaMessage] = []
    async with running(
        _failing_router(seen, [], retries=3, error=lambda: KeyError("no such table"))
    ) as (broker, recorded):
        await broker.publish(b"{}", "test.topic")
    assert len(seen) == 3 and clock.now < 5.0
    assert len(recorded.dlq) == 1


async def test_a_give_up_hook_meeting_an_outage_is_not_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    seen: list[KafkaMessage] = []
    router = _failing_router(
        seen, [], retries=1, hook_error=ConnectionRefusedError("postgres is down")
    )
    async with running(router) as (broker, _):
        await broker.publish(_envelope(), "test.topic")
    [message] = seen
    # The chunk's review item was not written: the message comes again rather than being lost.
    assert message.committed is not None and message.committed.name == "NACKED"


def test_consumers_may_hold_a_message_for_one_attempt_plus_the_horizon() -> None:
    delivery = Delivery(horizon_seconds=120.0)
    options = delivery.consumer("g", max_poll_interval_ms=10 * 60 * 1000)
    assert options["max_poll_interval_ms"] == (10 * 60 + 120) * 1000
    assert delivery.policy("g").horizon_seconds == 120.0
    assert delivery.policy("undeclared").horizon_seconds == 120.0


def test_outages_and_bugs_told_apart() -> None:
    outages: list[BaseException] = [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.CannotConnectNowError("the database system is in recovery mode"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        # asyncpg's protocol after the server cut the connection mid-query.
        asyncpg.exceptions._base.InternalClientError(
            "cannot switch to state 11; another operation (2) is in progress"
        ),
        ConnectionRefusedError(111, "Connect call failed"),
        OSError("Network is unreachable"),
        TimeoutError(),
        KafkaTimeoutError(),
        EndpointConnectionError(endpoint_url="http://s3"),
        ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"),
    ]
    bugs: list[BaseException] = [
        RuntimeError("still failing"),
        KeyError("x"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.RaiseError("row is locked by legal hold"),
        asyncpg.UniqueViolationError("duplicate key"),
        ClientError({"Error": {"Code": "AccessDenied"}}, "PutObject"),
    ]
    assert [e for e in outages if not transient(e)] == []
    assert [e for e in bugs if transient(e)] == []
    wrapped = RuntimeError("could not move the objects")
    wrapped.__cause__ = EndpointConnectionError(endpoint_url="http://s3")
    assert transient(wrapped)
