"""The drain on SIGTERM, with fake subscribers: what it waits for, and what it abandons."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.health import Ops
from shared.metrics import Metrics
from shared.settings import LetheSettings

pytestmark = pytest.mark.unit


class Lock:
    def __init__(self, events: list[str]) -> None:
        self.held = 0
        self.events = events

    @property
    def empty(self) -> bool:
        self.events.append("looked whether the message is done")
        return self.held == 0


class Subscriber:
    """Stands in for a FastStream subscriber: `running`, a lock held while handling, tasks."""

    def __init__(self, seconds: float | None) -> None:
        self.events: list[str] = []  # what the drain did to this subscriber, in order
        self._running = True
        self.lock = Lock(self.events)
        self.finished = False
        self.tasks: list[asyncio.Task[None]] = []
        if seconds is not None:
            self.lock.held = 1
            self.tasks.append(asyncio.create_task(self._handle(seconds)))

    @property
    def running(self) -> bool:
        return self._running

    @running.setter
    def running(self, value: bool) -> None:
        if not value:
            self.events.append("stopped taking messages")
        self._running = value

    async def _handle(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
            self.finished = True
        except asyncio.CancelledError:
            self.events.append("abandoned the message")
            raise
        finally:
            self.lock.held = 0


class Broker:
    def __init__(self, subscribers: list[Subscriber]) -> None:
        self.subscribers = subscribers


def _ops(broker: Any, grace: float) -> Ops:
    return Ops(broker, LetheSettings(), Metrics("test"), {}, grace=grace)


async def test_drain_stops_intake_and_waits_for_the_message_in_hand() -> None:
    idle, busy = Subscriber(None), Subscriber(0.3)
    ops = _ops(Broker([idle, busy]), grace=8)
    await ops.drain()
    assert not idle.running and not busy.running  # nothing new is taken
    assert busy.finished  # the message in hand finished (its offset gets committed)
    ok, checks = await ops.readiness()
    assert not ok and checks == {"shutdown": "draining"}


async def test_drain_abandons_what_outlasts_the_budget() -> None:
    stuck = Subscriber(60)
    ops = _ops(Broker([stuck]), grace=2)  # budget: 2 - 0.5 s kept for closing
    await ops.drain()
    await asyncio.sleep(0)  # the cancellation reaches the handler
    # In this order: no new message taken, the message in hand waited for (looked at
    # more than once), then abandoned; nothing after.
    looked = "looked whether the message is done"
    assert stuck.events[0] == "stopped taking messages"
    assert stuck.events[-1] == "abandoned the message"
    assert stuck.events[1:-1] == [looked] * (len(stuck.events) - 2)
    assert stuck.events.count(looked) >= 2
    assert stuck.tasks[0].cancelled() or stuck.tasks[0].done()
    assert not stuck.finished and stuck.lock.empty  # cancelled: never committed
