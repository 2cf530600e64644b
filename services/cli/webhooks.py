"""`lethe webhooks ...`: registered status-callback URLs. Filled in by the notifier issue."""

from __future__ import annotations

import typer

app = typer.Typer(help="Signed webhooks (status callbacks) per organisation.")
