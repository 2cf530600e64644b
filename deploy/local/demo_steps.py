"""The demo's four steps (deploy/local/demo.py), over the real API: erase with a recovery
window, restore one item, export through the emailed link, purge and verify."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
from rich.markup import escape

from deploy.local.demo_api import (
    SETTLED,
    WINDOW_DAYS,
    Demo,
    DemoFailed,
    console,
    export_link,
    find_mail,
    held_rows,
    shown,
    step,
)
from deploy.local.sample.seed import SeededOrg
from services.intake.web.common import status_mac
from shared.settings import LetheSettings


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
