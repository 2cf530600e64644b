"""`make demo`: load sample data, submit a real erasure over HTTP, watch it, show the proof.

Runs against the stack `make up` started (endpoints from `.local/env`).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deploy.local.infra import DEFAULT_STATE_DIR
from deploy.local.sample.seed import seed_org
from deploy.local.stack import recorded_target
from services.auditor.keys import trusted_public_keys
from services.auditor.settings import AuditorSettings
from services.auditor.verify import verify_chain
from services.cli.common import load_env_file
from services.intake import store as intake_store
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import s3_client

console = Console()


def find_mail(mail_dir: Path, to: str, job_id: str) -> Path | None:
    for path in sorted(mail_dir.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to in str(msg.get("To", "")) and job_id in str(msg.get("Subject", "")):
            return path
    return None


async def seed(settings: LetheSettings, org_id: str) -> tuple[str, int]:
    started = time.monotonic()
    with console.status("Loading sample data (users, conversations, messages, media)..."):
        conn = await asyncpg.connect(settings.platform_database_url)
        try:
            async with s3_client(settings) as s3:
                org = await seed_org(
                    conn,
                    s3,
                    settings.platform_bucket,
                    org_id,
                    users=2000,
                    conversations_per_user=5,
                    messages_per_conversation=30,
                    media_every=200,
                    heavy_user_factor=500,
                    history=True,  # data of every age, so `lethe cleanup --days 30` has work
                )
        finally:
            await conn.close()
    subject = org.users[0]
    total_msgs = sum(u.messages for u in org.users)
    console.print(
        f"Sample org [bold]{org_id}[/]: {len(org.users)} users, {total_msgs:,} messages, "
        f"{sum(len(u.object_keys) for u in org.users):,} media objects in S3 "
        f"({time.monotonic() - started:.1f}s). Subject owns {org.rows_of(subject):,} rows."
    )
    return subject.email, org.rows_of(subject)


async def watch(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    with Progress(
        TextColumn("[bold]erasing[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("erase", total=None, info="")
        while True:
            job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
            rate = job.get("rows_per_second") or 0
            eta = job.get("eta_seconds")
            bar.update(
                task,
                total=job["total"] or None,
                completed=job["done"],
                info=f"{job['done']:,}/{job['total'] or '?'} rows  {rate:,.0f} rows/s  "
                f"ETA {eta if eta is not None else '?'}s  [{job['status']}/{job['phase']}]",
            )
            if job["status"] in ("completed", "failed", "cancelled"):
                return dict(job)
            await asyncio.sleep(0.2)


async def main() -> int:
    target = recorded_target(DEFAULT_STATE_DIR)
    if target is not None and not target.get("sample"):
        console.print(
            f"[red]The demo loads sample data into the platform database, and the services use "
            f"{target['platform_database']} with {target['datamap']}.[/] Run it on the sample: "
            "make restart-services PLATFORM_DATABASE_URL= LETHE_DATAMAP_PATH= && make demo"
        )
        return 1
    load_env_file(Path(".local/env"))
    settings = LetheSettings()
    api_url = os.environ["LETHE_API_URL"]
    mail_dir = Path(os.environ.get("LETHE_MAIL_DIR", ".local/mail"))
    org_id = time.strftime("demo-%Y%m%d-%H%M%S")
    subject_email, _ = await seed(settings, org_id)

    pool = await create_pool(settings.database_url)
    try:
        await intake_store.create_org(pool, org_id, f"Demo {org_id}")
        key = await intake_store.create_api_key(pool, org_id, "owner", "demo owner")
        headers = {"Authorization": f"Bearer {key}"}
        requester = f"privacy@{org_id}.example"
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
            console.print(f"POST {api_url}/v1/requests: erase the subject {subject_email}")
            r = await client.post(
                "/v1/requests",
                headers=headers,
                json={
                    "type": "erasure",
                    "subject": {"email": subject_email},
                    "notify_email": requester,
                    "regulation": "gdpr",
                    "request_id": f"demo-{org_id}",
                    "reason": "account closed (demo)",
                    # No recovery window in the demo: hidden, then purged and verified at once.
                    "recovery_window_days": 0,
                },
            )
            r.raise_for_status()
            job_id = r.json()["id"]
            started = time.monotonic()
            job = await watch(client, job_id, headers)
            wall = time.monotonic() - started
        console.print_json(json.dumps(job))
        console.print(
            f"Job {job['status']} in {wall:.1f}s from submission; eraser rate "
            f"{job['rows_per_second'] or 0:,.0f} rows/s over {job['done']:,} rows."
        )
        mail = None
        for _ in range(50):
            mail = find_mail(mail_dir, requester, job_id)
            if mail:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # let the auditor record the last events
        verdict = await verify_chain(pool, trusted_public_keys(AuditorSettings()))
    finally:
        await pool.close()
    style = "green" if verdict.ok else "bold red"
    console.print(
        f"Audit chain: {'OK' if verdict.ok else 'BROKEN'}, {verdict.rows} rows"
        + ("" if verdict.ok else f"; first bad row {verdict.first_bad_seq}: {verdict.reason}"),
        style=style,
    )
    console.print(
        f"Email to the requester: {mail or 'not received (see .local/logs/notifier.log)'}"
    )
    console.print("Services keep running: `make status` shows them, `make down` stops everything.")
    return 0 if job["status"] == "completed" and verdict.ok and mail else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
