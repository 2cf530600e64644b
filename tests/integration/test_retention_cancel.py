"""Cancelling a retention job (issue 13 item 6) on real Postgres and S3: the cancel is
recorded by the eraser's cancel listener (`request_cancel`) while the run works; the run
stops before its next batch and the job ends `cancelled`, what went gone and the rest still
there. A cancel before the run starts stops it at once; one that arrives after the run has
finished is refused with the reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.local.parts.common import free_port
from deploy.local.sample.seed import seed_org
from services.eraser.app import create_app as create_eraser
from services.eraser.deps import EraserDeps
from services.eraser.service import retention
from services.eraser.settings import EraserSettings
from services.intake import store as intake_store
from services.intake.app import create_http
from services.intake.scheduler import Scheduler
from services.intake.settings import IntakeSettings
from shared.datamap import load_datamap
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import CancelErasure
from shared.events.retention import RetentionRequested
from tests.conftest import Org
from tests.helpers import eraser_deps, eventually

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
DATAMAP = Path(__file__).resolve().parents[2] / "deploy/local/sample/datamap.yaml"
NOW = datetime.now(UTC).replace(microsecond=0)
ACTOR = Actor(kind="test", id="t")


@pytest.fixture(scope="module")
async def deps(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> AsyncIterator[EraserDeps]:
    yield await eraser_deps(base_settings, lethe_db, platform_db, s3, batch_size=10)


async def new_org(lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any) -> str:
    org_id = f"rc-{uuid.uuid4().hex[:10]}"
    await intake_store.create_org(lethe_db, org_id, f"Retention cancel {org_id}")
    async with platform_db.acquire() as conn:
        await seed_org(
            conn,
            s3,
            BUCKET,
            org_id,
            users=1,
            conversations_per_user=1,
            messages_per_conversation=2,
            media_every=0,
            payments_per_user=0,
            newsletter=False,
            history=True,  # 120 activity logs, one a day
        )
    return org_id


def jobs(org_id: str) -> tuple[Envelope, Envelope]:
    job_id = uuid.uuid4()
    run = make_event(
        RetentionRequested(category="logs", days=30, cutoff=NOW - timedelta(days=30)),
        actor=ACTOR,
        job_id=job_id,
        org_id=org_id,
    )
    cancel = make_event(
        CancelErasure(reason="wrong policy"), actor=ACTOR, job_id=job_id, org_id=org_id
    )
    return run, cancel


class Seen:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.events if e.type == event_type]


async def old_logs(platform_db: asyncpg.Pool, org_id: str) -> int:
    n: int = await platform_db.fetchval(
        "SELECT count(*) FROM activity_logs WHERE org_id = $1 AND created_at < $2",
        org_id,
        NOW - timedelta(days=30),
    )
    return n


async def status(lethe_db: asyncpg.Pool, job_id: Any) -> str | None:
    s: str | None = await lethe_db.fetchval(
        "SELECT status FROM lethe.retention_runs WHERE job_id = $1", job_id
    )
    return s


async def test_cancel_while_running_stops_between_batches(
    deps: EraserDeps, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    run, cancel = jobs(org_id)
    before = await old_logs(platform_db, org_id)
    seen = Seen()

    async def emit(_topic: str, env: Envelope) -> None:
        seen.events.append(env)
        if env.type == "BatchErased" and len(seen.of("BatchErased")) == 2:
            await retention.request_cancel(cancel, deps)  # the listener, mid-run

    deps.emit = emit
    await retention.run_job(run, deps, public_mode=False)

    # Two batches went, then the run stopped: the job is cancelled, not completed.
    assert len(seen.of("BatchErased")) == 2 and not seen.of("JobCompleted")
    assert seen.of("JobCancelled") == [{"done": 20, "total": before}]
    assert await status(lethe_db, run.job_id) == "cancelled"
    assert await old_logs(platform_db, org_id) == before - 20
    # The cancel's own turn on the job topic comes later: nothing more to say or do.
    assert await retention.cancel_arrived(cancel, deps)
    assert not seen.of("CommandRefused")
    # A redelivered run does not start again.
    await retention.run_job(run, deps, public_mode=False)
    assert await old_logs(platform_db, org_id) == before - 20


async def test_cancel_before_the_run_starts_stops_it_at_once(
    deps: EraserDeps, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    run, cancel = jobs(org_id)
    before = await old_logs(platform_db, org_id)
    seen = Seen()

    async def emit(_topic: str, env: Envelope) -> None:
        seen.events.append(env)

    deps.emit = emit
    await retention.request_cancel(cancel, deps)
    await retention.run_job(run, deps, public_mode=False)
    assert seen.of("JobCancelled") == [{"done": 0, "total": 0}]
    assert not seen.of("BatchErased") and not seen.of("JobCompleted")
    assert await status(lethe_db, run.job_id) == "cancelled"
    assert await old_logs(platform_db, org_id) == before > 0


async def test_cancel_after_the_run_finished_is_refused_with_the_reason(
    deps: EraserDeps, lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> None:
    org_id = await new_org(lethe_db, platform_db, s3)
    run, cancel = jobs(org_id)
    seen = Seen()

    async def emit(_topic: str, env: Envelope) -> None:
        seen.events.append(env)

    deps.emit = emit
    await retention.run_job(run, deps, public_mode=False)
    assert len(seen.of("JobCompleted")) == 1 and await old_logs(platform_db, org_id) == 0
    await retention.request_cancel(cancel, deps)  # too late: not recorded
    assert not await retention.cancel_requested(deps, run.job_id)
    assert await retention.cancel_arrived(cancel, deps)
    refused = seen.of("CommandRefused")
    assert len(refused) == 1 and refused[0]["command"] == "CancelErasure"
    assert "had completed before the cancel reached it" in refused[0]["reason"]
    assert await status(lethe_db, run.job_id) == "completed"


# ------------------------------------------------------------------ through the API and Kafka


def _free_port() -> int:
    return free_port()  # this xdist worker's own block (deploy/local/parts/common.py)


async def test_cancel_through_the_api_ends_the_job_cancelled_then_409(
    base_settings: dict[str, Any],
    org: Org,
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
) -> None:
    """Intake (API, relay, progress consumer) and the eraser in this process on real Kafka:
    the scheduler records the org's retention jobs, the eraser works through the logs
    slowly (rate limit), `POST /v1/jobs/{id}/cancel` stops it, the job ends cancelled with
    rows left, and a second cancel is refused with 409 naming the state."""
    async with platform_db.acquire() as conn:
        await seed_org(
            conn,
            s3,
            BUCKET,
            org.id,
            users=1,
            conversations_per_user=1,
            messages_per_conversation=2,
            media_every=0,
            payments_per_user=0,
            newsletter=False,
            history=True,
        )
    before = await old_logs(platform_db, org.id)
    http = create_http(IntakeSettings(**base_settings, scheduler_enabled=False))
    eraser = create_eraser(
        EraserSettings(
            **base_settings,
            ops_port=_free_port(),
            erase_batch_size=3,
            erase_rate_limit_rows=6,
            shutdown_grace_seconds=5,
        )
    )
    now = datetime.now(UTC)
    scheduler = Scheduler(
        lethe_db,
        load_datamap(DATAMAP),
        cron="0 3 * * *",
        poll_seconds=1,
        reminder_days=7,
        public_mode=False,
        public_days=7,
        name=f"cancel-{org.id}",
        orgs=[org.id],
        clock=lambda: now,
    )
    await scheduler.tick(now - timedelta(days=1))  # the baseline
    assert (await scheduler.tick(now)).jobs == 3
    job_id = await lethe_db.fetchval(
        "SELECT id FROM lethe.jobs WHERE org_id = $1 AND type = 'retention' "
        "AND request_id LIKE '%logs%'",
        org.id,
    )
    assert job_id is not None
    url = f"/v1/jobs/{job_id}"
    transport = httpx.ASGITransport(app=http)
    async with (
        http.router.lifespan_context(http),
        eraser,
        httpx.AsyncClient(transport=transport, base_url="http://intake") as api,
    ):

        async def working() -> dict[str, Any] | None:
            job = (await api.get(url, headers=org.headers)).json()
            return job if job["status"] == "running" and job.get("done") else None

        await eventually(working, timeout=90, what="the logs job to be running")
        r = await api.post(f"{url}/cancel", json={"reason": "wrong policy"}, headers=org.headers)
        assert r.status_code == 202, r.text

        async def ended() -> dict[str, Any] | None:
            job = (await api.get(url, headers=org.headers)).json()
            return job if job["status"] not in ("pending", "running") else None

        job = await eventually(ended, timeout=60, what="the logs job to end")
        assert job["status"] == "cancelled", job
        left = await old_logs(platform_db, org.id)
        assert 0 < left < before  # stopped between batches: some went, the rest is there
        r = await api.post(f"{url}/cancel", json={}, headers=org.headers)
        assert r.status_code == 409 and "cancelled" in r.json()["detail"], r.text
