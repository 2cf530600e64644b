"""A scheduled retention run through the normal job pipeline, services as processes: the
scheduler (here with an injected clock, in this process) writes one job per category with
its outbox row; intake's relay publishes it, the eraser deletes what is past the policy, and
intake follows the job to completed. Rows older than the cutoff are gone, newer ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local.sample.seed import seed_org
from services.intake.scheduler import Scheduler
from shared.datamap import load_datamap
from tests.conftest import Org
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
BUCKET = "lethe-platform"
DATAMAP = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"


async def test_scheduled_run_erases_past_the_policy_through_the_pipeline(
    client: httpx.AsyncClient,
    org: Org,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    async with platform_db.acquire() as conn:
        await seed_org(
            conn,
            s3,
            BUCKET,
            org.id,
            users=2,
            conversations_per_user=1,
            messages_per_conversation=16,
            media_every=2,
            history=True,
        )
    r = await client.put(
        f"/v1/orgs/{org.id}/retention", json={"logs": 10, "messages": 60}, headers=org.headers
    )
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    clock = {"now": now - timedelta(days=1)}
    scheduler = Scheduler(
        lethe_db,
        load_datamap(DATAMAP),
        cron="0 3 * * *",
        poll_seconds=1,
        reminder_days=7,
        public_mode=False,
        public_days=7,
        name=f"e2e-{org.id}",
        orgs=[org.id],
        clock=lambda: clock["now"],
    )
    await scheduler.tick()  # the baseline
    clock["now"] = now
    assert (await scheduler.tick()).jobs == 3  # logs, messages, metrics

    async def finished() -> list[dict[str, Any]] | None:
        r = await client.get("/v1/jobs?type=retention", headers=org.headers)
        jobs = r.json()["jobs"]
        return jobs if len(jobs) == 3 and all(j["status"] == "completed" for j in jobs) else None

    jobs = await eventually(finished, timeout=90, what="the three retention jobs to complete")
    by_category = {j["result"]["verification"]["category"]: j for j in jobs}
    assert all(j["result"]["verification"]["ok"] for j in jobs)
    logs_cutoff = datetime.fromisoformat(by_category["logs"]["result"]["verification"]["cutoff"])
    msgs_cutoff = datetime.fromisoformat(
        by_category["messages"]["result"]["verification"]["cutoff"]
    )
    logs = [
        r[0]
        for r in await platform_db.fetch(
            "SELECT created_at FROM activity_logs WHERE org_id = $1", org.id
        )
    ]
    assert logs and min(logs) >= logs_cutoff
    assert len(logs) == sum(
        1 for d in range(120) if now - timedelta(days=d, hours=1) >= logs_cutoff
    )
    msgs = [
        r[0]
        for r in await platform_db.fetch(
            "SELECT m.created_at FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE c.org_id = $1",
            org.id,
        )
    ]
    assert msgs and min(msgs) >= msgs_cutoff and len(msgs) < 32
    assert by_category["messages"]["done"] == 32 - len(msgs)
