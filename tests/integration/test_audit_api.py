"""`GET /v1/audit` on real Postgres: owners only, their own organisation, filters, keyset
pages that neither skip nor repeat a row."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.auditor import store
from services.intake import store as intake_store
from services.intake.http.audit import router
from services.intake.limits import AuthFailureTally
from shared.events import Actor, make_event
from shared.events.progress import JobCompleted, JobFailed
from tests.conftest import Org

pytestmark = pytest.mark.integration
ACTOR = Actor(kind="service", id="test")


@pytest.fixture
async def client(lethe_db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """Just the audit routes, on intake's auth, over the real database."""
    app = FastAPI()
    app.state.runtime = SimpleNamespace(
        pool=lethe_db,
        relay=SimpleNamespace(wake=lambda: None),
        auth_failures=AuthFailureTally(60, 1000),  # keyless refusals are counted there
    )
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
        yield c


async def _rows(pool: asyncpg.Pool, org: str, job: uuid.UUID, n: int) -> None:
    for i in range(n):
        payload: Any = (
            JobFailed(reason=f"r{i}")
            if i % 3 == 0
            else JobCompleted(done=i, total=i, verification={"ok": True})
        )
        await store.append(pool, make_event(payload, actor=ACTOR, org_id=org, job_id=job))


async def test_owners_page_through_their_own_trail(
    client: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    job, other_job = uuid.uuid4(), uuid.uuid4()
    await _rows(lethe_db, org.id, job, 7)
    await _rows(lethe_db, org.id, other_job, 2)
    await _rows(lethe_db, f"org-{uuid.uuid4().hex[:8]}", uuid.uuid4(), 3)  # someone else's

    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4, "job": str(job)}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/audit", params=params, headers=org.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [item["seq"] for item in page["items"]]
        assert all(i["org_id"] == org.id and i["job_id"] == str(job) for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(set(seen))

    r = await client.get(
        "/v1/audit", params={"action": "JobFailed", "org": org.id}, headers=org.headers
    )
    assert [i["action"] for i in r.json()["items"]] == ["JobFailed"] * 4  # 3 + 1
    assert r.json()["items"][0]["details"] == {"reason": "r0"}

    now = datetime.now(UTC)
    r = await client.get(
        "/v1/audit",
        params={"from": (now + timedelta(minutes=1)).isoformat()},
        headers=org.headers,
    )
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get(
        "/v1/audit",
        params={"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()},
        headers=org.headers,
    )
    assert len(r.json()["items"]) == 9


async def test_only_owners_of_the_org(
    client: httpx.AsyncClient, org: Org, lethe_db: asyncpg.Pool
) -> None:
    viewer = await intake_store.create_api_key(lethe_db, org.id, "viewer", "viewer")
    r = await client.get("/v1/audit", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403 and "owner role" in r.text
    r = await client.get("/v1/audit", params={"org": "someone-else"}, headers=org.headers)
    assert r.status_code == 403
    r = await client.get("/v1/audit")
    assert r.status_code == 401
    r = await client.get("/v1/audit", params={"cursor": "x"}, headers=org.headers)
    assert r.status_code == 400
    r = await client.get("/v1/audit", params={"from": "2026-01-01T00:00"}, headers=org.headers)
    assert r.status_code == 400 and "time zone" in r.text
