"""Erasure: resolve the subject through the data map, delete in batches, verify, report.

Plain async functions over explicit dependencies; no Kafka here (events go out via `emit`).
Re-running an erasure is safe: it re-resolves what is left, so a crash mid-way resumes, and a
finished job is never repeated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.eraser import store
from shared.datamap import DataMap
from shared.events import Actor, Envelope, Payload, make_event
from shared.events.jobs import ErasureRequested
from shared.events.notifications import SendEmail
from shared.events.progress import (
    BatchErased,
    DuplicateIgnored,
    ErasurePlanned,
    JobCompleted,
    JobFailed,
)
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.platform import AmbiguousSubject, delete_rows, object_keys, resolve
from shared.storage import delete_objects, object_exists

ACTOR = Actor(kind="service", id="eraser")
Emit = Callable[[str, Envelope], Awaitable[None]]


class ObjectDeleteFailed(RuntimeError):
    pass


@dataclass
class EraserDeps:
    lethe: asyncpg.Pool
    platform: asyncpg.Pool
    s3: Any
    bucket: str
    datamap: DataMap
    emit: Emit
    batch_size: int = 1000
    rate_limit_rows: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic)


def _event(src: Envelope, payload: Payload) -> Envelope:
    return make_event(
        payload, actor=ACTOR, job_id=src.job_id, org_id=src.org_id, subject_hash=src.subject_hash
    )


async def erase(env: Envelope, deps: EraserDeps) -> None:
    req = env.payload_as(ErasureRequested)
    assert env.job_id is not None and env.org_id is not None
    job_id, org_id = env.job_id, env.org_id
    existing = await store.get_task(deps.lethe, job_id)
    if existing is not None and existing.status != "running":
        await deps.emit(AUDIT, _event(env, DuplicateIgnored(original_type=env.type)))
        return

    identities = req.subject.identities() if req.scope == "subject" and req.subject else None
    if req.scope == "subject" and not identities:
        await _fail(env, deps, "the request names no subject identity")
        return
    async with deps.platform.acquire() as conn:
        try:
            keys = await resolve(conn, deps.datamap, org_id, identities)
        except AmbiguousSubject as exc:
            await _fail(env, deps, str(exc))
            return
        per_table = {t: len(k) for t, k in keys.items()}
        task = await store.start_task(deps.lethe, job_id, org_id, per_table)
        if existing is None:
            await deps.emit(
                PROGRESS, _event(env, ErasurePlanned(total=task.total, per_table=per_table))
            )
        deleted_objects = await _erase_batches(env, deps, conn, keys, task)
        remaining = await resolve(conn, deps.datamap, org_id, identities)
    left = {t: len(k) for t, k in remaining.items() if k}
    objects_left = await _objects_left(deps, deleted_objects)
    verification = {
        "ok": not left and not objects_left,
        "rows_remaining": left,
        "objects_checked": len(deleted_objects),
        "objects_remaining": len(objects_left),
    }
    if not verification["ok"]:
        await store.finish_task(deps.lethe, job_id, "failed", verification)
        await _fail(env, deps, f"verification found data left: {verification}")
        return
    await store.finish_task(deps.lethe, job_id, "completed", verification)
    final = await store.get_task(deps.lethe, job_id)
    assert final is not None
    await deps.emit(
        PROGRESS,
        _event(env, JobCompleted(done=final.done, total=final.total, verification=verification)),
    )
    if req.requester_email:
        await deps.emit(
            NOTIFICATIONS,
            _event(
                env,
                SendEmail(
                    template="job_completed",
                    to=req.requester_email,
                    context={"job_id": str(job_id), "job_type": "erasure", "rows": final.done},
                ),
            ),
        )


async def _erase_batches(
    env: Envelope,
    deps: EraserDeps,
    conn: asyncpg.Connection,
    keys: dict[str, list[Any]],
    task: store.EraseTask,
) -> list[str]:
    """Children before parents; per batch: objects first, then rows in one transaction."""
    started = deps.clock()
    erased_now = 0
    deleted_objects: list[str] = []
    for table in reversed(list(keys)):
        if deps.datamap.tables[table].action == "keep":
            continue
        pks = keys[table]
        for i in range(0, len(pks), deps.batch_size):
            chunk = pks[i : i + deps.batch_size]
            objs = await object_keys(conn, deps.datamap, table, chunk)
            if objs:
                failed = await delete_objects(deps.s3, deps.bucket, objs)
                if failed:
                    # Rows stay until their objects are gone: no untracked orphans.
                    raise ObjectDeleteFailed(f"{len(failed)} objects of {table} not deleted")
                deleted_objects.extend(objs)
            async with conn.transaction():
                rows = await delete_rows(conn, deps.datamap, table, chunk)
            done = await store.add_progress(deps.lethe, task.job_id, rows)
            erased_now += rows
            elapsed = max(deps.clock() - started, 1e-6)
            rate = erased_now / elapsed
            await deps.emit(
                PROGRESS,
                _event(
                    env,
                    BatchErased(
                        table=table,
                        rows=rows,
                        objects=len(objs),
                        done=done,
                        total=task.total,
                        rows_per_second=round(rate, 1),
                        eta_seconds=round((task.total - done) / rate, 1) if rate > 0 else None,
                    ),
                ),
            )
            await _throttle(deps, erased_now, elapsed)
    return deleted_objects


async def _throttle(deps: EraserDeps, erased: int, elapsed: float) -> None:
    if deps.rate_limit_rows > 0:
        wait = erased / deps.rate_limit_rows - elapsed
        if wait > 0:
            await asyncio.sleep(wait)


async def _objects_left(deps: EraserDeps, keys: list[str]) -> list[str]:
    sem = asyncio.Semaphore(16)

    async def check(key: str) -> str | None:
        async with sem:
            return key if await object_exists(deps.s3, deps.bucket, key) else None

    return [k for k in await asyncio.gather(*(check(k) for k in keys)) if k]


async def _fail(env: Envelope, deps: EraserDeps, reason: str) -> None:
    await deps.emit(PROGRESS, _event(env, JobFailed(reason=reason)))
    req = env.payload_as(ErasureRequested)
    if req.requester_email:
        await deps.emit(
            NOTIFICATIONS,
            _event(
                env,
                SendEmail(
                    template="job_failed",
                    to=req.requester_email,
                    context={"job_id": str(env.job_id), "job_type": "erasure", "reason": reason},
                ),
            ),
        )


async def give_up(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Called when retries are exhausted: the job is failed visibly, never left hanging."""
    if env.type == ErasureRequested.event_type and env.job_id is not None:
        await _fail(env, deps, f"erasure stopped after retries: {error}")


__all__ = ["EraserDeps", "erase", "give_up"]
