"""Outbox relay: publishes what intake recorded, then deletes it, in one transaction.

If publishing fails the transaction rolls back and the rows are published on the next pass
(at least once; consumers deduplicate by event_id / job_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from faststream.kafka import KafkaBroker
from opentelemetry import propagate, trace

from services.intake import store
from shared.events import Envelope
from shared.kafka import publish_event

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: KafkaBroker,
        tracer: trace.Tracer,
        *,
        poll_seconds: float = 0.5,
        batch: int = 100,
    ) -> None:
        self._pool, self._broker, self._tracer = pool, broker, tracer
        self._poll, self._batch = poll_seconds, batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Publish now rather than at the next poll (called after a commit)."""
        self._wake.set()

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await store.take_outbox(conn, self._batch)
            # One job's (one key's) events in order, one after another; different keys side
            # by side, so that a batch costs about one broker round trip per event of its
            # busiest key instead of one per row.
            in_order: dict[bytes, list[tuple[str, Envelope]]] = {}
            for _, topic, env in rows:
                in_order.setdefault(env.key(), []).append((topic, env))
            await asyncio.gather(*(self._publish(events) for events in in_order.values()))
            if rows:
                await store.delete_outbox(conn, [r[0] for r in rows])
            return len(rows)

    async def _publish(self, events: list[tuple[str, Envelope]]) -> None:
        for topic, env in events:
            # Continue the trace of the request that recorded this event.
            ctx = propagate.extract(env.trace)
            with self._tracer.start_as_current_span("outbox relay", context=ctx):
                await publish_event(self._broker, topic, env)

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once() == self._batch:
                    pass
            except Exception:
                # Visible, and retried on the next pass; the rows stay in the outbox.
                log.exception("outbox relay pass failed; retrying")
            # asyncio.timeout, not wait_for: on 3.11 a wake at the moment of a cancel made
            # wait_for swallow the cancel, and stop() then waited for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
