"""How an export ends other than ready: failed, not found or ambiguous, cancelled; the
CancelExport command; and the sweep of expired exports."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.exporter import domain, store
from services.exporter.service.deps import ExporterDeps
from shared.events import Envelope, Payload
from shared.events.jobs import CancelExport, ExportRequested
from shared.events.progress import JobCancelled, JobFailed
from shared.events.topics import NOTIFICATIONS, PROGRESS


async def check_cancel(deps: ExporterDeps, job_id: uuid.UUID | None) -> None:
    """Raise ExportCancelled when a cancel was recorded for the export being built."""
    if job_id is not None and await store.cancel_requested(deps.lethe, job_id):
        raise domain.ExportCancelled


async def outcome(env: Envelope, deps: ExporterDeps, payload: Payload, template: str) -> None:
    """A result that is not an error (not found, ambiguous): stated, and the requester told."""
    await deps.emit(PROGRESS, domain.event_for(env, payload))
    await deps.emit(NOTIFICATIONS, domain.notice(env, template, domain.outcome_context(payload)))


async def failed(env: Envelope, deps: ExporterDeps, reason: str) -> None:
    if env.job_id is not None:
        await store.mark_failed(deps.lethe, env.job_id)
    await deps.emit(PROGRESS, domain.event_for(env, JobFailed(reason=reason)))
    await deps.emit(NOTIFICATIONS, domain.notice(env, "job_failed", {"reason": reason}))


async def fail(env: Envelope, deps: ExporterDeps, error: str) -> None:
    """Retries exhausted: the export fails visibly, and the requester (or owners) are told."""
    if env.type == ExportRequested.event_type:
        await failed(env, deps, f"export failed: {error}")


async def cancelled(env: Envelope, deps: ExporterDeps, done: int, total: int) -> None:
    assert env.job_id is not None
    if await store.mark_cancelled(deps.lethe, env.job_id):
        await deps.emit(PROGRESS, domain.event_for(env, JobCancelled(done=done, total=total)))


async def cancel(env: Envelope, deps: ExporterDeps) -> None:
    """CancelExport: recorded for the worker (it stops at its next batch), cancelled at once
    when the export has not started, refused when it is ready, expired or ended."""
    env.payload_as(CancelExport)
    assert env.job_id is not None and env.org_id is not None
    status = await store.request_cancel(deps.lethe, env.job_id, env.org_id)
    answer = domain.cancel_answer(status)
    if answer is not None:
        await deps.emit(PROGRESS, domain.event_for(env, answer))


async def sweep_expired(deps: ExporterDeps, now: datetime) -> int:
    """Delete expired exports: the object first, then the key; each one audited."""
    swept = 0
    for row in await store.claim_expired(deps.lethe, now):
        await deps.s3.delete_object(Bucket=deps.bucket, Key=row["object_key"])
        await store.mark_expired(deps.lethe, row["job_id"])
        await deps.emit(
            PROGRESS, domain.expired_event(row["job_id"], row["org_id"], row["object_key"])
        )
        swept += 1
    return swept
