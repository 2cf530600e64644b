"""Manual tasks (docs/datamap.md, Connectors), written once for the Kafka handler, the API,
the web UI and the scheduler:

- `opened`: the eraser's ManualTasksOpened, recorded as tasks of the job (with its timeline);
- `close`: an admin confirms a task done, or waives it with a reason; audited
  (ManualTaskClosed); the last one to close completes a job that was awaiting its tasks;
- `when_completed`: the eraser's purge report of a job with manual tasks (JobCompleted with
  `awaiting_tasks`), folded. The eraser says no "completed": intake does, when the job
  completes (last task closed, or all closed before the purge): its JobCompleted, which
  webhooks and OpenDSR callbacks follow, and the requester's `job_completed` mail;
- `remind`: each open task's assignee is mailed again every `every` (the scheduler's tick).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from services.intake import store
from services.intake.domain import Caller
from services.intake.domain.completion import completion
from services.intake.domain.schedules import SCHEDULER
from services.intake.links import StatusLinks
from services.intake.service.errors import Conflict, Invalid, NotFound
from services.intake.service.jobs import no_job
from services.intake.service.uow import UnitOfWork
from shared import lifecycle
from shared.events import Envelope, make_event
from shared.events.progress import JobCompleted, ManualTaskClosed, ManualTasksOpened
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.notices import job_notice

Outcome = Literal["done", "waived"]


async def opened(pool: asyncpg.Pool, env: Envelope) -> None:
    """The job's tasks, once; the event in its timeline (idempotent on redelivery)."""
    async with pool.acquire() as conn, conn.transaction():
        await record_opened(conn, env)


async def record_opened(conn: asyncpg.Connection, env: Envelope) -> None:
    """`opened` in the caller's transaction (the progress handler's batch)."""
    assert env.job_id is not None
    tasks = env.payload_as(ManualTasksOpened).tasks
    await store.open_tasks(conn, env.job_id, [t.model_dump() for t in tasks], env.occurred_at)
    await store.record_event(conn, env)


async def close(
    uow: UnitOfWork,
    who: Caller,
    job_id: uuid.UUID,
    task: str,
    outcome: Outcome,
    reason: str | None,
    links: StatusLinks | None = None,
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
            # Read before: a final job forgets its requester (0013's trigger).
            to = await store.requester_email(uow.conn, job_id)
            if await store.complete_after_tasks(uow.conn, job_id, status, env.occurred_at):
                await _say_completed(uow.conn, job_id, to, links)
        after = await store.get_job(uow.conn, who.org_id, job_id)
    assert after is not None
    return after


def when_completed(
    env: Envelope, links: Callable[[], StatusLinks | None]
) -> store.OnCompleted | None:
    """For the fold of the eraser's purge report of a job with manual tasks: when they were
    all closed before, the job completes with it, and intake says so (in that transaction).
    `links`: read only then."""
    if env.type != JobCompleted.event_type or not env.payload.get("awaiting_tasks"):
        return None
    job_id = env.job_id
    assert job_id is not None

    async def say(conn: asyncpg.Connection, to: str | None) -> None:
        await _say_completed(conn, job_id, to, links())

    return say


async def _say_completed(
    conn: asyncpg.Connection, job_id: uuid.UUID, to: str | None, links: StatusLinks | None
) -> None:
    """The completed job's JobCompleted and mail, in the outbox with this transaction; nothing
    when its purge report did not wait for tasks (the eraser said it) or it was said."""
    facts = await store.purge_report(conn, job_id)
    if facts is None or facts["status"] not in lifecycle.FINAL:
        return
    link = links.url(job_id) if links is not None else None
    done, mail = completion(facts, facts["report"], to=to, status_link=link)
    await store.add_outbox(conn, PROGRESS, done)
    await store.record_event(conn, done)  # the timeline says it once (purge_report reads it)
    await store.add_outbox(conn, NOTIFICATIONS, mail)


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


__all__ = ["Outcome", "close", "opened", "remind", "when_completed"]
