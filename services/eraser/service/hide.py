"""The data map's `hide` step (docs/datamap.md, Hiding the subject at once).

Right after the subject is resolved, before its plan is recorded, the subject's own row gets
the hide columns set (e.g. `disabled = true`) in one short platform transaction under the
job's fence, and the values it had are sealed into the restoration log (record
`domain.HIDE_CHUNK`, op `hide`) like any chunk's rows. So what the subject and the platform
see first is the account hidden, whatever the size of the erasure; the row itself still goes
with its chunk later.

Undone like the rest: a restore puts the values back after the row (`domain.restore_order`);
a cancel, or a plan that gives up, puts them back at once on the rows no chunk erased
(`unhide`); the purge drops the record with the others.
"""

from __future__ import annotations

import uuid

import asyncpg

from services.eraser import domain, fence, store
from services.eraser.deps import EraserDeps
from services.eraser.models import Job
from services.eraser.sealing import open_rows, seal_rows
from shared.events.progress import SubjectHidden
from shared.events.topics import PROGRESS
from shared.platform import HIDE, mask_returning, restore_rows
from shared.resolver import Subject


async def hide_subject(
    deps: EraserDeps, conn: asyncpg.Connection, job_id: uuid.UUID, subject: Subject
) -> None:
    """Hide the subject's row, once (a redelivered plan finds the record and only reports)."""
    table = deps.datamap.subject.table
    t = deps.datamap.tables[table]
    if t.hide is None or not subject.subject_keys:
        return  # nothing to hide: an organisation scope, or a map without `hide`
    try:
        async with conn.transaction():
            job = await fence.enter(conn, deps.lethe, job_id, "hide")
            rows = await store.restoration_count(conn, job_id, domain.HIDE_CHUNK)
            if rows is None:
                hidden = await mask_returning(
                    conn,
                    table,
                    t,
                    deps.pk_types[table],
                    subject.subject_keys,
                    deps.hmac_key,
                    mask=t.hide.mask,
                    col_types=deps.column_types(table),
                )
                if not hidden.keys:
                    return  # gone meanwhile: the plan finds nothing of it either
                sealed = seal_rows(
                    deps.job_key(job), job_id, domain.HIDE_CHUNK, hidden.keys, hidden.rows
                )
                await store.insert_restoration(
                    conn, job_id, domain.HIDE_CHUNK, table, hidden.keys, sealed, HIDE
                )
                rows = len(hidden.keys)
    except fence.Fenced:
        return  # cancelled before it could hide: nothing hidden, nothing to undo
    hidden_at = await store.mark_hidden(deps.lethe, job_id)
    event = SubjectHidden(table=table, rows=rows, hidden_at=hidden_at)
    await deps.emit(PROGRESS, domain.stable(domain.job_event(job, event), "SubjectHidden"))


async def unhide(deps: EraserDeps, conn: asyncpg.Connection, job: Job) -> int:
    """The hide values back on the subject's rows that no chunk of the job erased (the erasure
    stopped: the subject is not hidden any more). Rows a chunk took stay in the record, for
    a restore to put back after the row. In the caller's transaction, under the job's fence;
    returns how many rows were shown again."""
    rec = await store.hide_record(conn, job.job_id, domain.HIDE_CHUNK)
    if rec is None or job.wrapped_key is None:
        return 0
    erased = await store.erased_keys(conn, job.job_id, rec.table_name, rec.keys)
    key = deps.job_key(job)
    pairs = open_rows(key, job.job_id, rec)
    chosen = [r for k, r in pairs if k not in erased]
    if not chosen:
        return 0
    rows_json = "[" + ",".join(chosen) + "]"
    back = set(await restore_rows(conn, deps.datamap, rec.table_name, rows_json, HIDE))
    keep = [(k, r) for k, r in pairs if k not in back]
    sealed = None
    if keep:
        sealed = seal_rows(
            key, job.job_id, rec.chunk_no, [k for k, _ in keep], [r for _, r in keep]
        )
    await store.rewrite_restoration(conn, job.job_id, rec.chunk_no, [k for k, _ in keep], sealed)
    return len(back)


async def unhide_stopped(deps: EraserDeps, job_id: uuid.UUID) -> None:
    """`unhide` for a job that stopped without a cancel (its plan gave up), under its fence."""
    async with deps.platform.acquire() as conn, conn.transaction():
        await fence.lock(conn, job_id)
        job = await store.get_job(deps.lethe, job_id)
        if job is not None:
            await unhide(deps, conn, job)
