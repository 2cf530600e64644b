"""The drain on SIGTERM, with fake subscribers: what it waits for, and what it abandons."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared.health import Ops
from shared.metrics import Metrics
from shared.settings import LetheSettings

pytestmark = pytest.mark.unit


class Lock:
    def __init__(self) -> None:
        self.held = 0

    @property
    def empty(self) -> bool:
        return self.held == 0


class Subscriber:
    """Stands in for a FastStream subscriber: `running`, a lock held while handling, tasks."""

    def __init__(self, seconds: float | None) -> None:
        self.running = True
        self.lock = Lock()
        self.finished = False
        self.tasks: list[asyncio.Task[None]] = []
        if seconds is not None:
            self.lock.held = 1
            self.tasks.append(asyncio.create_task(self._handle(seconds)))

    async def _handle(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
            self.finished = True
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
    started = time.monotonic()
    await ops.drain()
    took = time.monotonic() - started
    assert 1.3 < took < 2.0
    await asyncio.sleep(0)
    assert stuck.tasks[0].cancelled() or stuck.tasks[0].done()
    assert not stuck.finished and stuck.lock.empty  # cancelled: never committed
