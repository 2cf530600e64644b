"""A dispatcher stopped while it claims: the rows the claim took are released, not left
`sending` until their lease runs out (the race behind a flaky OpenDSR test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.notifier.dispatch import Dispatcher, QueueDeps

pytestmark = pytest.mark.unit


class SlowClaims(Dispatcher[str, QueueDeps]):
    def __init__(self) -> None:
        super().__init__(lambda: QueueDeps(pool=Any, emit=self._emit, poll=0.01))
        self.claiming = asyncio.Event()
        self.go_on = asyncio.Event()
        self.released: list[str] = []
        self.delivering: list[str] = []
        self.rounds = 0

    async def _emit(self, env: Any) -> None:
        pass

    @property
    def per_key(self) -> int:
        return 10

    def key(self, row: str) -> str:
        return row

    async def claim(self, room: int) -> list[str]:
        self.rounds += 1
        self.claiming.set()
        await self.go_on.wait()  # the database has taken the rows; its answer is on its way
        return ["a", "b"]

    async def release(self, rows: list[str]) -> None:
        self.released += rows

    async def deliver(self, row: str) -> None:
        self.delivering.append(row)
        await asyncio.Event().wait()  # a send in flight


async def test_a_stop_during_a_claim_releases_what_the_claim_took() -> None:
    d = SlowClaims()
    await d.start()
    await asyncio.wait_for(d.claiming.wait(), 5)
    stopping = asyncio.create_task(d.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # waits for the round, does not cut the claim short
    d.go_on.set()
    await asyncio.wait_for(stopping, 5)
    assert sorted(d.released) == ["a", "b"]  # pending again at once, not after a lease
    assert d.rounds == 1  # and no round after the stop
