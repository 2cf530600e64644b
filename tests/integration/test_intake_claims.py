"""README claims about intake's API, on real Postgres, Kafka and S3 (intake in this process):
the submission rate limit answers 429 with Retry-After, a web form without its CSRF token is
refused with 403 and changes nothing, and /readyz names Kafka, Postgres and the bucket."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.intake import store
from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.integration
BURST = 3  # submissions per key at once; then one per 20 s
RATE_PER_MINUTE = 3
# An exports bucket of this module's own, created by the readiness test (the exporter creates
# it in a deployment): intake is not ready while the bucket its downloads read is missing.
EXPORTS_BUCKET = f"test-exports-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def api(base_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(
        **base_settings,
        submit_burst=BURST,
        submit_rate_per_minute=RATE_PER_MINUTE,
        exports_bucket=EXPORTS_BUCKET,
    )
    http = create_http(settings)
    async with http.router.lifespan_context(http):
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


async def _jobs(db: asyncpg.Pool, org_id: str) -> int:
    n: int = await db.fetchval("SELECT count(*) FROM lethe.jobs WHERE org_id = $1", org_id)
    return n


def _erasure(n: int) -> dict[str, Any]:
    return {
        "type": "erasure",
        "subject": {"email": f"ann{n}@example.com"},
        "request_id": f"rate-{uuid.uuid4()}",
    }


async def test_a_key_past_its_burst_gets_429_with_retry_after_and_nothing_is_written(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    for n in range(BURST):
        r = await api.post("/v1/requests", json=_erasure(n), headers=org.headers)
        assert r.status_code == 202, r.text
    refused = await api.post("/v1/requests", json=_erasure(BURST), headers=org.headers)
    assert refused.status_code == 429, refused.text
    # One token every 60/RATE_PER_MINUTE seconds: the client is told to wait about that long.
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60 / RATE_PER_MINUTE
    assert "retry later" in refused.json()["detail"]
    assert await _jobs(lethe_db, org.id) == BURST
    # The bucket is per key: another key of the same org is not held back.
    other = await store.create_api_key(lethe_db, org.id, "owner", "second owner")
    r = await api.post(
        "/v1/requests", json=_erasure(BURST + 1), headers={"Authorization": f"Bearer {other}"}
    )
    assert r.status_code == 202, r.text
    assert await _jobs(lethe_db, org.id) == BURST + 1


async def test_a_web_form_without_its_csrf_token_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    key = await store.create_api_key(lethe_db, org.id, "owner", "web owner")
    who = await store.caller_for_key(lethe_db, key)
    assert who is not None
    token, csrf = await store.open_session(lethe_db, who.key_id, timedelta(hours=1))
    form = {"type": "erasure", "scope": "subject", "email": "csrf@example.com"}
    keys_before = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.api_keys WHERE org_id = $1", org.id
    )
    try:
        api.cookies.set("lethe_session", token)
        for forged in ({}, {"csrf": "not-the-token"}, {"csrf": csrf[:-1]}):
            r = await api.post("/ui/submit", data={**form, **forged})
            assert r.status_code == 403, r.text
            assert "did not come from Lethe" in r.text
            r = await api.post("/ui/keys", data={"role": "owner", "name": "forged", **forged})
            assert r.status_code == 403, r.text
            r = await api.post("/ui/logout", data=forged)
            assert r.status_code == 403, r.text
        assert await _jobs(lethe_db, org.id) == 0
        assert (
            await lethe_db.fetchval("SELECT count(*) FROM lethe.api_keys WHERE org_id = $1", org.id)
            == keys_before
        )
        # The session survived the forged logout: the same form with its token goes through.
        ok = await api.post("/ui/submit", data={**form, "csrf": csrf})
        assert ok.status_code == 303, ok.text
        assert await _jobs(lethe_db, org.id) == 1
    finally:
        api.cookies.clear()


async def test_readyz_names_kafka_postgres_and_the_exports_bucket(
    api: httpx.AsyncClient, s3: Any
) -> None:
    async def readyz(status: int, bucket_ok: bool) -> dict[str, Any] | None:
        r = await api.get("/readyz")
        body = dict(r.json())
        checks = body["checks"]
        settled = checks.get("kafka") == "ok" and (checks.get(bucket) == "ok") == bucket_ok
        return body if r.status_code == status and settled else None

    bucket = f"s3:{EXPORTS_BUCKET}"
    down = await eventually(lambda: readyz(503, False), timeout=60, what="unready, naming it")
    assert down["status"] == "unready"
    assert down["checks"]["postgres"] == "ok"
    assert down["checks"][bucket] == (
        f"BucketMissing: bucket '{EXPORTS_BUCKET}' does not exist at {s3.meta.endpoint_url}"
    )
    await s3.create_bucket(Bucket=EXPORTS_BUCKET)
    try:
        up = await eventually(lambda: readyz(200, True), timeout=30, what="ready")
        assert up == {"status": "ready", "checks": {"kafka": "ok", "postgres": "ok", bucket: "ok"}}
    finally:
        await s3.delete_bucket(Bucket=EXPORTS_BUCKET)
