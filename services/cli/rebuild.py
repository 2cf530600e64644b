"""`lethe jobs rebuild JOB_ID [--apply]`: a job's state recomputed from its events (the audit
trail and its timeline), compared with the jobs table, and written with `--apply`. For a job
whose progress events were lost during an outage (left `running` in phase `erasing`, say)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli.common import console, settings
from services.intake.service.rebuild import NoSuchJob, Rebuilt, rebuild
from shared.db import create_pool


def _show(value: Any) -> str:
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)[:200]
    return "" if value is None else str(value)


def rebuild_cmd(
    job_id: Annotated[uuid.UUID, typer.Argument(help="The job to rebuild")],
    apply: Annotated[bool, typer.Option("--apply", help="Write the rebuilt state")] = False,
) -> None:
    """Recompute a job's state, counts and review items from its events; show what differs
    from the jobs table; with --apply, write it (exit 0). Without --apply, exit 2 when the
    table differs from the events."""

    async def go() -> Rebuilt:
        pool = await create_pool(settings().database_url, max_size=2)
        try:
            return await rebuild(pool, job_id, apply=apply)
        finally:
            await pool.close()

    try:
        result = asyncio.run(go())
    except NoSuchJob as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"job {job_id}: {result.events} events ({result.from_audit_only} only in the audit trail)"
    )
    if result.consistent:
        console.print("the jobs table agrees with the events: nothing to do")
        return
    table = Table("column", "jobs table", "from the events")
    for name, (before, after) in result.changes.items():
        table.add_row(name, _show(before), _show(after))
    console.print(table)
    if result.missing_timeline:
        names = ", ".join(e.type for e in result.missing_timeline)
        console.print(f"missing from the timeline: {names}")
    if result.applied:
        console.print("written: the job now shows the state its events say")
    else:
        console.print("run again with --apply to write it")
        raise typer.Exit(2)
