"""The audit trail and the notifier with the services as processes: a full erasure leaves a
chain that `lethe audit verify` accepts with signed checkpoints, an org's export verifies
offline, and no log line or audit row holds the subject's email."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import SeededOrg
from tests.conftest import Org
from tests.helpers import eventually
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SETTLED = ("completed", "completed_with_errors", "soft_deleted", "failed", "cancelled")
# Small enough to see checkpoints written in a short test, by both of the auditor's paths.
SERVICES_ENV = {
    "LETHE_AUDIT_CHECKPOINT_EVERY_ROWS": "7",
    "LETHE_AUDIT_CHECKPOINT_EVERY_SECONDS": "1",
}


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    return await seed_sample(
        platform_db,
        s3,
        org.id,
        users=2,
        conversations_per_user=2,
        messages_per_conversation=5,
        media_every=3,
    )


def lethe_cli(ep: infra.Endpoints, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": ep.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka_bootstrap_servers,
        "LETHE_ENV_FILE": "/nonexistent",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", "from services.cli import app; app()", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_full_erasure_leaves_a_verifiable_trail_and_no_raw_email(
    client: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    prepared: infra.Endpoints,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    subject = seeded.users[0]
    requester = f"dpo-{uuid.uuid4().hex[:8]}@{org.id}.test"
    r = await client.post(
        "/v1/requests",
        json={
            "type": "erasure",
            "subject": {"email": subject.email},
            "notify_email": requester,
            "request_id": f"req-{uuid.uuid4()}",
        },
        headers=org.headers,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    async def settled() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        return job if job["status"] in SETTLED else None

    job = await eventually(settled, timeout=90, what=f"job {job_id} to settle")
    assert job["status"] != "failed", job

    async def signed_up_to_head() -> str | None:
        v = await asyncio.to_thread(lethe_cli, prepared, "audit", "verify")
        ok = v.returncode == 0 and "not yet covered" not in v.stdout
        return v.stdout if ok else None

    out = await eventually(signed_up_to_head, timeout=60, every=1, what="a fully signed chain")
    assert "signed checkpoints, chain intact" in out
    signed = await lethe_db.fetchval("SELECT count(*) FROM lethe.audit_checkpoints")
    assert signed >= 1

    # The org's export verifies offline, with the documented script, outside the repository.
    zipped = tmp_path / "export.zip"
    exported = await asyncio.to_thread(
        lethe_cli, prepared, "audit", "export", "--org", org.id, "--out", str(zipped)
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    folder = tmp_path / "export"
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(folder)
    check = await asyncio.to_thread(_offline, folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert job_id in (folder / "audit.jsonl").read_text()

    # No raw email in any audit row, nor in any service's log of this run.
    hits = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.audit_log WHERE strpos(details::text || actor || "
        "coalesce(subject_hash, '') || coalesce(org_id, ''), $1) > 0",
        subject.email,
    )
    assert hits == 0
    logs = sorted((state_dir / "logs").glob("*.log"))
    assert any(p.name == "intake.log" for p in logs) and any(p.name == "notifier.log" for p in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        assert subject.email not in text, f"{path.name} holds the subject's email"
        if path.name != "smtp.log":  # the mail server itself logs whom it delivered to
            assert requester not in text, f"{path.name} holds the requester's email"


def _offline(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "verify_audit.py", "."],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _async(value: Any) -> Any:
    return value
