"""`lethe keys create|list|revoke`: API keys, straight in Lethe's database (bootstrap)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from rich.table import Table

from services.cli.common import console, settings
from services.intake import store
from services.intake.service import keys
from services.intake.service.errors import NotFound
from services.intake.service.uow import UnitOfWork
from shared.db import create_pool
from shared.events import Actor

app = typer.Typer(help="API keys (stored hashed; a new key is shown once; audited).")
OPERATOR = Actor(kind="operator", id="cli")


@app.command("create")
def create(
    org: Annotated[str, typer.Option(help="Organisation id")],
    role: Annotated[str, typer.Option(help="owner, admin or viewer")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "cli",
) -> None:
    if role not in keys.ROLES:
        console.print(f"[red]--role: one of {', '.join(keys.ROLES)}[/]")
        raise typer.Exit(2)

    async def go() -> str | None:
        pool = await create_pool(settings().database_url)
        try:
            if await store.get_org(pool, org) is None:
                return None
            # The running intake's relay publishes the audit event from the outbox.
            _, key = await keys.create_key(UnitOfWork(pool), OPERATOR, org, role, name)
            return key
        finally:
            await pool.close()

    key = asyncio.run(go())
    if key is None:
        console.print(f"[red]--org: no organisation {org} (create it with `lethe orgs create`)[/]")
        raise typer.Exit(1)
    console.print(f"{role} key for {org} (shown once; store it now):")
    print(key)


@app.command("list")
def list_keys(org: Annotated[str, typer.Option()]) -> None:
    async def go() -> list[dict[str, object]]:
        pool = await create_pool(settings().database_url)
        try:
            return await store.list_api_keys(pool, org)
        finally:
            await pool.close()

    table = Table("id", "role", "name", "created", "revoked")
    for k in asyncio.run(go()):
        table.add_row(
            str(k["id"]),
            str(k["role"]),
            str(k["name"]),
            str(k["created_at"]),
            str(k["revoked_at"] or ""),
        )
    console.print(table)


@app.command("revoke")
def revoke(org: Annotated[str, typer.Option()], key_id: uuid.UUID) -> None:
    async def go() -> bool:
        pool = await create_pool(settings().database_url)
        try:
            await keys.revoke_key(UnitOfWork(pool), OPERATOR, org, key_id)
            return True
        except NotFound:
            return False
        finally:
            await pool.close()

    if not asyncio.run(go()):
        console.print(f"[red]no active key {key_id} in {org}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
