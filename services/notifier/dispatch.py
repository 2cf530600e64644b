"""Sending a durable queue off the Kafka consumer's path, written once for the notifier's two
queues: OpenDSR callbacks (`lethe.opendsr_callbacks`, opendsr/) and webhooks
(`lethe.deliveries`, webhooks/). Their consumers only record rows; a `Dispatcher` sends them.

It claims due rows with the leased claim (lease.py: replicas share the work, a row whose
sender died is sent again after its lease) and sends each in its own task, at most
`per_key` at a time per key (OpenDSR: the endpoint; webhooks: the organisation) and
`max_in_flight` in all, so a slow or dead target holds only its own key's slots. Each attempt
is bounded by the attempt timeout and by the delivery's deadline; a failure is retried with
backoff (`QueueDeps.retry_at`), and given up when out of attempts or past the deadline. What
to claim, how to sign and how to record are the subclass's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import asyncpg
import httpx

from services.notifier import lease
from shared import netguard
from shared.events import Envelope

log = logging.getLogger(__name__)
Emit = Callable[[Envelope], Awaitable[None]]


@dataclass(kw_only=True)
class QueueDeps:
    """What a dispatcher sends with, and its limits."""

    pool: asyncpg.Pool
    emit: Emit  # the audit events of what was sent or given up
    timeout: float = 10  # one attempt
    deadline: float = 6 * 3600  # a delivery, from the state change to giving up
    max_attempts: int = 12
    backoff: float = 1.0  # first retry delay; doubles on each attempt
    max_backoff: float = 600
    max_in_flight: int = 64
    poll: float = 1.0
    policy: netguard.Policy = field(default_factory=netguard.Policy)  # what may be reached
    transport: httpx.AsyncBaseTransport | None = None  # tests; else the guarded transport

    @property
    def lease(self) -> float:
        """How long a claimed delivery is ours: longer than any attempt can take."""
        return lease.seconds(self.timeout, 30)

    def retry_at(self, attempts: int, deadline_at: datetime | None) -> tuple[datetime, str | None]:
        """When a delivery that failed its `attempts`-th attempt goes again, and why it does
        not (None: it does)."""
        wait = lease.backoff_after(attempts, self.backoff, self.max_backoff)
        at = datetime.now(UTC) + timedelta(seconds=wait)
        return at, lease.give_up_reason(attempts, self.max_attempts, at, deadline_at)


Row = TypeVar("Row")
D = TypeVar("D", bound=QueueDeps)


# How long `stop` waits for a round of claiming to end before it cancels it.
STOP_WAIT_SECONDS = 10


class Dispatcher(Generic[Row, D]):
    """Claims and sends a queue's due rows (see the module docstring); subclasses say how."""

    name = "queue"  # the task's name, in logs

    def __init__(self, deps: Callable[[], D]) -> None:
        self._make_deps = deps  # called on first use: the pool opens when the app starts
        self._deps: D | None = None
        self.in_flight: dict[str, int] = {}
        self._tasks: dict[asyncio.Task[None], Row] = {}  # in flight, and what each sends
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._http: httpx.AsyncClient | None = None

    # --- what a queue says -------------------------------------------------------------

    @property
    def per_key(self) -> int:
        raise NotImplementedError

    def key(self, row: Row) -> str:
        """What a row's in-flight slot is counted against."""
        raise NotImplementedError

    async def claim(self, room: int) -> list[Row]:
        """At most `room` due rows, none for a key already at `per_key` (see `in_flight`)."""
        raise NotImplementedError

    async def release(self, rows: list[Row]) -> None:
        """Claimed rows not started (their key had no free slot): pending again, as they were."""
        raise NotImplementedError

    async def deliver(self, row: Row) -> None:
        """Send one row and record the outcome (sent, retried, given up)."""
        raise NotImplementedError

    # --- the loop ------------------------------------------------------------------------

    @property
    def deps(self) -> D:
        if self._deps is None:
            self._deps = self._make_deps()
        return self._deps

    def wake(self) -> None:
        self._wake.set()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # Our own limits bound the connections (per key and in flight): a dead endpoint
            # never waits in the client's pool in front of a live one.
            self._http = netguard.guarded_client(self.deps.policy, transport=self.deps.transport)
        return self._http

    async def start(self) -> None:
        self._stopping = False
        self._runner = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Stop sending; what is in flight is abandoned and pending again at once (when the
        database answers; else it is sent again after its lease)."""
        if self._runner is not None:
            # The loop leaves between rounds: cancelled inside a claim, the rows the claim
            # took would stay `sending` until their lease ran out, unseen by this sender.
            self._stopping = True
            self._wake.set()
            done, _ = await asyncio.wait({self._runner}, timeout=STOP_WAIT_SECONDS)
            if not done:  # a claim hung on the database: its rows wait for their lease
                self._runner.cancel()
        abandoned = dict(self._tasks)
        for t in abandoned:
            t.cancel()
        await asyncio.gather(
            *abandoned, *([self._runner] if self._runner else []), return_exceptions=True
        )
        self._runner = None
        if unfinished := [row for t, row in abandoned.items() if t.cancelled()]:
            try:
                await self.release(unfinished)
            except Exception:
                log.exception("%s: abandoned deliveries not released", self.name)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                started = await self.dispatch()
            except Exception:  # the database away: try again shortly, rows stay due
                log.exception("%s: dispatch failed; retrying", self.name)
                started = []
            if not started and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.deps.poll)

    async def dispatch(self) -> list[asyncio.Task[None]]:
        """Claim what is due and start sending it; the tasks started."""
        room = self.deps.max_in_flight - len(self._tasks)
        if room <= 0:
            return []
        started, spare = [], []
        for row in await self.claim(room):
            k = self.key(row)
            if self.in_flight.get(k, 0) >= self.per_key:
                spare.append(row)
                continue
            self.in_flight[k] = self.in_flight.get(k, 0) + 1
            task = asyncio.create_task(self.deliver(row))
            self._tasks[task] = row
            task.add_done_callback(functools.partial(self._done, where=k))
            started.append(task)
        if spare:
            await self.release(spare)
        return started

    def _done(self, task: asyncio.Task[None], *, where: str) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Not recorded (the database away?): the row stays claimed, and is sent again
            # once its lease runs out.
            log.error("%s: delivery not recorded: %r", self.name, exc)
        self._tasks.pop(task, None)
        self.in_flight[where] -= 1
        if not self.in_flight[where]:
            del self.in_flight[where]
        self.wake()  # a slot is free, and the next row behind this one may go

    async def attempt(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], dict[str, str]],
        deadline_at: datetime | None,
    ) -> tuple[int | None, Exception | None]:
        """One POST, the whole of it (body included) within the attempt timeout and what is
        left of the delivery's deadline: (HTTP status, None) when it succeeded, else (status
        if any, the failure). `headers` is called per attempt (a fresh signature)."""
        d = self.deps
        left = (deadline_at - datetime.now(UTC)).total_seconds() if deadline_at else d.timeout
        code: int | None = None
        try:
            if left <= 0:
                raise TimeoutError("past the delivery deadline")
            limit = min(d.timeout, left)
            r = await netguard.post_within(
                self.http, url, limit, content=body, headers=headers(), timeout=limit
            )
            code = r.status_code
            r.raise_for_status()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is recorded, then retried or given up
            return code, exc
        return code, None
