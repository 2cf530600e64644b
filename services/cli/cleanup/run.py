"""`lethe cleanup`'s run: plan the targets, clean each through the eraser's retention code
(`services/eraser/service/cleaning.py`) with a progress bar, and audit what was done."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli import store
from services.cli.cleanup.scope import ScopeRefused, Target, categories, check_scope, targets
from services.cli.cleanup.show import confirm
from services.cli.common import console
from services.eraser import bootstrap
from services.eraser.deps import EraserDeps
from services.eraser.service import retention
from services.eraser.settings import EraserSettings
from services.intake import retention as policies
from shared.datamap import DataMap
from shared.events import Actor, make_event
from shared.events.retention import RetentionCleanupRan
from shared.events.topics import AUDIT
from shared.kafka import create_broker, publish_event
from shared.resolver import Resolver

OPERATOR = Actor(kind="operator", id="cli")


async def _plan(
    lethe: asyncpg.Pool,
    dm: DataMap,
    s: EraserSettings,
    *,
    days: int | None,
    org: str | None,
    category: str | None,
) -> list[Target]:
    known = sorted({dm.tables[t].retention or "" for t in dm.retention_tables()})
    try:
        cats = categories(known, category, s.public_mode)
    except ScopeRefused as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    orgs = await store.org_ids(lethe, org)
    if org is not None and not orgs:
        console.print(f"[red]--org: no organisation {org!r} in Lethe[/]")
        raise typer.Exit(2)
    own: dict[str, dict[str, int]] = {}
    if days is None:
        for o in orgs:  # one query per organisation, not per row
            own[o] = await policies.get_policy(lethe, dm, o)
    return targets(
        orgs, cats, days=days, policy=lambda o: own[o], public_days=s.public_data_retention_days
    )


async def _counts(
    platform: asyncpg.Pool, resolver: Resolver, plan: list[Target], now: datetime
) -> dict[Target, int]:
    out: dict[Target, int] = {}
    async with platform.acquire() as conn:
        for t in plan:
            cutoff = now - timedelta(days=t.days)
            if not await resolver.check_retention_org(conn, t.org):
                out[t] = 0
                continue
            out[t] = sum(
                [
                    await retention.count_expired(conn, resolver, table, t.org, cutoff)
                    for table in resolver.dm.retention_tables(t.category)
                ]
            )
    return out


def _events(
    results: dict[Target, retention.Stats], now: datetime, dry_run: bool
) -> list[tuple[str, RetentionCleanupRan]]:
    """One RetentionCleanupRan per organisation and category."""
    return [
        (
            t.org,
            RetentionCleanupRan(
                category=t.category,
                days=t.days,
                cutoff=now - timedelta(days=t.days),
                dry_run=dry_run,
                rows=st.rows,
                objects_deleted=st.objects_deleted,
                errors=st.errors,
            ),
        )
        for t, st in results.items()
    ]


async def _audit(s: EraserSettings, events: list[tuple[str, RetentionCleanupRan]]) -> None:
    broker = create_broker(s.kafka_bootstrap_servers, service="cli")
    await broker.start()
    try:
        for org, payload in events:
            await publish_event(broker, AUDIT, make_event(payload, actor=OPERATOR, org_id=org))
    finally:
        await broker.stop()


async def _clean(
    deps: EraserDeps, s: EraserSettings, plan: list[Target], now: datetime, dry_run: bool
) -> dict[Target, retention.Stats]:
    """Each target in turn, with its own progress bar."""
    results: dict[Target, retention.Stats] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as bar:
        for t in plan:
            cutoff = now - timedelta(days=t.days)
            how = "policy" if t.by_policy else "--days"
            task = bar.add_task(f"{t.org} {t.category} ({how}: < {cutoff:%Y-%m-%d})", total=None)

            async def planned(per_table: dict[str, int], task: Any = task) -> None:
                bar.update(task, total=sum(per_table.values()))

            async def batch(
                _t: str, rows: int, _o: int, done: int, total: int, task: Any = task
            ) -> None:
                bar.update(task, completed=done, total=total)

            results[t] = await retention.clean(
                deps,
                category=t.category,
                cutoff=cutoff,
                org_id=t.org,
                public_mode=s.public_mode,
                dry_run=dry_run,
                on_plan=planned,
                on_batch=batch,
            )
            bar.update(task, completed=results[t].done or results[t].total_rows)
    return results


async def run(
    s: EraserSettings,
    *,
    days: int | None,
    org: str | None,
    category: str | None,
    dry_run: bool,
    now: datetime,
    all_orgs: bool = False,
    assume_yes: bool = False,
    audit: bool = True,
) -> dict[Target, retention.Stats] | None:
    """The stats per organisation and category; None when the confirmation was declined."""
    check_scope(days, org, category, all_orgs)

    async def nowhere(*_: Any) -> None:
        return None

    # The eraser's own wiring; no bucket to create, no restoration log to migrate here.
    async with bootstrap.open_deps(
        s, emit=nowhere, publish_chunk=nowhere, prepare_platform=False
    ) as deps:
        plan = await _plan(deps.lethe, deps.datamap, s, days=days, org=org, category=category)
        if days is not None and all_orgs and not dry_run:
            counts = await _counts(deps.platform, deps.resolver, plan, now)
            if not confirm(counts, assume_yes):
                return None
        results = await _clean(deps, s, plan, now, dry_run)
    if audit:
        await _audit(s, _events(results, now, dry_run))
    return results
