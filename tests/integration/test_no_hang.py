"""No silent hang, ever (issue 12, item 8): every erasure ends in a terminal state, or shows
a review item with the error. The eraser's domain runs in-process on the sample schema with
media objects (as tests/integration/test_exact_data.py drives it), chunks retried as the
consumer does and handed to `service.chunk_failed` when the retries are spent.

- The platform bucket disappears after planning: the chunks that move objects fail, the job
  still ends `soft_deleted` (or `purged` with a window of 0) with review items naming the
  error, never stuck in `erasing`.
- The bucket disappears after the soft delete: the purge cannot delete the quarantined
  objects; the job says why (a review item with the error) while the sweep retries, and is
  purged once the bucket is back.
- An unknown subject ends `not_found`, and a redelivered request leaves it there."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from services.eraser import service, store
from shared.events import Envelope
from shared.settings import LetheSettings
from tests.conftest import Org
from tests.erasing import InProcessEraser, eraser_for_sample, erasure_request
from tests.seeding import OverlapSeed, seed_overlap

pytestmark = pytest.mark.integration
TERMINAL = {"soft_deleted", "purged", "not_found", "failed", "ambiguous", "restored", "cancelled"}


async def _run(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    bucket: str,
) -> InProcessEraser:
    run = await eraser_for_sample(base_settings, lethe_db, platform_db, s3, batch_size=5)
    run.deps.bucket = bucket
    return run


def _request(org_id: str, email: str, window: int) -> Envelope:
    return erasure_request(
        org_id, {"email": email}, window=window, requester_email="dpo@example.test"
    )


async def _seeded(platform_db: asyncpg.Pool, s3: Any, org: Org, bucket: str) -> OverlapSeed:
    org2 = f"{org.id}-b"
    async with platform_db.acquire() as conn:
        for o in (org.id, org2):
            await conn.execute("INSERT INTO organisations (id, name) VALUES ($1, 'x')", o)
        return await seed_overlap(conn, org.id, org2, s3=s3, bucket=bucket)


async def _drop_bucket(s3: Any, bucket: str) -> None:
    keys: list[str] = []
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    if keys:
        await s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    await s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(("window", "ends"), [(7, "soft_deleted"), (0, "purged")])
async def test_a_bucket_gone_mid_job_ends_terminal_with_the_error_for_review(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
    window: int,
    ends: str,
) -> None:
    bucket = f"test-gone-{uuid.uuid4().hex[:10]}"
    seed = await _seeded(platform_db, s3, org, bucket)
    run = await _run(base_settings, lethe_db, platform_db, s3, bucket)
    env = _request(org.id, seed.email, window)
    assert env.job_id is not None
    await service.plan(env, run.deps)
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "erasing" and job.total > 0
    await _drop_bucket(s3, bucket)

    await run.drain(retries=3)

    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == ends, job
    assert job.status in TERMINAL
    soft = run.of("ErasureSoftDeleted")
    assert len(soft) == 1
    review = soft[0]["needs_review"]
    failed = [r for r in review if r.get("kind") == "chunk"]
    assert failed, review
    assert {r["table"] for r in failed} >= {"media_objects"}
    assert any("NoSuchBucket" in r["error"] for r in failed), failed
    verification = soft[0]["verification"]
    assert verification["ok"] is False
    assert "NoSuchBucket" in verification["objects_error"], verification
    unverified = [r for r in review if r.get("kind") == "objects_unverified"]
    assert len(unverified) == 1 and f"bucket {bucket!r}" in unverified[0]["error"]
    if ends == "purged":
        done = run.of("JobCompleted")
        assert len(done) == 1 and done[0]["verification"]["ok"] is False
        assert any("NoSuchBucket" in r.get("error", "") for r in done[0]["needs_review"])
    # Nothing left to run, nothing pending: the job is over.
    assert run.queue == []
    pending = await lethe_db.fetchval(
        "SELECT count(*) FROM lethe.erase_chunks WHERE job_id = $1 AND status = 'pending'",
        env.job_id,
    )
    assert pending == 0


async def test_an_unknown_subject_ends_not_found_and_a_redelivery_leaves_it_there(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    settings = LetheSettings(**base_settings)
    bucket = settings.platform_bucket
    await _seeded(platform_db, s3, org, bucket)
    run = await _run(base_settings, lethe_db, platform_db, s3, bucket)
    env = _request(org.id, f"nobody-{uuid.uuid4().hex[:6]}@example.com", window=7)
    assert env.job_id is not None
    await service.plan(env, run.deps)
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "not_found", job
    assert run.queue == [] and run.of("ErasurePlanned") == []
    assert run.of("SubjectNotFound") == [{"scope": "subject"}]
    mails = [p for p in run.of("SendEmail") if p["template"] == "job_not_found"]
    assert len(mails) == 1 and mails[0]["to"] == "dpo@example.test"
    await service.plan(env, run.deps)  # the request redelivered
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "not_found"
    assert len(run.of("SubjectNotFound")) == 1 and run.queue == []
    assert run.of("DuplicateIgnored") == [{"original_type": "ErasureRequested"}]


async def test_a_request_redelivered_after_planning_moves_the_job_on(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    bucket = f"test-redeliver-{uuid.uuid4().hex[:10]}"
    seed = await _seeded(platform_db, s3, org, bucket)
    run = await _run(base_settings, lethe_db, platform_db, s3, bucket)
    env = _request(org.id, seed.email, window=7)
    assert env.job_id is not None
    await service.plan(env, run.deps)
    first = len(run.queue)
    run.queue.clear()  # lost: the planner crashed before the chunks reached the broker
    await service.plan(env, run.deps)  # the request comes back
    assert len(run.queue) == first  # the pending wave published again
    await run.drain(retries=3)
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "soft_deleted", job
    assert run.of("ErasureSoftDeleted")[-1]["verification"]["ok"] is True
    # Reported once: the redelivered request sends the plan again under the same event id (in
    # case its first publish failed), which every consumer keeps once.
    assert len({e.event_id for e in run.events if e.type == "ErasurePlanned"}) == 1


async def test_a_bucket_gone_before_the_purge_shows_why_and_the_purge_retries(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    org: Org,
) -> None:
    bucket = f"test-purge-{uuid.uuid4().hex[:10]}"
    seed = await _seeded(platform_db, s3, org, bucket)
    run = await _run(base_settings, lethe_db, platform_db, s3, bucket)
    env = _request(org.id, seed.email, window=7)
    assert env.job_id is not None
    await service.plan(env, run.deps)
    await run.drain(retries=3)
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "soft_deleted" and job.needs_review == []
    await _drop_bucket(s3, bucket)

    with pytest.raises(service.PurgeIncomplete, match="NoSuchBucket"):
        await service.purge(run.deps, env.job_id)
    with pytest.raises(service.PurgeIncomplete):
        await service.purge(run.deps, env.job_id)  # the next sweep: said once
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "purging"
    [item] = job.needs_review
    assert item["kind"] == "purge_incomplete"
    assert f"bucket {bucket!r}" in item["error"] and "NoSuchBucket" in item["error"]

    await s3.create_bucket(Bucket=bucket)  # back (empty: its objects went with it)
    assert await service.purge(run.deps, env.job_id)
    job = await store.get_job(lethe_db, env.job_id)
    assert job is not None and job.status == "purged", job
    assert not [r for r in job.needs_review if r["kind"] == "purge_incomplete"]
    assert run.of("JobCompleted")[-1]["needs_review"] == job.needs_review
