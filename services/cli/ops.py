"""`lethe db|topics|orgs|config-table`: operating Lethe itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from services.cli.common import console, settings
from services.cli.keys import OPERATOR
from services.intake import store as intake_store
from services.intake.service import keys
from services.intake.service.uow import UnitOfWork
from shared.db import create_pool, migrate
from shared.events.topics import TOPICS
from shared.kafka import desired_config, ensure_topics
from shared.settings import LetheSettings

topics_app = typer.Typer(help="Kafka topics.")
orgs_app = typer.Typer(help="Organisations and API keys.")
db_app = typer.Typer(help="Lethe's database.")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply Lethe's numbered SQL migrations."""
    applied = asyncio.run(migrate(settings().database_url))
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


@topics_app.command("apply")
def topics_apply(
    replication_factor: Annotated[
        int | None,
        typer.Option(
            help="Replication factor of new topics (default LETHE_TOPIC_REPLICATION_FACTOR)"
        ),
    ] = None,
) -> None:
    """Make Lethe's topics match their definitions: create, add partitions, put settings back.

    Idempotent: a second run changes nothing."""
    s = settings()
    rf = replication_factor or s.topic_replication_factor
    changes = asyncio.run(ensure_topics(s.kafka_bootstrap_servers, replication_factor=rf))
    for line in changes:
        console.print(line)
    console.print(f"{len(changes)} change(s)" if changes else "nothing to change")


@topics_app.command("list")
def topics_list() -> None:
    """Print the topic definitions (partitions and managed settings)."""
    rf = settings().topic_replication_factor
    for spec in TOPICS:
        config = ", ".join(f"{k}={v}" for k, v in sorted(desired_config(spec, rf).items()))
        print(f"{spec.name}\t{spec.partitions}\t{config}")


@orgs_app.command("create")
def orgs_create(
    org_id: Annotated[str, typer.Option("--id", help="Organisation id")],
    name: Annotated[str, typer.Option(help="Organisation name")],
    role: Annotated[str, typer.Option(help="Role of the first key")] = "owner",
    recovery_window_days: int = 7,
) -> None:
    """Create an organisation (if new) and an API key; the key is shown only now."""
    if role not in keys.ROLES:
        console.print(f"[red]--role: one of {', '.join(keys.ROLES)}[/]")
        raise typer.Exit(2)

    async def go() -> str:
        pool = await create_pool(settings().database_url)
        try:
            await intake_store.create_org(
                pool, org_id, name, recovery_window_days=recovery_window_days
            )
            uow = UnitOfWork(pool)
            _, key = await keys.create_key(uow, OPERATOR, org_id, role, f"{role} key")
            return key
        finally:
            await pool.close()

    key = asyncio.run(go())
    console.print(f"organisation {org_id}: {role} key (shown once):")
    print(key)


def config_table() -> str:
    """Markdown table of every LETHE_* variable, from the settings classes themselves."""
    from services.auditor.settings import AuditorSettings
    from services.eraser.settings import EraserSettings
    from services.exporter.settings import ExporterSettings
    from services.intake.settings import IntakeSettings
    from services.notifier.settings import NotifierSettings

    rows: dict[str, tuple[str, str, set[str]]] = {}
    classes: dict[str, type[LetheSettings]] = {
        "intake": IntakeSettings,
        "eraser": EraserSettings,
        "exporter": ExporterSettings,
        "notifier": NotifierSettings,
        "auditor": AuditorSettings,
    }
    for service, cls in classes.items():
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names = [f"LETHE_{name.upper()}"]
            if alias is not None and hasattr(alias, "choices"):
                names = [str(c) for c in alias.choices]
            default = field.default
            shown = "(secret)" if "SecretStr" in repr(field.annotation) else default
            key = " / ".join(f"`{n}`" for n in names)
            entry = rows.setdefault(key, (f"`{shown}`", field.description or "", set()))
            entry[2].add(service)
    lines = ["| variable | default | services | meaning |", "|---|---|---|---|"]
    for key, (default, desc, services) in sorted(rows.items()):
        used = "all" if len(services) == len(classes) else ", ".join(sorted(services))
        lines.append(f"| {key} | {default} | {used} | {desc} |")
    return "\n".join(lines)


START, END = "<!-- config-table:start -->\n", "<!-- config-table:end -->"


def config_table_cmd(
    write: Annotated[
        Path | None, typer.Option(help="Replace the table between the markers in this file")
    ] = None,
) -> None:
    """Print the configuration table the README embeds (or write it in place)."""
    table = config_table()
    if write is None:
        print(table)
        return
    text = write.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write.write_text(f"{head}{START}{table}\n{END}{tail}")
