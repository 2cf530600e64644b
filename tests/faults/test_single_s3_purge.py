"""S3 gone while a recovery window ends: the purge deletes nothing whose object it could not
delete, retries, says why in the job's review items, and completes once S3 is back.

The S3 server (moto) keeps objects in memory, so "S3 returns" puts back what the bucket held
when it went down, as a real store would still hold it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from services.eraser import objects as s3objects
from services.eraser import store as eraser_store
from shared.storage import ensure_bucket
from tests.faults.checks import objects_present, rows_of, seed
from tests.faults.conftest import FaultStack
from tests.helpers import eventually, job_in, submit_erasure
from tests.seeding import PLATFORM_BUCKET

pytestmark = pytest.mark.e2e


async def _snapshot(s3: Any) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=PLATFORM_BUCKET):
        for o in page.get("Contents", []):
            body = await s3.get_object(Bucket=PLATFORM_BUCKET, Key=o["Key"])
            found[o["Key"]] = await body["Body"].read()
    return found


async def _put_back(s3: Any, objects: dict[str, bytes]) -> None:
    await ensure_bucket(s3, PLATFORM_BUCKET)
    await asyncio.gather(
        *(s3.put_object(Bucket=PLATFORM_BUCKET, Key=k, Body=v) for k, v in objects.items())
    )


def _purge_failures(stack: FaultStack, job_id: uuid.UUID) -> int:
    return stack.log("eraser").count(f"purge of job {job_id} failed")


async def test_s3_down_during_purge_deletes_nothing_and_completes_after(
    single_stack: FaultStack, client_of: Any
) -> None:
    stack, client = single_stack, client_of(single_stack)
    assert stack.lethe is not None and stack.platform is not None
    org = await stack.new_org()
    seeded = await seed(stack, org, heavy=2)
    subject = seeded.users[0]
    job_id = await submit_erasure(client, org, subject.email, window=1)
    hidden = await job_in(client, org, str(job_id), ("soft_deleted",), timeout=180)
    quarantine = s3objects.quarantine_prefix(job_id)
    held_before = await eraser_store.restoration_rows(stack.platform, job_id)
    quarantined_before = len(
        await s3objects.list_prefix(stack.s3, PLATFORM_BUCKET, quarantine) or ()
    )
    snapshot = await _snapshot(stack.s3)

    await asyncio.to_thread(stack.stop_s3)
    # The window ends now; the eraser's sweep (every second) starts the purge.
    await stack.lethe.execute(
        "UPDATE lethe.erase_tasks SET purge_after = now() - interval '1 second' WHERE job_id = $1",
        job_id,
    )
    await eventually(
        lambda: _async(_purge_failures(stack, job_id) >= 2),
        timeout=150,
        what="two failed purge attempts",
    )
    during = (await client.get(f"/v1/jobs/{job_id}", headers=org.headers)).json()
    held_during = await eraser_store.restoration_rows(stack.platform, job_id)
    recorded = await stack.lethe.fetchval(
        "SELECT needs_review FROM lethe.erase_tasks WHERE job_id = $1", job_id
    )
    attempts = _purge_failures(stack, job_id)

    # The eraser waits while S3 returns with what it held: a purge between moto's (empty)
    # start and the objects put back would delete nothing and leave them behind.
    stack.pause_process("eraser")
    try:
        await asyncio.to_thread(stack.start_s3)
        await _put_back(stack.s3, snapshot)
    finally:
        stack.resume_process("eraser")
    done = await job_in(client, org, str(job_id), ("completed", "failed"), timeout=120)
    held_after = await eraser_store.restoration_rows(stack.platform, job_id)
    quarantined_after = len(
        await s3objects.list_prefix(stack.s3, PLATFORM_BUCKET, quarantine) or ()
    )
    counts = {
        "rows_hidden": hidden["done"],
        "seeded_rows": seeded.rows_of(subject),
        "restoration_rows_before": held_before,
        "restoration_rows_while_s3_down": held_during,
        "restoration_rows_after": held_after,
        "quarantined_objects_before": quarantined_before,
        "quarantined_objects_after": quarantined_after,
        "subject_objects_in_place": await objects_present(stack, subject.object_keys),
        "failed_purge_attempts_while_down": attempts,
        "status_while_down": during["status"],
        "eraser_review_items_while_down": [r.get("kind") for r in recorded],
        "api_review_items_while_down": [r.get("kind") for r in during["needs_review"]],
        "status_after": done["status"],
        "api_review_items_after": [r.get("kind") for r in done["needs_review"]],
        "subject_rows_left": await rows_of(stack.platform, subject.id),
    }
    print("S3 down during the purge:\n" + "\n".join(f"  {k} = {v}" for k, v in counts.items()))

    assert hidden["done"] == seeded.rows_of(subject) == held_before
    assert quarantined_before == len(subject.object_keys) > 0
    # While S3 was down: nothing held was dropped, the job is not done, and it says why.
    assert held_during == held_before and attempts >= 2
    assert during["status"] != "completed"
    assert "purge_incomplete" in counts["eraser_review_items_while_down"]
    assert "purge_incomplete" in counts["api_review_items_while_down"]
    # S3 back: the purge went through, objects first, then the rows; nothing left to review.
    assert done["status"] == "completed" and done["needs_review"] == []
    assert held_after == 0 and quarantined_after == 0
    assert counts["subject_objects_in_place"] == 0
    assert sum(counts["subject_rows_left"].values()) == 0


async def _async(value: Any) -> Any:
    return value
