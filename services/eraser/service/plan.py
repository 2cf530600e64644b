"""Plan (ErasureRequested): resolve the subject through the data map, hide its own row at once
where the map says how (`hide.hide_subject`), record the chunks
(table + up to `batch_size` keys) as checkpoints in one transaction, revoke the subject's
OAuth tokens (connectors), publish the first wave's chunks (a job of at most one batch of rows
runs them here: `chunks.run_inline`). Outcomes that are not an erasure (not found, ambiguous,
failed) are stated and the requester told."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.eraser import domain, store
from services.eraser.deps import EraserDeps
from services.eraser.models import Job
from services.eraser.sealing import SealedRequest, new_job_key
from services.eraser.service import connectors, hide
from services.eraser.service.chunks import run_inline
from services.eraser.service.waves import advance, publish_wave
from shared.events import Envelope, Payload
from shared.events.jobs import ErasureRequested
from shared.events.progress import (
    DuplicateIgnored,
    ErasurePlanned,
    JobFailed,
    SubjectAmbiguous,
    SubjectNotFound,
)
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.platform import ERASE
from shared.resolver import Ambiguous, Scope, ScopeError, Subject, stream_keys


async def plan(env: Envelope, deps: EraserDeps) -> None:
    req = env.payload_as(ErasureRequested)
    assert env.job_id is not None and env.org_id is not None
    job_id = env.job_id
    job = await store.get_job(deps.lethe, job_id)
    if job is not None and job.status == "erasing":
        # Redelivered after a crash (or a failed publish) between planning and publishing:
        # report the plan again (same event id), publish again, and move the job on (a plan
        # with nothing left to do must still finish).
        await deps.emit(PROGRESS, _planned(env, job.total, job.per_table))
        await connectors.revoke_tokens(deps, job)  # unless done before the crash
        await connectors.open_manual_tasks(deps, job)
        await _work(deps, job)
        return
    if job is not None and job.status != "planning":
        await deps.emit(AUDIT, domain.request_event(env, DuplicateIgnored(original_type=env.type)))
        return

    identities = req.subject.identities() if req.scope == "subject" and req.subject else None
    if req.scope == "subject" and not identities:
        await fail(env, deps, "the request names no subject identity")
        return
    if job is None:
        request = SealedRequest(
            req.scope, identities, req.requester_email, req.delete_media, req.status_link
        )
        wrapped, sealed = new_job_key(deps.master_key, job_id, request)
        await store.create_job(
            deps.lethe,
            job_id,
            env.org_id,
            env.subject_hash,
            req.recovery_window_days,
            wrapped,
            sealed,
        )
    per_table = await _resolve_and_record(env, deps, identities)
    if per_table is None:
        return  # not resolved (said so), or another planner recorded it first
    if not sum(per_table.values()):
        # Nothing held on this subject: a result, never a "0 rows erased" success.
        await store.transition(deps.lethe, job_id, ["erasing"], "not_found")
        await _outcome(env, deps, SubjectNotFound(scope=req.scope), "job_not_found")
        return
    await deps.emit(PROGRESS, _planned(env, sum(per_table.values()), per_table))
    job = await store.get_job(deps.lethe, job_id)
    assert job is not None
    # Tokens are read from rows the first wave may erase: revoked before it goes out.
    await connectors.revoke_tokens(deps, job)
    await connectors.open_manual_tasks(deps, job)
    await _work(deps, job)


async def _work(deps: EraserDeps, job: Job) -> None:
    """A small job's chunks here; a larger job's current wave to the task topic."""
    if deps.runs_inline(job):
        await run_inline(deps, job)
        return
    await publish_wave(deps, job, job.wave)
    await advance(deps, job.job_id)


def _planned(env: Envelope, total: int, per_table: dict[str, int]) -> Envelope:
    planned = ErasurePlanned(total=total, per_table=per_table)
    return domain.stable(domain.request_event(env, planned), "ErasurePlanned")


async def _resolve_and_record(
    env: Envelope, deps: EraserDeps, identities: dict[str, str] | None
) -> dict[str, int] | None:
    """Rows per table of the recorded plan; None when the subject is not resolved (the job
    ends ambiguous or failed, said so) or another planner recorded the plan first."""
    assert env.job_id is not None and env.org_id is not None
    async with deps.platform.acquire() as conn:
        try:
            subject = await deps.resolver.resolve(conn, Scope(env.org_id, identities))
        except ScopeError as exc:
            ambiguous = isinstance(exc, Ambiguous)
            status = "ambiguous" if ambiguous else "failed"
            await store.set_status(deps.lethe, env.job_id, status)
            if ambiguous:
                await _outcome(env, deps, SubjectAmbiguous(reason=str(exc)), "job_ambiguous")
            else:
                await fail(env, deps, str(exc))
            return None
        # The subject's own row first, in a short transaction of its own: hidden at once,
        # whatever the size of the plan recorded next.
        await hide.hide_subject(deps, conn, env.job_id, subject)
        return await _record_plan(deps, conn, env.job_id, subject)


async def _record_plan(
    deps: EraserDeps, conn: asyncpg.Connection, job_id: uuid.UUID, subject: Subject
) -> dict[str, int] | None:
    """Stream the subject's keys into chunks (never every key in memory), in one transaction."""
    dm, resolver = deps.datamap, deps.resolver
    tables = resolver.tables(subject.scope)
    waves = deps.waves(tables)
    per_table: dict[str, int] = {}
    async with deps.lethe.acquire() as lconn, lconn.transaction(), conn.transaction():
        if not await store.start_plan(lconn, job_id, len(waves)):
            return None
        # Each table's keys once, in temporary tables: the later tables' queries read them.
        subject = await resolver.materialize(conn, subject)
        chunk_no = 0
        for wave_no, table, op, (sql, args) in domain.plan_steps(
            dm, resolver, subject, tables, waves
        ):
            size = domain.chunk_size(dm, table, op, deps.batch_size)
            count = 0
            async for page in stream_keys(conn, sql, list(args), domain.page_size(size)):
                rows = domain.chunk_rows(chunk_no, wave_no, table, page, size, op)
                await store.add_chunks(lconn, job_id, rows)
                chunk_no += len(rows)
                count += len(page)
            if count or op == ERASE:
                label = domain.step_label(table, op)
                per_table[label] = per_table.get(label, 0) + count
        await store.finish_plan(lconn, job_id, per_table)
    return per_table


async def _notify_request(
    env: Envelope, deps: EraserDeps, template: str, context: dict[str, Any]
) -> None:
    await deps.emit(NOTIFICATIONS, domain.notice_of_request(env, template, context))


async def _outcome(env: Envelope, deps: EraserDeps, payload: Payload, template: str) -> None:
    """A result that is not an error (not found, ambiguous): stated, and the requester told
    (the owners when the job has no requester address)."""
    await deps.emit(PROGRESS, domain.request_event(env, payload))
    await _notify_request(env, deps, template, {k: str(v) for k, v in payload.model_dump().items()})


async def fail(env: Envelope, deps: EraserDeps, reason: str) -> None:
    await deps.emit(PROGRESS, domain.request_event(env, JobFailed(reason=reason)))
    await _notify_request(env, deps, "job_failed", {"reason": reason})


async def give_up(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Called when retries are exhausted: the job is failed visibly, never left hanging."""
    if env.type == ErasureRequested.event_type and env.job_id is not None:
        await store.set_status(deps.lethe, env.job_id, "failed")
        await fail(env, deps, f"erasure stopped after retries: {error}")
        # The erasure stopped: the subject's row is shown again (after the failure is said,
        # which must go out even when the platform database is what failed).
        await hide.unhide_stopped(deps, env.job_id)
