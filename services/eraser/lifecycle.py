"""After the soft delete: cancel, restore (whole job or items), purge, and the purge sweep.

Each takes the job's fence (services/eraser/fence.py) for its change and re-reads the state
under it, so none of them overlaps a chunk's commit or another of them. A restore that brings
everything back ends the job `restored`: terminal, never purged, never reported completed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError

from services.eraser import fence, store
from services.eraser import objects as s3objects
from services.eraser.domain import (
    EraserDeps,
    SealedRequest,
    chunk_aad,
    job_event,
    notify,
    open_request,
    trace_items,
    verify,
)
from shared.crypto import open_sealed, seal
from shared.events import Envelope
from shared.events.jobs import CancelErasure, RestoreErasure
from shared.events.progress import (
    CancelledErasurePurged,
    CommandRefused,
    JobCancelled,
    JobCompleted,
    JobRestored,
    PurgeStarted,
)
from shared.events.topics import AUDIT, PROGRESS
from shared.platform import restore_rows

log = logging.getLogger(__name__)
SWEEP_LOCK = 7_715_004  # advisory lock: one purge sweep at a time over all replicas
PURGE_LOCK_CLASS = 7_715_005  # with hashtext(job id): one purger per job (Lethe database)


class PurgeIncomplete(RuntimeError):
    pass


async def _refuse(deps: EraserDeps, env: Envelope, command: str, reason: str) -> None:
    from services.eraser.domain import _event

    await deps.emit(PROGRESS, _event(env, CommandRefused(command=command, reason=reason)))


# ------------------------------------------------------------------ cancel


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
    except fence.Fenced as refused:
        await _refuse(
            deps, env, "CancelErasure", f"the erasure is {refused.status or 'unknown'}, not running"
        )
        return
    after = await store.get_job(deps.lethe, env.job_id)
    assert after is not None
    job = after
    await deps.emit(PROGRESS, job_event(job, JobCancelled(done=job.done, total=job.total)))
    if job.recovery_window_days == 0:
        await purge(deps, job.job_id)


# ------------------------------------------------------------------ restore


async def restore(env: Envelope, deps: EraserDeps) -> None:
    """Put rows back (parents first) and their objects; what cannot come back is reported.

    The whole restore holds the job's fence: no chunk commits and no purge starts meanwhile.
    When nothing is held afterwards the job ends `restored`; otherwise it stays in its
    window and the rest is purged when the window ends.
    """
    cmd = env.payload_as(RestoreErasure)
    assert env.job_id is not None
    items: dict[str, list[str]] | None = None
    if cmd.items is not None:
        items = defaultdict(list)
        for it in cmd.items:
            items[it.table].append(it.key)
    result: JobRestored | None = None
    async with fence.held(deps.platform, env.job_id) as conn:
        job = await store.get_job(deps.lethe, env.job_id)
        if job is not None and fence.allowed("restore", job.status) and job.wrapped_key:
            result = await _restore(deps, conn, job, items)
    if job is None or result is None:
        state = "unknown" if job is None else job.status
        await _refuse(deps, env, "RestoreErasure", f"the erasure is {state}: nothing to restore")
        return
    await deps.emit(PROGRESS, job_event(job, result))


async def _restore(
    deps: EraserDeps, conn: asyncpg.Connection, job: store.Job, items: dict[str, list[str]] | None
) -> JobRestored:
    key = deps.job_key(job)
    records = await store.held(conn, job.job_id, items)
    wave_of = {t: i for i, tables in enumerate(deps.waves()) for t in tables}
    # Rows back with the rows they link to first; detached links last (their targets are
    # back by then).
    records.sort(key=lambda r: (r.op != "erase", -wave_of.get(r.table_name, 0), r.chunk_no))
    review: list[dict[str, Any]] = []
    rows_back = objects_back = 0
    found: set[tuple[str, str]] = set()
    for rec in records:
        body = json.loads(open_sealed(key, rec.sealed, chunk_aad(job.job_id, rec.chunk_no)))
        pairs = list(zip(body["keys"], body["rows"], strict=True))
        wanted = {k for k, _ in pairs} if items is None else set(items.get(rec.table_name, ()))
        chosen = [(k, r) for k, r in pairs if k in wanted]
        found.update((rec.table_name, k) for k, _ in chosen)
        back, moved, problem = await _restore_record(deps, conn, job, rec, key, pairs, chosen)
        rows_back += len(back)
        objects_back += moved
        review.extend(
            {"kind": "row", "table": rec.table_name, "key": k, "reason": problem}
            for k, _ in chosen
            if k not in back
        )
    if items is not None:
        review.extend(
            {"kind": "row", "table": t, "key": k, "reason": "not held by this erasure"}
            for t, ks in items.items()
            for k in ks
            if (t, k) not in found
        )
    await deps.lethe.execute(
        "UPDATE lethe.erase_tasks SET restored_rows = restored_rows + $2, "
        "needs_review = needs_review || $3 WHERE job_id = $1",
        job.job_id,
        rows_back,
        review,
    )
    # Fully restored when nothing is held any more (rows that could not come back stay held,
    # and are purged with the rest when the window ends).
    fully = await store.restoration_rows(conn, job.job_id) == 0
    if fully:
        await store.transition(deps.lethe, job.job_id, fence.ALLOWED["restore"], "restored")
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
    job: store.Job,
    rec: store.Held,
    key: bytes,
    pairs: list[tuple[str, str]],
    chosen: list[tuple[str, str]],
) -> tuple[set[str], int, str]:
    """One record in one transaction: rows back, objects back before commit, log rewritten."""
    table = rec.table_name
    t = deps.datamap.tables[table]
    problem = "its key (or another unique value) is taken again, or a parent row is missing"
    try:
        async with conn.transaction():
            rows_json = "[" + ",".join(r for _, r in chosen) + "]"
            back = set(await restore_rows(conn, deps.datamap, table, rows_json, rec.op))
            keep = [(k, r) for k, r in pairs if k not in back]
            sealed = None
            if keep:
                body = json.dumps({"keys": [k for k, _ in keep], "rows": [r for _, r in keep]})
                sealed = seal(key, body.encode(), chunk_aad(job.job_id, rec.chunk_no))
            await store.rewrite_restoration(
                conn, job.job_id, rec.chunk_no, [k for k, _ in keep], sealed
            )
            moved = 0
            col = t.object_key_column
            if col is not None and back and rec.op == "erase":
                okeys = [v for k, r in chosen if k in back and (v := json.loads(r).get(col))]
                objs = await store.objects(deps.lethe, job.job_id, "quarantined", keys=okeys)
                if objs:
                    await s3objects.move(deps.s3, deps.bucket, [(q, k) for k, q in objs])
                    await store.set_object_state(
                        deps.lethe, job.job_id, [k for k, _ in objs], "restored"
                    )
                    moved = len(objs)
            return back, moved, problem
    except asyncpg.PostgresError as exc:
        return set(), 0, f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------ purge


async def purge(deps: EraserDeps, job_id: uuid.UUID) -> bool:
    """Objects first, then the restoration rows, then the key; verify; report. Idempotent."""
    async with deps.lethe.acquire() as lock:
        if not await lock.fetchval(
            "SELECT pg_try_advisory_lock($1, hashtext($2))", PURGE_LOCK_CLASS, str(job_id)
        ):
            return False  # another replica is purging this job
        try:
            return await _purge(deps, job_id)
        finally:
            await lock.execute(
                "SELECT pg_advisory_unlock($1, hashtext($2))", PURGE_LOCK_CLASS, str(job_id)
            )


async def _purge(deps: EraserDeps, job_id: uuid.UUID) -> bool:
    job = await store.get_job(deps.lethe, job_id)
    if job is None or job.purged_at is not None or not fence.allowed("purge", job.status):
        return False  # purged already, or restored (terminal), or not erased yet
    if job.status != "purging":
        # Under the fence: a restore either finished before (the job is restored, refused
        # here) or finds the job purging and is refused; a stopped chunk commits nothing.
        async with deps.platform.acquire() as conn, conn.transaction():
            try:
                job = await fence.enter(conn, deps.lethe, job_id, "purge")
            except fence.Fenced:
                return False
            if job.status != "purging" and not await store.transition(
                deps.lethe, job_id, [job.status], "purging"
            ):
                return False
        await deps.emit(PROGRESS, job_event(job, PurgeStarted()))
    request: SealedRequest | None = open_request(deps, job) if job.wrapped_key else None

    async with deps.platform.acquire() as conn:
        held_chunks = await store.held_chunks(conn, job_id)
    pairs = await store.purgeable_objects(deps.lethe, job_id, held_chunks)
    try:
        failed = await s3objects.purge(deps.s3, deps.bucket, [q for _, q in pairs])
        error = f"{len(failed)} quarantined objects not deleted" if failed else ""
    except (BotoCoreError, ClientError) as exc:
        error = f"quarantined objects not deleted: bucket {deps.bucket!r}: {exc}"
    if error:
        # The next sweep retries; meanwhile the job says why it is not purged (never silent).
        item = [{"kind": "purge_incomplete", "error": error}]
        added = await deps.lethe.execute(
            "UPDATE lethe.erase_tasks SET needs_review = needs_review || $2 "
            "WHERE job_id = $1 AND NOT needs_review @> $2",
            job_id,
            item,
        )
        if added == "UPDATE 1":  # once per distinct reason, not on every sweep
            await deps.emit(PROGRESS, job_event(job, PurgeStarted(needs_review=item)))
        raise PurgeIncomplete(f"{error}; retried later")
    await store.set_object_state(deps.lethe, job_id, [k for k, _ in pairs], "purged")
    async with deps.platform.acquire() as conn:
        await store.drop_restoration(conn, job_id)

    verification: dict[str, Any] = dict(job.verification or {})
    review = [r for r in job.needs_review if r.get("kind") != "purge_incomplete"]
    if request is not None:
        verification = await verify(deps, job, request, "purge")
        traces = trace_items(verification, review, job.restored_rows)
        review += [i for i in traces if i not in review]
    # Crypto-shredding: without the key no copy of the sealed rows (backups too) is readable.
    await deps.lethe.execute(
        "UPDATE lethe.erase_tasks SET wrapped_key = NULL, sealed_request = NULL, "
        "key_destroyed_at = coalesce(key_destroyed_at, now()), verification = $2 "
        "WHERE job_id = $1",
        job_id,
        verification,
    )
    deps.forget_key(job_id)
    verification["key_destroyed"] = True
    restored = job.restored_rows  # item by item, before the window ended
    purged = max(job.done - restored, 0)
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
    if await store.was_cancelled(deps.lethe, job_id):
        # A cancelled erasure's done part is purged at the end of its window, but the job was
        # not carried out: it stays `cancelled`. The purge is on the record (audit), and no
        # "completed" event, mail or callback says otherwise.
        await deps.emit(
            AUDIT,
            job_event(
                job,
                CancelledErasurePurged(
                    purged_rows=purged, verification=verification, needs_review=review
                ),
            ),
        )
        return True
    await deps.emit(
        PROGRESS,
        job_event(
            job,
            JobCompleted(
                done=job.done,
                total=job.total,
                verification=verification,
                needs_review=review,
                purged_rows=purged,
                restored_rows=restored,
            ),
        ),
    )
    # After the purge and its verification: how many rows were purged, how many restored.
    await notify(
        deps,
        job,
        request,
        "job_completed_review" if review else "job_completed",
        {
            "job_type": "erasure",
            "rows": purged,
            "rows_purged": purged,
            "rows_restored": restored,
            "review_count": len(review),
        },
        once="job_completed",
    )
    return True


RECOVERY_NOTICE_BEFORE = timedelta(hours=24)


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
        request = open_request(deps, job) if job.wrapped_key else None
        await notify(
            deps,
            job,
            request,
            "recovery_ends",
            {"job_type": "erasure", "purge_after": job.purge_after.strftime("%Y-%m-%d %H:%M UTC")},
            audience="owners",
        )
        await store.mark_recovery_notice(deps.lethe, job_id)
        sent += 1
    return sent


async def sweep(deps: EraserDeps) -> int:
    """Purge every job past its recovery window, and send the notices of windows ending
    tomorrow; one sweeper at a time (advisory lock)."""
    async with deps.lethe.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
            return 0
        try:
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
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)
