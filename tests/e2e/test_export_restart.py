"""An exporter killed mid-export: a new one redoes it and the result is complete and valid;
nothing truncated is ever marked ready, and the dead attempt's upload is aborted."""

from __future__ import annotations

import io
import json
import os
import signal
import uuid
import zipfile
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local import infra
from shared.events.topics import NOTIFICATIONS
from tests.conftest import Org
from tests.e2e.conftest import Services
from tests.helpers import eventually, find_record
from tests.seeding import seed_sample

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_url(services: Services) -> str:
    services.stop("exporter")  # this module runs its own exporters
    return services.url


async def test_a_killed_export_is_redone_whole(
    api_url: str,
    services: Services,
    org: Org,
    prepared: infra.Endpoints,
    platform_db: asyncpg.Pool,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    seeded = await seed_sample(
        platform_db,
        s3,
        org.id,
        users=2,
        conversations_per_user=40,
        messages_per_conversation=100,
        media_every=0,
    )
    subject = seeded.users[0]
    pid = services.start(
        "exporter-slow",
        "exporter",
        {"LETHE_EXPORT_RATE_LIMIT_ROWS": "2000", "LETHE_EXPORT_BATCH_ROWS": "500"},
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

        services.start("exporter-again", "exporter")

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
