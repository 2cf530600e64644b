"""After the plan: cancel (stop between batches) and restore (whole job or items).

Each takes the job's fence (services/eraser/fence.py) for its change and re-reads the state
under it, so none of them overlaps a chunk's commit, the purge, or another of them. A restore
that brings everything back ends the job `restored`: terminal, never purged, never reported
completed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.eraser import domain, fence, store
from services.eraser import objects as s3objects
from services.eraser.deps import EraserDeps
from services.eraser.models import Held, Job
from services.eraser.sealing import open_rows, seal_rows
from services.eraser.service import hide
from services.eraser.service.purge import purge
from shared.errors import reference
from shared.events import Envelope
from shared.events.jobs import CancelErasure, RestoreErasure
from shared.events.progress import CommandRefused, JobCancelled, JobRestored
from shared.events.topics import PROGRESS
from shared.platform import HIDE, restore_rows

RESTORE_CONFLICT = "its key (or another unique value) is taken again, or a parent row is missing"


async def _refuse(deps: EraserDeps, env: Envelope, command: str, reason: str) -> None:
    refused = CommandRefused(command=command, reason=reason)
    await deps.emit(PROGRESS, domain.request_event(env, refused))


async def cancel(env: Envelope, deps: EraserDeps) -> None:
    """Stop between batches: pending chunks are dropped, what is done stays restorable."""
    env.payload_as(CancelErasure)
    assert env.job_id is not None
    try:
        # Under the fence: a chunk commits before the cancel or not at all.
        async with deps.platform.acquire() as conn, conn.transaction():
            job = await fence.enter(conn, deps.lethe, env.job_id, "cancel")
            purge_after = datetime.now(UTC) + timedelta(days=job.recovery_window_days)
            if not await store.transition(
                deps.lethe,
                job.job_id,
                fence.ALLOWED["cancel"],
                "cancelled",
                purge_after=purge_after,
            ):
                now = await store.get_job(deps.lethe, job.job_id)  # it finished meanwhile
                raise fence.Fenced("cancel", now.status if now else None)
            await store.cancel_pending(deps.lethe, job.job_id)
            # The subject's row hidden at the plan, and not erased: shown again.
            await hide.unhide(deps, conn, job)
    except fence.Fenced as refused:
        await _refuse(
            deps, env, "CancelErasure", f"the erasure is {refused.status or 'unknown'}, not running"
        )
        return
    after = await store.get_job(deps.lethe, env.job_id)
    assert after is not None
    await deps.emit(
        PROGRESS, domain.job_event(after, JobCancelled(done=after.done, total=after.total))
    )
    if after.recovery_window_days == 0:
        await purge(deps, after.job_id)


async def restore(env: Envelope, deps: EraserDeps) -> None:
    """Put rows back (parents first) and their objects; what cannot come back is reported.

    The whole restore holds the job's fence: no chunk commits and no purge starts meanwhile.
    When nothing is held afterwards the job ends `restored`; otherwise it stays in its
    window and the rest is purged when the window ends.
    """
    cmd = env.payload_as(RestoreErasure)
    assert env.job_id is not None
    items = domain.wanted_items(cmd.items)
    result: JobRestored | None = None
    async with fence.held(deps.platform, env.job_id) as conn:
        job = await store.get_job(deps.lethe, env.job_id)
        if job is not None and fence.allowed("restore", job.status) and job.wrapped_key:
            result = await _restore(deps, conn, job, items)
    if job is None or result is None:
        state = "unknown" if job is None else job.status
        await _refuse(deps, env, "RestoreErasure", f"the erasure is {state}: nothing to restore")
        return
    await deps.emit(PROGRESS, domain.job_event(job, result))


async def _restore(
    deps: EraserDeps, conn: asyncpg.Connection, job: Job, items: dict[str, list[str]] | None
) -> JobRestored:
    key = deps.job_key(job)
    records = domain.restore_order(await store.held(conn, job.job_id, items), deps.waves())
    review: list[dict[str, Any]] = []
    rows_back = objects_back = 0
    found: set[tuple[str, str]] = set()
    for rec in records:
        pairs = open_rows(key, job.job_id, rec)
        chosen = domain.chosen_rows(pairs, rec.table_name, items)
        found.update((rec.table_name, k) for k, _ in chosen)
        back, moved, problem = await _restore_record(deps, conn, job, rec, key, pairs, chosen)
        if rec.op == HIDE:
            continue  # the values of rows a chunk record holds too: counted (reviewed) there
        rows_back += len(back)
        objects_back += moved
        review.extend(
            {"kind": "row", "table": rec.table_name, "key": k, "reason": problem}
            for k, _ in chosen
            if k not in back
        )
    if items is not None:
        review.extend(domain.not_held(items, found))
    await store.add_restored(deps.lethe, job.job_id, rows_back, review)
    # Fully restored when nothing is held any more (rows that could not come back stay held,
    # and are purged with the rest when the window ends).
    fully = not await store.held_chunks(conn, job.job_id)
    if fully:
        await store.transition(deps.lethe, job.job_id, fence.ALLOWED["restore"], "restored")
        await store.forget_keys(deps.lethe, job.job_id)  # terminal: nothing held any more
    return JobRestored(
        rows=rows_back,
        objects=objects_back,
        whole_job=items is None,
        needs_review=review,
        fully_restored=fully,
    )


async def _restore_record(
    deps: EraserDeps,
    conn: asyncpg.Connection,
    job: Job,
    rec: Held,
    key: bytes,
    pairs: list[tuple[str, str]],
    chosen: list[tuple[str, str]],
) -> tuple[set[str], int, str]:
    """One record in one transaction: rows back, objects back before commit, log rewritten."""
    try:
        async with conn.transaction():
            rows_json = "[" + ",".join(r for _, r in chosen) + "]"
            back = set(await restore_rows(conn, deps.datamap, rec.table_name, rows_json, rec.op))
            keep = [(k, r) for k, r in pairs if k not in back]
            sealed = None
            if keep:
                kept_keys, kept_rows = [k for k, _ in keep], [r for _, r in keep]
                sealed = seal_rows(key, job.job_id, rec.chunk_no, kept_keys, kept_rows)
            await store.rewrite_restoration(
                conn, job.job_id, rec.chunk_no, [k for k, _ in keep], sealed
            )
            moved = await _objects_back(deps, job, rec, chosen, back)
            return back, moved, RESTORE_CONFLICT
    except asyncpg.PostgresError as exc:
        return set(), 0, reference(exc, f"restoring chunk {rec.chunk_no} of job {job.job_id}")


async def _objects_back(
    deps: EraserDeps, job: Job, rec: Held, chosen: list[tuple[str, str]], back: set[str]
) -> int:
    """The quarantined objects of the rows that came back, back in place."""
    col = deps.datamap.tables[rec.table_name].object_key_column
    if col is None or not back or rec.op != "erase":
        return 0
    okeys = [v for k, r in chosen if k in back and (v := json.loads(r).get(col))]
    objs = await store.objects(deps.lethe, job.job_id, "quarantined", keys=okeys)
    if not objs:
        return 0
    await s3objects.move(deps.s3, deps.bucket, [(q, k) for k, q in objs])
    await store.set_object_state(deps.lethe, job.job_id, [k for k, _ in objs], "restored")
    return len(objs)
