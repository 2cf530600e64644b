"""`lethe cleanup [--org ID] [--category C] [--days N | --all-orgs] [--yes] [--dry-run]`.

Retention by hand, through the same code as the nightly retention jobs
(`services/eraser/service/cleaning.py`), run in this process against the platform database and S3.

- **By default each organisation's own policy applies** (`GET /v1/orgs/{org}/retention`, or
  the data map's default), per category: of every organisation, or of `--org`, and of every
  category or `--category`. In public mode the `anonymous` category goes after
  `LETHE_PUBLIC_DATA_RETENTION_DAYS` (7 by default).
- **`--days N` overrides the policies**, so it needs a scope: `--org ID --category C` (one
  organisation, one category), or `--all-orgs`, which prints what would go per organisation
  and category and asks for confirmation (`--yes` answers it). `--days` alone is refused
  with what to add.

Shows a progress bar and ends with the stats (rows per table, objects deleted, errors); the
run is audited (one RetentionCleanupRan per organisation and category). `--dry-run` counts
what would go and changes nothing. Exit code: 0; 1 when the confirmation is declined; 2 for
a refused scope; 3 when something failed (listed in the stats).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.common import console, settings
from services.eraser import bootstrap
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


class ScopeRefused(ValueError):
    """A combination of options that would touch more than the operator named."""


def check_scope(days: int | None, org: str | None, category: str | None, all_orgs: bool) -> None:
    """Pure: refuse `--days` without a scope, saying what to add."""
    if all_orgs and org is not None:
        raise ScopeRefused("--all-orgs and --org exclude each other: give one of them")
    if days is None or all_orgs or (org is not None and category is not None):
        return
    missing = " and ".join(
        x for x, absent in (("--org ID", org is None), ("--category C", category is None)) if absent
    )
    raise ScopeRefused(
        f"--days {days} overrides the organisations' retention policies, so it needs a scope: "
        f"add {missing} (one organisation and one category), or --all-orgs (every "
        "organisation; shows the counts per organisation and category and asks first, "
        "--yes to answer). Without --days each organisation's own policy applies."
    )


@dataclass(frozen=True)
class Target:
    org: str
    category: str
    days: int
    by_policy: bool


def targets(
    orgs: list[str],
    cats: list[str],
    *,
    days: int | None,
    policy: Callable[[str], dict[str, int]],
    public_days: int,
) -> list[Target]:
    """Pure: what to clean, per organisation and category, and after how many days."""
    out = []
    for org in orgs:
        own = policy(org) if days is None else {}
        for cat in cats:
            if days is not None:
                out.append(Target(org, cat, days, by_policy=False))
            elif cat == retention.ANONYMOUS:
                out.append(Target(org, cat, public_days, by_policy=True))
            elif cat in own:
                out.append(Target(org, cat, own[cat], by_policy=True))
    return out


def _categories(dm: DataMap, category: str | None, public_mode: bool) -> list[str]:
    known = sorted({dm.tables[t].retention or "" for t in dm.retention_tables()})
    if category is not None:
        if category not in known:
            console.print(f"[red]--category: unknown {category!r} (one of {', '.join(known)})[/]")
            raise typer.Exit(2)
        if category == retention.ANONYMOUS and not public_mode:
            console.print("[red]public mode is off (LETHE_PUBLIC_MODE): anonymous data stays[/]")
            raise typer.Exit(2)
        return [category]
    return [c for c in known if c != retention.ANONYMOUS or public_mode]


async def _plan(
    lethe: asyncpg.Pool,
    dm: DataMap,
    s: EraserSettings,
    *,
    days: int | None,
    org: str | None,
    category: str | None,
) -> list[Target]:
    cats = _categories(dm, category, s.public_mode)
    orgs = [
        r[0]
        for r in await lethe.fetch(
            "SELECT id FROM lethe.organisations WHERE $1::text IS NULL OR id = $1 ORDER BY id",
            org,
        )
    ]
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


def _confirm(counts: dict[Target, int], assume_yes: bool) -> bool:
    table = Table(title="--all-orgs: rows older than --days, per organisation and category")
    for col in ("organisation", "category", "days", "rows"):
        table.add_column(col, justify="right" if col in ("days", "rows") else "left")
    for t, n in counts.items():
        table.add_row(t.org, t.category, str(t.days), str(n))
    console.print(table)
    total = sum(counts.values())
    orgs = len({t.org for t in counts})
    console.print(f"{total} rows in {orgs} organisations, their policies overridden")
    if assume_yes:
        return True
    return typer.confirm("Delete them?", default=False)


async def _audit(s: EraserSettings, events: list[tuple[str, RetentionCleanupRan]]) -> None:
    broker = create_broker(s.kafka_bootstrap_servers, service="cli")
    await broker.start()
    try:
        for org, payload in events:
            await publish_event(broker, AUDIT, make_event(payload, actor=OPERATOR, org_id=org))
    finally:
        await broker.stop()


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
    results: dict[Target, retention.Stats] = {}

    async def nowhere(*_: Any) -> None:
        return None

    # The eraser's own wiring; no bucket to create, no restoration log to migrate here.
    async with bootstrap.open_deps(
        s, emit=nowhere, publish_chunk=nowhere, prepare_platform=False
    ) as deps:
        plan = await _plan(deps.lethe, deps.datamap, s, days=days, org=org, category=category)
        if days is not None and all_orgs and not dry_run:
            counts = await _counts(deps.platform, deps.resolver, plan, now)
            if not _confirm(counts, assume_yes):
                return None
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            for t in plan:
                cutoff = now - timedelta(days=t.days)
                how = "policy" if t.by_policy else "--days"
                task = bar.add_task(
                    f"{t.org} {t.category} ({how}: < {cutoff:%Y-%m-%d})", total=None
                )

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
    if audit:
        await _audit(
            s,
            [
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
            ],
        )
    return results


def report(results: dict[Target, retention.Stats], dry_run: bool) -> int:
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    for col in ("organisation", "category", "days", "table"):
        table.add_column(col)
    table.add_column("rows", justify="right")
    errors: list[dict[str, Any]] = []
    for t, st in results.items():
        days = f"{t.days} ({'policy' if t.by_policy else '--days'})"
        for name, n in sorted(st.rows.items()):
            table.add_row(t.org, t.category, days, name, str(n))
        errors.extend(st.errors)
    console.print(table)
    rows = sum(st.total_rows for st in results.values())
    objects = sum(st.objects_deleted for st in results.values())
    console.print(f"rows that would be deleted: {rows}" if dry_run else f"rows deleted: {rows}")
    console.print(f"objects deleted: {objects}")
    console.print(f"errors: {len(errors)}")
    for e in errors:
        console.print(f"  [red]{e.get('table')}[/]: {e.get('error')}")
    return 3 if errors else 0


def cleanup(
    days: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=3650,
            help="Override the policies: delete rows older than this (needs --org and "
            "--category, or --all-orgs)",
        ),
    ] = None,
    org: Annotated[str | None, typer.Option(help="Only this organisation")] = None,
    category: Annotated[str | None, typer.Option(help="Only this retention category")] = None,
    all_orgs: Annotated[
        bool, typer.Option("--all-orgs", help="With --days: every organisation (asks first)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Answer the --all-orgs question")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; change nothing")] = False,
) -> None:
    """Delete data past each organisation's retention policy (or --days, with a scope)."""
    try:
        check_scope(days, org, category, all_orgs)
    except ScopeRefused as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    settings()  # loads .local/env
    s = EraserSettings()
    results = asyncio.run(
        run(
            s,
            days=days,
            org=org,
            category=category,
            dry_run=dry_run,
            now=datetime.now(UTC),
            all_orgs=all_orgs,
            assume_yes=yes,
        )
    )
    if results is None:
        console.print("nothing deleted: not confirmed")
        raise typer.Exit(1)
    code = report(results, dry_run)
    if code:
        raise typer.Exit(code)
