"""`lethe cleanup --days N [--org ID] [--category C] [--dry-run]`: retention by hand.

The same code as the nightly retention jobs (`services/eraser/retention.py`), run in this
process against the platform database and S3: objects first, then rows, in batches, with
the eraser's rate limit. Shows a progress bar and ends with the stats (rows per table,
objects deleted, errors); the run is audited. `--dry-run` counts what would go and
changes nothing. Exit code: 0, or 3 when something failed (listed in the stats).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.common import console, settings
from services.eraser import retention
from services.eraser.domain import EraserDeps
from services.eraser.settings import EraserSettings
from shared.crypto import parse_master_key
from shared.datamap import DataMap, check_against_database, load_datamap
from shared.db import create_pool
from shared.events import Actor, make_event
from shared.events.retention import RetentionCleanupRan
from shared.events.topics import AUDIT
from shared.kafka import create_broker, publish_event
from shared.storage import s3_client

OPERATOR = Actor(kind="operator", id="cli")


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


async def _audit(s: EraserSettings, org: str | None, events: list[RetentionCleanupRan]) -> None:
    broker = create_broker(s.kafka_bootstrap_servers, service="cli")
    await broker.start()
    try:
        for payload in events:
            await publish_event(broker, AUDIT, make_event(payload, actor=OPERATOR, org_id=org))
    finally:
        await broker.stop()


async def run(
    s: EraserSettings,
    *,
    days: int,
    org: str | None,
    category: str | None,
    dry_run: bool,
    now: datetime,
    audit: bool = True,
) -> dict[str, retention.Stats]:
    dm = load_datamap(s.datamap_path)
    cats = _categories(dm, category, s.public_mode)
    cutoff = now - timedelta(days=days)
    lethe = await create_pool(s.database_url)
    platform = await create_pool(s.platform_database_url)
    results: dict[str, retention.Stats] = {}
    try:
        async with platform.acquire() as conn:
            live = await check_against_database(dm, conn)

        async def nowhere(*_: Any) -> None:
            return None

        async with s3_client(s) as s3:
            deps = EraserDeps(
                lethe=lethe,
                platform=platform,
                s3=s3,
                bucket=s.platform_bucket,
                datamap=dm,
                live=live,
                emit=nowhere,
                publish_chunk=nowhere,
                master_key=parse_master_key(s.master_key.get_secret_value()),
                hmac_key=s.mask_hmac_key.get_secret_value().encode(),
                batch_size=s.erase_batch_size,
                rate_limit_rows=s.erase_rate_limit_rows,
            )
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=False) as bar:
                for cat in cats:
                    task = bar.add_task(f"{cat} (< {cutoff:%Y-%m-%d})", total=None)

                    async def planned(per_table: dict[str, int], task: Any = task) -> None:
                        bar.update(task, total=sum(per_table.values()))

                    async def batch(
                        _t: str, rows: int, _o: int, done: int, total: int, task: Any = task
                    ) -> None:
                        bar.update(task, completed=done, total=total)

                    results[cat] = await retention.clean(
                        deps,
                        category=cat,
                        cutoff=cutoff,
                        org_id=org,
                        public_mode=s.public_mode,
                        dry_run=dry_run,
                        on_plan=planned,
                        on_batch=batch,
                    )
                    bar.update(task, completed=results[cat].done or results[cat].total_rows)
    finally:
        await platform.close()
        await lethe.close()
    if audit:
        await _audit(
            s,
            org,
            [
                RetentionCleanupRan(
                    category=cat,
                    days=days,
                    cutoff=cutoff,
                    dry_run=dry_run,
                    rows=st.rows,
                    objects_deleted=st.objects_deleted,
                    errors=st.errors,
                )
                for cat, st in results.items()
            ],
        )
    return results


def report(results: dict[str, retention.Stats], dry_run: bool) -> int:
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    table.add_column("category")
    table.add_column("table")
    table.add_column("rows", justify="right")
    errors: list[dict[str, Any]] = []
    for cat, st in results.items():
        for name, n in sorted(st.rows.items()):
            table.add_row(cat, name, str(n))
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
    days: Annotated[int, typer.Option(min=1, max=3650, help="Delete rows older than this")],
    org: Annotated[str | None, typer.Option(help="Only this organisation")] = None,
    category: Annotated[str | None, typer.Option(help="Only this retention category")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; change nothing")] = False,
) -> None:
    """Delete data older than --days through the retention code path; prints stats."""
    settings()  # loads .local/env
    s = EraserSettings()
    results = asyncio.run(
        run(s, days=days, org=org, category=category, dry_run=dry_run, now=datetime.now(UTC))
    )
    code = report(results, dry_run)
    if code:
        raise typer.Exit(code)
