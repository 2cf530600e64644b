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

The scope and targets are decided in `scope.py` (pure), the run is `run.py`, what is
printed `show.py`; the command is here.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from services.cli.cleanup.scope import ScopeRefused, Target, check_scope, targets
from services.cli.common import console, settings
from services.eraser.settings import EraserSettings

__all__ = ["ScopeRefused", "Target", "check_scope", "cleanup", "targets"]


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
    # Imported here: the run loads the eraser's code, S3 and Kafka clients, half the
    # start-up of every other `lethe` command otherwise.
    from services.cli.cleanup.run import run
    from services.cli.cleanup.show import report

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
