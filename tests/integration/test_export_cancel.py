"""Cancel of an export on real Postgres, Kafka and S3 (intake and a slowed-down exporter in
this process): a running export stops between batches, ends `cancelled` and leaves nothing in
the exports bucket (no object, no unfinished multipart upload); a ready one is refused with
409 and the reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local.sample.seed import SeededOrg, seed_org
from services.exporter.app import create_app as create_exporter
from services.exporter.settings import ExporterSettings
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.integration
EXPORTS = "lethe-exports"


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    http = create_http(IntakeSettings(**base_settings, submit_burst=1000))
    # Slow: 10 rows a batch, 40 rows a second, so a cancel lands mid-export.
    exporter = create_exporter(
        ExporterSettings(
            **base_settings,
            export_batch_rows=10,
            export_rate_limit_rows=40,
            public_api_url="http://intake",
        )
    )
    async with exporter, http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    async with platform_db.acquire() as conn:
        return await seed_org(
            conn,
            s3,
            "lethe-platform",
            org.id,
            users=2,
            conversations_per_user=3,
            messages_per_conversation=20,
            media_every=50,
        )


async def _status(api: httpx.AsyncClient, org: Org, job_id: str, *states: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
        assert job["status"] != "failed", job
        return job if job["status"] in states else None

    return await eventually(probe, timeout=120, what=f"export {job_id} in {states}")


async def _left_in_bucket(s3: Any, prefix: str) -> tuple[list[str], list[str]]:
    objects = await s3.list_objects_v2(Bucket=EXPORTS, Prefix=prefix)
    uploads = await s3.list_multipart_uploads(Bucket=EXPORTS, Prefix=prefix)
    return (
        [o["Key"] for o in objects.get("Contents", [])],
        [u["Key"] for u in uploads.get("Uploads", [])],
    )


async def test_a_running_export_stops_between_batches_and_leaves_nothing(
    api: httpx.AsyncClient,
    org: Org,
    seeded: SeededOrg,
    lethe_db: asyncpg.Pool,
    s3: Any,
) -> None:
    r = await api.post(
        "/v1/requests",
        headers=org.headers,
        json={"type": "export", "subject": {"email": seeded.users[0].email}},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    running = await _status(api, org, job_id, "running", "ready")
    assert running["status"] == "running"
    prefix = f"exports/{org.id}/{job_id}/"
    _, uploads = await _left_in_bucket(s3, prefix)
    assert uploads, "the export's multipart upload is under way"

    r = await api.post(
        f"/v1/jobs/{job_id}/cancel", headers=org.headers, json={"reason": "asked to stop"}
    )
    assert r.status_code == 202, r.text
    job = await _status(api, org, job_id, "cancelled", "ready")
    assert job["status"] == "cancelled"
    # Stopped between batches, well before the end.
    row = await lethe_db.fetchrow(
        "SELECT status, wrapped_key, upload_id FROM lethe.exports WHERE job_id = $1",
        uuid.UUID(job_id),
    )
    assert row is not None and row["status"] == "cancelled"
    assert row["wrapped_key"] is None and row["upload_id"] is None
    events = (await api.get(f"/v1/jobs/{job_id}/events", headers=org.headers)).json()["events"]
    cancelled = [e for e in events if e["type"] == "JobCancelled"]
    assert len(cancelled) == 1
    assert 0 < cancelled[0]["details"]["done"] < cancelled[0]["details"]["total"]
    assert "ExportReady" not in [e["type"] for e in events]
    assert await _left_in_bucket(s3, prefix) == ([], [])

    # Cancelled is final: a second cancel is refused, naming the state.
    again = await api.post(f"/v1/jobs/{job_id}/cancel", headers=org.headers)
    assert again.status_code == 409 and "cancelled" in again.text


async def test_a_ready_export_cannot_be_cancelled_and_the_409_says_why(
    api: httpx.AsyncClient, org: Org, seeded: SeededOrg, s3: Any
) -> None:
    r = await api.post(
        "/v1/requests",
        headers=org.headers,
        json={"type": "export", "subject": {"email": seeded.users[1].email}, "format": "json"},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    await _status(api, org, job_id, "ready")

    refused = await api.post(f"/v1/jobs/{job_id}/cancel", headers=org.headers)
    assert refused.status_code == 409
    detail = refused.text
    assert "ready" in detail and "revoke the download link" in detail
    # The export is untouched: still ready, its file still there.
    job = (await api.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    assert job["status"] == "ready"
    objects, _ = await _left_in_bucket(s3, f"exports/{org.id}/{job_id}/")
    assert len(objects) == 1
