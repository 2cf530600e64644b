"""`lethe jobs watch` against a live job: renders progress, exits 0 when the job is done."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.local.sample.seed import seed_org
from deploy.local.stack import REPO_ROOT
from tests.conftest import Org

pytestmark = pytest.mark.e2e


async def test_jobs_watch_follows_a_live_job_to_the_end(
    api_url: str, org: Org, platform_db: asyncpg.Pool, s3: object, state_dir: Path
) -> None:
    async with platform_db.acquire() as conn:
        seeded = await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=20,
            messages_per_conversation=50,
            media_every=0,
        )
    async with httpx.AsyncClient(base_url=api_url) as c:
        r = await c.post(
            "/v1/requests",
            headers=org.headers,
            json={
                "type": "erasure",
                "subject": {"email": seeded.users[0].email},
                "recovery_window_days": 0,
                "request_id": f"watch-{uuid.uuid4()}",
            },
        )
    assert r.status_code == 202, r.text
    env = {
        **os.environ,
        "LETHE_API_URL": api_url,
        "LETHE_API_KEY": org.owner_key,
        "LETHE_ENV_FILE": str(state_dir / "no-env-file"),
        "COLUMNS": "120",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "jobs",
        "watch",
        r.json()["id"],
        "--every",
        "0.1",
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "rows" in text and "100.0%" in text and r.json()["id"] in text
