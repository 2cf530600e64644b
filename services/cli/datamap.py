"""`lethe datamap check [--scan]|draft`: the data map against the live platform database.

`check` loads the map (LETHE_DATAMAP_PATH, or `--map`) and checks it against the platform
database (LETHE_PLATFORM_DATABASE_URL) as the services do at start: exit 0 and `ok`, or exit
1 and the error naming file, table and field. `--scan` also lists the tables the map does
not name that look personal: by column name (email, phone, name, address, ip, user or
customer id...) and by a sample of their content (values that look like emails or phone
numbers; only counts leave the database, nothing is printed but column names).

`draft` reads the live catalog (primary and foreign keys, columns) and writes a draft map
in the version 2 format (docs/datamap.md) with every table marked `# review:`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.table import Table

from services.cli.common import console, settings
from shared.catalog import read_catalog, sample_looks
from shared.datamap import DataMapError, check_against_database, load_datamap
from shared.datamap_draft import DraftError, draft_datamap, personal_columns
from shared.scan import scannable

app = typer.Typer(help="The data map: check it against the platform database, or draft one.")

MapOption = Annotated[
    Path | None, typer.Option("--map", help="Data map file (default LETHE_DATAMAP_PATH)")
]
SchemaOption = Annotated[
    list[str] | None,
    typer.Option("--schema", help="Schema of the platform database to read (repeatable)"),
]


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[red]cannot connect to the platform database: {exc}[/]")
        raise typer.Exit(1) from exc


async def unmapped_personal(
    conn: asyncpg.Connection, mapped: set[str], schemas: list[str]
) -> list[tuple[str, str, str, str]]:
    """(table, column, by name, by content) for each unmapped table's personal-looking column."""
    found: list[tuple[str, str, str, str]] = []
    for table in await read_catalog(conn, schemas):
        if table.name in mapped:
            continue
        by_name = dict(personal_columns(table))
        try:
            looks = await sample_looks(conn, table, [c for c in table.columns if scannable(c)])
        except asyncpg.PostgresError as exc:  # e.g. no privilege: say so, keep going
            looks = {}
            by_name.setdefault("*", f"content not sampled ({type(exc).__name__})")
        for col in [c.name for c in table.columns if c.name in by_name or c.name in looks] + (
            ["*"] if "*" in by_name else []
        ):
            found.append(
                (table.label, col, by_name.get(col, ""), ", ".join(sorted(looks.get(col, ()))))
            )
    return found


@app.command("check")
def check(
    scan: Annotated[
        bool, typer.Option("--scan", help="Also list unmapped tables that look personal")
    ] = False,
    map_path: MapOption = None,
    schema: SchemaOption = None,
) -> None:
    """Check the data map against the live platform database (exit 1 with the error)."""
    s = settings()
    path = map_path or s.datamap_path
    schemas = schema or ["public"]

    async def go() -> int:
        conn = await _connect(s.platform_database_url)
        try:
            code, mapped = 0, set()
            try:
                dm = load_datamap(path)
                mapped = set(dm.tables)
                await check_against_database(dm, conn)
                console.print(f"[green]ok[/]: {path} matches the platform database", soft_wrap=True)
            except DataMapError as exc:
                console.print(f"[red]{exc}[/]", soft_wrap=True)
                code = 1
            if scan:
                _print_unmapped(await unmapped_personal(conn, mapped, schemas))
            return code
        finally:
            await conn.close()

    raise typer.Exit(asyncio.run(go()))


def _print_unmapped(rows: list[tuple[str, str, str, str]]) -> None:
    if not rows:
        console.print("no unmapped table with identity-looking columns")
        return
    table = Table(title="Unmapped tables with identity-looking columns")
    for heading in ("table", "column", "by name", "by content"):
        table.add_column(heading)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command("draft")
def draft(
    subject: Annotated[
        str | None,
        typer.Option(
            help="The subject table (default: a table with an email column that "
            "other tables reference most)"
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    platform_org: Annotated[
        str | None,
        typer.Option(
            help="The platform is single-tenant: its Lethe organisation (no column is "
            "taken for an org column, whatever its name)"
        ),
    ] = None,
    schema: SchemaOption = None,
) -> None:
    """Draft a data map (version 2) from the live database's keys and columns."""
    s = settings()
    schemas = schema or ["public"]

    async def go() -> str:
        conn = await _connect(s.platform_database_url)
        try:
            facts = await read_catalog(conn, schemas)
        finally:
            await conn.close()
        source = f"schema{'s' if len(schemas) > 1 else ''} {', '.join(schemas)}"
        return draft_datamap(facts, subject=subject, platform_org=platform_org, source=source)

    try:
        text = asyncio.run(go())
    except DraftError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"draft written to {out}: review every `# review:` line")
