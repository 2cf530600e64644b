"""Cancelling a retention job (issue 13 item 6) on real Postgres and S3: the cancel is
recorded by the eraser's cancel listener (`request_cancel`) while the run works; the run
stops before its next batch and the job ends `cancelled`, what went gone and the rest still
there. A cancel before the run starts stops it at once; one that arrives after the run has
finished is refused with the reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from deploy.local.sample.seed import seed_org
from services.eraser import retention
from services.eraser.domain import EraserDeps
from services.intake import store as intake_store
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import CancelErasure
from shared.events.retention import RetentionRequested
from tests.helpers import eraser_deps

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
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
