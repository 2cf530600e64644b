"""`lethe submit` and `lethe jobs list|show|watch|cancel|restore|extend|awaiting|approve|deny`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.api import check, client
from services.cli.common import console

app = typer.Typer(help="Watch and steer jobs.")

# Exit codes of `jobs watch`: what the job came to.
OUTCOME = {
    "completed": 0,
    "soft_deleted": 0,
    "ready": 0,
    "restored": 0,
    "completed_with_errors": 3,
    "failed": 1,
    "cancelled": 4,
    "expired": 1,
    "not_found": 5,
    "ambiguous": 6,
    "denied": 7,
}


def submit(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="erasure or export")],
    email: Annotated[str | None, typer.Option(help="Subject's email")] = None,
    user_id: Annotated[str | None, typer.Option(help="Subject's user id")] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    external_id: Annotated[str | None, typer.Option()] = None,
    organisation: Annotated[
        str | None, typer.Option(help="Erase/export the whole org: type its name to confirm")
    ] = None,
    regulation: Annotated[str, typer.Option(help="gdpr, ccpa or custom")] = "gdpr",
    due_in_days: Annotated[int | None, typer.Option(help="With --regulation custom")] = None,
    window: Annotated[int | None, typer.Option(help="Recovery window days (0..30)")] = None,
    request_id: Annotated[str | None, typer.Option(help="Idempotency key")] = None,
    notify: Annotated[str | None, typer.Option(help="Email to tell when done")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Submit a request; prints the job."""
    body: dict[str, Any] = {"type": type_, "regulation": regulation}
    identities = {
        k: v
        for k, v in {
            "email": email,
            "user_id": user_id,
            "phone": phone,
            "external_id": external_id,
        }.items()
        if v
    }
    if organisation is not None:
        body.update(scope="organisation", confirm_org_name=organisation)
    else:
        body["subject"] = identities
    optional = {
        "due_in_days": due_in_days,
        "recovery_window_days": window,
        "request_id": request_id,
        "notify_email": notify,
        "reason": reason,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with client() as c:
        job = check(c.post("/v1/requests", json=body))
    if job.get("duplicate_of"):
        console.print(f"[yellow]not started[/]: {job['note']} (job [bold]{job['id']}[/])")
        return
    console.print(f"job [bold]{job['id']}[/] {job['status']}, due {job['due_at']}")


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option()] = None,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    overdue: Annotated[bool, typer.Option("--overdue")] = False,
    limit: int = 50,
) -> None:
    """Jobs of your organisation, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if type_:
        params["type"] = type_
    if overdue:
        params["overdue"] = "true"
    with client() as c:
        page = check(c.get("/v1/jobs", params=params))
    table = Table("id", "type", "scope", "status", "progress", "due", "days left")
    for j in page["jobs"]:
        table.add_row(
            j["id"],
            j["type"],
            j["scope"],
            j["status"],
            f"{j['percent']}%",
            j["extended_due_at"] or j["due_at"],
            f"[red]{j['days_left']}[/]" if j["overdue"] else str(j["days_left"]),
        )
    console.print(table)


@app.command("show")
def show(job_id: str, events: Annotated[bool, typer.Option("--events")] = False) -> None:
    """One job (and its timeline with --events)."""
    with client() as c:
        job = check(c.get(f"/v1/jobs/{job_id}"))
        console.print(f"job [bold]{job['id']}[/] {job['type']}: {summary(job)}")
        console.print_json(json.dumps(job))
        if events:
            for e in check(c.get(f"/v1/jobs/{job_id}/events"))["events"]:
                console.print(f"{e['occurred_at']}  {e['type']:<22} {e['actor']}")


@app.command("watch")
def watch(job_id: str, every: float = 0.5) -> None:
    """Live progress until the job settles; the exit code is its outcome (0: done)."""
    with (
        client() as c,
        Progress(
            TextColumn("{task.fields[status]}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("job", total=None, status="", info="")
        while True:
            job = check(c.get(f"/v1/jobs/{job_id}"))
            rate, eta = job.get("rows_per_second") or 0, job.get("eta_seconds")
            bar.update(
                task,
                total=job["total"] or None,
                completed=job["done"],
                status=job["status"],
                info=f"{job['done']:,}/{job['total'] or '?'} rows {rate:,.0f}/s "
                f"ETA {'?' if eta is None else f'{eta:.0f}s'}",
            )
            if job["status"] in OUTCOME:
                break
            time.sleep(every)
    console.print(f"job {job_id}: {summary(job)}")
    raise typer.Exit(OUTCOME[job["status"]])


def summary(job: dict[str, Any]) -> str:
    """The job's state in words: an outcome that is a result says so (never "0 rows")."""
    if job.get("outcome"):
        text = f"{job['status']}: {job['outcome']}"
    else:
        text = job["status"]
        if job.get("total"):
            text += f", {job['done']:,} of {job['total']:,} rows"
    return text + (f" ({job['error']})" if job.get("error") else "")


@app.command("cancel")
def cancel(job_id: str, reason: Annotated[str | None, typer.Option()] = None) -> None:
    """Stop a running job between batches (what is done stays restorable)."""
    with client() as c:
        check(c.post(f"/v1/jobs/{job_id}/cancel", json={"reason": reason}))
    console.print(f"cancel of {job_id} accepted")


@app.command("restore")
def restore(
    job_id: str,
    item: Annotated[list[str] | None, typer.Option(help="table:key, repeatable")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Put back a whole job, or single items (table:key), within the recovery window."""
    items = None
    if item:
        items = [{"table": t, "key": k} for t, _, k in (i.partition(":") for i in item)]
    with client() as c:
        check(c.post(f"/v1/jobs/{job_id}/restore", json={"items": items, "reason": reason}))
    console.print(f"restore of {job_id} accepted")


@app.command("extend")
def extend(
    job_id: str,
    days: Annotated[
        int | None,
        typer.Option(help="GDPR: up to two further calendar months; CCPA: up to 45 days"),
    ] = None,
    months: Annotated[int | None, typer.Option(help="GDPR only: 1 or 2 calendar months")] = None,
    reason: Annotated[str | None, typer.Option(help="Sent to the requester at once")] = None,
) -> None:
    """Extend the legal deadline once, before it passes, with the reason (the server names
    the rule when the law does not allow it)."""
    body = {"days": days, "months": months, "reason": reason}
    with client() as c:
        job = check(c.post(f"/v1/jobs/{job_id}/extend", json=body))
    console.print(f"due {job['extended_due_at']}; the requester is told why")


@app.command("awaiting")
def awaiting() -> None:
    """Jobs awaiting approval, the nearest legal deadline first."""
    with client() as c:
        page = check(c.get("/v1/approvals"))
    table = Table("id", "type", "regulation", "received", "due", "days left")
    for j in page["jobs"]:
        table.add_row(
            j["id"],
            j["type"],
            j["regulation"],
            j["received_at"],
            j["extended_due_at"] or j["due_at"],
            f"[red]{j['days_left']}[/]" if j["overdue"] else str(j["days_left"]),
        )
    console.print(table)


@app.command("approve")
def approve(
    job_id: str, reason: Annotated[str | None, typer.Option(help="Told to the requester")] = None
) -> None:
    """Approve a job awaiting approval (admin or owner): it starts now."""
    with client() as c:
        job = check(c.post(f"/v1/jobs/{job_id}/approve", json={"reason": reason}))
    console.print(f"job {job_id} approved: {job['status']}; the requester is told")


@app.command("deny")
def deny(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why: told to the requester, kept in the audit")],
) -> None:
    """Deny a job awaiting approval (admin or owner): it ends denied, nothing done."""
    with client() as c:
        job = check(c.post(f"/v1/jobs/{job_id}/deny", json={"reason": reason}))
    console.print(f"job {job_id} {job['status']}; the requester is told why")
