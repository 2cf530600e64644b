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
import email
import email.policy
import io
import json
import os
import re
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.local.infra import DEFAULT_STATE_DIR
from deploy.local.sample.seed import SeededOrg, seed_org
from deploy.local.stack import recorded_target
from services.auditor.keys import trusted_public_keys
from services.auditor.settings import AuditorSettings
from services.cli.common import load_env_file
from services.intake import store as intake_store
from services.intake.web.common import status_mac
from shared.auditchain.verify import verify_chain
from shared.db import create_pool
from shared.settings import LetheSettings
from shared.storage import s3_client
from shared.tokens import DownloadToken, sign

console = Console()
WINDOW_DAYS = 7
SETTLED = ("completed", "completed_with_errors", "failed", "cancelled", "restored", "not_found")


class DemoFailed(Exception):
    pass


def local_mail_dir() -> Path | None:
    """Where `make up`'s SMTP sink writes each mail as a file (None: mail goes elsewhere)."""
    path = Path(os.environ.get("LETHE_MAIL_DIR") or DEFAULT_STATE_DIR / "mail")
    return path if path.is_dir() else None


def step(n: int, title: str) -> None:
    console.rule(f"[bold]{n}. {title}", align="left")


def mails_to(mail_dir: Path, to: str) -> list[tuple[Path, email.message.EmailMessage]]:
    out = []
    for path in sorted(mail_dir.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to in str(msg.get("To", "")):
            out.append((path, msg))
    return out


async def find_mail(mail_dir: Path, to: str, *words: str, timeout: float = 20) -> tuple[Path, str]:
    """The first mail to `to` whose subject has all of `words`: its file and plain text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path, msg in mails_to(mail_dir, to):
            if all(w in str(msg.get("Subject", "")) for w in words):
                body = msg.get_body(preferencelist=("plain",))
                return path, body.get_content() if body else ""
        await asyncio.sleep(0.3)
    raise DemoFailed(f"no mail to {to} about {' '.join(words)} (see .local/logs/notifier.log)")


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


class Demo:
    def __init__(self, client: httpx.AsyncClient, key: str, org_id: str) -> None:
        self.client, self.org_id = client, org_id
        self.headers = {"Authorization": f"Bearer {key}"}

    async def submit(self, body: dict[str, Any]) -> str:
        r = await self.client.post("/v1/requests", headers=self.headers, json=body)
        if r.status_code != 202:
            raise DemoFailed(f"POST /v1/requests answered {r.status_code}: {r.text}")
        return str(r.json()["id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)
        r.raise_for_status()
        return dict(r.json())

    async def events(self, job_id: str, kind: str) -> list[dict[str, Any]]:
        r = await self.client.get(f"/v1/jobs/{job_id}/events", headers=self.headers)
        r.raise_for_status()
        return [e for e in r.json()["events"] if e["type"] == kind]

    async def watch(
        self, job_id: str, label: str, until: tuple[str, ...], timeout: float = 300
    ) -> dict[str, Any]:
        """A progress bar until the job reaches one of `until` (or settles otherwise)."""
        deadline = time.monotonic() + timeout
        with Progress(
            TextColumn(f"[bold]{label:9}[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None, info="")
            while True:
                job = await self.job(job_id)
                rate = job.get("rows_per_second") or 0
                bar.update(
                    task,
                    total=job["total"] or None,
                    completed=job["done"],
                    info=f"{job['done']:,}/{job['total'] or '?'} rows  {rate:,.0f} rows/s  "
                    f"[{job['status']}/{job['phase']}]",
                )
                if job["status"] in until or job["status"] in SETTLED:
                    return job
                if time.monotonic() > deadline:
                    raise DemoFailed(
                        f"job {job_id} is still {job['status']} after {timeout:.0f}s "
                        "(see .local/logs/)"
                    )
                await asyncio.sleep(0.3)

    async def first_event(self, job_id: str, kind: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await self.events(job_id, kind)
            if found:
                return found[0]
            await asyncio.sleep(0.3)
        raise DemoFailed(f"job {job_id}: no {kind} within {timeout:.0f}s")


async def held_rows(platform: asyncpg.Pool, user_id: int, email_addr: str) -> dict[str, int]:
    """What the platform still shows of the subject (what their erasure must hide)."""
    return {
        "users": await platform.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id),
        "messages": await platform.fetchval(
            "SELECT count(*) FROM messages WHERE author_id = $1", user_id
        ),
        "newsletter_signups": await platform.fetchval(
            "SELECT count(*) FROM newsletter_signups WHERE email = $1", email_addr
        ),
    }


async def export_link(
    demo: Demo,
    pool: asyncpg.Pool,
    settings: LetheSettings,
    mail_dir: Path | None,
    to: str,
    job_id: str,
) -> str:
    """The download link as the data subject got it: from the mail file (`make up`'s SMTP
    sink); where mail goes elsewhere (Mailpit), the same link from its row, signed alike."""
    if mail_dir is not None:
        path, body = await find_mail(mail_dir, to, job_id, "ready")
        found = re.search(r"https?://\S+/download\?token=\S+", body)
        if not found:
            raise DemoFailed(f"no download link in {path}")
        return found.group(0)
    row = await pool.fetchrow(
        "SELECT token_id, recipient_hash, expires_at FROM lethe.download_tokens WHERE job_id = $1",
        uuid.UUID(job_id),
    )
    token = DownloadToken(
        row["token_id"], uuid.UUID(job_id), row["recipient_hash"], row["expires_at"]
    )
    signed = sign(settings.download_token_key.get_secret_value().encode(), token)
    return f"{demo.client.base_url}/v1/exports/{job_id}/download?token={signed}"


def shown(counts: dict[str, int]) -> str:
    return ", ".join(f"{t} {n:,}" for t, n in counts.items())


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


async def story(
    demo: Demo,
    org: SeededOrg,
    pool: asyncpg.Pool,
    platform: asyncpg.Pool,
    settings: LetheSettings,
    mail_dir: Path | None,
) -> list[dict[str, Any]]:
    """The four steps (module docstring); one row per job for the closing table."""
    erased, exported = org.users[0], org.users[1]
    privacy = f"privacy@{org.org_id}.example"  # the org's privacy desk, told of the erasure
    subject_mail = f"subject@{org.org_id}.example"  # where the exported subject reads mail
    signup_id = await platform.fetchval(
        "SELECT id FROM newsletter_signups WHERE org_id = $1 AND email = $2",
        org.org_id,
        erased.email,
    )
    erase_id, export_id = await erase_step(demo, org, platform, privacy, subject_mail)
    await restore_step(demo, platform, erase_id, signup_id)
    exported_rows = await export_step(
        demo, pool, settings, mail_dir, exported.email, subject_mail, export_id
    )
    job, purged, kept, verification = await purge_step(demo, pool, erase_id)
    if mail_dir is not None:  # sent after the purge and its verification
        await find_mail(mail_dir, privacy, erase_id, "complete")
    return [
        {
            "id": erase_id,
            "type": "erasure",
            "subject": erased.email,
            "status": job["status"],
            "outcome": f"{purged:,} rows hidden at once, then purged; {kept} restored; verified "
            + ("ok" if verification.get("ok") else "NOT ok"),
            "ok": job["status"] == "completed" and bool(verification.get("ok")),
        },
        {
            "id": export_id,
            "type": "export",
            "subject": exported.email,
            "status": "ready",
            "outcome": f"{exported_rows:,} rows, link emailed, downloaded once without a key",
            "ok": True,
        },
    ]


async def erase_step(
    demo: Demo, org: SeededOrg, platform: asyncpg.Pool, privacy: str, subject_mail: str
) -> tuple[str, str]:
    """Step 1: the erasure, hidden and held; step 3's export is submitted with it (it runs
    meanwhile, in the exporter). Returns both job ids."""
    erased, exported = org.users[0], org.users[1]
    step(1, f"Erase {erased.email}, with a {WINDOW_DAYS}-day recovery window")
    console.print(
        f"Before: the platform shows {shown(await held_rows(platform, erased.id, erased.email))}."
    )
    erase_id = await demo.submit(
        {
            "type": "erasure",
            "subject": {"email": erased.email},
            "notify_email": privacy,
            "regulation": "gdpr",
            "request_id": f"demo-erase-{org.org_id}",
            "reason": "account closed (demo)",
        }
    )
    export_id = await demo.submit(
        {
            "type": "export",
            "subject": {"email": exported.email},
            "notify_email": subject_mail,
            "regulation": "gdpr",
            "request_id": f"demo-export-{org.org_id}",
            "format": "both",
        }
    )
    t0 = time.monotonic()
    job = await demo.watch(erase_id, "erasing", ("soft_deleted",))
    hidden_s = time.monotonic() - t0
    if job["status"] != "soft_deleted":
        raise DemoFailed(f"erasure {erase_id} ended {job['status']}: {job['error']}")
    console.print(
        f"Hidden in {hidden_s:.1f}s ({job['rows_per_second'] or 0:,.0f} rows/s): {job['done']:,} "
        "rows out of use, held encrypted. "
        f"After: the platform shows {shown(await held_rows(platform, erased.id, erased.email))}."
    )
    console.print(f"Restorable until {job['purge_after'][:16]} UTC; then purged for good.")
    return erase_id, export_id


async def restore_step(demo: Demo, platform: asyncpg.Pool, erase_id: str, signup_id: Any) -> None:
    """Step 2: one item of the erasure back, on request."""
    step(2, "Restore one item: the subject asked to stay on the newsletter")
    r = await demo.client.post(
        f"/v1/jobs/{erase_id}/restore",
        headers=demo.headers,
        json={"items": [{"table": "newsletter_signups", "key": str(signup_id)}], "reason": "kept"},
    )
    if r.status_code != 202:
        raise DemoFailed(f"restore answered {r.status_code}: {r.text}")
    restored = (await demo.first_event(erase_id, "JobRestored"))["details"]
    back = await platform.fetchval(
        "SELECT count(*) FROM newsletter_signups WHERE id = $1", signup_id
    )
    job = await demo.job(erase_id)
    console.print(
        f"POST /v1/jobs/{erase_id[:8]}…/restore "
        + escape(f"items=[newsletter_signups {signup_id}]: ")
        + f"{restored['rows']} row back (in the platform: {back}); the job stays "
        f"{job['status']}, the rest is still held."
    )


async def export_step(
    demo: Demo,
    pool: asyncpg.Pool,
    settings: LetheSettings,
    mail_dir: Path | None,
    exported_email: str,
    subject_mail: str,
    export_id: str,
) -> int:
    """Step 3: the export, downloaded through the emailed link alone. Returns its rows."""
    step(3, f"Export {exported_email}; the emailed link alone downloads it")
    job = await demo.watch(export_id, "exporting", ("ready",))
    if job["status"] != "ready":
        raise DemoFailed(f"export {export_id} ended {job['status']}: {job['error']}")
    link = await export_link(demo, pool, settings, mail_dir, subject_mail, export_id)
    r = await demo.client.get(link)  # no API key: what the data subject has is the link
    if r.status_code != 200:
        raise DemoFailed(f"the download link answered {r.status_code}: {r.text}")
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(zf.read("manifest.json"))
    key = settings.download_token_key.get_secret_value().encode()
    status_page = (
        f"{demo.client.base_url}/status/{export_id}/{status_mac(key, uuid.UUID(export_id))}"
    )
    console.print(
        f"Ready: {sum(manifest['rows_per_table'].values()):,} rows in {len(zf.namelist())} files; "
        f"downloaded {len(r.content) / 1024:,.0f} KiB through the link, without an API key."
    )
    used, allowed = await pool.fetchrow(
        "SELECT downloads, max_downloads FROM lethe.download_tokens WHERE job_id = $1",
        uuid.UUID(export_id),
    )
    until = job["result"]["expires_at"][:16]
    console.print(f"Download link ({allowed - used} of {allowed} downloads left, until {until}):")
    console.print(link, style="cyan", soft_wrap=True)
    console.print(f"The subject's status page offers it too: {status_page}", soft_wrap=True)
    return int(sum(manifest["rows_per_table"].values()))


async def purge_step(
    demo: Demo, pool: asyncpg.Pool, erase_id: str
) -> tuple[dict[str, Any], int, int, dict[str, Any]]:
    """Step 4: the window ended early, the purge and its verification. Returns the job,
    rows purged, rows restored and the verification."""
    step(4, "Purge and verify")
    console.print(
        f"[dim](demo only: the {WINDOW_DAYS}-day recovery window is ended now; in production the "
        "purge runs when it ends)[/]"
    )
    await pool.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() WHERE job_id = $1",
        uuid.UUID(erase_id),
    )
    job = await demo.watch(erase_id, "purging", SETTLED)
    done = await demo.events(erase_id, "JobCompleted")
    completed = done[0]["details"] if done else {}
    purged, kept = completed.get("purged_rows") or 0, completed.get("restored_rows") or 0
    verification = (job.get("result") or {}).get("verification") or {}
    scan = verification.get("scan") or {}
    where = sorted({h.get("table", "?") for h in scan.get("hits", [])})
    hits = f"hits in {', '.join(where)} (restored on purpose)" if where else "no trace"
    console.print(
        f"{job['status']}: {purged:,} rows purged, {kept} restored on request; the held copy's "
        f"key {'is destroyed' if verification.get('key_destroyed') else 'is NOT destroyed'}."
    )
    console.print(
        f"Verification: the subject resolved again finds "
        f"{sum(verification.get('rows_remaining', {}).values())} row(s) (the restored one); "
        f"S3 objects checked {verification.get('objects_checked', 0)}, "
        f"{verification.get('objects_remaining', 0)} left; identity scan over "
        f"{scan.get('columns_scanned', '?')} columns: {hits}; "
        f"{'ok' if verification.get('ok') else 'NOT ok'}."
    )
    return job, purged, kept, verification


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
