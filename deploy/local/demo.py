"""`make demo`: the lifecycle a newcomer came for, over the real API, in four steps.

1. Erase a subject with a recovery window: every row is hidden at once and held, restorable.
2. Restore one item of it (the subject's newsletter sign-up), on request.
3. Export another subject: the emailed link alone (no API key) downloads the zip.
4. Purge and verify (the demo ends the 7-day window early), then the audit chain.

It ends with a table of the jobs and their outcomes, the web UI address with a key to sign in,
and where the mails are. Runs against the stack `make up` started (endpoints in `.local/env`).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.table import Table

from deploy.local.demo_api import (
    WINDOW_DAYS,
    Demo,
    DemoFailed,
    console,
    local_mail_dir,
    mails_to,
)
from deploy.local.demo_steps import story
from deploy.local.infra import DEFAULT_STATE_DIR
from deploy.local.sample.seed import SeededOrg, seed_org
from deploy.local.stack import recorded_target
from services.auditor.keys import trusted_public_keys
from services.auditor.settings import AuditorSettings
from services.cli.common import load_env_file
from services.intake import store as intake_store
from shared.auditchain.verify import verify_chain
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import s3_client


async def seed(settings: LetheSettings, org_id: str) -> SeededOrg:
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
                    users=1000,
                    conversations_per_user=5,
                    messages_per_conversation=30,
                    media_every=200,
                    heavy_user_factor=100,
                    history=True,  # data of every age, so `lethe cleanup --days 30` has work
                )
        finally:
            await conn.close()
    console.print(
        f"Sample org [bold]{org_id}[/]: {len(org.users):,} users, "
        f"{sum(u.messages for u in org.users):,} messages, "
        f"{sum(len(u.object_keys) for u in org.users):,} media objects in S3 "
        f"({time.monotonic() - started:.1f}s)."
    )
    return org


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
    mail_dir = local_mail_dir()
    org_id = time.strftime("demo-%Y%m%d-%H%M%S")
    started = time.monotonic()
    org = await seed(settings, org_id)
    pool = await create_pool(settings.database_url)
    platform = await create_pool(settings.platform_database_url)
    try:
        await intake_store.create_org(
            pool, org_id, f"Demo {org_id}", recovery_window_days=WINDOW_DAYS
        )
        key = await intake_store.create_api_key(pool, org_id, "owner", "demo owner")
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
            demo = Demo(client, key, org_id)
            rows = await story(demo, org, pool, platform, settings, mail_dir)
        await asyncio.sleep(1)  # let the auditor record the last events
        verdict = await verify_chain(pool, trusted_public_keys(AuditorSettings()))
    except DemoFailed as exc:
        console.print(f"[bold red]The demo stopped:[/] {exc}")
        return 1
    finally:
        await pool.close()
        await platform.close()
    style = "green" if verdict.ok else "bold red"
    console.print(
        f"Audit chain: {'intact' if verdict.ok else 'BROKEN'}, {verdict.rows:,} rows, signed "
        "checkpoints verified"
        + ("" if verdict.ok else f"; first bad row {verdict.first_bad_seq}: {verdict.reason}"),
        style=style,
    )
    addresses = (f"privacy@{org_id}.example", f"subject@{org_id}.example")
    finish(rows, api_url, key, mail_dir, addresses, time.monotonic() - started)
    return 0 if verdict.ok and all(r["ok"] for r in rows) else 1


def finish(
    rows: list[dict[str, Any]],
    api_url: str,
    key: str,
    mail_dir: Path | None,
    to: tuple[str, ...],
    took: float,
) -> None:
    table = Table(title="Jobs of this demo", title_justify="left")
    for col in ("job", "type", "subject", "status", "outcome"):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = "green" if r["ok"] else "red"
        status = f"[{colour}]{r['status']}[/]"
        table.add_row(r["id"][:8], r["type"], r["subject"].split("@")[0], status, r["outcome"])
    console.print(table)
    console.print(f"Web UI:  {api_url}/ui/  (sign in with this owner key; the jobs are listed)")
    console.print(f"API key: {key}", soft_wrap=True)
    if mail_dir is None:
        console.print(
            "Mail:    in the SMTP server the services use (Mailpit: http://localhost:8025)"
        )
    else:
        sent = [(p, m) for addr in to for p, m in mails_to(mail_dir, addr)]
        console.print(f"Mail:    {mail_dir} ({len(sent)} of this demo, one .eml each)")
        for path, msg in sorted(sent, key=lambda pm: pm[0].name):
            subject = " ".join(str(msg["Subject"]).split())
            console.print(f"  {path.name[:22]}  to {msg['To']}: {subject}", soft_wrap=True)
    console.print(
        f"Done in {took:.0f}s. Services keep running: `make status` shows them, `make down` "
        "stops everything."
    )


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
