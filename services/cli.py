"""`lethe`: the operator's command line (migrations, topics, orgs and keys, audit)."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.auditor.verify import verify_chain
from services.intake import store as intake_store
from shared.db import create_pool, migrate
from shared.kafka import ensure_topics
from shared.settings import LetheSettings

app = typer.Typer(help="Lethe: data-subject requests carried out on Kafka, Postgres and S3.")
audit_app = typer.Typer(help="The tamper-evident audit trail.")
topics_app = typer.Typer(help="Kafka topics.")
orgs_app = typer.Typer(help="Organisations and API keys.")
db_app = typer.Typer(help="Lethe's database.")
app.add_typer(audit_app, name="audit")
app.add_typer(topics_app, name="topics")
app.add_typer(orgs_app, name="orgs")
app.add_typer(db_app, name="db")
console = Console()


def load_env_file(path: Path) -> None:
    """Take endpoints from `.local/env` (written by `make up`) unless already set."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        parts = shlex.split(line, comments=True)
        if parts and parts[0] == "export":
            parts = parts[1:]
        for part in parts:
            key, sep, value = part.partition("=")
            if sep and key not in os.environ:
                os.environ[key] = value


def settings() -> LetheSettings:
    load_env_file(Path(os.environ.get("LETHE_ENV_FILE", ".local/env")))
    return LetheSettings()


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply Lethe's numbered SQL migrations."""
    applied = asyncio.run(migrate(settings().database_url))
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


@topics_app.command("apply")
def topics_apply() -> None:
    """Create Lethe's topics where missing (idempotent)."""
    created = asyncio.run(ensure_topics(settings().kafka_bootstrap_servers))
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@orgs_app.command("create")
def orgs_create(
    org_id: Annotated[str, typer.Option("--id", help="Organisation id")],
    name: Annotated[str, typer.Option(help="Organisation name")],
    role: Annotated[str, typer.Option(help="Role of the first key")] = "owner",
    recovery_window_days: int = 7,
) -> None:
    """Create an organisation (if new) and an API key; the key is shown only now."""

    async def go() -> str:
        pool = await create_pool(settings().database_url)
        try:
            await intake_store.create_org(
                pool, org_id, name, recovery_window_days=recovery_window_days
            )
            return await intake_store.create_api_key(pool, org_id, role, f"{role} key")
        finally:
            await pool.close()

    key = asyncio.run(go())
    console.print(f"organisation {org_id}: {role} key (shown once):")
    print(key)


@audit_app.command("verify")
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


@app.command("config-table")
def config_table_cmd() -> None:
    """Print the configuration table the README embeds."""
    print(config_table())
