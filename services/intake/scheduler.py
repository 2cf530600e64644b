"""The scheduler: nightly retention jobs and deadline reminders, led by one intake replica.

It lives in intake because intake owns the jobs, the policies and the outbox: a scheduled
run is a set of ordinary jobs, written with their `RetentionRequested` events in one
transaction and published by the relay, exactly like a request from a person.

- **Leader election**: a session-level Postgres advisory lock, held on a dedicated
  connection for as long as the replica leads. Whoever holds it ticks; the others retry the
  lock every poll. A leader that dies drops its connection, and with it the lock.
- **Once per period**: the period is the latest cron time at or before now. A run inserts
  `(schedule name, period)` into `scheduler_runs` in the same transaction as its jobs, so
  even two leaders for a moment cannot run a period twice (and each job's request_id names
  its period as well).
- **Catch-up**: a period missed while every replica was down is simply the latest period
  with no run yet, and runs at the next start. Older missed periods are covered by it (a
  later cutoff takes everything an earlier one would have). On the very first start of a
  schedule the current period is recorded as the baseline, not run.
- **Deadline reminders**: every tick, jobs not done whose (extended) due date is within
  `deadline_reminder_days`, or past, get one `SendEmail` per kind (recorded in
  `deadline_reminders` in the same transaction as the outbox row) to their requester.
- **Manual task reminders**: every tick, each open manual task not mailed within
  `manual_task_reminder_hours` is reminded to its assignee (services/intake/service/tasks.py).
- **Injected clock**: `tick(now)` takes the time; the loop passes `clock()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.intake import store
from services.intake.domain.schedules import SCHEDULER, Cron, reminder_email
from services.intake.retention import plan_run, record_jobs
from services.intake.service import tasks
from shared import lifecycle
from shared.datamap import DataMap
from shared.events.topics import NOTIFICATIONS
from shared.kafka import current_trace

log = logging.getLogger(__name__)
LEADER_LOCK = 7_715_007  # advisory lock: the one replica that schedules


@dataclass
class TickResult:
    period: datetime | None = None
    ran: bool = False
    jobs: int = 0
    reminders: int = 0


class Scheduler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        datamap: DataMap,
        *,
        cron: str,
        poll_seconds: float,
        reminder_days: int,
        public_mode: bool,
        public_days: int,
        name: str = "retention",
        orgs: list[str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_recorded: Callable[[], None] = lambda: None,
        task_reminder_every: timedelta = timedelta(hours=72),
    ) -> None:
        self.pool, self.datamap, self.cron = pool, datamap, Cron.parse(cron)
        self.poll, self.reminder_days = poll_seconds, reminder_days
        self.public_mode, self.public_days = public_mode, public_days
        self.name, self.orgs, self.clock, self.on_recorded = name, orgs, clock, on_recorded
        self.task_reminder_every = task_reminder_every
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------- leadership

    async def lead(self) -> bool:
        """True while this replica holds the leader lock (taken if free)."""
        if self._conn is None:
            self._conn = await self.pool.acquire()
        try:
            held = await store.try_lead(self._conn, LEADER_LOCK, self.name)
        except (asyncpg.PostgresError, OSError):
            await self.resign()
            return False
        if not held:
            await self._release()
        return held

    async def resign(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await store.unlock_all(self._conn)
            await self._release()

    async def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

    # -------------------------------------------------------------- one tick

    async def tick(self, now: datetime | None = None) -> TickResult:
        """What the leader does each poll: the period's run if due, then reminders."""
        now = now or self.clock()
        result = TickResult(period=self.cron.previous(now))
        if result.period is not None:
            result.jobs, result.ran = await self._run_period(result.period)
        result.reminders = await self.send_reminders(now)
        result.reminders += await tasks.remind(self.pool, now, self.task_reminder_every, self.orgs)
        if result.jobs or result.reminders:
            self.on_recorded()
        return result

    async def _run_period(self, period: datetime) -> tuple[int, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            first = not await store.has_run(conn, self.name)
            planned = (
                []
                if first
                else await plan_run(
                    conn,
                    self.datamap,
                    public_mode=self.public_mode,
                    public_days=self.public_days,
                    orgs=self.orgs,
                )
            )
            won = await store.record_run(
                conn, self.name, period, "baseline" if first else SCHEDULER.id, len(planned)
            )
            if not won:
                return 0, False  # this period ran already
            jobs = await record_jobs(conn, period, planned, current_trace())
            return jobs, not first

    async def send_reminders(self, now: datetime) -> int:
        """One SendEmail per job and kind, to the requester, recorded with its outbox row."""
        soon = now + timedelta(days=self.reminder_days)
        done = list(lifecycle.DONE_FOR_DEADLINE)
        sent = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await store.due_reminders(conn, now, soon, done, self.orgs)
            for r in rows:
                env = reminder_email(r, now)
                if await store.record_reminder(conn, r["id"], r["kind"]):
                    await store.add_outbox(conn, NOTIFICATIONS, env)
                    sent += 1
        return sent

    # -------------------------------------------------------------- the loop

    async def run_forever(self) -> None:
        while True:
            try:
                if await self.lead():
                    await self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again next poll")
            await asyncio.sleep(self.poll)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.resign()
