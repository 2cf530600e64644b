"""Fencing and end states on real Postgres and S3: a chunk, cancel, restore and the purge of
one job never overlap, and a restored job stays restored.

Interleavings are forced with the databases' own locks (a table lock holds a restore inside
its fence, a row lock holds the purge inside its fence) and observed in `pg_locks`, so each
test exercises the race it names, not whichever order the scheduler happened to pick.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from deploy.local.sample.seed import SeededOrg
from services.eraser import fence, service, store
from services.eraser.objects import quarantine_prefix
from shared.events import Envelope
from shared.events.jobs import CancelErasure, Item, RestoreErasure
from tests.helpers import eventually
from tests.integration import test_eraser_lifecycle as base
from tests.integration.test_eraser_lifecycle import (
    BUCKET,
    Harness,
    _list,
    command,
    job,
    live_counts,
    present,
    request,
    snapshot,
)

pytestmark = pytest.mark.integration
# The lifecycle tests' fixtures: the eraser's deps on the real infrastructure, a seeded org.
harness_deps, h, seeded = base.harness_deps, base.h, base.seeded


async def fence_locks(platform_db: asyncpg.Pool, job_id: uuid.UUID | None) -> tuple[int, int]:
    """(sessions holding the job's fence, sessions waiting for it)."""
    r = await platform_db.fetchrow(
        "SELECT count(*) FILTER (WHERE granted) AS held, count(*) FILTER (WHERE NOT granted) "
        "AS waiting FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
        "AND classid = $1::bigint::oid AND objid = (hashtext($2)::bigint & 4294967295)::oid",
        fence.FENCE_CLASS,
        str(job_id),
    )
    return r["held"], r["waiting"]


async def contents(s3: Any, keys: list[str]) -> dict[str, bytes]:
    return {k: await (await s3.get_object(Bucket=BUCKET, Key=k))["Body"].read() for k in keys}


def events_of(h: Harness, env: Envelope, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for _, e in h.events if e.type == event_type and e.job_id == env.job_id]


async def soft_deleted(h: Harness, seeded: SeededOrg, subject_no: int = 0) -> Envelope:
    env = request(seeded.org_id, seeded.users[subject_no].email, window=7)
    await service.plan(env, h.deps)
    await h.run_chunks()
    assert (await job(h, env)).status == "soft_deleted"
    return env


async def window_over(h: Harness, env: Envelope) -> None:
    await h.deps.lethe.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() - interval '1 day' WHERE job_id = $1",
        env.job_id,
    )


def assert_never_completed(h: Harness, env: Envelope) -> None:
    """No purge, no completion event, no completion mail (callbacks follow the events)."""
    assert events_of(h, env, "PurgeStarted") == []
    assert events_of(h, env, "JobCompleted") == []
    # The soft delete's notice (data hidden, restorable until...) is sent before any of this;
    # nothing that says the erasure was carried out may follow it.
    mails = [m["template"] for m in events_of(h, env, "SendEmail")]
    assert mails in ([], ["erasure_hidden"]), mails


# ------------------------------------------------------------------ cancel during a chunk


@pytest.mark.parametrize(
    "restore_while_asleep", [True, False], ids=["restore-while-chunk-sleeps", "restore-after"]
)
async def test_cancel_during_a_throttled_chunk_then_restore_brings_every_row_back(
    h: Harness,
    seeded: SeededOrg,
    platform_db: asyncpg.Pool,
    s3: Any,
    restore_while_asleep: bool,
) -> None:
    subject = seeded.users[0]
    before = await snapshot(platform_db, subject.id)
    objects_before = await contents(s3, subject.object_keys)
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    media = next(e for e in h.queue if e.payload["table"] == "media_objects")
    h.queue.remove(media)
    await h.run_chunks(limit=1)  # one chunk first: the job now has a rate to keep
    j = await job(h, env)
    assert j.done > 0 and j.erasing_since is not None
    elapsed = (datetime.now(UTC) - j.erasing_since).total_seconds()
    h.deps.rate_limit_rows = j.done / (elapsed + 4)  # the media chunk sleeps about 4 s
    try:
        chunk = asyncio.create_task(service.process_chunk(media, h.deps))
        await asyncio.sleep(0.5)
        assert not chunk.done(), "the chunk should be sleeping for its rate limit"
        await service.cancel(command(env, CancelErasure(reason="wrong person")), h.deps)
        if restore_while_asleep:
            await service.restore(command(env, RestoreErasure()), h.deps)
            assert not chunk.done(), "the restore should have come while the chunk slept"
        await chunk  # wakes, moves its objects, finds the job stopped: commits nothing
        if not restore_while_asleep:
            await service.restore(command(env, RestoreErasure()), h.deps)
    finally:
        h.deps.rate_limit_rows = 0.0
    await h.run_chunks()  # the rest of the queue has no effect any more

    # Every row is back, exactly as it was; every object in its place with its bytes.
    assert await snapshot(platform_db, subject.id) == before
    assert await contents(s3, subject.object_keys) == objects_before
    j = await job(h, env)
    assert await _list(s3, quarantine_prefix(j.job_id)) == set()
    assert j.status == "restored"
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == 0
    restored = events_of(h, env, "JobRestored")
    assert len(restored) == 1 and restored[0]["fully_restored"] is True
    assert restored[0]["rows"] == j.done  # what was committed before the cancel, no more
    assert events_of(h, env, "BatchErased")[-1]["table"] != "media_objects"
    assert_never_completed(h, env)


# ------------------------------------------------------------------ restore vs the purge


async def test_restore_and_purge_race_restore_wins_purge_refused(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, s3: Any
) -> None:
    subject = seeded.users[0]
    before = await snapshot(platform_db, subject.id)
    objects_before = await contents(s3, subject.object_keys)
    env = await soft_deleted(h, seeded)
    await window_over(h, env)

    async with platform_db.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        # The restore takes the fence, then waits on this lock for its first insert.
        await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        restoring = asyncio.create_task(service.restore(command(env, RestoreErasure()), h.deps))
        await eventually(
            lambda: _holds(platform_db, env.job_id), timeout=20, what="restore in its fence"
        )
        sweeping = asyncio.create_task(service.sweep(h.deps))
        await eventually(
            lambda: _waits(platform_db, env.job_id), timeout=20, what="purge at the fence"
        )
        await tx.rollback()
    await restoring
    await sweeping

    j = await job(h, env)
    assert j.status == "restored" and j.purged_at is None and j.wrapped_key is not None
    assert await snapshot(platform_db, subject.id) == before
    assert await contents(s3, subject.object_keys) == objects_before
    assert events_of(h, env, "JobRestored")[0]["fully_restored"] is True
    assert_never_completed(h, env)
    assert events_of(h, env, "CommandRefused") == []


async def test_restore_and_purge_race_purge_wins_restore_refused(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool, lethe_db: asyncpg.Pool, s3: Any
) -> None:
    subject, others = seeded.users[0], seeded.users[1:]
    others_before = [await snapshot(platform_db, o.id) for o in others]
    env = await soft_deleted(h, seeded)
    await window_over(h, env)
    done = (await job(h, env)).done

    async with lethe_db.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        # The purge takes the fence, then waits on this row lock to move the job to purging.
        await blocker.execute(
            "SELECT 1 FROM lethe.erase_tasks WHERE job_id = $1 FOR UPDATE", env.job_id
        )
        sweeping = asyncio.create_task(service.sweep(h.deps))
        await eventually(
            lambda: _holds(platform_db, env.job_id), timeout=20, what="purge in its fence"
        )
        restoring = asyncio.create_task(service.restore(command(env, RestoreErasure()), h.deps))
        await eventually(
            lambda: _waits(platform_db, env.job_id), timeout=20, what="restore at the fence"
        )
        await tx.rollback()
    await sweeping
    await restoring

    j = await job(h, env)
    assert j.status == "purged" and j.wrapped_key is None
    refused = events_of(h, env, "CommandRefused")
    assert [r["command"] for r in refused] == ["RestoreErasure"]
    assert "purg" in refused[0]["reason"]
    assert events_of(h, env, "JobRestored") == []
    # Nothing half-done: all of the subject gone, nothing held, nobody else touched.
    assert set((await live_counts(platform_db, subject.id, subject.email)).values()) == {0}
    assert await present(s3, subject.object_keys) == []
    assert await _list(s3, quarantine_prefix(j.job_id)) == set()
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == 0
    assert [await snapshot(platform_db, o.id) for o in others] == others_before
    completed = events_of(h, env, "JobCompleted")
    assert len(completed) == 1 and completed[0]["verification"]["ok"] is True
    assert completed[0]["purged_rows"] == done and completed[0]["restored_rows"] == 0


async def _holds(platform_db: asyncpg.Pool, job_id: uuid.UUID | None) -> bool:
    return (await fence_locks(platform_db, job_id))[0] == 1


async def _waits(platform_db: asyncpg.Pool, job_id: uuid.UUID | None) -> bool:
    return (await fence_locks(platform_db, job_id))[1] >= 1


# ------------------------------------------------------------------ end states


async def test_a_restored_job_past_its_purge_date_stays_restored(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    before = await snapshot(platform_db, subject.id)
    env = await soft_deleted(h, seeded)
    await service.restore(command(env, RestoreErasure()), h.deps)
    assert (await job(h, env)).status == "restored"
    await window_over(h, env)

    await service.sweep(h.deps)
    j = await job(h, env)
    assert await service.purge(h.deps, j.job_id) is False  # asked directly: refused too

    j = await job(h, env)
    assert j.status == "restored" and j.purged_at is None
    assert await snapshot(platform_db, subject.id) == before
    assert_never_completed(h, env)
    # A second restore is refused: restored is terminal.
    await service.restore(command(env, RestoreErasure()), h.deps)
    assert "restored" in events_of(h, env, "CommandRefused")[0]["reason"]


async def test_items_restored_then_the_rest_purged_and_both_counts_reported(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    before = await snapshot(platform_db, subject.id)
    env = await soft_deleted(h, seeded)
    done = (await job(h, env)).done
    conv = sorted(before["conversations"])[0]
    conv_id = str(json.loads(conv)["id"])
    items = [Item(table="users", key=str(subject.id)), Item(table="conversations", key=conv_id)]
    await service.restore(command(env, RestoreErasure(items=items)), h.deps)
    assert events_of(h, env, "JobRestored")[0]["fully_restored"] is False
    assert (await job(h, env)).status == "soft_deleted"  # the rest stays erased

    await window_over(h, env)
    await service.sweep(h.deps)
    j = await job(h, env)
    assert j.status == "purged"
    completed = events_of(h, env, "JobCompleted")
    assert len(completed) == 1
    assert completed[0]["restored_rows"] == 2 and completed[0]["purged_rows"] == done - 2
    assert completed[0]["verification"]["ok"] is True
    mail = events_of(h, env, "SendEmail")
    # The data-hidden notice at the soft delete, then the completion (with both counts).
    assert [m["template"] for m in mail] == ["erasure_hidden", "job_completed"]
    assert mail[1]["context"]["rows_restored"] == 2
    assert mail[1]["context"]["rows_purged"] == done - 2
    # The two restored rows are live, exactly as before; the rest is gone.
    after = await snapshot(platform_db, subject.id)
    assert after["users"] == before["users"] and after["conversations"] == {conv}
    assert after["payments"] == after["newsletter_signups"] == set()
    assert after["media_objects"] == set()
    assert after["messages"] == set()


async def test_a_whole_restore_that_cannot_bring_back_everything_keeps_the_job_in_its_window(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[1]
    env = await soft_deleted(h, seeded, subject_no=1)
    done = (await job(h, env)).done
    # The subject's email is taken meanwhile: their user row (and what hangs off it) stays out.
    await platform_db.execute(
        "INSERT INTO users (org_id, email) VALUES ($1, $2)", seeded.org_id, subject.email
    )
    await service.restore(command(env, RestoreErasure()), h.deps)
    restored = events_of(h, env, "JobRestored")[0]
    assert restored["whole_job"] is True and restored["fully_restored"] is False
    assert restored["needs_review"] and restored["rows"] < done
    j = await job(h, env)
    assert j.status == "soft_deleted"  # not "restored": rows are still held
    async with platform_db.acquire() as conn:
        held = await store.restoration_rows(conn, j.job_id)
    assert held == done - restored["rows"]

    # The window ends: what is still held is purged, and the completion says both.
    await window_over(h, env)
    await service.sweep(h.deps)
    completed = events_of(h, env, "JobCompleted")
    assert (await job(h, env)).status == "purged"
    assert completed[0]["purged_rows"] == held
    assert completed[0]["restored_rows"] == restored["rows"]


async def test_a_cancelled_erasure_is_purged_at_its_window_end_and_never_reported_completed(
    h: Harness, seeded: SeededOrg, platform_db: asyncpg.Pool
) -> None:
    subject = seeded.users[0]
    env = request(seeded.org_id, subject.email, window=7)
    await service.plan(env, h.deps)
    await h.run_chunks(limit=1)  # one chunk done, then stopped
    await service.cancel(command(env, CancelErasure(reason="stop")), h.deps)
    await h.run_chunks()  # the rest of the queue has no effect any more
    j = await job(h, env)
    assert j.status == "cancelled" and j.done > 0
    await window_over(h, env)

    await service.sweep(h.deps)
    j = await job(h, env)
    # What the cancelled job had hidden is gone for good (key destroyed), but nothing says
    # the erasure was carried out: no completion event, mail or callback.
    assert j.purged_at is not None and j.wrapped_key is None
    async with platform_db.acquire() as conn:
        assert await store.restoration_rows(conn, j.job_id) == 0
    assert events_of(h, env, "JobCompleted") == []
    assert [m["template"] for m in events_of(h, env, "SendEmail")] == []
    (purged,) = events_of(h, env, "CancelledErasurePurged")
    assert purged["purged_rows"] == j.done
