"""Retention: rows of a category older than a cutoff leave the platform, through the eraser.

One code path for the nightly jobs (`RetentionRequested` on the erase topic, planned by the
intake scheduler) and for `lethe cleanup` (run in-process by the CLI):

- **Select** the category's tables (data map: `retention` + `retention_column`), per table
  by keyset pagination on the primary key (never a whole result set), per organisation
  (the table's `org_column`, or its parent's), `batch_size` keys at a time.
- **Children** of a selected row (relations in the data map, e.g. a message's media) go
  with it, children first, so no foreign key is left dangling.
- **Objects before rows, durably**: the objects' keys are recorded (`retention_objects`,
  state pending), deleted from S3, marked deleted; only then the rows go, in one platform
  transaction per batch, deleted or masked per the data map's action. A failed object
  delete keeps its batch's rows (retried next run) and is reported for review.
- **Rate limit, progress, verification** as in an erasure: rows per second over the run,
  a callback after every batch (BatchErased for jobs, the CLI's progress bar), and a final
  count of what is still older than the cutoff.
- A failing table is reported (stats, audit, review item) and the run goes on.
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
from shared.datamap import DataMap
from shared.events import Envelope, make_event
from shared.events.progress import (
    BatchErased,
    DuplicateIgnored,
    ErasurePlanned,
    JobCompleted,
    JobFailed,
)
from shared.events.retention import RetentionRequested
from shared.events.topics import AUDIT, NOTIFICATIONS, PROGRESS
from shared.notices import job_notice
from shared.platform import chunk_object_keys, mask_returning, q

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
        }


def _scope(dm: DataMap, table: str) -> tuple[str, str]:
    """(FROM clause with alias x, org condition on $1) of a retention table."""
    t = dm.tables[table]
    if t.org_column is not None:
        return f"{q(table)} x", f"($1::text IS NULL OR x.{q(t.org_column)}::text = $1)"
    via = dm.retention_org(table)
    assert via is not None  # the data map refuses a retention table without an org path
    parent, column, org_col = via
    ppk = q(dm.tables[parent].pk_columns[0])
    return (
        f"{q(table)} x LEFT JOIN {q(parent)} o ON o.{ppk} = x.{q(column)}",
        f"($1::text IS NULL OR o.{q(org_col)}::text = $1)",
    )


async def count_expired(
    conn: asyncpg.Connection, dm: DataMap, table: str, org_id: str | None, cutoff: datetime
) -> int:
    src, org = _scope(dm, table)
    col = q(dm.tables[table].retention_column or "")
    n: int = await conn.fetchval(
        f"SELECT count(*) FROM {src} WHERE {org} AND x.{col} < $2", org_id, cutoff
    )
    return n


async def _family(
    conn: asyncpg.Connection, dm: DataMap, table: str, keys: list[Any]
) -> dict[str, list[Any]]:
    """Keys of the batch and of every row hanging off it (parents first)."""
    found: dict[str, list[Any]] = {table: keys}
    for child in reversed(dm.descendants(table)):  # parents before children
        t = dm.tables[child]
        ks: set[Any] = set()
        for p in t.parents:
            if found.get(p.table):
                rows = await conn.fetch(
                    f"SELECT {q(t.pk_columns[0])} FROM {q(child)} "
                    f"WHERE {q(p.columns[0])} = ANY($1)",
                    found[p.table],
                )
                ks.update(r[0] for r in rows)
        found[child] = sorted(ks)
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


async def _delete_rows(deps: EraserDeps, family: dict[str, list[Any]]) -> dict[str, int]:
    """One transaction, children first: delete or mask per the data map's action."""
    done: dict[str, int] = {}
    order = [t for t in reversed(deps.datamap.order()) if t in family]
    async with deps.platform.acquire() as conn, conn.transaction():
        for table in order:
            t = deps.datamap.tables[table]
            keys = [str(k) for k in family[table]]
            if not keys or t.action == "keep":
                continue
            pk_type = deps.pk_types[table]
            if t.action == "mask":
                removed = await mask_returning(conn, table, t, pk_type, keys, deps.hmac_key)
                done[table] = len(removed.keys)
            else:
                status = await conn.execute(
                    f"DELETE FROM {q(table)} WHERE {q(t.pk_columns[0])} = "
                    f"ANY($1::text[]::{pk_type}[])",
                    keys,
                )
                done[table] = int(status.split()[-1])
    return done


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
) -> Stats:
    """Delete the category's rows older than `cutoff` (of one org, or of all with None)."""
    dm = deps.datamap
    if category == ANONYMOUS and not public_mode:
        raise PublicModeOff("public mode is off: anonymous data is never deleted")
    tables = dm.retention_tables(category)
    if not tables:
        raise ValueError(f"category {category!r}: no table of the data map ages by it")
    stats = Stats(dry_run=dry_run)
    async with deps.platform.acquire() as conn:
        for table in tables:
            stats.planned[table] = await count_expired(conn, dm, table, org_id, cutoff)
    if on_plan is not None:
        await on_plan(stats.planned)
    total, done = sum(stats.planned.values()), 0
    started = time.monotonic()
    for table in tables:
        after: Any = None
        while True:
            try:
                async with deps.platform.acquire() as conn:
                    keys = await _next_keys(
                        conn,
                        dm,
                        table,
                        org_id,
                        cutoff,
                        after,
                        deps.pk_types[table],
                        deps.batch_size,
                    )
                    if not keys:
                        break
                    after = keys[-1]
                    family = await _family(conn, dm, table, keys)
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
                    counts = await _delete_rows(deps, family)
                    for name, n in counts.items():
                        stats.rows[name] = stats.rows.get(name, 0) + n
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
    stats.done = done
    if not dry_run:
        async with deps.platform.acquire() as conn:
            for table in tables:
                left = await count_expired(conn, dm, table, org_id, cutoff)
                if left:
                    stats.remaining[table] = left
    return stats


async def _next_keys(
    conn: asyncpg.Connection,
    dm: DataMap,
    table: str,
    org_id: str | None,
    cutoff: datetime,
    after: Any,
    pk_type: str,
    limit: int,
) -> list[Any]:
    src, org = _scope(dm, table)
    t = dm.tables[table]
    pk, col = q(t.pk_columns[0]), q(t.retention_column or "")
    rows = await conn.fetch(
        f"SELECT x.{pk} FROM {src} WHERE {org} AND x.{col} < $2 "
        f"AND ($3::text IS NULL OR x.{pk} > $3::text::{pk_type}) "
        f"ORDER BY x.{pk} LIMIT $4",
        org_id,
        cutoff,
        None if after is None else str(after),
        limit,
    )
    return [r[0] for r in rows]


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
    review = list(stats.errors)
    if stats.remaining and not review:
        review.append({"kind": "rows_remaining", "tables": stats.remaining})
    verification = {
        "phase": "retention",
        "category": req.category,
        "cutoff": req.cutoff.isoformat(),
        "rows_remaining": stats.remaining,
        "rows": stats.rows,
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
