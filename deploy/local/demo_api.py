"""What the demo's steps share: the console, the API client that submits and watches jobs,
the mails the local SMTP sink wrote, and the platform rows a subject still shows."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deploy.local.infra import DEFAULT_STATE_DIR
from shared.settings import LetheSettings
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
