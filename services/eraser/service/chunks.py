"""One chunk: objects to quarantine first (recorded before they move), then one platform
transaction that deletes or masks the rows and writes them, sealed with the job key, to the
restoration log. A chunk whose record exists already is done: running it twice changes
nothing. Then the checkpoint, a progress event, and maybe the next wave."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import asyncpg

from services.eraser import domain, fence, store
from services.eraser import objects as s3objects
from services.eraser.deps import EraserDeps
from services.eraser.models import Chunk, Job
from services.eraser.sealing import open_request, seal_rows
from services.eraser.service.waves import advance, publish_wave, report_soft_delete
from shared.errors import reference
from shared.events import Envelope
from shared.events.jobs import EraseChunk
from shared.events.progress import BatchErased
from shared.events.topics import PROGRESS
from shared.platform import (
    ERASE,
    Removed,
    chunk_object_keys,
    delete_returning,
    detach_mask,
    detach_relation,
    mask_returning,
)

log = logging.getLogger(__name__)


class _AlreadyDone(Exception):
    pass


async def process_chunk(env: Envelope, deps: EraserDeps) -> None:
    """A chunk command from the task topic: erase it, then move the job on."""
    cmd = env.payload_as(EraseChunk)
    assert env.job_id is not None
    go_on, reported = await _erase(deps, env.job_id, cmd.chunk_no)
    if go_on:
        # The chunk's report is marked with the wave's state: one round trip for both.
        await advance(deps, env.job_id, reported=reported)
    elif reported is not None:
        await store.mark_reported(deps.lethe, env.job_id, reported)


async def erase_chunk(deps: EraserDeps, job_id: uuid.UUID, chunk_no: int) -> bool:
    """One chunk, once (see the module docstring). False when its job does not run any more
    (cancelled, restored or finished meanwhile): nothing to move on."""
    go_on, reported = await _erase(deps, job_id, chunk_no)
    if reported is not None:
        await store.mark_reported(deps.lethe, job_id, reported)
    return go_on


async def _erase(deps: EraserDeps, job_id: uuid.UUID, chunk_no: int) -> tuple[bool, int | None]:
    """erase_chunk, leaving the mark of its report (BatchErased sent) to the caller: returns
    (whether the job goes on, the chunk number to mark reported, if any)."""
    job, chunk = await store.job_and_chunk(deps.lethe, job_id, chunk_no)
    if job is None or job.status != "erasing":
        if job is not None:  # an earlier run of this chunk may have moved objects: back
            await release_chunk_objects(deps, job.job_id, chunk_no)
        if job is not None and job.status == "soft_deleted":
            # Redelivered after the soft delete: its report may have failed to go out.
            await report_soft_delete(deps, job)
        return False, None  # cancelled (or finished): a chunk of it has no effect any more
    if chunk is None or chunk.status != "pending":
        if chunk is not None and chunk.status == "done":
            # Its first report may not have gone out.
            return True, await _report_again(deps, job, chunk)
        return True, None
    await _throttle(deps, job)
    key = deps.job_key(job)
    moved = await _move_objects(deps, job, chunk)
    try:
        rows = await _soft_delete_rows(deps, job.job_id, chunk, key)
    except fence.Fenced:  # cancelled or restored meanwhile: nothing committed
        await release_chunk_objects(deps, job.job_id, chunk.chunk_no)
        return False, None
    result = await store.finish_chunk(
        deps.lethe, job.job_id, chunk.chunk_no, "done", rows, moved, worker=deps.worker
    )
    if result is None:
        return True, None
    done, total, since = result
    batch = domain.batch_event(chunk.table_name, rows, moved, done, total, since, _now())
    await deps.emit(PROGRESS, _batch_erased(job, chunk, batch))
    return True, chunk.chunk_no


async def run_inline(deps: EraserDeps, job: Job) -> None:
    """A small job's chunks (`EraserDeps.runs_inline`) in the planning handler, wave after
    wave, with the same checkpoints, reports and fence as on the task topic; a redelivered
    request resumes here. A chunk that fails hands the rest of its wave to the task topic,
    whose retries and review items apply as for any chunk."""
    job_id = job.job_id
    while True:
        state = await store.wave_state(deps.lethe, job_id)
        if state is None or state[0] != "erasing":
            return
        _, wave, waves, _ = state
        for chunk_no, _ in await store.pending_chunks(deps.lethe, job_id, wave):
            try:
                if not await erase_chunk(deps, job_id, chunk_no):
                    return
            except Exception:
                log.warning(
                    "chunk %d of job %s failed here: to the task topic",
                    chunk_no,
                    job_id,
                    exc_info=True,
                )
                await publish_wave(deps, job, wave)
                await advance(deps, job_id)
                return
        if wave + 1 >= waves:
            await advance(deps, job_id)  # verifies, reports the soft delete (and purges)
            return
        await store.advance_wave(deps.lethe, job_id, wave)


def _batch_erased(job: Job, chunk: Chunk, batch: BatchErased) -> Envelope:
    return domain.stable(domain.job_event(job, batch), f"BatchErased:{chunk.chunk_no}")


async def _report_again(deps: EraserDeps, job: Job, chunk: Chunk) -> int | None:
    """A done chunk's BatchErased once more, under the same event id: when the publish after
    its checkpoint failed (Kafka unavailable), the redelivered chunk sends it, so that no
    chunk is missing from the audit trail and the job's progress. Returns the chunk's number
    when it was sent (the caller marks it reported)."""
    counts = await store.chunk_counts(deps.lethe, job.job_id, chunk.chunk_no)
    if counts is None:
        return None
    rows, objects = counts
    batch = domain.batch_event(
        chunk.table_name, rows, objects, job.done, job.total, job.erasing_since, _now()
    )
    await deps.emit(PROGRESS, _batch_erased(job, chunk, batch))
    return chunk.chunk_no


def _now() -> datetime:
    return datetime.now(UTC)


async def _move_objects(deps: EraserDeps, job: Job, chunk: Chunk) -> int:
    """The chunk's objects into quarantine (or recorded as kept); returns how many moved."""
    table = chunk.table_name
    t = deps.datamap.tables[table]
    if t.object_key_column is None or chunk.op != ERASE:
        return 0
    async with deps.platform.acquire() as conn:
        keys = await chunk_object_keys(conn, table, t, deps.pk_types[table], chunk.keys)
    if not keys:
        return 0
    if not open_request(deps.job_key(job), job).delete_media:
        # The platform keeps its objects: the rows (the links) go, the objects stay, and the
        # job records which ones it left on purpose.
        await store.record_objects(
            deps.lethe, job.job_id, table, chunk.chunk_no, keys, keys, state="kept"
        )
        return 0
    pairs = [(k, s3objects.quarantine_key(job.job_id, k)) for k in keys]
    # Recorded before the move: whatever happens next, no object is left untracked.
    await store.record_objects(
        deps.lethe, job.job_id, table, chunk.chunk_no, keys, [q for _, q in pairs]
    )
    gone = await s3objects.move(deps.s3, deps.bucket, pairs)
    if gone:
        await store.set_object_state(deps.lethe, job.job_id, gone, "purged")
    return len(keys) - len(gone)


async def _soft_delete_rows(deps: EraserDeps, job_id: uuid.UUID, chunk: Chunk, key: bytes) -> int:
    """One transaction: rows out of the live table, sealed into the restoration log."""
    try:
        async with (
            deps.platform.acquire() as conn,
            conn.transaction(),
            fence.chunk_fence(conn, deps.lethe, job_id),  # state re-read under it
        ):
            # Run before? Deleted rows are simply not found again; masked rows are found and
            # masked again, but the restoration record's key refuses a second copy below.
            removed = await _remove(deps, conn, chunk)
            if not removed.keys:
                # A concurrent run of this chunk may have committed meanwhile.
                return await store.restoration_count(conn, job_id, chunk.chunk_no) or 0
            sealed = seal_rows(key, job_id, chunk.chunk_no, removed.keys, removed.rows)
            if not await store.insert_restoration(
                conn, job_id, chunk.chunk_no, chunk.table_name, removed.keys, sealed, chunk.op
            ):
                raise _AlreadyDone
            return len(removed.keys)
    except _AlreadyDone:
        async with deps.platform.acquire() as conn:
            return await store.restoration_count(conn, job_id, chunk.chunk_no) or 0


async def _remove(deps: EraserDeps, conn: asyncpg.Connection, chunk: Chunk) -> Removed:
    """The chunk's rows detached, masked or deleted, per its op and the table's action."""
    table = chunk.table_name
    t = deps.datamap.tables[table]
    pk_type = deps.pk_types[table]
    col_types = deps.column_types(table)
    relation = detach_relation(t, chunk.op)
    if relation is not None:
        mask = detach_mask(relation)
        return await mask_returning(
            conn, table, t, pk_type, chunk.keys, deps.hmac_key, mask=mask, col_types=col_types
        )
    if t.action == "mask":
        return await mask_returning(
            conn, table, t, pk_type, chunk.keys, deps.hmac_key, col_types=col_types
        )
    return await delete_returning(conn, table, t, pk_type, chunk.keys)


async def _throttle(deps: EraserDeps, job: Job) -> None:
    """Rows per second per job, over all replicas: the job's own counters are the clock."""
    if deps.rate_limit_rows <= 0 or job.erasing_since is None:
        return
    elapsed = (_now() - job.erasing_since).total_seconds()
    wait = domain.throttle_wait(job.done, deps.rate_limit_rows, elapsed)
    if wait > 0:
        await asyncio.sleep(wait)


async def chunk_failed(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Retries exhausted: the chunk becomes a manual-review item, the job goes on."""
    cmd = env.payload_as(EraseChunk)
    assert env.job_id is not None
    job = await store.get_job(deps.lethe, env.job_id)
    if job is None:
        return
    async with deps.platform.acquire() as conn:
        held = await store.restoration_count(conn, job.job_id, cmd.chunk_no)
    if held is not None:
        await store.finish_chunk(deps.lethe, job.job_id, cmd.chunk_no, "done", held, 0)
        await advance(deps, job.job_id)
        return
    # The rows stayed: their objects go back where they were, nothing is half-erased.
    pairs = await store.objects(deps.lethe, job.job_id, "quarantined", chunk_no=cmd.chunk_no)
    if pairs:
        try:
            await s3objects.move(deps.s3, deps.bucket, [(q, k) for k, q in pairs])
        except Exception as exc:  # e.g. the bucket is gone: said in the review item
            error += f"; its {len(pairs)} objects could not be put back: {reference(exc)}"
        else:
            keys = [k for k, _ in pairs]
            await store.set_object_state(deps.lethe, job.job_id, keys, "restored")
    await store.finish_chunk(deps.lethe, job.job_id, cmd.chunk_no, "failed", 0, 0, error)
    await advance(deps, job.job_id)


async def release_chunk_objects(deps: EraserDeps, job_id: uuid.UUID, chunk_no: int) -> int:
    """A chunk that will never commit (its job stopped): its objects go back where they were.

    Only for a chunk that never finished and holds no restoration record: its rows are live,
    and since the job does not run any more nobody can commit it. Idempotent; returns how
    many objects moved back.
    """
    chunk = await store.get_chunk(deps.lethe, job_id, chunk_no)
    if chunk is None or chunk.status not in ("pending", "cancelled"):
        return 0
    async with deps.platform.acquire() as conn:
        if await store.restoration_count(conn, job_id, chunk_no) is not None:
            return 0
    pairs = await store.objects(deps.lethe, job_id, "quarantined", chunk_no=chunk_no)
    if not pairs:
        return 0
    await s3objects.move(deps.s3, deps.bucket, [(q, k) for k, q in pairs])
    await store.set_object_state(deps.lethe, job_id, [k for k, _ in pairs], "restored")
    return len(pairs)
