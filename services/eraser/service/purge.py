"""The end of the recovery window: purge (objects, restoration rows), verify, call the HTTP
connectors (while the sealed request still names the subject), destroy the key, report;
and the sweep that finds the jobs due and sends the windows' last-day notices.

The purge takes the job's fence (services/eraser/fence.py) to move the job to `purging`, so
it never overlaps a restore or a chunk's commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from services.eraser import connector_rules as rules
from services.eraser import domain, fence, store
from services.eraser import objects as s3objects
from services.eraser.deps import EraserDeps
from services.eraser.models import Job
from services.eraser.sealing import SealedRequest, open_request
from services.eraser.service import connectors
from services.eraser.service.verify import verify
from services.eraser.store import locks
from shared.errors import Worded, error_code, reference
from shared.events.progress import CancelledErasurePurged, JobCompleted, PurgeStarted
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.notices import completed_context

log = logging.getLogger(__name__)
RECOVERY_NOTICE_BEFORE = timedelta(hours=24)


class PurgeIncomplete(Worded, RuntimeError):
    """Worded from counts and a reference: its text may reach audit rows."""


async def purge(deps: EraserDeps, job_id: uuid.UUID) -> bool:
    """Objects first, then the restoration rows, then the key; verify; report. Idempotent."""
    async with locks.purge_lock(deps.lethe, job_id) as mine:
        if not mine:
            return False  # another replica is purging this job
        job = await _enter(deps, job_id)
        if job is None:
            return False
        return await _purge(deps, job)


async def _enter(deps: EraserDeps, job_id: uuid.UUID) -> Job | None:
    """The job, moved to `purging` under the fence; None when it may not be purged."""
    job = await store.get_job(deps.lethe, job_id)
    if job is None or job.purged_at is not None or not fence.allowed("purge", job.status):
        return None  # purged already, or restored (terminal), or not erased yet
    if job.status == "purging":
        return job  # a purge resumed
    # Under the fence: a restore either finished before (the job is restored, refused here)
    # or finds the job purging and is refused; a stopped chunk commits nothing.
    async with deps.platform.acquire() as conn, conn.transaction():
        try:
            job = await fence.enter(conn, deps.lethe, job_id, "purge")
        except fence.Fenced:
            return None
        if job.status != "purging" and not await store.transition(
            deps.lethe, job_id, [job.status], "purging"
        ):
            return None
    await deps.emit(PROGRESS, domain.job_event(job, PurgeStarted()))
    return job


async def _purge(deps: EraserDeps, job: Job) -> bool:
    job_id = job.job_id
    request = open_request(deps.job_key(job), job) if job.wrapped_key else None
    await _purge_held(deps, job)
    verification: dict[str, Any] = dict(job.verification or {})
    review = [r for r in job.needs_review if r.get("kind") != "purge_incomplete"]
    if request is not None:
        verification = await verify(deps, job, request, "purge")
        traces = domain.trace_items(verification, review, job.restored_rows)
        review += [i for i in traces if i not in review]
        if not await store.was_cancelled(deps.lethe, job_id):  # carried out: final now
            await connectors.call_http(deps, job, request)
    outcomes, connector_review = await connectors.results(deps, job)
    if outcomes:
        verification["connectors"] = outcomes
        review += [i for i in connector_review if i not in review]
    # Crypto-shredding: without the key no copy of the sealed rows (backups too) is readable.
    await store.destroy_key(deps.lethe, job_id, verification)
    deps.forget_key(job_id)
    await store.forget_keys(deps.lethe, job_id)  # after verify, which reads them
    verification["key_destroyed"] = True
    if not await store.transition(
        deps.lethe,
        job_id,
        ["purging"],
        "purged",
        purged_at=datetime.now(UTC),
        verification=verification,
        needs_review=review,
    ):
        return False
    await _report(deps, job, request, verification, review)
    return True


async def _purge_held(deps: EraserDeps, job: Job) -> None:
    """The quarantined objects of erased rows, then the restoration records."""
    job_id = job.job_id
    async with deps.platform.acquire() as conn:
        held_chunks = await store.held_chunks(conn, job_id)
    pairs = await store.purgeable_objects(deps.lethe, job_id, held_chunks)
    try:
        failed = await s3objects.purge(deps.s3, deps.bucket, [q for _, q in pairs])
        error = f"{len(failed)} quarantined objects not deleted" if failed else ""
    except (BotoCoreError, ClientError) as exc:
        # The item is said once per job (each sweep retries): its code, not a per-attempt
        # reference; the text is logged with the job id at each attempt.
        reference(exc, f"purge of job {job_id}")
        error = f"quarantined objects not deleted: bucket {deps.bucket!r}: {error_code(exc)}"
    if error:
        # The next sweep retries; meanwhile the job says why it is not purged (never silent).
        item = {"kind": "purge_incomplete", "error": error}
        if await store.add_review_once(deps.lethe, job_id, item):
            # Once per distinct reason, not on every sweep: intake shows why it waits.
            await deps.emit(PROGRESS, domain.job_event(job, PurgeStarted(needs_review=[item])))
        raise PurgeIncomplete(f"{error}; retried later")
    await store.set_object_state(deps.lethe, job_id, [k for k, _ in pairs], "purged")
    async with deps.platform.acquire() as conn:
        await store.drop_restoration(conn, job_id)


async def _report(
    deps: EraserDeps,
    job: Job,
    request: SealedRequest | None,
    verification: dict[str, Any],
    review: list[dict[str, Any]],
) -> None:
    restored = job.restored_rows  # item by item, before the window ended
    purged = max(job.done - restored, 0)
    if await store.was_cancelled(deps.lethe, job.job_id):
        # A cancelled erasure's done part is purged at the end of its window, but the job was
        # not carried out: it stays `cancelled`. The purge is on the record (audit), and no
        # "completed" event, mail or callback says otherwise.
        done = CancelledErasurePurged(
            purged_rows=purged, verification=verification, needs_review=review
        )
        await deps.emit(AUDIT, domain.job_event(job, done))
        return
    # With manual tasks the platform part is done, the job is not: intake completes it (the
    # event webhooks and callbacks follow, and this mail) when the last task is closed.
    awaiting = bool(rules.manual_tasks(deps.datamap))
    completed = JobCompleted(
        done=job.done,
        total=job.total,
        verification=verification,
        needs_review=review,
        purged_rows=purged,
        restored_rows=restored,
        awaiting_tasks=awaiting,
    )
    event = domain.job_event(job, completed)
    if awaiting:  # "completed" is intake's to say, once the manual tasks are closed
        await deps.emit(PROGRESS, event)
        return
    # After the purge and its verification: how many rows were purged, how many restored.
    template = "job_completed_review" if review else "job_completed"
    context = completed_context(purged, restored, review)
    notice = domain.notice(job, request, template, context, once="job_completed")
    # Two topics, no order between them: both in flight at once.
    await asyncio.gather(deps.emit(PROGRESS, event), deps.emit(NOTIFICATIONS, notice))


async def recovery_notices(deps: EraserDeps) -> int:
    """Tell the owners, once per job, that its recovery window ends within 24 hours (the
    last chance to restore). Sent, then recorded: a crash in between sends the same event
    again, and the notifier delivers it once."""
    sent = 0
    for job_id in await store.due_for_recovery_notice(
        deps.lethe, fence.ALLOWED["restore"], RECOVERY_NOTICE_BEFORE
    ):
        job = await store.get_job(deps.lethe, job_id)
        if job is None or job.purge_after is None:
            continue
        if job.done == job.restored_rows:  # nothing held (cancelled before any chunk ran)
            await store.mark_recovery_notice(deps.lethe, job_id)
            continue
        request = open_request(deps.job_key(job), job) if job.wrapped_key else None
        ends = job.purge_after.strftime("%Y-%m-%d %H:%M UTC")
        context = {"job_type": "erasure", "purge_after": ends}
        env = domain.notice(job, request, "recovery_ends", context, audience="owners")
        await deps.emit(NOTIFICATIONS, env)
        await store.mark_recovery_notice(deps.lethe, job_id)
        sent += 1
    return sent


async def sweep(deps: EraserDeps) -> int:
    """Purge every job past its recovery window, and send the notices of windows ending
    tomorrow; one sweeper at a time (advisory lock)."""
    async with locks.sweep_lock(deps.lethe) as mine:
        if not mine:
            return 0
        try:
            await recovery_notices(deps)
        except Exception:
            log.exception("recovery-window notices failed; the next sweep retries")
        purged = 0
        for job_id in await store.due_for_purge(deps.lethe, fence.ALLOWED["purge"]):
            try:
                purged += await purge(deps, job_id)
            except Exception:
                log.exception("purge of job %s failed; the next sweep retries", job_id)
        return purged
