"""`lethe`: the operator's command line. One module per area; this file only assembles them."""

from __future__ import annotations

import typer

from services.cli import (
    audit,
    cleanup,
    datamap,
    dlq,
    jobs,
    keys,
    ops,
    rebuild,
    webhooks,
)

app = typer.Typer(
    help="Lethe: data-subject requests carried out on Kafka, Postgres and S3.",
    no_args_is_help=True,
)
app.add_typer(jobs.app, name="jobs")
jobs.app.command("rebuild")(rebuild.rebuild_cmd)
app.add_typer(keys.app, name="keys")
app.command("submit")(jobs.submit)
app.add_typer(audit.app, name="audit")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(webhooks.contacts_app, name="contacts")
app.add_typer(ops.db_app, name="db")
app.add_typer(ops.topics_app, name="topics")
app.add_typer(ops.orgs_app, name="orgs")
app.add_typer(datamap.app, name="datamap")
app.add_typer(dlq.app, name="dlq")
app.command("cleanup")(cleanup.cleanup)


@app.command("asyncapi")
def asyncapi_cmd() -> None:
    """Print the AsyncAPI document (what docs/asyncapi.json holds)."""
    # Imported here: it loads every service's routers, most of the CLI's start-up otherwise.
    from services.cli import asyncapi

    asyncapi.print_document()


app.command("config-table", help="Print the configuration table the README embeds.")(
    ops.config_table_cmd
)
