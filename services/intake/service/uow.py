"""The unit of work: one asyncpg transaction that also collects the outbox rows written in it,
and wakes the relay once it has committed (the rows are published then, not at the next poll).

    async with uow:
        await uow.emit(topic, env, timeline=True)

A unit of work may be entered again after it has exited (a use case may commit an audit row
before it refuses), never while it is open.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import asyncpg
from asyncpg.transaction import Transaction

from services.intake import store
from shared.events import Envelope


class UnitOfWork:
    def __init__(self, pool: asyncpg.Pool, on_commit: Callable[[], None] = lambda: None) -> None:
        self.pool = pool
        self._on_commit = on_commit
        self._conn: asyncpg.Connection | None = None
        self._tx: Transaction | None = None
        self.emitted = 0  # outbox rows written in the open (or last) transaction

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("use the unit of work as `async with uow:`")
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        if self._conn is not None:
            raise RuntimeError("a unit of work is already open")
        conn = await self.pool.acquire()
        try:
            tx = conn.transaction()
            await tx.start()
        except BaseException:
            await self.pool.release(conn)
            raise
        self._conn, self._tx, self.emitted = conn, tx, 0
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        assert conn is not None and tx is not None
        try:
            if exc_type is None:
                await tx.commit()
            else:
                await tx.rollback()
        finally:
            await self.pool.release(conn)
        if exc_type is None and self.emitted:
            self._on_commit()

    async def emit(self, topic: str, env: Envelope, *, timeline: bool) -> None:
        """An event for the relay to publish once this commits; `timeline`: also an entry in
        its job's timeline (job_events)."""
        await store.add_outbox(self.conn, topic, env)
        if timeline:
            await store.record_event(self.conn, env)
        self.emitted += 1

    async def emit_many(self, events: list[tuple[str, Envelope]], *, timeline: bool) -> None:
        """`emit` for many events, in two round trips (a bulk request's jobs)."""
        if not events:
            return
        await store.add_outbox_many(self.conn, events)
        if timeline:
            await store.record_events(self.conn, [env for _, env in events])
        self.emitted += len(events)
