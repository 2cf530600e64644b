"""`lethe audit ...`: the tamper-evident audit trail."""

from __future__ import annotations

import asyncio

import typer

from services.auditor.verify import verify_chain
from services.cli.common import console, settings
from shared.db import create_pool

app = typer.Typer(help="The tamper-evident audit trail.")


@app.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; exit 0 when every row matches, 1 naming the first that does not."""

    async def go() -> tuple[bool, str]:
        pool = await create_pool(settings().database_url)
        try:
            v = await verify_chain(pool)
        finally:
            await pool.close()
        if v.ok:
            return True, f"OK: {v.rows} rows, chain intact"
        return (
            False,
            f"BROKEN at row {v.first_bad_seq}: {v.reason} ({v.rows} rows verified before it)",
        )

    ok, text = asyncio.run(go())
    console.print(text, style="green" if ok else "bold red")
    raise typer.Exit(0 if ok else 1)
