"""The data map's `hide` step on real Postgres and S3 (docs/datamap.md, Hiding the subject at
once): the subject's own row is disabled before any chunk runs, and every way back (restore
in the window, a cancel before the row's chunk, a cancel after it) gives the rows back
exactly as they were. A map without `hide` erases as before."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

import asyncpg
import pytest

from deploy.local.sample.seed import SeededOrg, SeededUser
from services.eraser import service, store
from services.eraser.domain import HIDE_CHUNK
from shared.datamap import load_datamap
from shared.events import Actor, Envelope, make_event
from shared.events.jobs import CancelErasure, Item, RestoreErasure
from shared.settings import LetheSettings
from tests.conftest import Org
from tests.erasing import InProcessEraser, eraser_for_sample, erasure_request, in_process_eraser
from tests.seeding import seed_sample

pytestmark = pytest.mark.integration
BUCKET = "lethe-platform"
# The module (the package's `plan` is its function of that name).
plan_module = importlib.import_module("services.eraser.service.plan")
# The subject's rows in the tables whose rows the erasure deletes or restores.
ROWS = {
    "users": "SELECT row_to_json(t)::text FROM users t WHERE id = $1",
    "conversations": "SELECT row_to_json(t)::text FROM conversations t WHERE user_id = $1",
    "messages": "SELECT row_to_json(t)::text FROM messages t WHERE author_id = $1",
}


@pytest.fixture
async def seeded(org: Org, platform_db: asyncpg.Pool, s3: Any) -> SeededOrg:
    return await seed_sample(
        platform_db,
        s3,
        org.id,
        bucket=BUCKET,
        users=2,
        conversations_per_user=2,
        messages_per_conversation=4,
        media_every=0,
    )


@pytest.fixture
async def run(
    base_settings: dict[str, Any], lethe_db: asyncpg.Pool, platform_db: asyncpg.Pool, s3: Any
) -> InProcessEraser:
    return await eraser_for_sample(base_settings, lethe_db, platform_db, s3, batch_size=2)


async def rows_of(platform: asyncpg.Pool, user: SeededUser) -> dict[str, set[str]]:
    return {t: {r[0] for r in await platform.fetch(sql, user.id)} for t, sql in ROWS.items()}


async def disabled(platform: asyncpg.Pool, user: SeededUser) -> bool | None:
    flag: bool | None = await platform.fetchval("SELECT disabled FROM users WHERE id = $1", user.id)
    return flag


def job_of(env: Envelope) -> uuid.UUID:
    assert env.job_id is not None
    return env.job_id


def command(src: Envelope, payload: CancelErasure | RestoreErasure) -> Envelope:
    actor = Actor(kind="test", id="t")
    return make_event(payload, actor=actor, job_id=src.job_id, org_id=src.org_id)


async def hidden_at(lethe: asyncpg.Pool, job_id: uuid.UUID | None) -> Any:
    return await lethe.fetchval("SELECT hidden_at FROM lethe.erase_tasks WHERE job_id = $1", job_id)


async def test_hidden_before_chunks_and_restored_byte_identical(
    run: InProcessEraser, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject, other = seeded.users[0], seeded.users[1]
    before, other_before = await rows_of(platform_db, subject), await rows_of(platform_db, other)
    env = erasure_request(seeded.org_id, {"email": subject.email})
    await service.plan(env, run.deps)

    # Before any chunk ran: the account is disabled, said so, and recorded when.
    assert run.queue and not await run.deps.lethe.fetchval(
        "SELECT count(*) FROM lethe.erase_chunks WHERE job_id = $1 AND status <> 'pending'",
        env.job_id,
    )
    assert await disabled(platform_db, subject) is True
    assert await disabled(platform_db, other) is False
    [event] = run.of("SubjectHidden")
    assert event["table"] == "users" and event["rows"] == 1
    at = await hidden_at(run.deps.lethe, env.job_id)
    assert at is not None and at.isoformat() == event["hidden_at"].replace("Z", "+00:00")
    types = [e.type for e in run.events]
    assert types.index("SubjectHidden") < types.index("ErasurePlanned")

    await run.drain()
    job = await store.get_job(run.deps.lethe, job_of(env))
    assert job is not None and job.status == "soft_deleted"
    assert job.done == job.total == seeded.rows_of(subject)
    assert await rows_of(platform_db, subject) == {t: set() for t in ROWS}
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, job.job_id) == job.done  # the hide: apart

    # Restore in the window: every row back as it was, the flag at its original value.
    await service.restore(command(env, RestoreErasure()), run.deps)
    [restored] = run.of("JobRestored")
    assert restored["fully_restored"] is True and restored["rows"] == job.done
    assert await rows_of(platform_db, subject) == before
    assert await disabled(platform_db, subject) is False
    assert await rows_of(platform_db, other) == other_before
    async with platform_db.acquire() as conn:
        assert await store.held_chunks(conn, job.job_id) == []


async def test_cancel_before_the_row_is_erased_shows_it_again(
    run: InProcessEraser, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    """Cancelled while the plan's first chunks run: the subject is not hidden any more, and
    a restore of what was done gives everything back."""
    subject = seeded.users[0]
    before = await rows_of(platform_db, subject)
    env = erasure_request(seeded.org_id, {"email": subject.email})
    await service.plan(env, run.deps)
    assert await disabled(platform_db, subject) is True
    run.queue[1:] = []
    await run.drain()  # one chunk of the first wave, not the user row (its wave is last)
    await service.cancel(command(env, CancelErasure()), run.deps)
    assert run.of("JobCancelled")
    assert await disabled(platform_db, subject) is False  # shown again at the cancel
    async with platform_db.acquire() as conn:
        assert await store.hide_record(conn, job_of(env), HIDE_CHUNK) is None

    await service.restore(command(env, RestoreErasure()), run.deps)
    assert run.of("JobRestored")[-1]["fully_restored"] is True
    assert await rows_of(platform_db, subject) == before


async def test_restoring_the_user_row_alone_brings_back_its_flag(
    run: InProcessEraser, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    """The user row's chunk holds the row as it was hidden: restoring that row (an item)
    puts it back, then the value the hide replaced, and the rest stays erased."""
    subject = seeded.users[0]
    before = await rows_of(platform_db, subject)
    env = erasure_request(seeded.org_id, {"email": subject.email})
    await service.plan(env, run.deps)
    await run.drain()
    assert await disabled(platform_db, subject) is None  # gone with its chunk
    item = Item(table="users", key=str(subject.id))
    await service.restore(command(env, RestoreErasure(items=[item])), run.deps)
    [restored] = run.of("JobRestored")
    assert restored["rows"] == 1 and restored["needs_review"] == []
    assert await rows_of(platform_db, subject) == {
        **before,
        "conversations": set(),
        "messages": set(),
    }
    assert await disabled(platform_db, subject) is False
    async with platform_db.acquire() as conn:
        assert await store.hide_record(conn, job_of(env), HIDE_CHUNK) is None


async def test_a_map_without_hide_erases_as_before(
    base_settings: dict[str, Any],
    lethe_db: asyncpg.Pool,
    platform_db: asyncpg.Pool,
    s3: Any,
    seeded: SeededOrg,
) -> None:
    dm = load_datamap(LetheSettings(**base_settings).datamap_path)
    users = dm.tables["users"].model_copy(update={"hide": None})
    dm.tables["users"] = users
    run = await in_process_eraser(base_settings, lethe_db, platform_db, dm, s3=s3)
    subject = seeded.users[0]
    env = erasure_request(seeded.org_id, {"email": subject.email})
    await service.plan(env, run.deps)
    assert run.queue and await disabled(platform_db, subject) is False
    assert run.of("SubjectHidden") == [] and await hidden_at(lethe_db, env.job_id) is None
    await run.drain()
    job = await store.get_job(lethe_db, job_of(env))
    assert job is not None and job.status == "soft_deleted" and job.done == job.total
    assert await rows_of(platform_db, subject) == {t: set() for t in ROWS}


async def test_a_redelivered_plan_hides_once_and_keeps_the_original_values(
    run: InProcessEraser,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan crashed after the hide (before its chunks were recorded): the redelivered
    request finds the hide's record, does not hide again (which would record `disabled =
    true` as the original), and a restore still gives the row back as it was."""
    subject = seeded.users[0]
    before = await rows_of(platform_db, subject)
    env = erasure_request(seeded.org_id, {"email": subject.email})
    record_plan = plan_module._record_plan

    async def crash(*args: Any) -> None:
        raise ConnectionError("the eraser died here")

    monkeypatch.setattr(plan_module, "_record_plan", crash)
    with pytest.raises(ConnectionError):
        await service.plan(env, run.deps)
    assert await disabled(platform_db, subject) is True
    monkeypatch.setattr(plan_module, "_record_plan", record_plan)
    await service.plan(env, run.deps)  # redelivered
    await service.plan(env, run.deps)  # and once more, after the plan
    assert len({e.event_id for e in run.events if e.type == "SubjectHidden"}) == 1
    await run.drain()
    await service.restore(command(env, RestoreErasure()), run.deps)
    assert run.of("JobRestored")[-1]["fully_restored"] is True
    assert await rows_of(platform_db, subject) == before


async def test_a_plan_that_gives_up_shows_the_row_again(
    run: InProcessEraser, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    before = await rows_of(platform_db, subject)
    env = erasure_request(seeded.org_id, {"email": subject.email})
    await service.plan(env, run.deps)
    assert await disabled(platform_db, subject) is True
    await service.give_up(env, run.deps, "retries exhausted")
    assert run.of("JobFailed") and await disabled(platform_db, subject) is False
    assert await rows_of(platform_db, subject) == before
