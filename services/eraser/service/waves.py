"""Waves: tables are grouped so that every table comes after all its children
(`DataMap.waves`). Only one wave's chunks are published at a time; whoever finishes the
wave's last chunk publishes the next wave (publishing is idempotent, a compare-and-set of the
job's wave decides who moves it on). Replicas share a wave's chunks through the consumer
group; children are always gone before their parents.

After the last wave: verify (the subject resolves to nothing, objects sit in quarantine) and
report the soft delete; with a recovery window of 0 the purge follows at once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.eraser import domain, store
from services.eraser.deps import EraserDeps
from services.eraser.models import Job
from services.eraser.sealing import open_request
from services.eraser.service import connectors
from services.eraser.service.purge import purge
from services.eraser.service.verify import verify
from services.eraser.store import locks
from shared.events.jobs import EraseChunk
from shared.events.progress import ErasureSoftDeleted
from shared.events.topics import NOTIFICATIONS, PROGRESS

PUBLISH_AT_ONCE = 500  # chunk commands in flight together


async def publish_wave(deps: EraserDeps, job: Job, wave: int) -> None:
    pending = await store.pending_chunks(deps.lethe, job.job_id, wave)
    for i in range(0, len(pending), PUBLISH_AT_ONCE):
        await asyncio.gather(
            *(
                deps.publish_chunk(
                    domain.job_event(job, EraseChunk(chunk_no=n, wave=wave, table=t))
                )
                for n, t in pending[i : i + PUBLISH_AT_ONCE]
            )
        )


async def advance(deps: EraserDeps, job_id: uuid.UUID, *, reported: int | None = None) -> None:
    """Move the job on when its current wave has no pending chunk left (any caller may try).
    `reported`: a chunk whose BatchErased went out, marked so with the first read.

    One caller at a time moves it (the job's wave lock): chunks finishing a wave together
    each published the whole next wave (every chunk of it delivered twice). A caller that
    finds the lock taken leaves, having committed its chunk first; the holder reads the state
    again after letting go, so it sees that chunk and no finished wave is left waiting."""
    while True:
        state = await store.wave_state(deps.lethe, job_id, reported=reported)
        reported = None
        if state is None:
            return
        status, _, _, pending = state
        if status != "erasing" or pending:
            return
        async with locks.wave_lock(deps.lethe, job_id) as mine:
            if not mine:
                return
            await _move_on(deps, job_id)


async def _move_on(deps: EraserDeps, job_id: uuid.UUID) -> None:
    """Under the wave lock, the state read again: the next wave published, or the soft
    delete finished."""
    job = await store.get_job(deps.lethe, job_id)
    state = await store.wave_state(deps.lethe, job_id)
    if job is None or state is None:
        return
    status, wave, waves, pending = state
    if status != "erasing" or pending:
        return
    if wave + 1 >= waves:
        await finish_soft_delete(deps, job)
        return
    # Publish first (idempotent), then move the wave: a crash in between is repaired by
    # the redelivered chunk, which comes back here.
    await publish_wave(deps, job, wave + 1)
    await store.advance_wave(deps.lethe, job_id, wave)


async def finish_soft_delete(deps: EraserDeps, job: Job) -> None:
    request = open_request(deps.job_key(job), job)
    verification = await verify(deps, job, request, "soft_delete")
    failed = await store.failed_chunks(deps.lethe, job.job_id)
    review = domain.soft_delete_review(failed, verification, job.restored_rows)
    outcomes, connector_review = await connectors.results(deps, job)
    if outcomes:  # the token revocations at the plan
        verification["connectors"] = outcomes
        review = connector_review + review
    purge_after = datetime.now(UTC) + timedelta(days=job.recovery_window_days)
    if not await store.transition(
        deps.lethe,
        job.job_id,
        ["erasing"],
        "soft_deleted",
        verification=verification,
        purge_after=purge_after,
        needs_review=review,
        soft_deleted_at=datetime.now(UTC),
    ):
        return
    job = await store.get_job(deps.lethe, job.job_id) or job
    await report_soft_delete(deps, job)
    if job.recovery_window_days == 0:
        await purge(deps, job.job_id)


async def report_soft_delete(deps: EraserDeps, job: Job) -> None:
    """ErasureSoftDeleted and the notices of the window, from what the transition recorded, under
    fixed event ids: a redelivered chunk sends them again when their first publish failed, and
    each is kept once downstream."""
    if job.purge_after is None or job.verification is None:
        return
    soft_deleted = ErasureSoftDeleted(
        done=job.done,
        total=job.total,
        verification=job.verification,
        purge_after=job.purge_after,
        needs_review=job.needs_review,
    )
    await deps.emit(PROGRESS, domain.stable(domain.job_event(job, soft_deleted), "SoftDeleted"))
    if job.recovery_window_days == 0:
        return  # the purge follows at once: its completion is the news
    # What is hidden, restorable until when, final on which date (the completion follows
    # the purge); review items go to the owners at once.
    request = open_request(deps.job_key(job), job)
    hidden = domain.hidden_context(job, job.purge_after)
    notice = domain.notice(job, request, "erasure_hidden", hidden)
    await deps.emit(NOTIFICATIONS, domain.stable(notice, "notice:erasure_hidden"))
    if job.needs_review:
        context = {"job_type": "erasure", "review_count": len(job.needs_review)}
        once = "job_needs_review:soft_delete"
        env = domain.notice(job, request, "job_needs_review", context, audience="owners", once=once)
        await deps.emit(NOTIFICATIONS, domain.stable(env, f"notice:{once}"))
