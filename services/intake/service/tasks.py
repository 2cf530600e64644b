"""Manual tasks (docs/datamap.md, Connectors), written once for the Kafka handler, the API,
the web UI and the scheduler:

- `opened`: the eraser's ManualTasksOpened, recorded as tasks of the job (with its timeline);
- `close`: an admin confirms a task done, or waives it with a reason; audited
  (ManualTaskClosed); the last one to close completes a job that was awaiting its tasks;
- `remind`: each open task's assignee is mailed again every `every` (the scheduler's tick).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from services.intake import store
from services.intake.domain import Caller
from services.intake.domain.schedules import SCHEDULER
from services.intake.service.errors import Conflict, Invalid, NotFound
from services.intake.service.jobs import no_job
from services.intake.service.uow import UnitOfWork
from shared import lifecycle
from shared.events import Envelope, make_event
from shared.events.progress import ManualTaskClosed, ManualTasksOpened
from shared.events.topics import AUDIT, NOTIFICATIONS
from shared.notices import job_notice

Outcome = Literal["done", "waived"]


async def opened(pool: asyncpg.Pool, env: Envelope) -> None:
    """The job's tasks, once; the event in its timeline (idempotent on redelivery)."""
    assert env.job_id is not None
    tasks = env.payload_as(ManualTasksOpened).tasks
    async with pool.acquire() as conn, conn.transaction():
        await store.open_tasks(conn, env.job_id, [t.model_dump() for t in tasks], env.occurred_at)
        await store.record_event(conn, env)


async def close(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    task: str,
    outcome: Outcome,
    reason: str | None,
) -> dict[str, Any]:
    """Close an open task; returns the job as it is after. A waiver needs its reason."""
    reason = (reason or "").strip()[:2000] or None
    if outcome == "waived" and reason is None:
        raise Invalid("reason: a waived task needs the reason it is waived")
    now = datetime.now(UTC)
    async with uow:
        row = await store.get_job(uow.conn, who.org_id, job_id, lock=True)
        if row is None:
            raise no_job(who, job_id)
        known = {t["task"]: t for t in await store.job_tasks(uow.conn, job_id)}
        if task not in known:
            raise NotFound(f"no task {task!r} on job {job_id}")
        by = f"{who.actor.kind}:{who.actor.id}"
        if not await store.close_task(uow.conn, job_id, task, outcome, reason, by, now):
            raise Conflict(f"task {task!r} is already {known[task]['status']}")
        env = make_event(
            ManualTaskClosed(task=task, outcome=outcome, reason=reason),
            actor=who.actor,
            job_id=job_id,
            org_id=who.org_id,
            subject_hash=row["subject_hash"],
        )
        await uow.emit(AUDIT, env, timeline=True)
        if row["status"] == lifecycle.AWAITING_TASKS and not await store.open_task_count(
            uow.conn, job_id
        ):
            status = lifecycle.completed_status(row["needs_review"])
            await store.complete_after_tasks(uow.conn, job_id, status, env.occurred_at)
        after = await store.get_job(uow.conn, who.org_id, job_id)
    assert after is not None
    return after


async def remind(
    pool: asyncpg.Pool, now: datetime, every: timedelta, orgs: list[str] | None = None
) -> int:
    """A reminder to each open task's assignee not mailed within `every`, recorded with its
    outbox row (one per task and reminder number: a retried tick mails nobody twice)."""
    sent = 0
    async with pool.acquire() as conn, conn.transaction():
        for r in await store.due_task_reminders(conn, now, every, orgs):
            await store.add_outbox(conn, NOTIFICATIONS, _reminder(r))
            await store.mark_reminded(conn, r["job_id"], r["task"], now)
            sent += 1
    return sent


def _reminder(r: dict[str, Any]) -> Envelope:
    n = r["reminders"] + 1
    return job_notice(
        "manual_task_reminder",
        actor=SCHEDULER,
        job_id=r["job_id"],
        org_id=r["org_id"],
        subject_hash=r["subject_hash"],
        to=r["assignee"],
        context={"task": r["task"], "opened_at": r["opened_at"], "reminder": n},
        audience="assignee",
        once=f"manual_task:{r['task']}:reminder:{n}",
    )


__all__ = ["Outcome", "close", "opened", "remind"]
