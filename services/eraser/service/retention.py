"""Retention jobs: a RetentionRequested from the job pipeline (planned by the intake
scheduler) runs once (services/eraser/service/cleaning.py, the same run as `lethe cleanup`)
and reports like an erasure.

**Cancel** (`POST /v1/jobs/{id}/cancel`): recorded at once by the eraser's cancel listener;
the run stops before its next batch, the job ends `cancelled` (what went is gone). The
`anonymous` category is deleted only with public mode on; otherwise never.
"""

from __future__ import annotations

from typing import Any

from services.eraser.deps import EraserDeps
from services.eraser.retention_rules import (
    ANONYMOUS,
    PublicModeOff,
    Stats,
    batch_event,
    completed,
    event,
    failure_notice,
)
from services.eraser.service.cleaning import clean, count_expired
from services.eraser.store import retention as runs
from shared.events import Envelope
from shared.events.jobs import CancelErasure
from shared.events.progress import (
    CommandRefused,
    DuplicateIgnored,
    ErasurePlanned,
    JobCancelled,
    JobFailed,
)
from shared.events.retention import RetentionRequested
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS


async def run_job(env: Envelope, deps: EraserDeps, *, public_mode: bool) -> None:
    """A RetentionRequested from the job pipeline: run once, report like an erasure."""
    req = env.payload_as(RetentionRequested)
    assert env.job_id is not None
    job_id = env.job_id
    if await cancel_requested(deps, job_id):  # cancelled before it started
        if await runs.stop_before_start(deps.lethe, job_id, env.org_id, req.category, req.cutoff):
            await deps.emit(PROGRESS, event(env, JobCancelled(done=0, total=0)))
        else:
            await deps.emit(AUDIT, event(env, DuplicateIgnored(original_type=env.type)))
        return
    if not await runs.start_run(deps.lethe, job_id, env.org_id, req.category, req.cutoff):
        # finished before: a redelivery changes nothing
        await deps.emit(AUDIT, event(env, DuplicateIgnored(original_type=env.type)))
        return

    async def planned(per_table: dict[str, int]) -> None:
        total = sum(per_table.values())
        await deps.emit(PROGRESS, event(env, ErasurePlanned(total=total, per_table=per_table)))

    async def batch(table: str, rows: int, objs: int, done: int, total: int) -> None:
        await deps.emit(PROGRESS, event(env, batch_event(table, rows, objs, done, total)))

    try:
        stats = await clean(
            deps,
            category=req.category,
            cutoff=req.cutoff,
            org_id=env.org_id,
            public_mode=public_mode,
            job_id=job_id,
            on_batch=batch,
            on_plan=planned,
            stop=lambda: cancel_requested(deps, job_id),
        )
    except (PublicModeOff, ValueError) as exc:
        await runs.finish_run(deps.lethe, job_id, "failed", {"error": str(exc)})
        await deps.emit(PROGRESS, event(env, JobFailed(reason=str(exc))))
        await _failure_notice(env, deps, str(exc))
        return
    if stats.cancelled:  # stopped between batches: what went is gone (no recovery window)
        await runs.finish_run(deps.lethe, job_id, "cancelled", stats.as_dict())
        total = sum(stats.planned.values())
        await deps.emit(PROGRESS, event(env, JobCancelled(done=stats.done, total=total)))
        return
    report = completed(stats, req.category, req.cutoff)
    await runs.finish_run(deps.lethe, job_id, "completed", stats.as_dict())
    await deps.emit(PROGRESS, event(env, report))


async def give_up(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Retries exhausted: the job fails visibly (the next period's run tries again)."""
    await runs.finish_run(deps.lethe, env.job_id, "failed", {"error": error})
    await deps.emit(PROGRESS, event(env, JobFailed(reason=f"retention stopped: {error}")))
    await _failure_notice(env, deps, f"retention stopped: {error}")


async def _failure_notice(env: Envelope, deps: EraserDeps, reason: str) -> None:
    notice = failure_notice(env, reason)
    if notice is not None:
        await deps.emit(NOTIFICATIONS, notice)


async def cancel_requested(deps: EraserDeps, job_id: Any) -> bool:
    return await runs.cancel_requested(deps.lethe, job_id)


async def request_cancel(env: Envelope, deps: EraserDeps) -> None:
    """The cancel listener: record a cancel at once (the run holds its partition of the job
    topic until it ends, so it would see the command only afterwards). Erasure jobs have
    their own cancel (services/eraser/service/lifecycle.py); a finished run is left alone."""
    payload = env.payload_as(CancelErasure)
    await runs.record_cancel(deps.lethe, env.job_id, payload.reason)


async def cancel_arrived(env: Envelope, deps: EraserDeps) -> bool:
    """The cancel, in its turn on the job topic (after the run): True when the job is a
    retention run. A run that ended before the cancel reached it is refused, with why."""
    status = await runs.run_status(deps.lethe, env.job_id)
    if status is None:
        return False
    if status in ("completed", "failed"):
        reason = f"the retention run had {status} before the cancel reached it: nothing stopped"
        refused = CommandRefused(command="CancelErasure", reason=reason)
        await deps.emit(PROGRESS, event(env, refused))
    return True


__all__ = [
    "ANONYMOUS",
    "PublicModeOff",
    "Stats",
    "cancel_arrived",
    "cancel_requested",
    "clean",
    "count_expired",
    "give_up",
    "request_cancel",
    "run_job",
]
