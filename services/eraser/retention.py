"""Retention: rows of a category older than a cutoff leave the platform, through the eraser.

One code path for the nightly jobs (`RetentionRequested` on the erase topic, planned by the
intake scheduler) and for `lethe cleanup` (run in-process by the CLI):

- **Select** through the one resolver (`shared/resolver.py`, `aged_keys_sql`): per table
  of the category, keyset pages on the primary key (composite keys too, never a whole
  result set), of one organisation (its org column cast to the column's type, or its
  parent's; single-tenant: every row), passing the table's `where:`, no tombstone,
  `batch_size` keys at a time.
- **Related rows** of a batch are the resolver's too (the batch as a scope): `owned` rows go
  with it, `shared` ones when nothing outside still references them, `reference` rows stay
  with their link detached; an aged row still referenced through a link the map does not
  let it follow is kept and reported (docs/datamap.md, Retention).
- **Objects before rows, durably**: the objects' keys are recorded (`retention_objects`,
  state pending), deleted from S3, marked deleted; only then the rows go, in one platform
  transaction per batch, deleted or masked per the data map's action. A failed object
  delete keeps its batch's rows (retried next run) and is reported for review.
- **Rate limit, progress, verification** as in an erasure: rows per second over the run,
  a callback after every batch (BatchErased for jobs, the CLI's progress bar), and a final
  count of what is still older than the cutoff.
- A failing table is reported (stats, audit, review item) and the run goes on.
- **Cancel** (`POST /v1/jobs/{id}/cancel`): recorded at once by the eraser's cancel listener;
  the run stops before its next batch, the job ends `cancelled` (what went is gone).
- The `anonymous` category is deleted only with public mode on; otherwise never.

Retention purges directly: the rows are past their policy, so there is no recovery window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.eraser import objects as s3objects
from services.eraser.domain import ACTOR, EraserDeps
from shared.events import Envelope, make_event
from shared.events.jobs import CancelErasure
from shared.events.progress import (
    BatchErased,
    CommandRefused,
    DuplicateIgnored,
    ErasurePlanned,
    JobCancelled,
    JobCompleted,
    JobFailed,
)
from shared.events.retention import RetentionRequested
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.notices import job_notice
from shared.platform import chunk_object_keys, detach_mask, key_in, mask_returning
from shared.resolver import Resolver, Subject, q

log = logging.getLogger(__name__)
ANONYMOUS = "anonymous"
OnBatch = Callable[[str, int, int, int, int], Awaitable[None]]  # table, rows, objs, done, total


class PublicModeOff(ValueError):
    pass


@dataclass
class Stats:
    rows: dict[str, int] = field(default_factory=dict)
    objects_deleted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    done: int = 0  # rows of the category's own tables (children counted in `rows`)
    detached: dict[str, int] = field(default_factory=dict)  # links cut in rows that stay
    kept: dict[str, int] = field(default_factory=dict)  # past the policy, still referenced
    cancelled: bool = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "objects_deleted": self.objects_deleted,
            "errors": self.errors,
            "planned": self.planned,
            "remaining": self.remaining,
            "dry_run": self.dry_run,
            "detached": self.detached,
            "kept": self.kept,
            "cancelled": self.cancelled,
        }


async def count_expired(
    conn: asyncpg.Connection,
    resolver: Resolver,
    table: str,
    org_id: str | None,
    cutoff: datetime,
    *,
    held: bool = False,
) -> int:
    """Rows of `table` retention takes (held: those it keeps, still referenced)."""
    sql, args = resolver.aged_count_sql(table, org_id, cutoff, held=held)
    n: int = await conn.fetchval(sql, *args)
    return n


async def _family(
    conn: asyncpg.Connection, resolver: Resolver, batch: Subject
) -> dict[str, list[str]]:
    """Text keys of the batch and of every row that goes with it (the resolver's rules)."""
    found: dict[str, list[str]] = {}
    for table in resolver.tables(batch.scope):
        sql, args = resolver.key_text_sql(table, batch)
        found[table] = [r[0] for r in await conn.fetch(sql, *args)]
    return found


async def _delete_objects(
    deps: EraserDeps, job_id: Any, family: dict[str, list[Any]]
) -> tuple[int, list[str]]:
    """Objects of the batch's rows: intent recorded, deleted, marked. Returns (deleted, failed)."""
    keys_by_table: dict[str, list[str]] = {}
    async with deps.platform.acquire() as conn:
        for table, pks in family.items():
            t = deps.datamap.tables[table]
            if t.object_key_column is not None and pks:
                keys_by_table[table] = await chunk_object_keys(
                    conn, table, t, deps.pk_types[table], [str(k) for k in pks]
                )
    deleted, failed = 0, []
    for table, keys in keys_by_table.items():
        if not keys:
            continue
        await deps.lethe.execute(
            "INSERT INTO lethe.retention_objects (key, job_id, table_name, state) "
            "SELECT k, $2, $3, 'pending' FROM unnest($1::text[]) AS k "
            "ON CONFLICT (key) DO UPDATE SET job_id = $2, state = 'pending'",
            keys,
            job_id,
            table,
        )
        try:
            bad = await s3objects.purge(deps.s3, deps.bucket, keys)
        except Exception as exc:  # S3 down: the whole lot stays pending
            bad = list(keys)
            log.warning("retention: deleting %d objects failed: %r", len(keys), exc)
        ok = [k for k in keys if k not in set(bad)]
        await deps.lethe.execute(
            "UPDATE lethe.retention_objects SET state = 'deleted', error = NULL "
            "WHERE key = ANY($1::text[])",
            ok,
        )
        if bad:
            await deps.lethe.execute(
                "UPDATE lethe.retention_objects SET error = 'delete failed' "
                "WHERE key = ANY($1::text[])",
                bad,
            )
        deleted += len(ok)
        failed.extend(bad)
    return deleted, failed


async def _delete_rows(
    deps: EraserDeps, batch: Subject, family: dict[str, list[str]]
) -> tuple[dict[str, int], dict[str, int]]:
    """One transaction: links into the batch's rows from rows that stay are detached (null
    or the tombstone), then the rows go, holders first, deleted or masked per the map."""
    dm, resolver = deps.datamap, deps.resolver
    done: dict[str, int] = {}
    detached: dict[str, int] = {}
    tables = [t for t in family if family[t]]
    async with deps.platform.acquire() as conn, conn.transaction():
        for table, _, rel in dm.detaches(tables):
            sql, args = resolver.detach_sql(table, rel, batch)
            keys = [r[0] for r in await conn.fetch(sql, *args)]
            if keys:
                moved = await mask_returning(
                    conn,
                    table,
                    dm.tables[table],
                    deps.pk_types[table],
                    keys,
                    deps.hmac_key,
                    mask=detach_mask(rel),
                    col_types=deps.column_types(table),
                )
                detached[table] = detached.get(table, 0) + len(moved.keys)
        for wave in deps.waves(tables):
            for table in wave:
                t = dm.tables[table]
                keys = family[table]
                if t.action == "keep":
                    continue
                pk_type = deps.pk_types[table]
                if t.action == "mask":
                    removed = await mask_returning(
                        conn,
                        table,
                        t,
                        pk_type,
                        keys,
                        deps.hmac_key,
                        col_types=deps.column_types(table),
                    )
                    done[table] = len(removed.keys)
                else:
                    status = await conn.execute(
                        f"DELETE FROM {q(table)} x WHERE {key_in(t, pk_type, 'x')}", keys
                    )
                    done[table] = int(status.split()[-1])
    return done, detached


async def clean(
    deps: EraserDeps,
    *,
    category: str,
    cutoff: datetime,
    org_id: str | None,
    public_mode: bool,
    dry_run: bool = False,
    job_id: Any = None,
    on_batch: OnBatch | None = None,
    on_plan: Callable[[dict[str, int]], Awaitable[None]] | None = None,
    stop: Callable[[], Awaitable[bool]] | None = None,
) -> Stats:
    """Delete the category's rows older than `cutoff` (of one org, or of all with None).

    `stop` is asked between batches (a cancelled job): True ends the run there.
    """
    dm, resolver = deps.datamap, deps.resolver
    if category == ANONYMOUS and not public_mode:
        raise PublicModeOff("public mode is off: anonymous data is never deleted")
    tables = dm.retention_tables(category)
    if not tables:
        raise ValueError(f"category {category!r}: no table of the data map ages by it")
    stats = Stats(dry_run=dry_run)
    async with deps.platform.acquire() as conn:
        if not await resolver.check_retention_org(conn, org_id):
            tables = []  # a single-tenant platform holds no rows of another organisation
        for table in tables:
            stats.planned[table] = await count_expired(conn, resolver, table, org_id, cutoff)
    if on_plan is not None:
        await on_plan(stats.planned)
    total, done = sum(stats.planned.values()), 0
    started = time.monotonic()
    for table in tables:
        after: str | None = None
        while True:
            if stop is not None and await stop():
                stats.cancelled = True
                break
            try:
                async with deps.platform.acquire() as conn:
                    sql, args = resolver.aged_keys_sql(
                        table, org_id, cutoff, after=after, limit=deps.batch_size
                    )
                    keys: list[str] = [r[0] for r in await conn.fetch(sql, *args)]
                    if not keys:
                        break
                    after = keys[-1]
                    batch = resolver.batch(org_id, table, keys)
                    family = await _family(conn, resolver, batch)
                if dry_run:
                    for name, ks in family.items():
                        if ks and dm.tables[name].action != "keep":
                            stats.rows[name] = stats.rows.get(name, 0) + len(ks)
                    rows, objs = len(keys), 0
                else:
                    objs, failed = await _delete_objects(deps, job_id, family)
                    stats.objects_deleted += objs
                    if failed:
                        stats.errors.append(
                            {
                                "kind": "objects",
                                "table": table,
                                "rows": len(keys),
                                "objects": len(failed),
                                "error": "objects not deleted; their rows stay until next run",
                            }
                        )
                        continue
                    counts, detached = await _delete_rows(deps, batch, family)
                    for name, n in counts.items():
                        stats.rows[name] = stats.rows.get(name, 0) + n
                    for name, n in detached.items():
                        stats.detached[name] = stats.detached.get(name, 0) + n
                    rows = len(keys)
                done += rows
                if on_batch is not None:
                    await on_batch(table, rows, objs, done, total)
                await _throttle(deps, done, started)
            except Exception as exc:  # reported, and the next table goes on
                log.warning("retention of table %s failed: %r", table, exc)
                stats.errors.append(
                    {"kind": "table", "table": table, "error": f"{type(exc).__name__}: {exc}"}
                )
                break
        if stats.cancelled:
            break
    stats.done = done
    if not dry_run and not stats.cancelled:
        async with deps.platform.acquire() as conn:
            for table in tables:
                left = await count_expired(conn, resolver, table, org_id, cutoff)
                if left:
                    stats.remaining[table] = left
                kept = await count_expired(conn, resolver, table, org_id, cutoff, held=True)
                if kept:
                    stats.kept[table] = kept
    return stats


async def _throttle(deps: EraserDeps, done: int, started: float) -> None:
    if deps.rate_limit_rows <= 0:
        return
    wait = done / deps.rate_limit_rows - (time.monotonic() - started)
    if wait > 0:
        await asyncio.sleep(min(wait, 60))


# ------------------------------------------------------------------ the job


def _event(env: Envelope, payload: Any) -> Envelope:
    return make_event(payload, actor=ACTOR, job_id=env.job_id, org_id=env.org_id)


async def run_job(env: Envelope, deps: EraserDeps, *, public_mode: bool) -> None:
    """A RetentionRequested from the job pipeline: run once, report like an erasure."""
    req = env.payload_as(RetentionRequested)
    assert env.job_id is not None
    job_id = env.job_id
    if await cancel_requested(deps, env.job_id):  # cancelled before it started
        stopped = await deps.lethe.fetchval(
            "INSERT INTO lethe.retention_runs (job_id, org_id, category, cutoff, status, "
            "finished_at) VALUES ($1, $2, $3, $4, 'cancelled', now()) ON CONFLICT (job_id) "
            "DO UPDATE SET status = 'cancelled', finished_at = now() "
            "WHERE lethe.retention_runs.status = 'running' RETURNING true",
            env.job_id,
            env.org_id,
            req.category,
            req.cutoff,
        )
        if stopped:
            await deps.emit(PROGRESS, _event(env, JobCancelled(done=0, total=0)))
        else:
            await deps.emit(AUDIT, _event(env, DuplicateIgnored(original_type=env.type)))
        return
    started = await deps.lethe.fetchval(
        "INSERT INTO lethe.retention_runs (job_id, org_id, category, cutoff, status) "
        "VALUES ($1, $2, $3, $4, 'running') ON CONFLICT (job_id) DO UPDATE "
        "SET status = 'running' WHERE lethe.retention_runs.status = 'running' RETURNING true",
        env.job_id,
        env.org_id,
        req.category,
        req.cutoff,
    )
    if not started:  # finished before: a redelivery changes nothing
        await deps.emit(AUDIT, _event(env, DuplicateIgnored(original_type=env.type)))
        return

    async def planned(per_table: dict[str, int]) -> None:
        await deps.emit(
            PROGRESS,
            _event(env, ErasurePlanned(total=sum(per_table.values()), per_table=per_table)),
        )

    async def batch(table: str, rows: int, objs: int, done: int, total: int) -> None:
        await deps.emit(
            PROGRESS,
            _event(
                env,
                BatchErased(
                    table=table,
                    rows=rows,
                    objects=objs,
                    done=done,
                    total=total,
                    rows_per_second=0.0,
                    eta_seconds=None,
                    phase="retention",
                ),
            ),
        )

    try:
        stats = await clean(
            deps,
            category=req.category,
            cutoff=req.cutoff,
            org_id=env.org_id,
            public_mode=public_mode,
            job_id=env.job_id,
            on_batch=batch,
            on_plan=planned,
            stop=lambda: cancel_requested(deps, job_id),
        )
    except (PublicModeOff, ValueError) as exc:
        await deps.lethe.execute(
            "UPDATE lethe.retention_runs SET status = 'failed', finished_at = now(), "
            "stats = $2 WHERE job_id = $1",
            env.job_id,
            {"error": str(exc)},
        )
        await deps.emit(PROGRESS, _event(env, JobFailed(reason=str(exc))))
        await _failure_notice(env, deps, str(exc))
        return
    if stats.cancelled:  # stopped between batches: what went is gone (no recovery window)
        await deps.lethe.execute(
            "UPDATE lethe.retention_runs SET status = 'cancelled', finished_at = now(), "
            "stats = $2 WHERE job_id = $1",
            env.job_id,
            stats.as_dict(),
        )
        await deps.emit(
            PROGRESS,
            _event(env, JobCancelled(done=stats.done, total=sum(stats.planned.values()))),
        )
        return
    review = list(stats.errors)
    if stats.remaining and not review:
        review.append({"kind": "rows_remaining", "tables": stats.remaining})
    if stats.kept:
        review.append(
            {
                "kind": "rows_kept",
                "tables": stats.kept,
                "reason": "past the policy but still referenced by rows that stay, through "
                "links retention cannot follow (a `referenced_by` relation of the table, or a "
                "foreign key the data map does not declare): kept, never deleted under "
                "another row; declare the link's kind to let them go",
            }
        )
    verification = {
        "phase": "retention",
        "category": req.category,
        "cutoff": req.cutoff.isoformat(),
        "rows_remaining": stats.remaining,
        "rows": stats.rows,
        "links_detached": stats.detached,
        "rows_kept": stats.kept,
        "objects_deleted": stats.objects_deleted,
        "ok": not stats.remaining and not stats.errors,
    }
    await deps.lethe.execute(
        "UPDATE lethe.retention_runs SET status = 'completed', finished_at = now(), stats = $2 "
        "WHERE job_id = $1",
        env.job_id,
        stats.as_dict(),
    )
    await deps.emit(
        PROGRESS,
        _event(
            env,
            JobCompleted(
                done=stats.done,
                total=sum(stats.planned.values()),
                verification=verification,
                needs_review=review,
            ),
        ),
    )


async def give_up(env: Envelope, deps: EraserDeps, error: str) -> None:
    """Retries exhausted: the job fails visibly (the next period's run tries again)."""
    await deps.lethe.execute(
        "UPDATE lethe.retention_runs SET status = 'failed', finished_at = now(), stats = $2 "
        "WHERE job_id = $1",
        env.job_id,
        {"error": error},
    )
    await deps.emit(PROGRESS, _event(env, JobFailed(reason=f"retention stopped: {error}")))
    await _failure_notice(env, deps, f"retention stopped: {error}")


async def _failure_notice(env: Envelope, deps: EraserDeps, reason: str) -> None:
    """A retention job has no requester: its failure is mailed to the org's owner contacts."""
    if env.job_id is None:
        return
    await deps.emit(
        NOTIFICATIONS,
        job_notice(
            "job_failed",
            actor=ACTOR,
            job_id=env.job_id,
            org_id=env.org_id,
            subject_hash=None,
            to=None,
            context={"job_type": "retention", "reason": reason},
            audience="owners",
            once="job_failed",
        ),
    )


# ------------------------------------------------------------------ cancel


async def cancel_requested(deps: EraserDeps, job_id: Any) -> bool:
    found = await deps.lethe.fetchval(
        "SELECT true FROM lethe.retention_cancels WHERE job_id = $1", job_id
    )
    return bool(found)


async def request_cancel(env: Envelope, deps: EraserDeps) -> None:
    """The cancel listener: record a cancel at once (the run holds its partition of the job
    topic until it ends, so it would see the command only afterwards). Erasure jobs have
    their own cancel (services/eraser/lifecycle.py); a finished run is left alone."""
    payload = env.payload_as(CancelErasure)
    await deps.lethe.execute(
        "INSERT INTO lethe.retention_cancels (job_id, reason) SELECT $1, $2 "
        "WHERE NOT EXISTS (SELECT 1 FROM lethe.erase_tasks WHERE job_id = $1) "
        "AND NOT EXISTS (SELECT 1 FROM lethe.retention_runs WHERE job_id = $1 "
        "                AND status <> 'running') "
        "ON CONFLICT (job_id) DO NOTHING",
        env.job_id,
        payload.reason,
    )


async def cancel_arrived(env: Envelope, deps: EraserDeps) -> bool:
    """The cancel, in its turn on the job topic (after the run): True when the job is a
    retention run. A run that ended before the cancel reached it is refused, with why."""
    status = await deps.lethe.fetchval(
        "SELECT status FROM lethe.retention_runs WHERE job_id = $1", env.job_id
    )
    if status is None:
        return False
    if status in ("completed", "failed"):
        reason = f"the retention run had {status} before the cancel reached it: nothing stopped"
        await deps.emit(
            PROGRESS, _event(env, CommandRefused(command="CancelErasure", reason=reason))
        )
    return True
