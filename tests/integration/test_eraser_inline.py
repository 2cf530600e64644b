"""A small erasure (at most one batch of rows) runs its chunks where it was planned, with the
same checkpoints, reports and verification as through the task topic; a chunk that fails
there goes to the task topic and the job still finishes. Real Postgres and S3; chunks that
are published go to an in-memory queue the test drains."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from deploy.local.sample.seed import SeededOrg, seed_org
from services.eraser import service, store
from services.eraser.deps import EraserDeps
from tests.conftest import Org
from tests.helpers import eraser_deps
from tests.integration.test_eraser_lifecycle import (
    BUCKET,
    Harness,
    live_counts,
    present,
    request,
    snapshot,
)

pytestmark = pytest.mark.integration
NOTHING_LEFT = {"users": 0, "conversations": 0, "messages": 0, "payments": 0, "signups": 0}


@pytest.fixture(scope="module")
async def small_deps(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> EraserDeps:
    deps: EraserDeps = await eraser_deps(base_settings, lethe_db, platform_db, s3, batch_size=1000)
    assert deps.inline_small_jobs  # the default
    return deps


@pytest.fixture
def h(small_deps: EraserDeps) -> Harness:
    harness = Harness(small_deps)
    small_deps.emit, small_deps.publish_chunk = harness.emit, harness.publish
    return harness


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    async with platform_db.acquire() as conn:
        return await seed_org(
            conn, s3, BUCKET, org.id, users=3, conversations_per_user=2,
            messages_per_conversation=5, media_every=3,
        )  # fmt: skip


async def test_a_small_job_runs_in_place_and_is_purged_and_verified(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, s3: Any
) -> None:
    subject, others = seeded.users[0], seeded.users[1:]
    before_others = [await snapshot(platform_db, o.id) for o in others]
    env = request(seeded.org_id, subject.email, window=0)
    await service.plan(env, h.deps)
    assert h.queue == []  # no chunk went through the task topic
    assert env.job_id is not None
    j = await store.get_job(h.deps.lethe, env.job_id)
    assert j is not None and j.status == "purged" and j.done == j.total
    assert j.total == seeded.rows_of(subject)
    assert await live_counts(platform_db, subject.id, subject.email) == NOTHING_LEFT
    assert await present(s3, subject.object_keys) == []
    assert [await snapshot(platform_db, o.id) for o in others] == before_others
    # A report per chunk, as on the task topic, each chunk's once.
    chunks = await h.deps.lethe.fetchval(
        "SELECT count(*) FROM lethe.erase_chunks WHERE job_id = $1 AND status = 'done' "
        "AND reported",
        j.job_id,
    )
    batches = h.of("BatchErased")
    assert len(batches) == chunks >= 3 and batches[-1]["done"] == j.total
    soft, done = h.of("ErasureSoftDeleted")[0], h.of("JobCompleted")[0]
    assert soft["verification"]["ok"] is True and soft["verification"]["scan"]["ok"] is True
    assert done["verification"]["ok"] is True and done["verification"]["key_destroyed"] is True
    assert done["verification"]["scan"]["columns_scanned"] > 0


async def test_a_chunk_failing_in_place_goes_to_the_task_topic(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    fn = f"lethe_test_refuse_{uuid.uuid4().hex[:8]}"
    await platform_db.execute(
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF OLD.author_id = {int(subject.id)} THEN RAISE EXCEPTION 'held'; END IF; "
        "RETURN OLD; END $$;"
        f"CREATE TRIGGER {fn} BEFORE DELETE ON messages FOR EACH ROW EXECUTE FUNCTION {fn}()"
    )
    env = request(seeded.org_id, subject.email, window=0)
    try:
        await service.plan(env, h.deps)
    finally:
        await platform_db.execute(f"DROP TRIGGER {fn} ON messages; DROP FUNCTION {fn}()")
    # The messages' chunk failed here: handed to the task topic, the job waiting for it.
    assert [e.payload["table"] for e in h.queue] == ["messages"]
    assert env.job_id is not None
    j = await store.get_job(h.deps.lethe, env.job_id)
    assert j is not None and j.status == "erasing"
    await h.run_chunks()  # the task topic's consumer, the refusal gone
    j = await store.get_job(h.deps.lethe, env.job_id)
    assert j is not None and j.status == "purged" and j.done == j.total
    assert await live_counts(platform_db, subject.id, subject.email) == NOTHING_LEFT
    assert h.of("JobCompleted")[0]["verification"]["ok"] is True
