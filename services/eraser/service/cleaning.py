"""Retention's run: rows of a category older than a cutoff leave the platform.

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
  a callback after every batch, and a final count of what is still older than the cutoff.
- A failing table is reported (stats, review item) and the run goes on.

Retention purges directly: the rows are past their policy, so there is no recovery window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from services.eraser import domain, store
from services.eraser import objects as s3objects
from services.eraser.deps import EraserDeps
from services.eraser.retention_rules import (
    ANONYMOUS,
    PublicModeOff,
    Stats,
    add_counts,
    objects_error,
)
from services.eraser.store import retention as runs
from shared.errors import reference
from shared.platform import chunk_object_keys, detach_mask, mask_returning
from shared.resolver import Resolver, Subject

log = logging.getLogger(__name__)
OnBatch = Callable[[str, int, int, int, int], Awaitable[None]]  # table, rows, objs, done, total
OnPlan = Callable[[dict[str, int]], Awaitable[None]]
Stop = Callable[[], Awaitable[bool]]


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
    return await store.count(conn, sql, args)


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
    on_plan: OnPlan | None = None,
    stop: Stop | None = None,
) -> Stats:
    """Delete the category's rows older than `cutoff` (of one org, or of all with None).

    `stop` is asked between batches (a cancelled job): True ends the run there.
    """
    if category == ANONYMOUS and not public_mode:
        raise PublicModeOff("public mode is off: anonymous data is never deleted")
    tables = deps.datamap.retention_tables(category)
    if not tables:
        raise ValueError(f"category {category!r}: no table of the data map ages by it")
    stats = Stats(dry_run=dry_run)
    async with deps.platform.acquire() as conn:
        if not await deps.resolver.check_retention_org(conn, org_id):
            tables = []  # a single-tenant platform holds no rows of another organisation
        for table in tables:
            stats.planned[table] = await count_expired(conn, deps.resolver, table, org_id, cutoff)
    if on_plan is not None:
        await on_plan(stats.planned)
    run = _Run(deps, stats, org_id, cutoff, job_id, on_batch, stop)
    for table in tables:
        await run.table(table)
        if stats.cancelled:
            break
    stats.done = run.done
    if not dry_run and not stats.cancelled:
        await _left(deps, stats, tables, org_id, cutoff)
    return stats


async def _left(
    deps: EraserDeps, stats: Stats, tables: list[str], org_id: str | None, cutoff: datetime
) -> None:
    """What is still older than the cutoff: left behind, or kept (still referenced)."""
    async with deps.platform.acquire() as conn:
        for table in tables:
            left = await count_expired(conn, deps.resolver, table, org_id, cutoff)
            if left:
                stats.remaining[table] = left
            kept = await count_expired(conn, deps.resolver, table, org_id, cutoff, held=True)
            if kept:
                stats.kept[table] = kept


class _Run:
    """One run over the category's tables, batch by batch, with its counters."""

    def __init__(
        self,
        deps: EraserDeps,
        stats: Stats,
        org_id: str | None,
        cutoff: datetime,
        job_id: Any,
        on_batch: OnBatch | None,
        stop: Stop | None,
    ) -> None:
        self.deps, self.stats, self.org_id, self.cutoff = deps, stats, org_id, cutoff
        self.job_id, self.on_batch, self.stop = job_id, on_batch, stop
        self.total, self.done = sum(stats.planned.values()), 0
        self.started = time.monotonic()

    async def table(self, table: str) -> None:
        after: str | None = None
        while True:
            if self.stop is not None and await self.stop():
                self.stats.cancelled = True
                return
            try:
                after = await self.batch(table, after)
            except Exception as exc:  # reported, and the next table goes on
                error = reference(exc, f"retention of table {table}")
                self.stats.errors.append({"kind": "table", "table": table, "error": error})
                return
            if after is None:
                return

    async def batch(self, table: str, after: str | None) -> str | None:
        """One batch after key `after`; returns its last key (None: the table is done)."""
        deps, resolver, stats = self.deps, self.deps.resolver, self.stats
        async with deps.platform.acquire() as conn:
            sql, args = resolver.aged_keys_sql(
                table, self.org_id, self.cutoff, after=after, limit=deps.batch_size
            )
            keys = await store.key_texts(conn, sql, args)
            if not keys:
                return None
            batch = resolver.batch(self.org_id, table, keys)
            family = await _family(conn, resolver, batch)
        if stats.dry_run:
            keep = {n for n, t in deps.datamap.tables.items() if t.action == "keep"}
            add_counts(stats.rows, {n: len(ks) for n, ks in family.items() if ks and n not in keep})
            objs = 0
        else:
            objs, failed = await _delete_objects(deps, self.job_id, family)
            stats.objects_deleted += objs
            if failed:
                stats.errors.append(objects_error(table, len(keys), len(failed)))
                return keys[-1]
            counts, detached = await _delete_rows(deps, batch, family)
            add_counts(stats.rows, counts)
            add_counts(stats.detached, detached)
        self.done += len(keys)
        if self.on_batch is not None:
            await self.on_batch(table, len(keys), objs, self.done, self.total)
        await self.throttle()
        return keys[-1]

    async def throttle(self) -> None:
        wait = domain.throttle_wait(
            self.done, self.deps.rate_limit_rows, time.monotonic() - self.started
        )
        if wait > 0:
            await asyncio.sleep(wait)


async def _family(
    conn: asyncpg.Connection, resolver: Resolver, batch: Subject
) -> dict[str, list[str]]:
    """Text keys of the batch and of every row that goes with it (the resolver's rules)."""
    found: dict[str, list[str]] = {}
    for table in resolver.tables(batch.scope):
        sql, args = resolver.key_text_sql(table, batch)
        found[table] = await store.key_texts(conn, sql, args)
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
        await runs.objects_pending(deps.lethe, keys, job_id, table)
        try:
            bad = await s3objects.purge(deps.s3, deps.bucket, keys)
        except Exception as exc:  # S3 down: the whole lot stays pending
            bad = list(keys)
            log.warning("retention: deleting %d objects failed: %r", len(keys), exc)
        ok = [k for k in keys if k not in set(bad)]
        await runs.objects_deleted(deps.lethe, ok)
        if bad:
            await runs.objects_failed(deps.lethe, bad)
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
            keys = await store.key_texts(conn, sql, args)
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
                if t.action == "keep":
                    continue
                pk_type, keys = deps.pk_types[table], family[table]
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
                    done[table] = await store.delete_keys(conn, table, t, pk_type, keys)
    return done, detached
