"""An exporter killed mid-export: a new one redoes it and the result is complete and valid;
nothing truncated is ever marked ready, and the dead attempt's upload is aborted."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from deploy.local.sample.seed import seed_org
from deploy.local.stack import REPO_ROOT, service_env, start_services, stop_services
from shared.events.topics import NOTIFICATIONS
from tests.conftest import Org
from tests.helpers import eventually, find_record

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_url(prepared: infra.Endpoints, state_dir: Path) -> Iterator[str]:
    try:
        url = start_services(prepared, state_dir)
        infra.stop_process("exporter", state_dir)  # this module runs its own exporters
        yield url
    finally:
        for name in ("exporter-slow", "exporter-again"):
            infra.stop_process(name, state_dir)
        stop_services(state_dir)


def _exporter(name: str, ep: infra.Endpoints, state_dir: Path, url: str, **env: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    return infra.start_process(
        name,
        [sys.executable, "-m", "services.exporter"],
        {**service_env(ep, port), **env},
        state_dir,
        cwd=REPO_ROOT,
    )


async def test_a_killed_export_is_redone_whole(
    api_url: str,
    org: Org,
    prepared: infra.Endpoints,
    state_dir: Path,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    async with platform_db.acquire() as conn:
        seeded = await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=40,
            messages_per_conversation=100,
            media_every=0,
        )
    subject = seeded.users[0]
    pid = _exporter(
        "exporter-slow",
        prepared,
        state_dir,
        api_url,
        LETHE_EXPORT_RATE_LIMIT_ROWS="2000",
        LETHE_EXPORT_BATCH_ROWS="500",
    )
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        r = await c.post(
            "/v1/requests",
            headers=org.headers,
            json={
                "type": "export",
                "subject": {"email": subject.email},
                "notify_email": f"dpo@{org.id}.test",
            },
        )
        assert r.status_code == 202, r.text
        job_id = uuid.UUID(r.json()["id"])

        async def midway() -> bool:
            job = (await c.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
            return bool(job["done"]) and job["done"] < job["total"]

        await eventually(midway, what="the export to be part-way", every=0.05)
        os.kill(pid, signal.SIGKILL)
        first = await lethe_db.fetchrow("SELECT * FROM lethe.exports WHERE job_id = $1", job_id)
        assert first["status"] == "building" and first["upload_id"]

        _exporter("exporter-again", prepared, state_dir, api_url)

        async def ready() -> bool:
            job = (await c.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
            return job["status"] == "ready"

        await eventually(ready, what="the export to be redone", timeout=120)
        row = await lethe_db.fetchrow("SELECT * FROM lethe.exports WHERE job_id = $1", job_id)
        assert row["attempt"] == 2 and row["object_key"] != first["object_key"]
        uploads = await s3.list_multipart_uploads(
            Bucket="lethe-exports", Prefix=f"exports/{org.id}/"
        )
        assert not uploads.get("Uploads"), "the dead attempt's upload was left behind"

        mail = await find_record(
            prepared.kafka_bootstrap_servers,
            NOTIFICATIONS,
            lambda rec: rec.key == str(job_id).encode() and b"export_ready" in rec.value,
        )
        link = json.loads(mail)["payload"]["context"]["link"]
        got = await c.get(link.removeprefix(api_url), headers=org.headers)
        assert got.status_code == 200, got.text
    zf = zipfile.ZipFile(io.BytesIO(got.content))
    assert zf.testzip() is None
    messages = json.loads(zf.read("messages.json"))
    assert len(messages) == subject.messages
    assert len(json.loads(zf.read("conversations.json"))) == subject.conversations
