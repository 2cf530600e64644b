"""Rebuild a job's state from its events: the audit trail (every event any service published
about the job) merged with the job's timeline (every event intake applied). When progress
events were lost on the way (dead-lettered during an outage, a consumer's database write that
never happened), the jobs row lags behind what happened, e.g. a job left `running` in phase
`erasing` after its erasure was soft-deleted; folding the events again repairs it.

Read-only unless `apply`: then the row is rewritten, under its lock, and the timeline gets the
state-changing events it was missing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from services.intake import store
from services.intake.domain import progress
from services.intake.domain.progress import JobEvent
from shared import lifecycle
from shared.readmodels import audit


@dataclass(frozen=True)
class Rebuilt:
    job_id: uuid.UUID
    events: int  # events folded (audit trail and timeline, each once)
    from_audit_only: int  # of which the timeline did not have
    state: dict[str, Any]  # from the events
    changes: dict[str, tuple[Any, Any]]  # column: (jobs table, from the events)
    missing_timeline: list[JobEvent] = field(default_factory=list)
    applied: bool = False

    @property
    def consistent(self) -> bool:
        return not self.changes and not self.missing_timeline


class NoSuchJob(LookupError):
    pass


async def rebuild(pool: asyncpg.Pool, job_id: uuid.UUID, *, apply: bool = False) -> Rebuilt:
    """The job's state from its events, the difference with its row; written with `apply`."""
    async with pool.acquire() as conn, conn.transaction():
        row = await store.job_state(conn, job_id)
        if row is None:
            raise NoSuchJob(f"no job {job_id}")
        recorded = await store.job_timeline(conn, job_id)
        audited = [
            JobEvent(r["event_id"], r["action"], r["occurred_at"], r["actor"], r["details"])
            for r in await audit.of_job(conn, job_id)
        ]
        events = progress.merge(recorded, audited)
        if not progress.moved(events):
            # Nothing recorded that moves a job (never started, or its trail was pruned):
            # the row is all there is, and it stays as it is.
            return Rebuilt(job_id, len(events), 0, row, {})
        state = progress.fold(events)
        known = {e.event_id for e in recorded}
        missing = [e for e in audited if e.event_id not in known and e.type in lifecycle.PROGRESS]
        result = Rebuilt(
            job_id,
            len(events),
            sum(e.event_id not in known for e in audited),
            state,
            progress.diff(row, state),
            missing,
        )
        if not apply or result.consistent:
            return result
        await store.write_state(conn, job_id, state)
        for e in missing:
            await store.add_to_timeline(conn, job_id, e)
    return replace(result, applied=True)
