"""What `lethe cleanup` prints: the --all-orgs question, and the stats at the end."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from services.cli.cleanup.scope import Target
from services.cli.common import console
from services.eraser.service import retention


def confirm(counts: dict[Target, int], assume_yes: bool) -> bool:
    """Show what --all-orgs would delete, per organisation and category; ask."""
    table = Table(title="--all-orgs: rows older than --days, per organisation and category")
    for col in ("organisation", "category", "days", "rows"):
        table.add_column(col, justify="right" if col in ("days", "rows") else "left")
    for t, n in counts.items():
        table.add_row(t.org, t.category, str(t.days), str(n))
    console.print(table)
    total = sum(counts.values())
    orgs = len({t.org for t in counts})
    console.print(f"{total} rows in {orgs} organisations, their policies overridden")
    if assume_yes:
        return True
    return typer.confirm("Delete them?", default=False)


def report(results: dict[Target, retention.Stats], dry_run: bool) -> int:
    """The stats; the exit code (3 when something failed)."""
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    for col in ("organisation", "category", "days", "table"):
        table.add_column(col)
    table.add_column("rows", justify="right")
    errors: list[dict[str, Any]] = []
    for t, st in results.items():
        days = f"{t.days} ({'policy' if t.by_policy else '--days'})"
        for name, n in sorted(st.rows.items()):
            table.add_row(t.org, t.category, days, name, str(n))
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
